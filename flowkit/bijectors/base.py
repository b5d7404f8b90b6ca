"""The :class:`Bijector` contract, its :class:`Inverse` view, and :class:`Chain` composition."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

import torch
from torch import Tensor, nn
from typing_extensions import override

from .._validation import (
    ContextSpec,
    ValueChecks,
    check_context,
    check_input,
    first_reference,
    merge_context_specs,
    validation_enabled,
)
from ..sampling.options import check_sampling_options

__all__ = ["Bijector", "Inverse", "Chain", "ContextSpec", "Shape", "propagate_shapes", "nested_calls",
           "report_nonfinite"]

Shape = tuple[int, ...]

# True while a flowkit call is running: bijectors called from inside it (a Chain's parts, a Flow's
# blocks) skip the input checks, which the outermost call already made.
_NESTED: ContextVar[bool] = ContextVar("flowkit_nested_call", default=False)


@contextmanager
def nested_calls() -> Iterator[None]:
    """Within this block, bijector calls skip their input checks (the caller made them).

    :class:`~flowkit.Flow` uses it around its blocks; user code rarely needs it.
    """
    token = _NESTED.set(True)
    try:
        yield
    finally:
        _NESTED.reset(token)


def _skip_checks() -> bool:
    # Under torch.compile the context variable cannot be traced; compiled code runs unchecked.
    return torch.compiler.is_compiling() or _NESTED.get()


def report_nonfinite(x: Tensor, owner: str) -> None:
    """Warn (``RuntimeWarning``) how many and which generated samples hold non-finite values.

    Generation keeps such samples: they are the model's behaviour (e.g. an overflow under strong
    guidance), and the rest of the batch is unaffected. One device synchronisation; skipped while
    value checks are off (:func:`flowkit.set_validation`).

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     report_nonfinite(torch.tensor([[0.0], [float("inf")]]), "Demo.inverse")
        >>> str(caught[0].message)
        'Demo.inverse: 1 of 2 generated samples hold non-finite values (samples [1]); they are returned as they are'
    """
    if not validation_enabled() or x.numel() == 0:
        return
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    if not bool(bad.any()):
        return
    index = bad.nonzero().flatten().tolist()
    shown = str(index[:10])[:-1] + (", ...]" if len(index) > 10 else "]")
    warnings.warn(f"{owner}: {len(index)} of {x.shape[0]} generated samples hold non-finite values "
                  f"(samples {shown}); they are returned as they are", RuntimeWarning, stacklevel=3)


def _checked(fn: Callable[..., tuple[Tensor, Tensor]], direction: str) -> Callable[..., tuple[Tensor, Tensor]]:
    """Wrap a subclass's ``forward``/``inverse`` so that the outermost call checks its inputs."""

    @functools.wraps(fn)
    def call(self: Bijector, x: Tensor, *, context: Tensor | None = None, **options: Any) -> tuple[Tensor, Tensor]:
        if _skip_checks():
            return fn(self, x, context=context, **options)
        self._check_call(direction, x, context, options)
        with nested_calls():
            out = fn(self, x, context=context, **options)
        if direction == "inverse":
            report_nonfinite(out[0], f"{type(self).__name__}.inverse")
        return out

    call.__flowkit_checked__ = True  # type: ignore[attr-defined]
    return call


def _declared_options(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword-only parameters of an ``inverse`` other than ``context``.

    ``None`` if it takes ``**options``: then the class must declare ``sampling_options`` itself.
    """
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "context")


class Bijector(nn.Module):
    r"""An exactly invertible map with a tractable log-determinant.

    Direction convention: :meth:`forward` *normalizes* (data :math:`x` to latent :math:`z`) and
    :meth:`inverse` *generates*. Both return the output and

    .. math:: \log\left|\det \frac{\partial\, \mathrm{output}}{\partial\, \mathrm{input}}\right|

    summed over every event dimension, one value per sample (shape ``(B,)``). Hence
    ``logdet_fwd(x) + logdet_inv(forward(x)) == 0``.

    **What a subclass writes: its maths.** ``forward(self, x, *, context=None)`` and
    ``inverse(self, z, *, context=None, <its sampling options>)``, both returning
    ``(output, logdet)``; when it changes the event shape, ``forward_shape`` / ``inverse_shape``
    (raising ``ValueError`` on shapes it cannot take).

    **What a subclass declares** (class or instance attributes; all optional):

    - ``event_shape``: the input event shape it requires (``None``: any), or ``event_ndim``: the
      number of input event dimensions;
    - ``context_spec``: a :class:`ContextSpec` (``ContextSpec.labels(num_classes)`` or
      ``ContextSpec.vector(features)``); setting it makes the bijector conditional. ``conditional``
      alone (with no spec) accepts any tensor whose first axis is the batch;
    - ``sampling_options``: the :class:`~flowkit.sampling.SamplingOptions` names its ``inverse``
      takes; by default the keyword-only parameters of its ``inverse`` besides ``context`` (an
      ``inverse`` with ``**options`` must declare them);
    - structure that :func:`flowkit.testing.check_bijector` verifies: ``volume_preserving`` (log-det
      exactly 0), ``causal`` (on ``(B, N, D)`` sequences, output token ``i`` depends only on input
      tokens ``<= i``), ``inverse_methods`` (the values of ``method=``, the exact reference first).

    **What the base class does.** ``__init_subclass__`` wraps the subclass's ``forward`` and
    ``inverse``, so that the *outermost* call checks what the caller passed in, before the maths
    runs: a tensor of a floating dtype equal to the parameters' dtype, on their device; the event
    shape (``event_shape``, ``event_ndim``, then ``forward_shape``/``inverse_shape``); the context
    (missing, malformed, unexpected, labels out of range); the sampling options (unknown, not taken
    by this bijector, wrong type, ``method`` not in ``inverse_methods``); finiteness. The checks that
    read values (finiteness, label ranges) cost one device synchronisation together, none after
    :func:`flowkit.set_validation(False) <flowkit.set_validation>`. Calls made from inside another
    flowkit call (a :class:`Chain`'s parts, a :class:`~flowkit.Flow`'s blocks) skip the checks.
    Values generated inside an :meth:`inverse` are not checked: a generated sample that is
    non-finite is reported by a ``RuntimeWarning`` (how many, which), and the batch is returned whole.

    Examples:
        >>> class Shift(Bijector):
        ...     def forward(self, x, *, context=None):
        ...         return x - 1.0, x.new_zeros(x.shape[0])
        ...     def inverse(self, z, *, context=None):
        ...         return z + 1.0, z.new_zeros(z.shape[0])
        >>> z, logdet = Shift()(torch.zeros(2, 3))
        >>> z[0].tolist(), logdet.tolist()
        ([-1.0, -1.0, -1.0], [0.0, 0.0])
        >>> Shift().inv(torch.zeros(1, 2))[0].tolist()
        [[1.0, 1.0]]
        >>> Shift()(torch.zeros(2, 3, dtype=torch.long))
        Traceback (most recent call last):
        ...
        TypeError: Shift: x must be a floating-point tensor, got dtype torch.int64
        >>> Shift().inverse(torch.zeros(2, 3), guidance=1.0)
        Traceback (most recent call last):
        ...
        TypeError: Shift.inverse takes no sampling option 'guidance' (it takes: none)
    """

    conditional: bool = False
    context_spec: ContextSpec | None = None
    volume_preserving: bool = False
    causal: bool = False
    inverse_methods: tuple[str, ...] = ()
    event_shape: Shape | None = None
    event_ndim: int | None = None
    sampling_options: frozenset[str] = frozenset()
    # Options the *forward* direction takes (only an Inverse of a bijector with sampling options).
    _forward_options: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for direction in ("forward", "inverse"):
            fn = cls.__dict__.get(direction)
            if fn is not None and not getattr(fn, "__flowkit_checked__", False):
                setattr(cls, direction, _checked(fn, direction))
        inverse = cls.__dict__.get("inverse")
        if inverse is not None and "sampling_options" not in cls.__dict__:
            declared = _declared_options(inverse)
            if declared is not None:
                cls.sampling_options = declared
        if "context_spec" in cls.__dict__ and cls.__dict__["context_spec"] is not None:
            cls.conditional = True

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "context_spec" and value is not None:
            # torch types the value as Tensor | Module, but a plain attribute takes any value.
            super().__setattr__("conditional", True)  # type: ignore[arg-type]

    @property
    def takes_sampling_options(self) -> bool:
        """Whether :meth:`inverse` takes any sampling option (see ``sampling_options``)."""
        return bool(self.sampling_options)

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map data to latent: returns ``(z, logdet)`` with ``logdet`` of shape ``(B,)``."""
        raise NotImplementedError

    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map latent to data: returns ``(x, logdet)``, the log-det of this (inverse) map.

        A subclass adds the sampling options it takes as keyword-only parameters (or ``**options``
        with ``sampling_options`` declared); the base class rejects any other option by name.
        """
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
            raise ValueError(f"{type(self).__name__} expects event shape {tuple(self.event_shape)}, got {tuple(shape)}")

    def _check_context(self, context: Tensor | None) -> None:
        """Check ``context`` as a top-level call does (for bijectors written before the base class did).

        The wrapper already checks the context of a top-level call, so new code does not call this.
        """
        check_context(context, self.context_spec, self.conditional, -1 if context is None else context.shape[0],
                      type(self).__name__, None)

    def _reference(self) -> Tensor | None:
        """A floating parameter (or buffer) that fixes the dtype and device inputs must have."""
        ref = first_reference(self.parameters())
        return ref if ref is not None else first_reference(self.buffers())

    def _check_call(self, direction: str, x: object, context: object, options: dict[str, Any]) -> None:
        """The checks of a top-level call (see the class docstring)."""
        forward = direction == "forward"
        owner = type(self).__name__ + ("" if forward else ".inverse")
        ref = self._reference()
        checks = ValueChecks()
        if forward:
            x = check_input(x, "x", owner, ref, self.event_shape, self.event_ndim, checks)
            shape = tuple(x.shape[1:])
            self.forward_shape(shape)
        else:
            latent = None if self.event_shape is None else self.forward_shape(tuple(self.event_shape))
            x = check_input(x, "z", owner, ref, latent, None, checks)
            self.inverse_shape(tuple(x.shape[1:]))
        check_context(context, self.context_spec, self.conditional, x.shape[0], owner, ref, checks)
        if options or not forward:
            check_sampling_options(options, self.sampling_options if not forward else self._forward_options, owner)
            methods = self.inverse_methods if not forward else getattr(self, "_forward_methods", ())
            method = options.get("method")
            if method is not None and methods and method not in methods:
                raise ValueError(f"{owner}: method must be one of {methods}, got {method!r}")
        checks.settle()


class Inverse(Bijector):
    """The inverse of a bijector: swaps :meth:`forward` and :meth:`inverse` (and the shape maps).

    Structure carries over: ``Inverse(b)`` is conditional (with ``b``'s ``context_spec``),
    volume-preserving and causal exactly when ``b`` is (the inverse of a triangular map is
    triangular). Its :meth:`forward` is ``b.inverse``, so it takes ``b``'s sampling options and
    ``method`` values; its :meth:`inverse` is ``b.forward`` and takes none.

    Examples:
        >>> from flowkit import Permutation
        >>> inv = Inverse(Permutation([2, 0, 1]))
        >>> inv(torch.tensor([[[0.0], [1.0], [2.0]]]))[0].flatten().tolist()
        [1.0, 2.0, 0.0]
        >>> inv.inverse(torch.zeros(1, 3, 1), method="bogus")
        Traceback (most recent call last):
        ...
        TypeError: Inverse.inverse takes no sampling option 'method' (it takes: none)
    """

    def __init__(self, bijector: Bijector) -> None:
        super().__init__()
        if not isinstance(bijector, Bijector):
            raise TypeError(f"Inverse: bijector must be a flowkit Bijector, got {type(bijector).__name__}")
        self.bijector = bijector
        self.conditional = bijector.conditional
        self.context_spec = bijector.context_spec
        self.volume_preserving = bijector.volume_preserving
        self.causal = bijector.causal
        self._forward_options = bijector.sampling_options
        self._forward_methods = bijector.inverse_methods
        self.event_shape = (None if bijector.event_shape is None
                            else tuple(bijector.forward_shape(tuple(bijector.event_shape))))

    @override
    def forward(self, x: Tensor, *, context: Tensor | None = None, **options: Any) -> tuple[Tensor, Tensor]:
        return self.bijector.inverse(x, context=context, **options)

    @override
    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.bijector.forward(z, context=context)

    @override
    def forward_shape(self, shape: Shape) -> Shape:
        return self.bijector.inverse_shape(shape)

    @override
    def inverse_shape(self, shape: Shape) -> Shape:
        return self.bijector.forward_shape(shape)

    @property
    @override
    def inv(self) -> Bijector:
        return self.bijector

    @override
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
                raise ValueError(f"bijector {i} ({type(b).__name__}) cannot take the output of {previous}: "
                                 f"{e}") from None
        previous = f"bijector {i} ({type(b).__name__})"
    return shape


def as_bijectors(modules: nn.ModuleList) -> Sequence[Bijector]:
    """The parts held in ``modules``, typed as bijectors (an ``nn.ModuleList`` is typed as holding modules).

    Only for lists whose items were checked to be bijectors when they were stored; costs nothing.
    """
    return cast("Sequence[Bijector]", modules)


def options_for(b: Bijector, options: dict[str, Any]) -> dict[str, Any]:
    """The sampling options that ``b`` takes (each part of a composition gets the ones it takes)."""
    if not options:
        return options
    return {k: v for k, v in options.items() if k in b.sampling_options}


def chain_forward(
    bijectors: Iterable[Bijector], x: Tensor, context: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Apply ``bijectors`` in order, summing log-dets; context goes to the conditional ones only."""
    logdet: Tensor | None = None
    for b in bijectors:
        x, ld = b(x, context=context if b.conditional else None)
        logdet = ld if logdet is None else logdet + ld
    return x, x.new_zeros(x.shape[0]) if logdet is None else logdet


def chain_inverse(
    bijectors: Sequence[Bijector], z: Tensor, context: Tensor | None, options: dict[str, Any]
) -> tuple[Tensor, Tensor]:
    """Invert ``bijectors`` in reverse order, summing the inverse log-dets."""
    logdet: Tensor | None = None
    for b in reversed(list(bijectors)):
        z, ld = b.inverse(z, context=context if b.conditional else None, **options_for(b, options))
        logdet = ld if logdet is None else logdet + ld
    return z, z.new_zeros(z.shape[0]) if logdet is None else logdet


def composition_flags(bijectors: Sequence[Bijector], owner: str) -> dict[str, Any]:
    """The structure of a composition of ``bijectors``.

    Conditional if any part is (with the merged :class:`ContextSpec`), volume-preserving / causal if
    every part is, the union of the parts' sampling options and inverse methods (in first-seen order,
    so the exact reference stays first).
    """
    conditional = [b for b in bijectors if b.conditional]
    specs = [b.context_spec for b in conditional if b.context_spec is not None]
    return dict(
        conditional=bool(conditional),
        context_spec=merge_context_specs(specs, owner) if len(specs) == len(conditional) else None,
        volume_preserving=all(b.volume_preserving for b in bijectors),
        causal=all(b.causal for b in bijectors),
        inverse_methods=tuple(dict.fromkeys(m for b in bijectors for m in b.inverse_methods)),
        sampling_options=frozenset().union(*(b.sampling_options for b in bijectors)),
    )


def bijector_list(bijectors: object, owner: str) -> list[Bijector]:
    """``bijectors`` as a list, checked to be an iterable (not a single bijector) of :class:`Bijector`.

    Examples:
        >>> bijector_list([nn.Linear(1, 1)], "Chain")
        Traceback (most recent call last):
        ...
        TypeError: Chain: bijectors[0] must be a flowkit Bijector, got Linear
    """
    if isinstance(bijectors, (Bijector, str, bytes)) or not isinstance(bijectors, Iterable):
        raise TypeError(f"{owner}: bijectors must be a list of flowkit Bijectors, got {type(bijectors).__name__}")
    items = list(bijectors)
    for i, b in enumerate(items):
        if not isinstance(b, Bijector):
            raise TypeError(f"{owner}: bijectors[{i}] must be a flowkit Bijector, got {type(b).__name__}")
    return items


class Chain(Bijector):
    """Composition of bijectors applied in list order: ``Chain([f, g]).forward(x) = g(f(x))``.

    The log-det is the sum of the parts'. Neighbouring shapes are checked when it is built. The
    chain is conditional if a part is, volume-preserving and causal if every part is; it takes the
    union of its parts' sampling options and gives each part the ones it takes.

    Args:
        bijectors: the parts, in the order :meth:`forward` applies them.
        event_shape: optional input event shape, to check the whole chain up front.

    Examples:
        >>> from flowkit import Patchify, Permutation
        >>> c = Chain([Patchify(2), Permutation.reverse()])
        >>> z, ld = c(torch.randn(4, 3, 8, 8))
        >>> tuple(z.shape), c.forward_shape((3, 8, 8))
        ((4, 16, 12), (16, 12))
    """

    def __init__(self, bijectors: Sequence[Bijector], event_shape: Shape | None = None) -> None:
        super().__init__()
        bijectors = bijector_list(bijectors, "Chain")
        propagate_shapes(bijectors, event_shape)
        self.bijectors = nn.ModuleList(bijectors)
        for name, value in composition_flags(bijectors, "Chain").items():
            setattr(self, name, value)
        self.event_shape = tuple(event_shape) if event_shape is not None else None
        first = next((b for b in bijectors if b.event_shape is not None), None)
        if self.event_shape is None and bijectors and first is bijectors[0]:
            self.event_shape = first.event_shape

    @override
    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return chain_forward(as_bijectors(self.bijectors), x, context)

    @override
    def inverse(self, z: Tensor, *, context: Tensor | None = None, **options: Any) -> tuple[Tensor, Tensor]:
        return chain_inverse(as_bijectors(self.bijectors), z, context, options)

    @override
    def forward_shape(self, shape: Shape) -> Shape:
        for b in as_bijectors(self.bijectors):
            shape = b.forward_shape(shape)
        return tuple(shape)

    @override
    def inverse_shape(self, shape: Shape) -> Shape:
        for b in reversed(as_bijectors(self.bijectors)):
            shape = b.inverse_shape(shape)
        return tuple(shape)

    def __len__(self) -> int:
        return len(self.bijectors)

    def __getitem__(self, i: int) -> Bijector:
        return as_bijectors(self.bijectors)[i]


def zeros_logdet(x: Tensor) -> Tensor:
    """A ``(B,)`` zero log-det on ``x``'s device and dtype (for volume-preserving maps)."""
    return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
