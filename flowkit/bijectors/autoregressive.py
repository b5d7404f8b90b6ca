"""MaskedAutoregressive: an autoregressive flow layer over vector features, any map, any conditioner."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from typing_extensions import override

from .._args import check_permutation, index_tensor, int_at_least
from ..maps.base import ElementwiseMap
from ..nets.made import MADE
from ._conditioned import ConditionedBijector, require_map

__all__ = ["MaskedAutoregressive"]


class MaskedAutoregressive(ConditionedBijector):
    r"""Autoregressive layer over ``(B, D)`` vectors (MAF, Papamakarios et al. 2017; spline: NSF).

    A causal conditioner predicts the parameters of feature :math:`d` from the features before it
    in the order :math:`\pi` (and the context :math:`c`); an element-wise map transforms it:

    .. math::
        z_{\pi(k)} = \tau\big(x_{\pi(k)};\ \theta_{\pi(k)}(x_{\pi(<k)}, c)\big), \qquad
        \log|\det J| = \textstyle\sum_d \log|\partial \tau / \partial x_d| .

    :meth:`forward` (normalizing, used for the likelihood) is one parallel pass of the conditioner;
    :meth:`inverse` (sampling) is exact and sequential, :math:`D` passes: pass :math:`k` fixes
    feature :math:`\pi(k)`, whose parameters depend only on features already fixed.

    The conditioner is a :class:`~flowkit.nets.MADE` by default, or any module that follows the
    conditioner protocol: ``conditioner(x, context) -> params`` ``(B, D, map.num_params)`` with the
    parameters of feature ``order[k]`` depending only on ``x[:, order[:k]]``; ``order`` is read from
    ``conditioner.order`` when it has one, else ``0, 1, ..., D-1``.
    :func:`flowkit.testing.check_autoregressive` verifies that causality.

    Args:
        features: ``D``.
        map: the element-wise map, e.g. :class:`~flowkit.maps.AffineMap` or
            :class:`~flowkit.maps.RQSplineMap`.
        conditioner: a causal network, or ``None`` for a :class:`~flowkit.nets.MADE` built from
            ``hidden``, ``order``, ``residual``, ``dropout`` and the context arguments.
        hidden: hidden widths of the default MADE.
        num_classes: the context is integer labels ``(B,)`` in ``[-1, num_classes)``.
        context_features: the context is float vectors ``(B, context_features)``.
        order: autoregressive order of the default MADE (a permutation of ``range(D)``).
        residual: residual connections in the default MADE.
        dropout: dropout probability on the default MADE's hidden units (training mode only; see
            :class:`~flowkit.nets.MADE`).

    Examples:
        >>> from flowkit.maps import RQSplineMap
        >>> from flowkit.testing import randomize_parameters
        >>> layer = randomize_parameters(MaskedAutoregressive(3, RQSplineMap(bins=4), hidden=(16,)))
        >>> x = torch.randn(5, 3)
        >>> z, logdet = layer(x)
        >>> x_back, logdet_inv = layer.inverse(z)
        >>> bool(torch.allclose(x_back, x, atol=1e-5)), bool((logdet + logdet_inv).abs().max() < 1e-5)
        (True, True)
    """

    order: Tensor
    _fixed_after: Tensor

    def __init__(self, features: int, map: ElementwiseMap, conditioner: nn.Module | None = None, *,
                 hidden: Sequence[int] = (64, 64), num_classes: int = 0, context_features: int = 0,
                 order: Sequence[int] | Tensor | None = None, residual: bool = False, dropout: float = 0.0) -> None:
        int_at_least(features, "features", "MaskedAutoregressive", low=1)
        if conditioner is None:
            num_params = require_map(map, "MaskedAutoregressive").num_params
            conditioner = MADE(features, num_params, hidden, num_classes=num_classes,
                               context_features=context_features, order=order, residual=residual, dropout=dropout)
        elif order is not None:
            raise ValueError("MaskedAutoregressive: order configures the default MADE; a custom conditioner "
                             "declares its order as its own `order` attribute")
        elif dropout:
            raise ValueError("MaskedAutoregressive: dropout configures the default MADE; put it in your conditioner")
        super().__init__(map, conditioner, num_classes=num_classes, context_features=context_features)
        given = getattr(conditioner, "order", None)
        order_t = (torch.arange(features) if given is None
                   else index_tensor(given, "conditioner.order", "MaskedAutoregressive"))
        check_permutation(order_t, features, "conditioner.order", "MaskedAutoregressive")
        self.features = features
        self.event_shape = (features,)
        self.register_buffer("order", order_t, persistent=False)
        # `causal` in the base class's sense (output i depends on inputs <= i) holds in the identity order.
        self.causal = bool(torch.equal(order_t, torch.arange(features)))
        # Row k: the features fixed after pass k of the inverse, i.e. order[:k + 1].
        rank = torch.argsort(order_t)
        self.register_buffer("_fixed_after", rank.unsqueeze(0) <= torch.arange(features).unsqueeze(1), persistent=False)

    @override
    def extra_repr(self) -> str:
        return f"features={self.features}, context={self.context_kind}"

    @override
    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, ladj = self.map(x, self._params(x, context, self.features))
        return z, ladj.sum(-1)

    @override
    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # Unfixed features start at 0 (finite), so masked-out garbage can never turn into nan * 0.
        x = torch.zeros_like(z)
        ladj = torch.zeros_like(z)
        for k in range(self.features):
            x_all, ladj = self.map.inverse(z, self._params(x, context, self.features))
            x = torch.where(self._fixed_after[k], x_all, x)
        # The last pass saw every feature before the last one fixed: its parameters, hence its
        # log-derivatives, are exact for every feature.
        return x, ladj.sum(-1)
