"""Checks of constructor arguments, shared by every bijector, flow, net and data set.

Each helper returns the value (converted where said: :func:`finite_float` gives a ``float``,
:func:`index_tensor` a long tensor) or raises a ``TypeError`` (wrong type; ``bool`` is never an
``int``) or ``ValueError`` (wrong value) naming the owner, the argument, what was expected and what
came, e.g. ``TarFlow: num_classes must be an int >= 0, got -1``. The checks of call inputs
(tensors, contexts) are in :mod:`flowkit._validation`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral
from typing import TypeVar

import torch
from torch import Tensor

__all__ = [
    "owner_prefix", "positive_int", "nonnegative_int", "int_at_least", "positive_ints", "boolean", "choice",
    "finite_float", "probability", "dropout_rate", "index_tensor", "check_permutation",
]

T = TypeVar("T")


def owner_prefix(owner: str) -> str:
    """``"Owner: "`` to start an error message with the name of the caller, or ``""`` for none."""
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
        raise TypeError(f"{owner_prefix(owner)}{name} must be a non-empty sequence of positive ints, got {value!r}")
    return [positive_int(v, f"{name}[{i}]", owner) for i, v in enumerate(value)]


def _int_at_least(value: object, name: str, owner: str, low: int, what: str) -> int:
    if not _is_int(value):
        raise TypeError(f"{owner_prefix(owner)}{name} must be {what}, got {type(value).__name__} {value!r}")
    assert isinstance(value, int)
    if value < low:
        raise ValueError(f"{owner_prefix(owner)}{name} must be {what}, got {value!r}")
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
        raise TypeError(f"{owner_prefix(owner)}{name} must be True or False, got {type(value).__name__} {value!r}")
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
        raise ValueError(f"{owner_prefix(owner)}{name} must be one of {listed}, got {value!r}")
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
    where = owner_prefix(owner)
    bound = "" if low is None else f" {'>=' if low_inclusive else '>'} {low:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}{name} must be a finite float{bound}, got {type(value).__name__} {value!r}")
    ok = math.isfinite(value) and (low is None or (value >= low if low_inclusive else value > low))
    if not ok:
        raise ValueError(f"{where}{name} must be a finite float{bound}, got {value!r}")
    return float(value)


def probability(value: object, name: str, owner: str = "") -> float:
    """``value`` as a float if it lies in ``[0, 1]``.

    Examples:
        >>> probability(1.5, "label_drop")
        Traceback (most recent call last):
        ...
        ValueError: label_drop must be a probability in [0, 1], got 1.5
    """
    where = owner_prefix(owner)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}{name} must be a probability in [0, 1], got {type(value).__name__} {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{where}{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def dropout_rate(value: object, owner: str = "") -> float:
    """``value`` as a float if it is a dropout probability in ``[0, 1)`` (at 1 every unit is dropped).

    Examples:
        >>> dropout_rate(0.2, "MADE")
        0.2
        >>> dropout_rate(1.0, "MADE")
        Traceback (most recent call last):
        ...
        ValueError: MADE: dropout must lie in [0, 1) (at 1 every hidden unit is dropped), got 1.0
    """
    p = probability(value, "dropout", owner)
    if p == 1:
        raise ValueError(f"{owner_prefix(owner)}dropout must lie in [0, 1) (at 1 every hidden unit is dropped), "
                         f"got {value!r}")
    return p


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
    where = owner_prefix(owner)
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
        raise ValueError(f"{owner_prefix(owner)}{name} must be a permutation of range({n}), got {index.tolist()}")
    return index
