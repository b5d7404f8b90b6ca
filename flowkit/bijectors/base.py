"""The :class:`Bijector` contract, its :class:`Inverse` view, and :class:`Chain` composition."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Bijector", "Inverse", "Chain", "Shape", "propagate_shapes"]

Shape = tuple[int, ...]


class Bijector(nn.Module):
    r"""An exactly invertible map with a tractable log-determinant.

    Direction convention: :meth:`forward` *normalizes* (data :math:`x` to latent :math:`y`) and
    :meth:`inverse` *generates*. Both return the output and

    .. math:: \log\left|\det \frac{\partial\, \mathrm{output}}{\partial\, \mathrm{input}}\right|

    summed over every event dimension, one value per sample (shape ``(B,)``). Hence
    ``logdet_fwd(x) + logdet_inv(forward(x)) == 0``.

    A subclass implements :meth:`forward` and :meth:`inverse`; when it changes the event shape it
    also overrides :meth:`forward_shape` and :meth:`inverse_shape`. Class attributes declare
    structure that :func:`flowkit.testing.check_bijector` verifies:

    - ``conditional``: takes ``context`` (class labels).
    - ``volume_preserving``: the log-det is exactly zero.
    - ``causal``: on ``(B, N, D)`` sequences, output token ``i`` depends only on input tokens ``<= i``.
    - ``inverse_methods``: the values the ``method=`` keyword of :meth:`inverse` accepts.
    - ``event_shape``: the input event shape required, or ``None`` if any shape is accepted.
    - ``takes_sampling_options``: :meth:`inverse` accepts the sampling keywords (``guidance``,
      ``guide_what``, ``attn_temp``, ``annealed_guidance``, ``method``); flows pass them only to
      such bijectors.

    Examples:
        >>> class Shift(Bijector):
        ...     def forward(self, x, *, context=None):
        ...         return x - 1.0, x.new_zeros(x.shape[0])
        ...     def inverse(self, y, *, context=None):
        ...         return y + 1.0, y.new_zeros(y.shape[0])
        >>> y, logdet = Shift()(torch.zeros(2, 3))
        >>> y[0].tolist(), logdet.tolist()
        ([-1.0, -1.0, -1.0], [0.0, 0.0])
        >>> Shift().inv(torch.zeros(1, 2))[0].tolist()
        [[1.0, 1.0]]
    """

    conditional: bool = False
    volume_preserving: bool = False
    causal: bool = False
    inverse_methods: tuple[str, ...] = ()
    event_shape: Shape | None = None
    takes_sampling_options: bool = False

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map data to latent: returns ``(y, logdet)`` with ``logdet`` of shape ``(B,)``."""
        raise NotImplementedError

    def inverse(self, y: Tensor, *, context: Tensor | None = None, **options: Any) -> tuple[Tensor, Tensor]:
        """Map latent to data: returns ``(x, logdet)``, the log-det of this (inverse) map."""
        raise NotImplementedError

    def forward_shape(self, shape: Shape) -> Shape:
        """Event shape of the output of :meth:`forward` for an input event shape (default: same)."""
        self._check_event_shape(shape)
        return tuple(shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        """Event shape of the output of :meth:`inverse` (default: same)."""
        return tuple(shape)

    @property
    def inv(self) -> Bijector:
        """The inverse bijector, sharing this one's parameters."""
        return Inverse(self)

    def _check_event_shape(self, shape: Shape) -> None:
        if self.event_shape is not None and tuple(shape) != tuple(self.event_shape):
            raise ValueError(f"{self!r} expects event shape {tuple(self.event_shape)}, got {tuple(shape)}")

    def _check_context(self, context: Tensor | None) -> None:
        if context is not None and not self.conditional:
            raise ValueError(f"{type(self).__name__} is unconditional but was given a context")


class Inverse(Bijector):
    """The inverse of a bijector: swaps :meth:`forward` and :meth:`inverse` (and the shape maps).

    Options such as ``method=`` are passed to the wrapped bijector's ``inverse`` when this one's
    ``forward`` runs.
    """

    def __init__(self, bijector: Bijector) -> None:
        super().__init__()
        self.bijector = bijector
        self.conditional = bijector.conditional
        self.volume_preserving = bijector.volume_preserving
        self.event_shape = None

    def forward(self, x: Tensor, *, context: Tensor | None = None, **options: Any) -> tuple[Tensor, Tensor]:
        return self.bijector.inverse(x, context=context, **options)

    def inverse(self, y: Tensor, *, context: Tensor | None = None, **options: Any) -> tuple[Tensor, Tensor]:
        return self.bijector.forward(y, context=context)

    def forward_shape(self, shape: Shape) -> Shape:
        return self.bijector.inverse_shape(shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        return self.bijector.forward_shape(shape)

    @property
    def inv(self) -> Bijector:
        return self.bijector

    def extra_repr(self) -> str:
        return ""


def propagate_shapes(bijectors: Sequence[Bijector], event_shape: Shape | None = None) -> Shape | None:
    """Check that neighbouring bijectors fit and return the final event shape (``None`` if unknown).

    The shape is carried forward from ``event_shape`` (or from the first bijector that requires a
    fixed input shape) through each :meth:`Bijector.forward_shape`.

    Raises:
        ValueError: naming both sides of the first mismatch.

    Examples:
        >>> from flowkit import Patchify, Permutation
        >>> propagate_shapes([Patchify(2), Permutation.reverse()], (3, 8, 8))
        (16, 12)
    """
    shape = None if event_shape is None else tuple(event_shape)
    previous = "the input" if event_shape is not None else None
    for i, b in enumerate(bijectors):
        if b.event_shape is not None and shape is not None and tuple(b.event_shape) != shape:
            raise ValueError(
                f"bijector {i} ({type(b).__name__}) expects event shape {tuple(b.event_shape)}, "
                f"but {previous} produces {shape}"
            )
        if shape is None and b.event_shape is not None:
            shape = tuple(b.event_shape)
        if shape is not None:
            try:
                shape = tuple(b.forward_shape(shape))
            except ValueError as e:
                raise ValueError(f"bijector {i} ({type(b).__name__}) cannot take the output of {previous}: {e}") from None
        previous = f"bijector {i} ({type(b).__name__})"
    return shape


def _options_for(b: Bijector, options: dict[str, Any]) -> dict[str, Any]:
    # Sampling options (guidance, method, ...) only concern the blocks that have a choice to make.
    return options if b.takes_sampling_options else {}


def chain_forward(
    bijectors: Iterable[Bijector], x: Tensor, context: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Apply ``bijectors`` in order, summing log-dets; context goes to the conditional ones only."""
    logdet = x.new_zeros(x.shape[0])
    for b in bijectors:
        x, ld = b(x, context=context if b.conditional else None)
        logdet = logdet + ld
    return x, logdet


def chain_inverse(
    bijectors: Sequence[Bijector], y: Tensor, context: Tensor | None, options: dict[str, Any]
) -> tuple[Tensor, Tensor]:
    """Invert ``bijectors`` in reverse order, summing the inverse log-dets."""
    logdet = y.new_zeros(y.shape[0])
    for b in reversed(list(bijectors)):
        y, ld = b.inverse(y, context=context if b.conditional else None, **_options_for(b, options))
        logdet = logdet + ld
    return y, logdet


class Chain(Bijector):
    """Composition of bijectors applied in list order: ``Chain([f, g]).forward(x) = g(f(x))``.

    The log-det is the sum of the parts'. Neighbouring shapes are checked when it is built.

    Args:
        bijectors: the parts, in the order :meth:`forward` applies them.
        event_shape: optional input event shape, to check the whole chain up front.

    Examples:
        >>> from flowkit import Patchify, Permutation
        >>> c = Chain([Patchify(2), Permutation.reverse()])
        >>> y, ld = c(torch.randn(4, 3, 8, 8))
        >>> tuple(y.shape), c.forward_shape((3, 8, 8))
        ((4, 16, 12), (16, 12))
    """

    def __init__(self, bijectors: Sequence[Bijector], event_shape: Shape | None = None) -> None:
        super().__init__()
        bijectors = list(bijectors)
        for i, b in enumerate(bijectors):
            if not isinstance(b, Bijector):
                raise TypeError(f"Chain: item {i} must be a flowkit Bijector, got {type(b).__name__}")
        propagate_shapes(bijectors, event_shape)
        self.bijectors = nn.ModuleList(bijectors)
        self.conditional = any(b.conditional for b in bijectors)
        self.volume_preserving = all(b.volume_preserving for b in bijectors)
        # In first-seen order, so that the exact reference a part lists first stays first.
        self.inverse_methods = tuple(dict.fromkeys(m for b in bijectors for m in b.inverse_methods))
        self.takes_sampling_options = any(b.takes_sampling_options for b in bijectors)
        self.event_shape = tuple(event_shape) if event_shape is not None else None
        first = next((b for b in bijectors if b.event_shape is not None), None)
        if self.event_shape is None and bijectors and first is bijectors[0]:
            self.event_shape = first.event_shape

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_context(context)
        return chain_forward(self.bijectors, x, context)

    def inverse(self, y: Tensor, *, context: Tensor | None = None, **options: Any) -> tuple[Tensor, Tensor]:
        self._check_context(context)
        if options and not self.takes_sampling_options:
            raise TypeError(f"Chain.inverse: no part takes sampling options, got {sorted(options)}")
        return chain_inverse(self.bijectors, y, context, options)

    def forward_shape(self, shape: Shape) -> Shape:
        for b in self.bijectors:
            shape = b.forward_shape(shape)
        return tuple(shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        for b in reversed(self.bijectors):
            shape = b.inverse_shape(shape)
        return tuple(shape)

    def __len__(self) -> int:
        return len(self.bijectors)

    def __getitem__(self, i: int) -> Bijector:
        return self.bijectors[i]  # type: ignore[return-value]


def zeros_logdet(x: Tensor) -> Tensor:
    """A ``(B,)`` zero log-det on ``x``'s device and dtype (for volume-preserving maps)."""
    return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
