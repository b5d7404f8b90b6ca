"""Argument checking shared by every bijector, flow and constructor.

Two kinds of checks live here:

- **Constructor arguments**: :func:`positive_int`, :func:`nonnegative_int`, :func:`boolean`,
  :func:`choice`, :func:`probability` and :func:`finite_float` return the value or raise a
  ``TypeError`` (wrong type; ``bool`` is never an ``int``) or ``ValueError`` (wrong value) naming
  the owner, the argument, what was expected and what came.
- **Call inputs**: what a caller passes to a bijector or a flow (tensor type, dtype, device, event
  shape, context, finiteness). :class:`~flowkit.Bijector` runs them once per top-level call (see
  its docstring); :func:`check_input` and :func:`check_context` are the pieces. The checks that read
  tensor *values* (finiteness, label ranges) are gathered in a :class:`ValueChecks` and settled with
  one device synchronisation; :func:`set_validation` switches them off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral
from typing import Literal, TypeVar

import torch
from torch import Tensor

__all__ = [
    "set_validation", "validation_enabled", "validating", "check_tensor", "check_labels", "ContextSpec",
    "ValueChecks", "check_input", "check_context", "positive_int", "nonnegative_int", "boolean", "choice",
    "probability", "finite_float", "context_spec_for", "int_at_least", "positive_ints",
    "check_permutation", "first_line",
]

_ENABLED = True
T = TypeVar("T")


def set_validation(enabled: bool) -> None:
    """Globally switch the value checks (non-finite inputs, label ranges) on or off.

    Type, shape, dtype and device checks read no tensor values, cost microseconds and always run;
    only the checks that read values (one device synchronisation per top-level call) are affected,
    and the report of non-finite generated samples with them.

    Examples:
        >>> import flowkit
        >>> flowkit.set_validation(False); flowkit.set_validation(True)
    """
    global _ENABLED
    _ENABLED = boolean(enabled, "enabled", "set_validation")


def validation_enabled() -> bool:
    """Whether value checks are on (see :func:`set_validation`)."""
    return _ENABLED


@contextmanager
def validating(enabled: bool) -> Iterator[None]:
    """Context manager form of :func:`set_validation`, restoring the previous setting on exit."""
    previous = _ENABLED
    set_validation(enabled)
    try:
        yield
    finally:
        set_validation(previous)


# -- constructor arguments ------------------------------------------------------------------------

def _where(owner: str) -> str:
    return f"{owner}: " if owner else ""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: object, name: str, owner: str = "") -> int:
    """``value`` if it is an ``int >= 1`` (``bool`` is not an int).

    Raises:
        TypeError: not an int. ValueError: ``< 1``.

    Examples:
        >>> positive_int(3, "dim")
        3
        >>> positive_int(True, "dim", "CausalAffine")
        Traceback (most recent call last):
        ...
        TypeError: CausalAffine: dim must be a positive int, got bool True
    """
    return _int_at_least(value, name, owner, 1, "a positive int")


def nonnegative_int(value: object, name: str, owner: str = "") -> int:
    """``value`` if it is an ``int >= 0`` (``bool`` is not an int).

    Examples:
        >>> nonnegative_int(-1, "num_classes", "TarFlow")
        Traceback (most recent call last):
        ...
        ValueError: TarFlow: num_classes must be an int >= 0, got -1
    """
    return int_at_least(value, name, owner, low=0)


def int_at_least(value: object, name: str, owner: str = "", *, low: int) -> int:
    """``value`` if it is an ``int >= low`` (``bool`` is not an int).

    Examples:
        >>> int_at_least(0, "features", "MADE", low=1)
        Traceback (most recent call last):
        ...
        ValueError: MADE: features must be an int >= 1, got 0
    """
    return _int_at_least(value, name, owner, low, f"an int >= {low}")


def positive_ints(value: object, name: str, owner: str = "") -> list[int]:
    """``value`` as a list if it is a non-empty sequence of positive ints (e.g. hidden widths).

    Raises:
        TypeError: not a non-empty sequence (a string is not one), or an item that is not an int.
        ValueError: an item ``< 1`` (named by its index).

    Examples:
        >>> positive_ints((64, 64), "hidden")
        [64, 64]
        >>> positive_ints(8, "hidden", "MAF")
        Traceback (most recent call last):
        ...
        TypeError: MAF: hidden must be a non-empty sequence of positive ints, got 8
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise TypeError(f"{_where(owner)}{name} must be a non-empty sequence of positive ints, got {value!r}")
    return [positive_int(v, f"{name}[{i}]", owner) for i, v in enumerate(value)]


def _int_at_least(value: object, name: str, owner: str, low: int, what: str) -> int:
    if not _is_int(value):
        raise TypeError(f"{_where(owner)}{name} must be {what}, got {type(value).__name__} {value!r}")
    assert isinstance(value, int)
    if value < low:
        raise ValueError(f"{_where(owner)}{name} must be {what}, got {value!r}")
    return value


def boolean(value: object, name: str, owner: str = "") -> bool:
    """``value`` if it is a ``bool`` (not ``0``/``1``, not a string such as ``'no'``).

    Examples:
        >>> boolean("no", "nvp", "TarFlow")
        Traceback (most recent call last):
        ...
        TypeError: TarFlow: nvp must be True or False, got str 'no'
    """
    if not isinstance(value, bool):
        raise TypeError(f"{_where(owner)}{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def choice(value: T, name: str, options: Sequence[T], owner: str = "") -> T:
    """``value`` if it is one of ``options``.

    Examples:
        >>> choice("bogus", "kind", ("identity", "reverse"), "Permutation")
        Traceback (most recent call last):
        ...
        ValueError: Permutation: kind must be one of 'identity', 'reverse', got 'bogus'
    """
    if isinstance(value, bool) or value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"{_where(owner)}{name} must be one of {listed}, got {value!r}")
    return value


def finite_float(value: object, name: str, owner: str = "", *, low: float | None = None,
                 low_inclusive: bool = True) -> float:
    """``value`` as a float if it is a finite real number (not a ``bool``), optionally bounded below.

    The bound is ``>= low``, or ``> low`` with ``low_inclusive=False``.

    Examples:
        >>> finite_float(2, "guidance", low=0.0)
        2.0
        >>> finite_float(float("inf"), "temperature", "Flow.sample", low=0.0)
        Traceback (most recent call last):
        ...
        ValueError: Flow.sample: temperature must be a finite float >= 0, got inf
    """
    bound = "" if low is None else f" {'>=' if low_inclusive else '>'} {low:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{_where(owner)}{name} must be a finite float{bound}, got {type(value).__name__} {value!r}")
    ok = math.isfinite(value) and (low is None or (value >= low if low_inclusive else value > low))
    if not ok:
        raise ValueError(f"{_where(owner)}{name} must be a finite float{bound}, got {value!r}")
    return float(value)


def probability(value: object, name: str, owner: str = "") -> float:
    """``value`` as a float if it lies in ``[0, 1]``.

    Examples:
        >>> probability(1.5, "label_drop")
        Traceback (most recent call last):
        ...
        ValueError: label_drop must be a probability in [0, 1], got 1.5
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{_where(owner)}{name} must be a probability in [0, 1], got {type(value).__name__} {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{_where(owner)}{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


# -- call inputs ----------------------------------------------------------------------------------

def _fmt(shape: Sequence[int | str | None]) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class ValueChecks:
    """Checks that read tensor values, settled together with one device synchronisation.

    Each :meth:`add` records a boolean scalar tensor (``True`` = fine) and a function building the
    error for when it is not; :meth:`settle` reads all flags at once and raises the first error.
    Nothing is recorded while value checks are off (:func:`set_validation`).

    Examples:
        >>> checks = ValueChecks()
        >>> checks.add(torch.tensor(True), lambda: ValueError("never"))
        >>> checks.add(torch.tensor(1.0).isfinite(), lambda: ValueError("never either"))
        >>> checks.settle()
    """

    def __init__(self) -> None:
        self.flags: list[Tensor] = []
        self.errors: list[Callable[[], Exception]] = []

    @property
    def active(self) -> bool:
        """Whether value checks are on; callers skip computing flags when they are not."""
        return _ENABLED

    def add(self, ok: Tensor, error: Callable[[], Exception]) -> None:
        """Record the boolean scalar ``ok`` and how to explain it being ``False``."""
        if _ENABLED:
            self.flags.append(ok)
            self.errors.append(error)

    def settle(self) -> None:
        """Read every flag (one synchronisation) and raise the first failure's error."""
        if not self.flags:
            return
        ok = self.flags[0]
        for flag in self.flags[1:]:
            ok = ok & flag.to(ok.device)
        if bool(ok):  # the one synchronisation
            return
        values = [bool(f) for f in self.flags]  # an error is on its way: extra reads are fine
        raise self.errors[values.index(False)]()


def _nonfinite_error(x: Tensor, name: str, owner: str) -> Callable[[], Exception]:
    def error() -> Exception:
        bad = int((~torch.isfinite(x)).sum())
        return ValueError(f"{_where(owner)}{name} has {bad} non-finite value(s) (nan or inf)")
    return error


def check_tensor(
    x: object,
    name: str,
    event_shape: Sequence[int | None] | None = None,
    *,
    event_ndim: int | None = None,
    owner: str = "",
    checks: ValueChecks | None = None,
) -> Tensor:
    """Check that ``x`` is a finite floating tensor of shape ``(B, *event_shape)``.

    Args:
        x: the value to check.
        name: how the error message calls it (``"x"``, ``"z"``...).
        event_shape: the expected event shape; ``None`` entries match any size.
        event_ndim: the expected number of event dimensions when ``event_shape`` is not given.
        owner: the object doing the check, named in the message.
        checks: where to record the finiteness check to settle later with others; ``None`` settles
            it at once.

    Returns:
        ``x`` unchanged.

    Examples:
        >>> check_tensor(torch.zeros(2, 3, 4), "x", (3, None)).shape
        torch.Size([2, 3, 4])
        >>> check_tensor(torch.zeros(2, 5), "x", (3,), owner="Demo")
        Traceback (most recent call last):
        ...
        ValueError: Demo: x must have shape (B, 3), got (2, 5)
    """
    where = _where(owner)
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{where}{name} must be a floating-point tensor, got dtype {x.dtype}")
    if event_shape is not None:
        ok = x.dim() == len(event_shape) + 1 and all(
            e is None or e == s for e, s in zip(event_shape, x.shape[1:], strict=True))
        if not ok:
            raise ValueError(f"{where}{name} must have shape {_fmt(('B', *event_shape))}, got {_fmt(tuple(x.shape))}")
    elif event_ndim is not None and x.dim() != event_ndim + 1:
        raise ValueError(f"{where}{name} must have {event_ndim + 1} dimensions (batch + {event_ndim} event), "
                         f"got shape {_fmt(tuple(x.shape))}")
    elif x.dim() == 0:
        raise ValueError(f"{where}{name} must have a batch axis, got a scalar tensor")
    own = ValueChecks() if checks is None else checks
    if own.active:
        own.add(torch.isfinite(x).all(), _nonfinite_error(x, name, owner))
    if checks is None:
        own.settle()
    return x


def check_input(x: object, name: str, owner: str, reference: Tensor | None,
                event_shape: Sequence[int | None] | None = None, event_ndim: int | None = None,
                checks: ValueChecks | None = None) -> Tensor:
    """:func:`check_tensor`, plus dtype and device equal to ``reference`` (a parameter of the module).

    Examples:
        >>> check_input(torch.zeros(2, 3, dtype=torch.float64), "x", "Demo", torch.zeros(1))
        Traceback (most recent call last):
        ...
        TypeError: Demo: x has dtype torch.float64 but the parameters are torch.float32; convert one of them ...
    """
    x = check_tensor(x, name, event_shape, event_ndim=event_ndim, owner=owner, checks=checks)
    if reference is not None:
        if x.dtype != reference.dtype:
            raise TypeError(f"{_where(owner)}{name} has dtype {x.dtype} but the parameters are {reference.dtype}; "
                            f"convert one of them ({name}.to({reference.dtype}) or module.to({x.dtype}))")
        if x.device != reference.device:
            raise ValueError(f"{_where(owner)}{name} is on device {x.device} but the parameters are on "
                             f"{reference.device}; move one of them ({name}.to({str(reference.device)!r}))")
    return x


@dataclass(frozen=True)
class ContextSpec:
    """What a conditional bijector takes as ``context``: integer labels or a float vector per sample.

    Attributes:
        kind: ``"labels"`` (integer class labels ``(B,)`` in ``[-1, size)``, ``-1`` = dropped label)
            or ``"vector"`` (floating features ``(B, size)``, finite, of the parameters' dtype).
        size: the number of classes, or of features.
        optional: whether ``context=None`` is accepted (labels: the mean class embedding).

    Examples:
        >>> ContextSpec.labels(10).describe()
        'integer labels (B,) in [-1, 10) (-1 = dropped label), or None'
        >>> ContextSpec.vector(4).describe()
        'a floating tensor (B, 4)'
    """

    kind: Literal["labels", "vector"]
    size: int
    optional: bool = False

    def __post_init__(self) -> None:
        choice(self.kind, "kind", ("labels", "vector"), "ContextSpec")
        positive_int(self.size, "size", "ContextSpec")
        boolean(self.optional, "optional", "ContextSpec")

    @classmethod
    def labels(cls, num_classes: int, optional: bool = True) -> ContextSpec:
        """Integer class labels in ``[-1, num_classes)``; ``None`` accepted unless ``optional=False``."""
        return cls("labels", num_classes, optional)

    @classmethod
    def vector(cls, features: int, optional: bool = False) -> ContextSpec:
        """A floating context vector of ``features`` entries per sample."""
        return cls("vector", features, optional)

    def describe(self) -> str:
        """The expected context, in words."""
        if self.kind == "labels":
            text = f"integer labels (B,) in [-1, {self.size}) (-1 = dropped label)"
        else:
            text = f"a floating tensor (B, {self.size})"
        return text + (", or None" if self.optional else "")


def context_spec_for(num_classes: object, context_features: object, owner: str) -> ContextSpec | None:
    """Check a block's ``num_classes`` / ``context_features`` pair and return its :class:`ContextSpec`.

    Both are ints ``>= 0`` and at most one is set: labels (``ContextSpec.labels(num_classes)``),
    vectors (``ContextSpec.vector(context_features)``) or neither (``None``, unconditional).

    Examples:
        >>> context_spec_for(3, 0, "Demo")
        ContextSpec(kind='labels', size=3, optional=True)
        >>> context_spec_for(0, 0, "Demo") is None
        True
        >>> context_spec_for(3, 2, "D")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: D: pass num_classes (labels) or context_features (vectors), not both; got num_classes=3, ...
    """
    classes = nonnegative_int(num_classes, "num_classes", owner)
    features = nonnegative_int(context_features, "context_features", owner)
    if classes and features:
        raise ValueError(f"{_where(owner)}pass num_classes (labels) or context_features (vectors), not both; "
                         f"got num_classes={classes}, context_features={features}")
    if classes:
        return ContextSpec.labels(classes)
    return ContextSpec.vector(features) if features else None


def merge_context_specs(specs: Sequence[ContextSpec], owner: str) -> ContextSpec | None:
    """The context that satisfies every part of a composition (``None`` for no spec at all).

    Labels of different class counts merge into the smallest; labels and vectors, or vectors of
    different sizes, cannot be one context.

    Examples:
        >>> merge_context_specs([ContextSpec.labels(10), ContextSpec.labels(5)], "Chain")
        ContextSpec(kind='labels', size=5, optional=True)
    """
    if not specs:
        return None
    kinds = {s.kind for s in specs}
    if len(kinds) > 1 or (kinds == {"vector"} and len({s.size for s in specs}) > 1):
        raise ValueError(f"{owner}: the conditional parts take different contexts: "
                         f"{'; '.join(sorted({s.describe() for s in specs}))}")
    return ContextSpec(specs[0].kind, min(s.size for s in specs), all(s.optional for s in specs))


def check_context(context: object, spec: ContextSpec | None, conditional: bool, batch: int, owner: str,
                  reference: Tensor | None, checks: ValueChecks | None = None) -> None:
    """Check ``context`` for a bijector or flow that takes ``spec``.

    When ``spec`` is ``None``, a ``conditional`` owner takes any tensor and an unconditional one none.
    Value checks go to ``checks`` (settled at once when ``None``).

    Examples:
        >>> check_context(torch.tensor([0, 10]), ContextSpec.labels(10), True, 2, "Demo", None)
        Traceback (most recent call last):
        ...
        ValueError: Demo: labels must lie in [-1, 10) (-1 = dropped label), got values in [0, 10]
        >>> check_context(torch.zeros(2), None, False, 2, "Patchify", None)
        Traceback (most recent call last):
        ...
        ValueError: Patchify: takes no context (unconditional), but a context was given
    """
    where = _where(owner)
    if context is None:
        if conditional and spec is not None and not spec.optional:
            raise ValueError(f"{where}a context is required: {spec.describe()}, got None")
        return
    if not conditional:
        raise ValueError(f"{where}takes no context (unconditional), but a context was given")
    if not isinstance(context, Tensor):
        what = "a tensor of integer class labels" if spec is None or spec.kind == "labels" else spec.describe()
        raise TypeError(f"{where}context must be {what}, got {type(context).__name__}")
    if reference is not None and context.device != reference.device:
        raise ValueError(f"{where}context is on device {context.device} but the parameters are on "
                         f"{reference.device}; move it (context.to({str(reference.device)!r}))")
    own = ValueChecks() if checks is None else checks
    if spec is None:
        if context.dim() == 0 or context.shape[0] != batch:
            raise ValueError(f"{where}context must have a leading batch axis of {batch}, "
                             f"got {_fmt(tuple(context.shape))}")
    elif spec.kind == "labels":
        check_labels(context, batch, spec.size, owner=owner, checks=own)
    else:
        if not context.dtype.is_floating_point:
            raise TypeError(f"{where}context must be {spec.describe()}, got dtype {context.dtype}")
        if reference is not None and context.dtype != reference.dtype:
            raise TypeError(f"{where}context has dtype {context.dtype} but the parameters are {reference.dtype}")
        if tuple(context.shape) != (batch, spec.size):
            raise ValueError(f"{where}context must have shape ({batch}, {spec.size}), got {_fmt(tuple(context.shape))}")
        if own.active:
            own.add(torch.isfinite(context).all(), _nonfinite_error(context, "context", owner))
    if checks is None:
        own.settle()


def check_labels(context: object, batch_size: int, num_classes: int, *, owner: str = "",
                 checks: ValueChecks | None = None) -> Tensor:
    """Check class labels: an integer tensor of shape ``(B,)`` with values in ``[-1, num_classes)``.

    ``-1`` marks a dropped label (classifier-free guidance training) and selects the mean class
    embedding.

    Examples:
        >>> check_labels(torch.tensor([0, 9, -1]), 3, 10)
        tensor([ 0,  9, -1])
        >>> check_labels(torch.tensor([0, 10]), 2, 10)
        Traceback (most recent call last):
        ...
        ValueError: labels must lie in [-1, 10) (-1 = dropped label), got values in [0, 10]
    """
    where = _where(owner)
    if not isinstance(context, Tensor):
        raise TypeError(f"{where}context must be a tensor of integer class labels, got {type(context).__name__}")
    if context.dtype.is_floating_point or context.dtype == torch.bool or context.is_complex():
        raise TypeError(f"{where}labels must be an integer tensor, got dtype {context.dtype}")
    if context.dim() != 1 or context.shape[0] != batch_size:
        raise ValueError(
            f"{where}labels must have shape ({batch_size},) to match the batch, got {_fmt(tuple(context.shape))}"
        )
    if context.numel() == 0:
        return context

    def error() -> Exception:
        lo, hi = int(context.min()), int(context.max())
        return ValueError(f"{where}labels must lie in [-1, {num_classes}) (-1 = dropped label), "
                          f"got values in [{lo}, {hi}]")

    own = ValueChecks() if checks is None else checks
    if own.active:
        own.add(((context >= -1) & (context < num_classes)).all(), error)
    if checks is None:
        own.settle()
    return context


def index_tensor(value: object, name: str, owner: str = "") -> Tensor:
    """``value`` (a sequence of ints or an integer tensor) as a 1-d long tensor on the CPU.

    Floats, booleans and strings are refused rather than truncated: an order ``[0.5, 1.5]`` is a
    mistake, not ``[0, 1]``.

    Examples:
        >>> index_tensor([2, 0, 1], "perm", "Demo").tolist()
        [2, 0, 1]
        >>> index_tensor([0.5, 1.5], "order", "MADE")
        Traceback (most recent call last):
        ...
        TypeError: MADE: order must hold ints, got 0.5 (float)
    """
    where = _where(owner)
    if isinstance(value, Tensor):
        if value.dtype.is_floating_point or value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{where}{name} must hold integers, got a tensor of dtype {value.dtype}")
        index = value.detach().to("cpu", torch.long)
    else:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(f"{where}{name} must be a sequence of ints, got {type(value).__name__}")
        bad = [v for v in value if not isinstance(v, Integral) or isinstance(v, bool)]
        if bad:
            raise TypeError(f"{where}{name} must hold ints, got {bad[0]!r} ({type(bad[0]).__name__})")
        index = torch.tensor([int(v) for v in value], dtype=torch.long)
    if index.dim() != 1:
        raise ValueError(f"{where}{name} must be one-dimensional, got shape {tuple(index.shape)}")
    return index


def check_permutation(index: Tensor, n: int, name: str, owner: str = "") -> Tensor:
    """``index`` (a 1-d long tensor) if it holds each of ``0, ..., n - 1`` exactly once.

    Examples:
        >>> check_permutation(torch.tensor([0, 0, 2]), 3, "order", "MADE")
        Traceback (most recent call last):
        ...
        ValueError: MADE: order must be a permutation of range(3), got [0, 0, 2]
    """
    if not torch.equal(index.sort().values, torch.arange(n)):
        raise ValueError(f"{_where(owner)}{name} must be a permutation of range({n}), got {index.tolist()}")
    return index


def first_line(e: BaseException) -> str:
    r"""The first line of an exception's message (its type name if empty), to keep flowkit's errors to one line.

    Examples:
        >>> first_line(ValueError("bad header\nmore detail")), first_line(KeyError())
        ('bad header', 'KeyError')
    """
    return (str(e).strip() or type(e).__name__).splitlines()[0]


def describe_options(names: Sequence[str]) -> str:
    """``'a', 'b'`` or ``none``, for messages listing accepted names."""
    return ", ".join(repr(n) for n in sorted(names)) or "none"


def first_reference(tensors: Iterator[Tensor]) -> Tensor | None:
    """The first floating tensor of ``tensors`` (a module's parameters or buffers), or ``None``."""
    return next((t for t in tensors if t.dtype.is_floating_point), None)
