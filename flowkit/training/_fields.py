"""Typed coercion of dataclass fields from strings and TOML values, and writing them back as TOML.

The machinery behind :func:`flowkit.training.config.apply_overrides` and
:func:`flowkit.training.config.config_to_toml`, independent of any particular config: the field
types of a dataclass (:func:`field_types`), coercion of a command-line string or TOML value to a
field's type with a one-line error naming the key (:func:`coerce`), exact type checks
(:func:`is_instance`), TOML literals (:func:`toml_value`), and the ``Attributes:`` docstring entries
that describe each field (:func:`attribute_docs`). Supported types: ``bool``, ``int``, ``float``,
``str``, ``Literal[...]`` of strings, fixed-length ``tuple[...]`` of them, and ``X | None``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "field_types",
    "optional_inner",
    "describe_type",
    "is_instance",
    "coerce",
    "toml_value",
    "toml_string",
    "attribute_docs",
]


def field_types(cls: type) -> dict[str, Any]:
    """The fields of dataclass ``cls`` mapped to their resolved type hints, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def optional_inner(tp: Any) -> Any | None:
    """``X`` for ``X | None``, else ``None``."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0]
    return None


def describe_type(tp: Any) -> str:
    """How an error message names the values ``tp`` accepts (``"an integer or none"``)."""
    inner = optional_inner(tp)
    if inner is not None:
        return f"{describe_type(inner)} or none"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) is tuple:
        return f"{len(get_args(tp))} comma-separated numbers"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]


def is_instance(value: Any, tp: Any) -> bool:
    """Whether ``value`` fits ``tp`` exactly (a ``bool`` is not an ``int``; an ``int`` is a ``float``)."""
    inner = optional_inner(tp)
    if inner is not None:
        return value is None or is_instance(value, inner)
    if get_origin(tp) is Literal:
        return isinstance(value, str) and value in get_args(tp)
    if get_origin(tp) is tuple:
        args = get_args(tp)
        return isinstance(value, tuple) and len(value) == len(args) and all(map(is_instance, value, args))
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce(name: str, value: Any, tp: Any) -> Any:
    """Convert ``value`` (e.g. a command-line string) to ``tp``; raise a one-line ``ValueError``."""
    text = value.strip() if isinstance(value, str) else None
    inner = optional_inner(tp)
    if inner is not None:
        if value is None or (text is not None and text.lower() in ("none", "null")):
            return None
        try:
            return coerce(name, value, inner)
        except ValueError:
            raise ValueError(f"config key {name!r} expects {describe_type(tp)}, got {value!r}") from None
    result: Any = _NOT_COERCED
    if get_origin(tp) is tuple:
        items = value
        if text is not None:
            items = [s for s in text.strip("()[]").split(",") if s.strip()]
        if isinstance(items, (list, tuple)) and len(items) == len(get_args(tp)):
            result = tuple(coerce(name, v, t) for v, t in zip(items, get_args(tp), strict=True))
    elif get_origin(tp) is Literal:
        result = text if text in get_args(tp) else _NOT_COERCED
    elif tp is bool:
        if isinstance(value, bool):
            result = value
        elif text is not None and text.lower() in _TRUE | _FALSE:
            result = text.lower() in _TRUE
    elif tp is int:
        number = _number(value, text)
        if number is not None and float(number).is_integer():
            result = int(number)
    elif tp is float:
        number = _number(value, text)
        if number is not None:
            result = float(number)
    elif tp is str:
        result = value if isinstance(value, str) else _NOT_COERCED
    if result is _NOT_COERCED:
        raise ValueError(f"config key {name!r} expects {describe_type(tp)}, got {value!r}")
    return result


_NOT_COERCED = object()


def _number(value: Any, text: str | None) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if text is not None:
        for parse in (int, float):
            try:
                return parse(text)
            except ValueError:
                pass
    return None


def toml_value(value: Any) -> str:
    """A TOML literal for a bool, number, string or sequence of them; ``TypeError`` for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_string(text: str) -> str:
    """A TOML basic string: escape quotes, backslashes and control characters."""
    escaped = []
    for ch in text:
        if ch in '"\\':
            escaped.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            escaped.append(f"\\u{ord(ch):04x}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'


def attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` entries of a class's docstring and of its bases', as one line each.

    Bases come first, so a subclass documenting a field again wins; continuation lines are joined.

    Args:
        cls: A class whose docstring (or its bases') has a Google-style ``Attributes:`` section.

    Returns:
        Field name mapped to its description.

    Examples:
        >>> class Example:
        ...     '''An example.
        ...
        ...     Attributes:
        ...         lr: Peak learning rate,
        ...             reached after warm-up.
        ...     '''
        >>> attribute_docs(Example)
        {'lr': 'Peak learning rate, reached after warm-up.'}
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        lines = (klass.__doc__ or "").expandtabs().splitlines()
        inside, indent, name = False, 0, ""
        for line in lines:
            stripped = line.strip()
            if stripped == "Attributes:":
                inside, indent, name = True, len(line) - len(line.lstrip()), ""
                continue
            if not inside:
                continue
            depth = len(line) - len(line.lstrip())
            if stripped and depth <= indent:  # the next section ("Examples:") ends this one
                inside = False
                continue
            entry = re.fullmatch(r"(\w+)(?: \([^)]*\))?: (.*)", stripped)
            if entry and depth == indent + 4:
                name = entry.group(1)
                docs[name] = entry.group(2)
            elif stripped and name:
                docs[name] += " " + stripped
    return docs
