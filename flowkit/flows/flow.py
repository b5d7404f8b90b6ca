"""Flow: bijectors composed in order, on top of a base distribution."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from .._args import boolean, finite_float, positive_int
from .._modes import active_dropout
from .._validation import ContextSpec, ValueChecks, check_context, check_input, first_reference
from ..bijectors.base import (
    Bijector,
    Shape,
    _skip_checks,
    as_bijectors,
    bijector_list,
    chain_forward,
    chain_inverse,
    composition_flags,
    nested_calls,
    propagate_shapes,
    report_nonfinite,
)
from ..sampling.options import check_sampling_options
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
        base: the latent distribution: a :class:`StandardNormal` or a subclass such as
            :class:`~flowkit.EMADiagonalNormal` (the trainer calls its ``update_moment``); default
            :class:`StandardNormal` over the latent shape.
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

    def __init__(self, bijectors: Sequence[Bijector], base: StandardNormal | None = None,
                 event_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        bijectors = bijector_list(bijectors, "Flow")
        if not bijectors:
            raise ValueError("Flow needs at least one bijector")
        if event_shape is not None:
            if isinstance(event_shape, (str, bytes)) or not isinstance(event_shape, Sequence):
                raise TypeError(f"Flow: event_shape must be a tuple of ints, got {type(event_shape).__name__}")
            event_shape = tuple(positive_int(s, f"event_shape[{i}]", "Flow") for i, s in enumerate(event_shape))
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
        if not isinstance(base, nn.Module) or not all(callable(getattr(base, m, None)) for m in ("log_prob", "sample")):
            raise TypeError(f"Flow: base must be a distribution module with log_prob and sample (e.g. StandardNormal), "
                            f"got {type(base).__name__}")
        base_shape = getattr(base, "event_shape", None)
        if latent is not None and base_shape is not None and tuple(base_shape) != latent:
            raise ValueError(f"Flow: the bijectors produce latents of shape {latent}, but the base is over "
                             f"{tuple(base_shape)}")
        self.base: StandardNormal = base
        flags = composition_flags(bijectors, "Flow")
        self.conditional: bool = flags["conditional"]
        self.context_spec: ContextSpec | None = flags["context_spec"]
        self.sampling_options: frozenset[str] = flags["sampling_options"]
        self.inverse_methods: tuple[str, ...] = flags["inverse_methods"]

    # -- checks ----------------------------------------------------------------------------------
    def _reference(self) -> Tensor | None:
        ref = first_reference(self.parameters())
        return ref if ref is not None else first_reference(self.buffers())

    def _check_inputs(self, owner: str, z_or_x: tuple[str, Tensor, Shape | None] | None, context: object,
                      options: dict[str, Any] | None, batch: int | None = None) -> None:
        """The checks of a top-level call, as :class:`~flowkit.Bijector` makes them (one sync at most)."""
        ref = self._reference()
        checks = ValueChecks()
        if z_or_x is not None:
            name, value, shape = z_or_x
            batch = check_input(value, name, owner, ref, shape, None, checks).shape[0]
        assert batch is not None
        check_context(context, self.context_spec, self.conditional, batch, owner, ref, checks)
        if options is not None:
            check_sampling_options(options, self.sampling_options, owner)
            method = options.get("method")
            if method is not None and self.inverse_methods and method not in self.inverse_methods:
                raise ValueError(f"{owner}: method must be one of {self.inverse_methods}, got {method!r}")
        checks.settle()

    # -- normalizing direction ---------------------------------------------------------------
    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map data to latent: ``(z, logdet)`` with the summed log-det of shape ``(B,)``.

        The inputs are checked once here (see :class:`~flowkit.Bijector`); the blocks skip their checks.
        """
        if _skip_checks():
            return chain_forward(as_bijectors(self.bijectors), x, context)
        self._check_inputs(type(self).__name__, ("x", x, self.event_shape), context, None)
        with nested_calls():
            return chain_forward(as_bijectors(self.bijectors), x, context)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Log-density of ``x`` in nats, shape ``(B,)`` (summed over all dimensions)."""
        z, logdet = self(x, context)
        return self.base.log_prob(z) + logdet

    # -- generating direction -----------------------------------------------------------------
    def inverse(self, z: Tensor, context: Tensor | None = None, *, grad: bool = False, **options: Any) -> Tensor:
        """Map latents to data (generation).

        Args:
            z: latents ``(B, *latent_shape)``.
            context: as for :meth:`forward`.
            grad: record the autograd graph (for gradients through generation, e.g. to
                differentiate samples with respect to the parameters). By default generation runs
                under :func:`torch.no_grad`, which keeps memory at the size of one pass instead of
                a graph through every token of every block.
            **options: the sampling options (:class:`~flowkit.sampling.SamplingOptions`).

        Non-finite generated samples are kept and reported by a ``RuntimeWarning``.
        """
        return self._inverse(z, context, options, grad, f"{type(self).__name__}.inverse", check_z=True)[0]

    def _inverse(self, z: Tensor, context: Tensor | None, options: dict[str, Any], grad: bool = False,
                 owner: str = "", check_z: bool = True) -> tuple[Tensor, Tensor]:
        """Checks, then the inverse of every block with its log-det.

        ``check_z=False`` for latents that :meth:`sample` drew itself.
        """
        owner = owner or f"{type(self).__name__}.inverse"
        boolean(grad, "grad", owner)
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            if _skip_checks():
                return chain_inverse(as_bijectors(self.bijectors), z, context, options)
            self._check_inputs(owner, ("z", z, self.latent_shape) if check_z else None, context, options,
                               batch=z.shape[0])
            self._warn_if_random(owner)
            with nested_calls():
                x, logdet = chain_inverse(as_bijectors(self.bijectors), z, context, options)
        report_nonfinite(x, owner)
        return x, logdet

    def _warn_if_random(self, owner: str) -> None:
        """Warn when active dropout makes generation random (a flow in training mode)."""
        if active_dropout(self):
            warnings.warn(f"{owner}: the flow is in training mode with active dropout, so every pass draws new "
                          f"dropout masks and generation is neither exact nor the inverse of log_prob; call "
                          f".eval() first", RuntimeWarning, stacklevel=4)

    def _sample_latent(self, num_samples: int, context: Tensor | int | None, temperature: float,
                       generator: torch.Generator | None, owner: str) -> tuple[Tensor, Tensor | None]:
        positive_int(num_samples, "num_samples", owner)
        finite_float(temperature, "temperature", owner, low=0.0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{owner}: generator must be a torch.Generator or None, got {type(generator).__name__}")
        ref = next(self.parameters(), None)
        device = ref.device if ref is not None else None
        dtype = ref.dtype if ref is not None else None
        if isinstance(context, int) and not isinstance(context, bool):
            context = torch.full((num_samples,), context, dtype=torch.long, device=device)
        z = self.base.sample(num_samples, temperature=temperature, generator=generator, dtype=dtype, device=device)
        # A bool context (not a label) is left as it is: the checks reject it by name.
        return z, cast("Tensor | None", context)

    def sample(self, num_samples: int, context: Tensor | int | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, *, grad: bool = False, **options: Any) -> Tensor:
        """Draw ``num_samples`` samples.

        Args:
            num_samples: how many.
            context: labels ``(num_samples,)``, one int label for all, or ``None``.
            temperature: scales the standard deviation of the base noise (finite, ``>= 0``).
            generator: for reproducible noise.
            grad: record the autograd graph through generation (off by default: see :meth:`inverse`).
            **options: sampling options (:class:`~flowkit.sampling.SamplingOptions`: ``guidance``,
                ``guide_what``, ``attn_temp``, ``annealed_guidance``, ``method``, ...).
        """
        owner = f"{type(self).__name__}.sample"
        z, context = self._sample_latent(num_samples, context, temperature, generator, owner)
        return self._inverse(z, context, options, grad, owner, check_z=False)[0]

    def sample_and_log_prob(self, num_samples: int, context: Tensor | int | None = None, temperature: float = 1.0,
                            generator: torch.Generator | None = None, *, grad: bool = False,
                            **options: Any) -> tuple[Tensor, Tensor]:
        r"""Samples and their log-density under the flow: :math:`\log p_{base}(z) - \log|\det \partial x/\partial z|`.

        With guidance the samples come from a different (guided) map, so their density under the
        model is recomputed in the normalizing direction. No autograd graph unless ``grad=True``.
        """
        owner = f"{type(self).__name__}.sample_and_log_prob"
        z, context = self._sample_latent(num_samples, context, temperature, generator, owner)
        x, logdet_inv = self._inverse(z, context, options, grad, owner, check_z=False)
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
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
