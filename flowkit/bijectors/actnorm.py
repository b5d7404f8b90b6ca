"""ActNorm: per-feature affine normalisation with data-dependent initialisation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validation import check_tensor
from .base import Bijector, Shape

__all__ = ["ActNorm"]


class ActNorm(Bijector):
    r"""Per-feature affine map on the last axis, initialised from the first batch it sees.

    .. math::
        y = (x - \mu)\, e^{-s}, \qquad x = y\, e^{s} + \mu, \qquad
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
        >>> y, logdet = norm(5 + 2 * torch.randn(256, 3))
        >>> [round(v, 2) for v in y.std(0).tolist()], bool(norm.initialized)
        ([1.0, 1.0, 1.0], True)
    """

    def __init__(self, num_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"ActNorm: num_features must be a positive int, got {num_features!r}")
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.tensor(False))
        self.num_features, self.eps = num_features, eps

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}"

    def forward_shape(self, shape: Shape) -> Shape:
        if not shape or shape[-1] != self.num_features:
            raise ValueError(f"ActNorm({self.num_features}) expects a last event axis of {self.num_features}, got {tuple(shape)}")
        return tuple(shape)

    def _check(self, x: Tensor, name: str) -> int:
        check_tensor(x, name, owner="ActNorm")
        if x.dim() < 2:
            raise ValueError(f"ActNorm: {name} must be (B, ..., {self.num_features}), got shape {tuple(x.shape)}")
        self.forward_shape(tuple(x.shape[1:]))
        return x[0].numel() // self.num_features

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        flat = x.reshape(-1, self.num_features)
        self.loc.copy_(flat.mean(0))
        self.log_scale.copy_(flat.std(0, unbiased=False).clamp_min(self.eps).log())
        self.initialized.fill_(True)

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_context(context)
        positions = self._check(x, "x")
        if self.training and not bool(self.initialized):
            self._initialize(x)
        y = (x - self.loc) * torch.exp(-self.log_scale)
        return y, (-positions * self.log_scale.sum()).expand(x.shape[0]).to(x.dtype)

    def inverse(self, y: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_context(context)
        positions = self._check(y, "y")
        x = y * torch.exp(self.log_scale) + self.loc
        return x, (positions * self.log_scale.sum()).expand(y.shape[0]).to(y.dtype)
