"""Checks of call inputs: what a caller passes to a bijector or a flow.

Tensor type, dtype, device, event shape, context and finiteness. :class:`~flowkit.Bijector` runs
them once per top-level call (see its docstring); :func:`check_input` and :func:`check_context` are
the pieces. The checks that read tensor *values* (finiteness, label ranges) are gathered in a
:class:`ValueChecks` and settled with one device synchronisation; :func:`set_validation` switches
them off. The checks of constructor arguments (:func:`~flowkit._args.positive_int`,
:func:`~flowkit._args.boolean`, ...) are in :mod:`flowkit._args`; the one-line message helpers
:func:`first_line` and :func:`describe_options` are here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from flowkit._args import boolean, choice, nonnegative_int, owner_prefix, positive_int

__all__ = [
    "set_validation", "validation_enabled", "validating", "check_tensor", "check_labels", "ContextSpec",
    "ValueChecks", "check_input", "check_context", "context_spec_for", "first_line",
]

_ENABLED = True


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
        return ValueError(f"{owner_prefix(owner)}{name} has {bad} non-finite value(s) (nan or inf)")
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
    where = owner_prefix(owner)
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
        where = owner_prefix(owner)
        if x.dtype != reference.dtype:
            raise TypeError(f"{where}{name} has dtype {x.dtype} but the parameters are {reference.dtype}; "
                            f"convert one of them ({name}.to({reference.dtype}) or module.to({x.dtype}))")
        if x.device != reference.device:
            raise ValueError(f"{where}{name} is on device {x.device} but the parameters are on "
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
        raise ValueError(f"{owner_prefix(owner)}pass num_classes (labels) or context_features (vectors), not both; "
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
    where = owner_prefix(owner)
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
    where = owner_prefix(owner)
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
