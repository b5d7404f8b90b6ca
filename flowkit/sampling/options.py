"""The sampling options: the keyword arguments that generation passes to the blocks that take them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypedDict, get_type_hints

from .._validation import describe_options

__all__ = ["SamplingOptions", "check_sampling_options"]


class SamplingOptions(TypedDict, total=False):
    """Every sampling option, with its type.

    :meth:`flowkit.Flow.sample`, :meth:`flowkit.Flow.inverse` and :meth:`flowkit.Bijector.inverse`
    take these as keyword arguments; each bijector declares which it takes
    (:attr:`flowkit.Bijector.sampling_options`), and one that does not take an option rejects it by
    name. ``None`` stands for an option's default. Values (ranges, method names) are checked by the
    bijector that uses them.

    Attributes:
        guidance: guidance weight ``w >= 0`` (``0`` = off); see :class:`~flowkit.sampling.Guidance`.
        guide_what: which affine parameters guidance moves: ``"a"``, ``"b"`` or ``"ab"``.
        attn_temp: attention temperature of the unconditional guidance branch (``> 0``).
        annealed_guidance: let the guidance weight grow linearly along the sequence.
        method: the inverse method of autoregressive blocks (:data:`flowkit.sampling.jacobi.METHODS`).
        stats: a dict that collects one record per block inverse (passes, tokens, convergence).
        tol: convergence tolerance of the Jacobi-type methods.
        max_iter: passes after which a Jacobi segment is committed anyway.
        init: initial estimate of a Jacobi window: ``"zeros"`` or ``"z"``.
        segment_size: segment length of ``method="gs_jacobi"``.
        window: window length of ``method="sliding_jacobi"``.
    """

    guidance: float
    guide_what: str
    attn_temp: float
    annealed_guidance: bool
    method: str
    stats: dict[str, Any]
    tol: float
    max_iter: int
    init: str
    segment_size: int
    window: int


_TYPES: dict[str, type] = {name: getattr(t, "__origin__", t) for name, t in get_type_hints(SamplingOptions).items()}
SAMPLING_OPTION_NAMES: frozenset[str] = frozenset(_TYPES)


def _type_ok(value: object, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def check_sampling_options(options: Mapping[str, Any], accepted: Collection[str], owner: str) -> None:
    """Check the names and types of sampling ``options`` for a callee that takes ``accepted``.

    Raises:
        TypeError: an unknown option, an option the callee does not take (named), or a value of the
            wrong type.

    Examples:
        >>> check_sampling_options({"guidance": 1.0}, {"guidance"}, "Demo.inverse")
        >>> check_sampling_options({"guidance": 1.0}, (), "Patchify.inverse")
        Traceback (most recent call last):
        ...
        TypeError: Patchify.inverse takes no sampling option 'guidance' (it takes: none)
        >>> check_sampling_options({"guidance": "2"}, {"guidance"}, "TarFlow.sample")
        Traceback (most recent call last):
        ...
        TypeError: TarFlow.sample: sampling option guidance must be of type float, got str '2'
    """
    for name, value in options.items():
        if name not in accepted:
            if name not in _TYPES:
                raise TypeError(f"{owner}: unknown sampling option {name!r} "
                                f"(sampling options: {describe_options(list(_TYPES))})")
            raise TypeError(f"{owner} takes no sampling option {name!r} (it takes: {describe_options(list(accepted))})")
        expected = _TYPES.get(name)
        # None stands for "the default" of every option.
        if value is not None and expected is not None and not _type_ok(value, expected):
            raise TypeError(f"{owner}: sampling option {name} must be of type {expected.__name__}, "
                            f"got {type(value).__name__} {value!r}")
