"""Coupling: a coupling layer over vector features or token channels, any map, any conditioner."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from typing_extensions import override

from ..maps.base import ElementwiseMap
from ..nets.mlp import MLPConditioner
from ._conditioned import ConditionedBijector, require_map
from .base import Shape

__all__ = ["Coupling"]


class Coupling(ConditionedBijector):
    r"""Coupling layer (RealNVP, Dinh et al. 2017; spline: Durkan et al. 2019) on the last axis.

    A boolean ``mask`` over the ``D`` features of the last axis marks the *kept* features
    :math:`x_A`; they pass through and, with the context :math:`c`, parameterise an element-wise
    map of the others :math:`x_B`:

    .. math::
        z_A = x_A, \qquad z_B = \tau\big(x_B;\ \theta(x_A, c)\big), \qquad
        \log|\det J| = \textstyle\sum_{b \in B} \log|\partial \tau / \partial x_b| .

    Both directions are one parallel pass. The input is ``(B, D)`` vectors or ``(B, ..., D)``
    (e.g. tokens ``(B, N, D)``: every token is split alike and the conditioner runs per token).

    The conditioner is an :class:`~flowkit.nets.MLPConditioner` by default, or any module with
    ``conditioner(x_A, context) -> params`` of shape ``(*x_A.shape[:-1], |B|, map.num_params)``.

    Args:
        features: ``D``, the size of the last axis.
        map: the element-wise map.
        conditioner: a network following the protocol, or ``None`` for an MLP with ``hidden``.
        mask: ``(D,)`` booleans, ``True`` for the kept features (default: the first ``D // 2``).
            Alternate it (``~mask``) between layers so that every feature gets transformed.
        hidden: hidden widths of the default MLP.
        num_classes: the context is integer labels ``(B,)`` in ``[-1, num_classes)``.
        context_features: the context is float vectors ``(B, context_features)``.
        dropout: dropout probability on the default MLP's hidden units (training mode only; see
            :class:`~flowkit.nets.MADE`).

    Examples:
        >>> from flowkit.maps import AffineMap
        >>> from flowkit.testing import randomize_parameters
        >>> layer = randomize_parameters(Coupling(4, AffineMap(), hidden=(16,), context_features=2))
        >>> x, c = torch.randn(5, 4), torch.randn(5, 2)
        >>> z, logdet = layer(x, context=c)
        >>> torch.equal(z[:, :2], x[:, :2]), bool(torch.allclose(layer.inverse(z, context=c)[0], x, atol=1e-5))
        (True, True)
    """

    mask: Tensor
    kept: Tensor
    changed: Tensor

    def __init__(self, features: int, map: ElementwiseMap, conditioner: nn.Module | None = None, *,
                 mask: Sequence[bool] | Tensor | None = None, hidden: Sequence[int] = (64, 64),
                 num_classes: int = 0, context_features: int = 0, dropout: float = 0.0) -> None:
        if not isinstance(features, int) or features < 2:
            raise ValueError(f"Coupling: features must be an int >= 2 (some kept, some transformed), got {features!r}")
        mask_t = torch.arange(features) < features // 2 if mask is None else torch.as_tensor(mask, dtype=torch.bool)
        if mask_t.shape != (features,) or bool(mask_t.all()) or not bool(mask_t.any()):
            raise ValueError(f"Coupling: mask must be {features} booleans with at least one True (kept) and one False "
                             f"(transformed), got {mask_t.tolist()}")
        kept, changed = torch.nonzero(mask_t).flatten(), torch.nonzero(~mask_t).flatten()
        if conditioner is None:
            conditioner = MLPConditioner(len(kept), len(changed), require_map(map, "Coupling").num_params, hidden,
                                         num_classes=num_classes, context_features=context_features, dropout=dropout)
        elif dropout:
            raise ValueError("Coupling: dropout configures the default MLP; put it in your conditioner")
        super().__init__(map, conditioner, num_classes=num_classes, context_features=context_features)
        self.features = features
        self.register_buffer("mask", mask_t, persistent=False)
        self.register_buffer("kept", kept, persistent=False)
        self.register_buffer("changed", changed, persistent=False)

    @override
    def extra_repr(self) -> str:
        return f"features={self.features}, kept={self.kept.tolist()}, context={self.context_kind}"

    @override
    def forward_shape(self, shape: Shape) -> Shape:
        if not shape or shape[-1] != self.features:
            raise ValueError(f"Coupling({self.features}) expects a last event axis of {self.features}, "
                             f"got {tuple(shape)}")
        return tuple(shape)

    def _couple(self, v: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        params = self._params(v[..., self.kept], context, len(self.changed))
        step = self.map.inverse if inverse else self.map.forward
        out, ladj = step(v[..., self.changed], params)
        return v.index_copy(-1, self.changed, out), ladj.flatten(1).sum(1)

    @override
    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, inverse=False)

    @override
    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(z, context, inverse=True)
