"""Affine (NVP) and shift (VP) element-wise maps."""

from __future__ import annotations

import torch
from torch import Tensor
from typing_extensions import override

from ..bijectors._affine import at_least_fp32
from .base import ElementwiseMap

__all__ = ["AffineMap", "ShiftMap"]


class AffineMap(ElementwiseMap):
    r"""Affine map with log-scale :math:`a` and shift :math:`b` (non-volume-preserving, "NVP").

    .. math::
        z = (x - b)\, e^{-a}, \qquad x = z\, e^{a} + b, \qquad
        \log\left|\frac{\partial z}{\partial x}\right| = -a .

    With ``bound`` set, the raw log-scale :math:`\tilde a` is softly clamped,
    :math:`a = c \tanh(\tilde a / c)` with :math:`c` = ``bound`` (so :math:`|a| < c`), which keeps
    early training steps from overflowing ``exp``; without it :math:`a = \tilde a`, as in TarFlow.
    ``exp`` runs in at least float32 under reduced-precision autocast.

    Parameters per feature: 2, ``params[..., 0] = a`` (raw), ``params[..., 1] = b``.

    Args:
        bound: the soft bound :math:`c > 0` on :math:`|a|`, or ``None``.

    Examples:
        >>> m = AffineMap()
        >>> z, ld = m(torch.tensor([3.0]), torch.tensor([[torch.log(torch.tensor(2.0)), 1.0]]))
        >>> z.tolist(), [round(v, 4) for v in ld.tolist()]
        ([1.0], [-0.6931])
        >>> m.inverse(z, torch.tensor([[torch.log(torch.tensor(2.0)), 1.0]]))[0].tolist()
        [3.0]
    """

    num_params = 2

    def __init__(self, bound: float | None = None) -> None:
        super().__init__()
        if bound is not None and not bound > 0:
            raise ValueError(f"AffineMap: bound must be > 0 or None, got {bound!r}")
        self.bound = bound

    @override
    def extra_repr(self) -> str:
        return "" if self.bound is None else f"bound={self.bound}"

    def guided_params(self, guide_what: str) -> tuple[int, ...]:
        """``"a"`` guides the (raw) log-scale, ``"b"`` the shift, ``"ab"`` both."""
        return tuple(i for i, name in enumerate("ab") if name in guide_what)

    def _log_scale_shift(self, params: Tensor) -> tuple[Tensor, Tensor]:
        a, b = at_least_fp32(params).unbind(-1)  # unbind: its backward is one stack, not two scatters
        if self.bound is not None:
            a = self.bound * torch.tanh(a / self.bound)
        return a, b

    @override
    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        a, b = self._log_scale_shift(params)
        z = (at_least_fp32(x) - b) * torch.exp(-a)
        return z.to(x.dtype), (-a).to(x.dtype)

    @override
    def inverse(self, z: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        a, b = self._log_scale_shift(params)
        x = at_least_fp32(z) * torch.exp(a) + b
        return x.to(z.dtype), a.to(z.dtype)


class ShiftMap(ElementwiseMap):
    r"""Shift map (volume-preserving, "VP"): the affine map with :math:`a = 0`.

    .. math::
        z = x - b, \qquad x = z + b, \qquad \log\left|\frac{\partial z}{\partial x}\right| = 0 .

    Parameters per feature: 1, ``params[..., 0] = b``.

    Examples:
        >>> ShiftMap()(torch.tensor([3.0, 1.0]), torch.tensor([[1.0], [2.0]]))
        (tensor([ 2., -1.]), tensor([0., 0.]))
    """

    num_params = 1
    volume_preserving = True

    def guided_params(self, guide_what: str) -> tuple[int, ...]:
        """``"b"`` (or ``"ab"``) guides the shift; there is no log-scale to guide."""
        return (0,) if "b" in guide_what else ()

    @override
    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        return x - params[..., 0], torch.zeros_like(x)

    @override
    def inverse(self, z: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        return z + params[..., 0], torch.zeros_like(z)
