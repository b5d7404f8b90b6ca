"""What the general structures (autoregressive, coupling) share: the declared context and the output check."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from .._validation import context_spec_for
from ..maps.base import ElementwiseMap
from .base import Bijector


def require_map(map: object, owner: str) -> ElementwiseMap:
    """``map`` if it is an :class:`~flowkit.maps.ElementwiseMap`, else a ``TypeError`` naming ``owner``."""
    if not isinstance(map, ElementwiseMap):
        raise TypeError(f"{owner}: map must be a flowkit.maps.ElementwiseMap (e.g. AffineMap()), "
                        f"got {type(map).__name__}")
    return map


def check_conditioner_output(params: object, expected: tuple[int, ...], owner: str, conditioner: object,
                             layout: Callable[[], str]) -> Tensor:
    """``params`` if it is a tensor of shape ``expected``, else a ``ValueError`` naming the conditioner.

    A user network that breaks the protocol gets this instead of a broadcasting error inside the map;
    ``layout()`` says what the axes are (built only for the message: this runs on every call).
    """
    if not isinstance(params, Tensor) or tuple(params.shape) != expected:
        got = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
        raise ValueError(f"{owner}: the conditioner {type(conditioner).__name__} must return parameters of shape "
                         f"{expected} ({layout()}), got {got}")
    return params


class ConditionedBijector(Bijector):
    """A bijector whose element-wise ``map`` is parameterised by a ``conditioner`` network.

    Declares the context the conditioner takes as its ``context_spec`` (``num_classes`` labels or
    ``context_features`` vectors), so the base class checks it once per top-level call; checks the
    conditioner's output shape, so a user network that breaks the protocol gets a ``ValueError``
    naming it instead of a broadcasting error inside the map.
    """

    def __init__(self, map: ElementwiseMap, conditioner: nn.Module, *, num_classes: int, context_features: int) -> None:
        super().__init__()
        owner = type(self).__name__
        require_map(map, owner)
        if not callable(conditioner):
            raise TypeError(f"{owner}: conditioner must be a callable nn.Module, got {type(conditioner).__name__}")
        spec = context_spec_for(num_classes, context_features, owner)
        self.map, self.conditioner = map, conditioner
        self.num_classes, self.context_features = num_classes, context_features
        if spec is not None:
            self.context_spec = spec
        self.volume_preserving = map.volume_preserving

    @property
    def context_kind(self) -> str | None:
        """``"labels"``, ``"vector"`` or ``None`` (unconditional)."""
        return None if self.context_spec is None else self.context_spec.kind

    def _params(self, x: Tensor, context: Tensor | None, out_features: int) -> Tensor:
        return check_conditioner_output(
            self.conditioner(x, context), (*x.shape[:-1], out_features, self.map.num_params), type(self).__name__,
            self.conditioner, lambda: f"inputs' leading axes, {out_features} features, "
                                      f"{type(self.map).__name__}.num_params={self.map.num_params}")
