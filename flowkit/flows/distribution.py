"""Adapter from a :class:`~flowkit.Flow` to :class:`torch.distributions.Distribution`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from ..sampling.options import check_sampling_options

if TYPE_CHECKING:
    from .flow import Flow

__all__ = ["FlowDistribution"]


class FlowDistribution(Distribution):
    """A flow seen as a ``torch.distributions.Distribution`` (optionally at a fixed context).

    ``batch_shape`` is ``()`` without a context, ``(B,)`` for labels of shape ``(B,)`` and for
    context vectors of shape ``(B, C)`` (the last axis of a vector context is its own event axis,
    not a batch axis). :meth:`rsample` is differentiable (through the flow's inverse); :meth:`sample`
    is not.

    Examples:
        >>> from flowkit import Flow, ActNorm
        >>> dist = Flow([ActNorm(2)], event_shape=(2,)).as_distribution()
        >>> tuple(dist.sample((5,)).shape), tuple(dist.log_prob(torch.zeros(5, 2)).shape)
        ((5, 2), (5,))
        >>> from flowkit import MAF
        >>> conditional = MAF(2, context_features=3, hidden=(8,)).as_distribution(context=torch.randn(4, 3))
        >>> tuple(conditional.batch_shape), tuple(conditional.sample((5,)).shape)
        ((4,), (5, 4, 2))
    """

    arg_constraints: dict[str, Any] = {}
    support = constraints.real
    has_rsample = True

    def __init__(self, flow: Flow, context: Tensor | None = None, **sampling_options: Any) -> None:
        from .flow import Flow  # a runtime import: flow.py imports this module

        if not isinstance(flow, Flow):
            raise TypeError(f"FlowDistribution: flow must be a flowkit Flow, got {type(flow).__name__}")
        check_sampling_options(sampling_options, flow.sampling_options, "FlowDistribution")
        if context is not None and not isinstance(context, Tensor):
            raise TypeError(f"FlowDistribution: context must be a tensor or None, got {type(context).__name__}")
        if flow.event_shape is None:
            raise ValueError("FlowDistribution needs a flow with a known event_shape")
        self.flow, self.context, self.options = flow, context, sampling_options
        spec = flow.context_spec
        vector = context is not None and (
            spec.kind == "vector" if spec is not None else context.dtype.is_floating_point)
        # The trailing axes of the context that are not batch axes: (C,) for vectors, () for labels.
        self._context_event = torch.Size(context.shape[-1:]) if context is not None and vector else torch.Size()
        batch_shape = torch.Size() if context is None else context.shape[:context.dim() - len(self._context_event)]
        super().__init__(batch_shape, torch.Size(flow.event_shape), validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        """Log-density of ``value`` ``(*sample_shape, *batch_shape, *event_shape)`` at the fixed context."""
        lead = value.shape[: value.dim() - len(self.event_shape)]
        flat = value.reshape(-1, *self.event_shape)
        return self.flow.log_prob(flat, context=self._context_for(lead)).reshape(lead)

    def _context_for(self, lead: torch.Size) -> Tensor | None:
        """The context broadcast to the leading (sample and batch) shape ``lead``, flattened to one batch."""
        if self.context is None:
            return None
        return self.context.expand(*lead, *self._context_event).reshape(-1, *self._context_event)

    def rsample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        """Samples ``(*sample_shape, *batch_shape, *event_shape)``, differentiable through the flow's inverse."""
        shape = torch.Size(sample_shape) + self.batch_shape
        n = math.prod(shape)
        x = self.flow.sample(n, context=self._context_for(shape), grad=True, **self.options)
        return x.reshape(*shape, *self.event_shape)

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        """Samples as :meth:`rsample`, without a graph."""
        with torch.no_grad():
            return self.rsample(sample_shape)
