"""Ready-made flows over vectors ``(B, D)``: masked autoregressive and coupling, affine and spline."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._args import boolean, dropout_rate, finite_float, positive_int, positive_ints
from ..bijectors.autoregressive import MaskedAutoregressive
from ..bijectors.base import Bijector
from ..bijectors.coupling import Coupling
from ..maps.affine import AffineMap
from ..maps.base import ElementwiseMap
from ..maps.spline import LOGIT_BOUND, RQSplineMap
from .flow import Flow

__all__ = ["MAF", "NSF", "RealNVP", "SplineCoupling"]


def _check_sizes(owner: str, features: int, transforms: int, hidden: Sequence[int], dropout: float) -> None:
    """The arguments every vector flow takes, checked once here (the layers check the rest)."""
    positive_int(features, "features", owner)
    positive_int(transforms, "transforms", owner)
    positive_ints(hidden, "hidden", owner)
    dropout_rate(dropout, owner)


def autoregressive_layers(features: int, map: ElementwiseMap, transforms: int, hidden: Sequence[int],
                          num_classes: int, context_features: int, residual: bool,
                          dropout: float = 0.0) -> list[Bijector]:
    """``transforms`` :class:`MaskedAutoregressive` layers whose MADE orders alternate forward/reversed.

    Reversing the order inside the conditioner is the feature permutation between layers without
    an extra bijector (and an extra gather) per layer.
    """
    forward_order = torch.arange(features)
    return [MaskedAutoregressive(features, map, hidden=hidden, num_classes=num_classes,
                                 context_features=context_features, residual=residual, dropout=dropout,
                                 order=forward_order if t % 2 == 0 else forward_order.flip(0))
            for t in range(transforms)]


def coupling_layers(features: int, map: ElementwiseMap, transforms: int, hidden: Sequence[int],
                    num_classes: int, context_features: int, dropout: float = 0.0) -> list[Bijector]:
    """``transforms`` :class:`Coupling` layers whose masks alternate (first half kept, then the rest)."""
    mask = torch.arange(features) < features // 2
    return [Coupling(features, map, mask=mask if t % 2 == 0 else ~mask, hidden=hidden, num_classes=num_classes,
                     context_features=context_features, dropout=dropout) for t in range(transforms)]


class MAF(Flow):
    r"""Masked autoregressive flow (Papamakarios et al., 2017) over ``(B, D)`` vectors.

    ``transforms`` :class:`~flowkit.bijectors.MaskedAutoregressive` layers with an
    :class:`~flowkit.maps.AffineMap` and a :class:`~flowkit.nets.MADE` conditioner, autoregressive
    orders alternating between :math:`0, \dots, D-1` and its reverse, on a standard normal base:

    .. math:: z_d = (x_d - b_d(x_{<d}, c))\, e^{-a_d(x_{<d}, c)} \quad \text{per layer.}

    The likelihood is one pass per layer; sampling is :math:`D` passes per layer.

    Args:
        features: ``D``.
        transforms: number of layers.
        hidden: hidden widths of each MADE.
        num_classes: condition on integer labels ``(B,)`` (``-1``: dropped label).
        context_features: condition on float vectors ``(B, context_features)``.
        residual: residual MADEs.
        dropout: dropout probability on the MADEs' hidden units, the regulariser for small data sets
            (training mode only: call ``flow.eval()`` before evaluating or sampling).

    Examples:
        >>> flow = MAF(3, context_features=2)
        >>> c = torch.randn(4, 2)
        >>> tuple(flow.log_prob(torch.randn(4, 3), context=c).shape), tuple(flow.sample(4, context=c).shape)
        ((4,), (4, 3))
    """

    def __init__(self, features: int, *, transforms: int = 3, hidden: Sequence[int] = (64, 64), num_classes: int = 0,
                 context_features: int = 0, residual: bool = False, dropout: float = 0.0) -> None:
        _check_sizes("MAF", features, transforms, hidden, dropout)
        boolean(residual, "residual", "MAF")
        super().__init__(autoregressive_layers(features, AffineMap(), transforms, hidden, num_classes,
                                               context_features, residual, dropout), event_shape=(features,))


class NSF(Flow):
    r"""Neural spline flow (Durkan et al., 2019): a masked autoregressive flow with spline maps.

    As :class:`MAF`, with the monotone rational-quadratic :class:`~flowkit.maps.RQSplineMap`
    (``bins`` bins on :math:`[-B, B]`, identity tails) in place of the affine map.

    Args:
        features: ``D``.
        transforms: number of layers.
        hidden: hidden widths of each MADE.
        bins: spline bins :math:`K`.
        bound: the spline's interval half-width :math:`B`.
        logit_bound: soft bound of the spline's bin-size logits (``None``: unbounded, as in 0.2.0;
            see :class:`~flowkit.maps.RQSplineMap`).
        num_classes: condition on integer labels ``(B,)`` (``-1``: dropped label).
        context_features: condition on float vectors ``(B, context_features)``.
        residual: residual MADEs.
        dropout: dropout probability on the MADEs' hidden units, the regulariser for small data sets
            (training mode only: call ``flow.eval()`` before evaluating or sampling).

    Examples:
        >>> sum(p.numel() for p in NSF(2).parameters())
        22026
        >>> flow = NSF(2, num_classes=3)
        >>> x = flow.sample(5, context=torch.tensor([0, 1, 2, -1, 0]))
        >>> tuple(flow.log_prob(x, context=torch.tensor([0, 1, 2, -1, 0])).shape)
        (5,)
    """

    def __init__(self, features: int, *, transforms: int = 3, hidden: Sequence[int] = (64, 64), bins: int = 8,
                 bound: float = 5.0, num_classes: int = 0, context_features: int = 0, residual: bool = False,
                 dropout: float = 0.0, logit_bound: float | None = LOGIT_BOUND) -> None:
        _check_sizes("NSF", features, transforms, hidden, dropout)
        boolean(residual, "residual", "NSF")
        finite_float(bound, "bound", "NSF", low=0.0, low_inclusive=False)
        spline = RQSplineMap(bins, bound, logit_bound=logit_bound)
        super().__init__(autoregressive_layers(features, spline, transforms, hidden, num_classes, context_features,
                                               residual, dropout), event_shape=(features,))


class RealNVP(Flow):
    r"""Affine coupling flow (RealNVP, Dinh et al., 2017) over ``(B, D)`` vectors, ``D >= 2``.

    ``transforms`` :class:`~flowkit.bijectors.Coupling` layers with an
    :class:`~flowkit.maps.AffineMap` and an :class:`~flowkit.nets.MLPConditioner`; the kept half
    alternates (first ``D // 2`` features, then the others). Likelihood and sampling are both one
    pass per layer.

    Args:
        features: ``D``.
        transforms: number of layers (at least 2, so that every feature is transformed).
        hidden: hidden widths of each MLP.
        num_classes: condition on integer labels ``(B,)``.
        context_features: condition on float vectors ``(B, context_features)``.
        dropout: dropout probability on the MLPs' hidden units (training mode only).

    Examples:
        >>> flow = RealNVP(4)
        >>> tuple(flow.sample(3).shape)
        (3, 4)
    """

    def __init__(self, features: int, *, transforms: int = 4, hidden: Sequence[int] = (64, 64), num_classes: int = 0,
                 context_features: int = 0, dropout: float = 0.0) -> None:
        _check_sizes("RealNVP", features, transforms, hidden, dropout)
        super().__init__(coupling_layers(features, AffineMap(), transforms, hidden, num_classes, context_features,
                                         dropout), event_shape=(features,))


class SplineCoupling(Flow):
    r"""Rational-quadratic spline coupling flow (Durkan et al., 2019) over ``(B, D)`` vectors, ``D >= 2``.

    As :class:`RealNVP`, with :class:`~flowkit.maps.RQSplineMap` in place of the affine map.

    Args:
        features: ``D``.
        transforms: number of layers.
        hidden: hidden widths of each MLP.
        bins: spline bins :math:`K`.
        bound: the spline's interval half-width :math:`B`.
        logit_bound: soft bound of the spline's bin-size logits (``None``: unbounded, as in 0.2.0;
            see :class:`~flowkit.maps.RQSplineMap`).
        num_classes: condition on integer labels ``(B,)``.
        context_features: condition on float vectors ``(B, context_features)``.
        dropout: dropout probability on the MLPs' hidden units (training mode only).

    Examples:
        >>> flow = SplineCoupling(3, transforms=2)
        >>> tuple(flow.log_prob(torch.randn(2, 3)).shape)
        (2,)
    """

    def __init__(self, features: int, *, transforms: int = 4, hidden: Sequence[int] = (64, 64), bins: int = 8,
                 bound: float = 5.0, num_classes: int = 0, context_features: int = 0, dropout: float = 0.0,
                 logit_bound: float | None = LOGIT_BOUND) -> None:
        _check_sizes("SplineCoupling", features, transforms, hidden, dropout)
        finite_float(bound, "bound", "SplineCoupling", low=0.0, low_inclusive=False)
        spline = RQSplineMap(bins, bound, logit_bound=logit_bound)
        super().__init__(coupling_layers(features, spline, transforms, hidden, num_classes, context_features,
                                         dropout), event_shape=(features,))
