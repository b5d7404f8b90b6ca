"""A user-written bijector: an affine coupling on the features of each token, with a small MLP.

This file is the worked example of the "Writing a bijector" page of the documentation, which
includes it verbatim, and it is run by ``tests/docs/test_examples.py``. Run it directly with
``python docs/examples/mlp_coupling.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowkit import Bijector, Flow, Patchify, Permutation


class MLPCoupling(Bijector):
    r"""Affine coupling on the last axis: the first half of the features sets scale and shift of the rest.

    With :math:`x = (x^{(0)}, x^{(1)})` split on the last axis and an MLP predicting
    :math:`(a, b)` from :math:`x^{(0)}`:

    .. math::
        z^{(0)} = x^{(0)}, \qquad z^{(1)} = (x^{(1)} - b)\, e^{-a}, \qquad
        \log|\det J| = -\textstyle\sum a .

    Args:
        dim: size ``D >= 2`` of the last axis.
        hidden: width of the MLP.

    Examples:
        >>> block = MLPCoupling(dim=4)
        >>> z, logdet = block(torch.randn(2, 5, 4))
        >>> tuple(z.shape), tuple(logdet.shape)
        ((2, 5, 4), (2,))
    """

    def __init__(self, dim: int, hidden: int = 32) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 2:
            raise ValueError(f"MLPCoupling: dim must be an int >= 2, got {dim!r}")
        self.dim, self.half = dim, dim // 2
        self.net = nn.Sequential(nn.Linear(self.half, hidden), nn.GELU(), nn.Linear(hidden, 2 * (dim - self.half)))
        # Zero-initialised output layer: the block starts as the identity (stable deep stacks).
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        # Any event shape whose last axis has `dim` features; the shape is unchanged.
        if not shape or shape[-1] != self.dim:
            raise ValueError(f"MLPCoupling({self.dim}) expects a last event axis of {self.dim}, got {tuple(shape)}")
        return tuple(shape)

    inverse_shape = forward_shape  # the same shapes on the latent side

    def _params(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        a, b = self.net(kept).chunk(2, dim=-1)
        return torch.tanh(a), b  # a bounded log-scale keeps exp(-a) well conditioned

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # The base class has checked x (type, dtype, device, shape via forward_shape, finiteness)
        # and the context (none: this block is unconditional) before this runs.
        kept, changed = x[..., : self.half], x[..., self.half :]
        a, b = self._params(kept)
        z = (changed - b) * torch.exp(-a)
        logdet = -a.flatten(1).sum(1)  # summed over every event dimension: shape (B,)
        return torch.cat([kept, z], dim=-1), logdet

    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kept, changed = z[..., : self.half], z[..., self.half :]
        a, b = self._params(kept)  # the kept half is the same in x and z
        x = changed * torch.exp(a) + b
        return torch.cat([kept, x], dim=-1), a.flatten(1).sum(1)


def check() -> None:
    """Run flowkit's bijector checklist on ``MLPCoupling``, as a test of your own bijector would."""
    from flowkit.testing import check_bijector, randomize_parameters

    block = randomize_parameters(MLPCoupling(dim=4).double(), std=0.3, seed=0)
    x = torch.randn(4, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    check_bijector(block, x)  # raises AssertionError naming the first property that fails


def demo() -> Flow:
    """Use it in a flow next to flowkit's own bijectors."""
    flow = Flow([Patchify(2), MLPCoupling(dim=4), Permutation.reverse(), MLPCoupling(dim=4)],
                event_shape=(1, 8, 8))
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    loss = -flow.log_prob(x).mean()  # nats per image
    loss.backward()
    samples = flow.sample(4)
    assert samples.shape == (4, 1, 8, 8)
    return flow


if __name__ == "__main__":
    check()
    demo()
    print("MLPCoupling passes check_bijector")
