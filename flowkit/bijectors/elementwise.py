"""Elementwise: an element-wise map with free (learned, unconditional) parameters per feature."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from typing_extensions import override

from .._args import int_at_least
from ..maps.base import ElementwiseMap
from .base import Bijector, Shape

__all__ = ["Elementwise"]


class Elementwise(Bijector):
    r"""Apply an element-wise map to each feature of the last axis with learned parameters :math:`\theta_d`.

    .. math::
        z_{\dots d} = \tau(x_{\dots d};\ \theta_d), \qquad
        \log|\det J| = \textstyle\sum_{\dots, d} \log|\partial \tau / \partial x_{\dots d}| .

    The parameters start at zero, the identity for flowkit's maps. With
    :class:`~flowkit.maps.RQSplineMap` this is a learned monotone marginal per feature; with
    :class:`~flowkit.maps.AffineMap` a per-feature affine normalisation (ActNorm without its data
    initialisation).

    Args:
        features: ``D``, the size of the last axis.
        map: the element-wise map.

    Examples:
        >>> from flowkit.maps import AffineMap
        >>> layer = Elementwise(2, AffineMap())
        >>> with torch.no_grad():
        ...     _ = layer.params.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        >>> z, logdet = layer(torch.tensor([[1.0, 1.0]]))
        >>> [round(v, 4) for v in z[0].tolist()], round(logdet.item(), 4)
        ([0.0, 0.3679], -1.0)
    """

    def __init__(self, features: int, map: ElementwiseMap) -> None:
        super().__init__()
        int_at_least(features, "features", "Elementwise", low=1)
        if not isinstance(map, ElementwiseMap):
            raise TypeError(f"Elementwise: map must be a flowkit.maps.ElementwiseMap, got {type(map).__name__}")
        self.features, self.map = features, map
        self.params = nn.Parameter(torch.zeros(features, map.num_params))
        self.volume_preserving = map.volume_preserving

    @override
    def extra_repr(self) -> str:
        return f"features={self.features}"

    @override
    def forward_shape(self, shape: Shape) -> Shape:
        if not shape or shape[-1] != self.features:
            raise ValueError(f"Elementwise({self.features}) expects a last event axis of {self.features}, "
                             f"got {tuple(shape)}")
        return tuple(shape)

    def _run(self, v: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        params = self.params.to(v.dtype).expand(*v.shape, self.map.num_params)
        out, ladj = (self.map.inverse if inverse else self.map.forward)(v, params)
        return out, ladj.flatten(1).sum(1)

    @override
    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(x, inverse=False)

    @override
    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(z, inverse=True)
