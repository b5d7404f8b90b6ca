"""ActNorm: per-feature affine normalisation with data-dependent initialisation."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from typing_extensions import override

from .._args import finite_float, positive_int
from .base import Bijector, Shape

__all__ = ["ActNorm"]


class ActNorm(Bijector):
    r"""Per-feature affine map on the last axis, initialised from the first batch it sees.

    .. math::
        z = (x - \mu)\, e^{-s}, \qquad x = z\, e^{s} + \mu, \qquad
        \log|\det J| = -M \textstyle\sum_d s_d

    where :math:`M` is the number of positions sharing the ``D`` features (e.g. ``N`` tokens).
    The first :meth:`forward` in training mode sets :math:`\mu` and :math:`e^{s}` to the batch mean
    and standard deviation of each feature, so the output starts standardised (Glow, Kingma &
    Dhariwal 2018). Whether that happened is the buffer ``initialized``, saved in the
    ``state_dict``, so a loaded model is never re-initialised.

    Args:
        num_features: size ``D`` of the last axis.
        eps: floor on the initial standard deviation.

    Examples:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> norm = ActNorm(3)
        >>> z, logdet = norm(5 + 2 * torch.randn(256, 3))
        >>> [round(v, 2) for v in z.std(0).tolist()], bool(norm.initialized)
        ([1.0, 1.0, 1.0], True)
    """

    initialized: Tensor  # a registered buffer (declared for the type checker)

    def __init__(self, num_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        positive_int(num_features, "num_features", "ActNorm")
        finite_float(eps, "eps", "ActNorm", low=0.0, low_inclusive=False)
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.tensor(False))
        self.num_features, self.eps = num_features, eps

    @override
    def extra_repr(self) -> str:
        return f"num_features={self.num_features}"

    @override
    def forward_shape(self, shape: Shape) -> Shape:
        if not shape or shape[-1] != self.num_features:
            raise ValueError(f"ActNorm({self.num_features}) expects a last event axis of {self.num_features}, "
                             f"got {tuple(shape)}")
        return tuple(shape)

    @override
    def inverse_shape(self, shape: Shape) -> Shape:
        return self.forward_shape(shape)

    def _positions(self, x: Tensor) -> int:
        """How many positions share the ``D`` features (the log-scale counts once per position)."""
        return x[0].numel() // self.num_features

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        flat = x.reshape(-1, self.num_features)
        self.loc.copy_(flat.mean(0))
        self.log_scale.copy_(flat.std(0, unbiased=False).clamp_min(self.eps).log())
        self.initialized.fill_(True)

    @override
    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        positions = self._positions(x)
        if self.training and not bool(self.initialized):
            self._initialize(x)
        z = (x - self.loc) * torch.exp(-self.log_scale)
        return z, (-positions * self.log_scale.sum()).expand(x.shape[0]).to(x.dtype)

    @override
    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = z * torch.exp(self.log_scale) + self.loc
        return x, (self._positions(z) * self.log_scale.sum()).expand(z.shape[0]).to(z.dtype)
