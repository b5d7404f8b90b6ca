"""Flow: bijectors composed in order, on top of a base distribution."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_tensor
from ..bijectors.base import Bijector, Shape, chain_forward, chain_inverse, propagate_shapes
from .base import StandardNormal
from .distribution import FlowDistribution

__all__ = ["Flow"]


class Flow(nn.Module):
    r"""A normalizing flow: bijectors :math:`f_1, \dots, f_T` applied in order, and a base density.

    .. math::
        z = f_T \circ \dots \circ f_1(x), \qquad
        \log p(x) = \log p_{\mathrm{base}}(z) + \textstyle\sum_t \log|\det \partial f_t|

    :meth:`forward` normalizes (data to latent), :meth:`inverse` and :meth:`sample` generate.
    Context (class labels) goes to the conditional bijectors; sampling options (``guidance``,
    ``guide_what``, ``attn_temp``, ``annealed_guidance``, ``method``) go to the blocks that take them.

    Args:
        bijectors: in application order (data to latent); stored as the ``nn.ModuleList``
            ``self.bijectors``. Neighbouring shapes are checked here.
        base: the latent distribution; default :class:`StandardNormal` over the latent shape.
        event_shape: shape of one data sample; needed when the first bijector does not fix it.

    Examples:
        >>> from flowkit import Flow, Patchify, CausalAffine, Permutation
        >>> flow = Flow([Patchify(2), CausalAffine(dim=4, seq_len=16, channels=64, num_layers=1),
        ...              Permutation.reverse(), CausalAffine(dim=4, seq_len=16, channels=64, num_layers=1)],
        ...             event_shape=(1, 8, 8))
        >>> flow.latent_shape
        (16, 4)
        >>> x = flow.sample(3)
        >>> tuple(x.shape), tuple(flow.log_prob(x).shape)
        ((3, 1, 8, 8), (3,))
    """

    def __init__(self, bijectors: Sequence[Bijector], base: nn.Module | None = None,
                 event_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        bijectors = list(bijectors)
        if not bijectors:
            raise ValueError("Flow needs at least one bijector")
        for i, b in enumerate(bijectors):
            if not isinstance(b, Bijector):
                raise TypeError(f"Flow: bijectors[{i}] must be a flowkit Bijector, got {type(b).__name__}")
        if event_shape is None and bijectors[0].event_shape is not None:
            event_shape = bijectors[0].event_shape
        latent = propagate_shapes(bijectors, None if event_shape is None else tuple(event_shape))
        self.bijectors = nn.ModuleList(bijectors)
        self.event_shape: Shape | None = None if event_shape is None else tuple(event_shape)
        self.latent_shape: Shape | None = latent
        if base is None:
            if latent is None:
                raise ValueError("Flow: pass event_shape (or a base distribution) so the latent shape is known")
            base = StandardNormal(latent)
        base_shape = getattr(base, "event_shape", None)
        if latent is not None and base_shape is not None and tuple(base_shape) != latent:
            raise ValueError(f"Flow: the bijectors produce latents of shape {latent}, but the base is over {tuple(base_shape)}")
        self.base = base
        self.conditional = any(b.conditional for b in bijectors)

    # -- normalizing direction ---------------------------------------------------------------
    def _check_context(self, context: Tensor | None) -> None:
        if context is not None and not self.conditional:
            raise ValueError(f"{type(self).__name__} is unconditional (no conditional bijector) but a context was given")

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map data to latent: ``(z, logdet)`` with the summed log-det of shape ``(B,)``."""
        check_tensor(x, "x", self.event_shape, owner=type(self).__name__)
        self._check_context(context)
        return chain_forward(self.bijectors, x, context)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Log-density of ``x`` in nats, shape ``(B,)`` (summed over all dimensions)."""
        z, logdet = self(x, context)
        return self.base.log_prob(z) + logdet

    # -- generating direction -----------------------------------------------------------------
    def inverse(self, z: Tensor, context: Tensor | None = None, **options: Any) -> Tensor:
        """Map latents to data (generation). ``options`` are the sampling options."""
        return self._inverse(z, context, options)[0]

    def _inverse(self, z: Tensor, context: Tensor | None, options: dict[str, Any]) -> tuple[Tensor, Tensor]:
        check_tensor(z, "z", self.latent_shape, owner=f"{type(self).__name__}.inverse")
        self._check_context(context)
        if options and not any(b.takes_sampling_options for b in self.bijectors):
            raise TypeError(f"{type(self).__name__}.inverse: no bijector takes sampling options, got {sorted(options)}")
        return chain_inverse(self.bijectors, z, context, options)

    def _sample_latent(self, num_samples: int, context: Tensor | int | None, temperature: float,
                       generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        ref = next(self.parameters(), None)
        device = ref.device if ref is not None else None
        dtype = ref.dtype if ref is not None else None
        if isinstance(context, int):
            context = torch.full((num_samples,), context, dtype=torch.long, device=device)
        z = self.base.sample(num_samples, temperature=temperature, generator=generator, dtype=dtype, device=device)
        return z, context

    def sample(self, num_samples: int, context: Tensor | int | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """Draw ``num_samples`` samples.

        Args:
            num_samples: how many.
            context: labels ``(num_samples,)``, one int label for all, or ``None``.
            temperature: scales the standard deviation of the base noise.
            generator: for reproducible noise.
            **options: sampling options (``guidance``, ``guide_what``, ``attn_temp``,
                ``annealed_guidance``, ``method``).
        """
        z, context = self._sample_latent(num_samples, context, temperature, generator)
        return self.inverse(z, context, **options)

    def sample_and_log_prob(self, num_samples: int, context: Tensor | int | None = None, temperature: float = 1.0,
                            generator: torch.Generator | None = None, **options: Any) -> tuple[Tensor, Tensor]:
        r"""Samples and their log-density under the flow: :math:`\log p_{base}(z) - \log|\det \partial x/\partial z|`.

        With guidance the samples come from a different (guided) map, so their density under the
        model is recomputed in the normalizing direction.
        """
        z, context = self._sample_latent(num_samples, context, temperature, generator)
        x, logdet_inv = self._inverse(z, context, options)
        if options.get("guidance", 0):
            return x, self.log_prob(x, context)
        return x, self.base.log_prob(z) - logdet_inv

    def as_distribution(self, context: Tensor | None = None, **sampling_options: Any) -> FlowDistribution:
        """This flow as a :class:`torch.distributions.Distribution` (see :class:`FlowDistribution`)."""
        return FlowDistribution(self, context, **sampling_options)

    @property
    def num_dims(self) -> int:
        """Number of data dimensions ``D`` (for bits per dimension)."""
        if self.event_shape is None:
            raise ValueError("num_dims needs a known event_shape")
        return math.prod(self.event_shape)
