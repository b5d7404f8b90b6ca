"""Argument checking shared by every bijector and flow.

Errors are raised at the public boundary with a message that says what was expected and what came,
instead of letting a bad tensor fail deep inside a matmul. Finiteness checks synchronise with the
device, so they can be switched off for speed with :func:`set_validation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

__all__ = ["set_validation", "validation_enabled", "validating", "check_tensor", "check_labels"]

_ENABLED = True


def set_validation(enabled: bool) -> None:
    """Globally switch the value checks (non-finite inputs, label ranges) on or off.

    Shape, rank and dtype checks are free and always run; only the checks that read tensor values
    (and so synchronise with a GPU) are affected.

    Examples:
        >>> import flowkit
        >>> flowkit.set_validation(False); flowkit.set_validation(True)
    """
    global _ENABLED
    _ENABLED = bool(enabled)


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


def _fmt(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_tensor(
    x: object,
    name: str,
    event_shape: Sequence[int | None] | None = None,
    *,
    event_ndim: int | None = None,
    owner: str = "",
) -> Tensor:
    """Check that ``x`` is a finite floating tensor of shape ``(B, *event_shape)``.

    Args:
        x: the value to check.
        name: how the error message calls it (``"x"``, ``"z"``...).
        event_shape: the expected event shape; ``None`` entries match any size.
        event_ndim: the expected number of event dimensions when ``event_shape`` is not given.
        owner: the object doing the check, named in the message.

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
    where = f"{owner}: " if owner else ""
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{where}{name} must be a floating-point tensor, got dtype {x.dtype}")
    if event_shape is not None:
        expected = ("B", *("?" if s is None else s for s in event_shape))
        ok = x.dim() == len(event_shape) + 1 and all(
            e is None or e == s for e, s in zip(event_shape, x.shape[1:])
        )
        if not ok:
            raise ValueError(
                f"{where}{name} must have shape ({', '.join(map(str, expected))}), got {_fmt(tuple(x.shape))}"
            )
    elif event_ndim is not None and x.dim() != event_ndim + 1:
        raise ValueError(
            f"{where}{name} must have {event_ndim + 1} dimensions (batch + {event_ndim} event), "
            f"got shape {_fmt(tuple(x.shape))}"
        )
    if _ENABLED and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{where}{name} has {bad} non-finite value(s) (nan or inf)")
    return x


def check_labels(context: object, batch_size: int, num_classes: int, *, owner: str = "") -> Tensor:
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
    where = f"{owner}: " if owner else ""
    if not isinstance(context, Tensor):
        raise TypeError(f"{where}context must be a tensor of integer class labels, got {type(context).__name__}")
    if context.dtype.is_floating_point or context.dtype == torch.bool or context.is_complex():
        raise TypeError(f"{where}labels must be an integer tensor, got dtype {context.dtype}")
    if context.dim() != 1 or context.shape[0] != batch_size:
        raise ValueError(
            f"{where}labels must have shape ({batch_size},) to match the batch, got {_fmt(tuple(context.shape))}"
        )
    if _ENABLED and context.numel() > 0:
        lo, hi = int(context.min()), int(context.max())
        if lo < -1 or hi >= num_classes:
            raise ValueError(
                f"{where}labels must lie in [-1, {num_classes}) (-1 = dropped label), got values in [{lo}, {hi}]"
            )
    return context
