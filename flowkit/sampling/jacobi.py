r"""Inverse methods for autoregressive blocks: sequential, Jacobi, GS-Jacobi and sliding-window Jacobi.

An autoregressive affine block generates with the lower-triangular system

.. math:: x_0 = z_0, \qquad x_i = z_i\, e^{a_i(x_{<i})} + b_i(x_{<i}) \quad (i = 1, \dots, N-1).

Solving it token by token takes ``N - 1`` dependent transformer calls. The system is also the
fixed point of :math:`x \leftarrow F(x) = z\, e^{a(x)} + b(x)`, and Jacobi iteration evaluates
``F`` on many tokens at once. Because ``F`` is *strictly* causal, after ``k`` passes over a segment
its first ``k`` tokens are exact, so a segment of ``T`` tokens is solved exactly in at most ``T``
passes; in practice far fewer are needed where the tokens depend weakly on each other.

Every method here walks the block left to right, keeping a **committed** prefix (final values,
whose keys/values sit in the KV cache) and iterating a **window** of estimates after it:

========================  ==========================================================================
``"sequential"``          window of 1 token: one exact pass per token (the reference).
``"jacobi"``              one window over the whole block, full forward passes (no cache).
``"gs_jacobi"``           Gauss--Seidel over segments of ``segment_size`` tokens, Jacobi inside each;
                          a segment is committed once converged (Liu & Qin, arXiv 2505.12849).
``"sliding_jacobi"``      a window of ``window`` tokens that slides past every converged prefix after
                          each pass, so easy stretches finish in a few passes and hard ones proceed
                          at worst one token per pass, as the sequential method does.
``"auto"``                the default; see :func:`resolve_method`.
========================  ==========================================================================

**Convergence.** Token ``j`` of a window is *final* once every window token before it moved by less
than ``tol`` (max over batch and features) in the last pass: its value was then computed from inputs
that agree with the converged ones to ``tol``. (So a segment is done when
:math:`\max |\Delta x| < \text{tol}` over all its tokens but the last, whose own change feeds nothing
in the segment.) The first window token is always final, so ``"sliding_jacobi"`` commits at least one
token per pass and never needs more than ``N - 1`` passes; ``"jacobi"``/``"gs_jacobi"`` commit a
segment of ``T`` tokens when it is final, after ``max_iter`` passes (inexact: reported in the
statistics), or after ``T`` passes (exact).

Statistics: pass a dict as ``stats=``; each block's inverse appends a record to
``stats["blocks"]`` (sampling order): ``method``, ``passes`` (transformer calls), ``tokens`` (token
evaluations per sample, a compute measure: ``N - 1`` for sequential), ``seq_len``, ``converged``
(every commit met ``tol`` or was exact) and ``residual`` (the largest input change accepted at a
commit).

References:
    Song et al., "Accelerating Feedforward Computation via Parallel Nonlinear Equation Solving",
    ICML 2021. Liu & Qin, "Accelerate TarFlow Sampling with GS-Jacobi Iteration", arXiv 2505.12849.
    Zhang et al., "SeJD: Selective Jacobi Decoding for TarFlow", arXiv 2505.24791.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["METHODS", "InverseMethod", "resolve_method", "default_tol", "solve_autoregressive"]

METHODS: tuple[str, ...] = ("sequential", "jacobi", "gs_jacobi", "sliding_jacobi", "auto")
"""The ``method=`` names, the exact reference first."""

# The options each method takes (besides the sampling options every method takes).
_OPTIONS: dict[str, tuple[str, ...]] = {
    "sequential": (),
    "jacobi": ("tol", "max_iter", "init"),
    "gs_jacobi": ("segment_size", "tol", "max_iter", "init"),
    "sliding_jacobi": ("window", "tol", "init"),
    "auto": ("tol",),
}
_INITS = ("zeros", "z")

Update = Callable[[Tensor, int], tuple[Tensor, Tensor]]
"""``update(inputs, start) -> (x_new, aux)``: from input tokens ``inputs`` ``(B, T, D)`` at positions
``start..start+T-1`` (earlier positions are those of previous calls, e.g. in a KV cache), the new
values of target tokens ``start+1..start+T`` and a per-token auxiliary output (the log-scales)."""


def default_tol(dtype: torch.dtype) -> float:
    r"""The default convergence tolerance: about :math:`100\,\epsilon` of ``dtype``, far below the
    ``1e-3`` pixel accuracy that sampling needs yet above the rounding noise of a pass.

    Examples:
        >>> default_tol(torch.float32), default_tol(torch.float64)
        (1e-05, 1e-10)
    """
    if dtype == torch.float64:
        return 1e-10
    if dtype == torch.float32:
        return 1e-5
    return 2e-2  # half precision: a pass is only reproducible to about 1e-2


@dataclass(frozen=True)
class InverseMethod:
    """A validated ``method=`` choice: how to window, commit and stop.

    Attributes:
        name: the method's name (``"auto"`` already resolved).
        window: target tokens iterated together; ``None`` means the whole block.
        commit: ``"segment"`` (commit a window when all of it is final) or ``"prefix"`` (commit the
            final prefix after every pass and slide on).
        tol: convergence tolerance on ``max |Δx|``.
        max_iter: passes after which a segment is committed anyway (``None``: until exact).
        init: initial estimate of a token entering a window: ``"zeros"`` or ``"z"`` (the latent).
        cached: use the KV cache (``False`` for whole-block forward passes).
    """

    name: str
    window: int | None = 1
    commit: str = "segment"
    tol: float = 0.0
    max_iter: int | None = None
    init: str = "zeros"
    cached: bool = True


def _positive_int(value: object, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def resolve_method(method: str, options: Mapping[str, Any], dtype: torch.dtype, seq_len: int, *,
                   owner: str = "inverse") -> InverseMethod:
    r"""Check ``method`` and its options and turn them into an :class:`InverseMethod`.

    Options: ``tol`` (float > 0, default :func:`default_tol` of ``dtype``), ``max_iter`` (int >= 1,
    default: until exact), ``init`` (``"zeros"``, default, or ``"z"``), ``segment_size`` (int >= 1,
    default: a quarter of the ``seq_len - 1`` generated tokens, rounded up) and ``window`` (int >= 1,
    default: the whole block).

    **The ``"auto"`` rule.** ``"auto"`` is ``"sliding_jacobi"`` over the whole remaining block with
    ``tol`` defaulting to :func:`default_tol` (``1e-5`` in float32, two orders below the ``1e-3``
    pixel target). It needs no tuning and cannot be much worse than sequential: a pass is final for
    its first token whatever happens, so a block where Jacobi does not converge (typically the first
    block sampled, as SeJD observes) proceeds token by token, while blocks with weak dependencies
    finish in a few passes. Inexact stopping (``max_iter``) is never used, so every token is
    consistent with its inputs to ``tol``.

    Raises:
        ValueError: unknown method or a bad option value.
        TypeError: an option the method does not take.

    Examples:
        >>> resolve_method("gs_jacobi", {"init": "z"}, torch.float32, seq_len=64)
        InverseMethod(name='gs_jacobi', window=16, commit='segment', tol=1e-05, max_iter=None, init='z', cached=True)
        >>> resolve_method("sequential", {"tol": 1e-3}, torch.float32, seq_len=64)
        Traceback (most recent call last):
        ...
        TypeError: inverse: method 'sequential' takes no option 'tol' (its options: none)
    """
    if not isinstance(method, str) or method not in _OPTIONS:
        raise ValueError(f"{owner}: method must be one of {METHODS}, got {method!r}")
    allowed = _OPTIONS[method]
    for key in options:
        if key not in allowed:
            raise TypeError(f"{owner}: method {method!r} takes no option {key!r} "
                            f"(its options: {', '.join(allowed) or 'none'})")
    tol = options.get("tol", default_tol(dtype))
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
        raise ValueError(f"{owner}: tol must be a float > 0, got {tol!r}")
    max_iter = options.get("max_iter")
    if max_iter is not None:
        _positive_int(max_iter, "max_iter", owner)
    init = options.get("init", "zeros")
    if init not in _INITS:
        raise ValueError(f"{owner}: init must be one of {_INITS}, got {init!r}")
    tol = float(tol)
    if method == "sequential":
        return InverseMethod("sequential")
    if method == "jacobi":
        return InverseMethod("jacobi", None, "segment", tol, max_iter, init, cached=False)
    if method == "gs_jacobi":
        size = options.get("segment_size")
        size = -(-(seq_len - 1) // 4) if size is None else _positive_int(size, "segment_size", owner)
        return InverseMethod("gs_jacobi", size, "segment", tol, max_iter, init)
    window = options.get("window")
    window = None if window is None else _positive_int(window, "window", owner)
    return InverseMethod("sliding_jacobi" if method == "sliding_jacobi" else "auto", window, "prefix", tol,
                         None, init)


def _initial(z: Tensor, init: str) -> Tensor:
    """Initial estimate of target tokens whose latents are ``z``."""
    return z.clone() if init == "z" else torch.zeros_like(z)


def _usable(new: Tensor, old: Tensor) -> Tensor:
    """The next estimates: ``new`` where it is finite and below ``finfo.max ** (1/4)``, else ``old``.

    A diverging guess must not reach the next pass: squared inside a LayerNorm it overflows to NaN,
    and a NaN key or value spoils every token of the pass, even those that mask it out (``0 * NaN``).
    Values that large cannot be the solution either (the sequential pass would overflow on them too).
    """
    bound = torch.finfo(new.dtype).max ** 0.25
    return torch.where(torch.isfinite(new) & (new.abs() < bound), new, old)


def _moved(new: Tensor, old: Tensor) -> Tensor:
    """``max |new - old|`` per token (over batch and features): ``(T,)``; NaN counts as moved."""
    d = (new - old).detach().abs().amax(dim=0)
    return d.flatten(1).amax(dim=1) if d.dim() > 1 else d


def solve_autoregressive(z: Tensor, update: Update, method: InverseMethod,
                         stats: dict[str, Any] | None = None) -> tuple[Tensor, Tensor]:
    r"""Solve :math:`x_i = F_i(x_{<i}, z_i)`, :math:`x_0 = z_0`, for a batch of sequences ``z``
    ``(B, N, ...)`` with the windowed scheme ``method`` (see the module docstring).

    Args:
        z: latents ``(B, N, ...)``.
        update: evaluates ``F`` on a window (see :data:`Update`); for ``method.cached=False`` it is
            only called with ``start = 0``.
        method: from :func:`resolve_method`.
        stats: a dict that gets one record appended to ``stats["blocks"]``.

    Returns:
        ``x`` ``(B, N, ...)`` and the auxiliary outputs of tokens ``1..N-1`` ``(B, N-1, ...)``, both
        from the pass that committed each token.

    Examples:
        A linear recurrence :math:`x_i = z_i + x_{i-1}/2`, whose solution is known:

        >>> def update(inputs, start):
        ...     return z[:, start + 1:start + 1 + inputs.shape[1]] + inputs / 2, inputs
        >>> z = torch.randn(2, 6, 1)
        >>> exact, _ = solve_autoregressive(z, update, resolve_method("sequential", {}, z.dtype, 6))
        >>> stats = {}
        >>> x, _ = solve_autoregressive(z, update, resolve_method("sliding_jacobi", {}, z.dtype, 6), stats)
        >>> bool(torch.allclose(x, exact, atol=1e-5)), stats["blocks"][0]["passes"] <= 5
        (True, True)
    """
    n = z.shape[1]
    if n == 1:
        return z.clone(), z[:, :0]
    span = n - 1 if method.window is None else min(method.window, n - 1)
    done, aux_done = [z[:, :1]], []
    c, e = 1, 1 + span  # targets [c, e) are iterated; tokens < c are committed
    estimate = _initial(z[:, c:e], method.init) if span > 1 else None
    passes = tokens = segment_passes = 0
    residual, converged = 0.0, True
    while c < n:
        t = e - c
        last = done[-1][:, -1:]
        inputs = last if estimate is None or t == 1 else torch.cat([last, estimate[:, :-1]], dim=1)
        new, aux = update(inputs, c - 1)
        passes, tokens, segment_passes = passes + 1, tokens + t, segment_passes + 1
        k, moved = t, 0.0
        if t > 1 and (method.commit == "prefix" or segment_passes < t):  # else exact: pass j fixes token j
            assert estimate is not None
            stable = _moved(new[:, :-1], estimate[:, :-1]) < method.tol
            final = 1 + int(stable.cumprod(dim=0).sum())  # a window's first token reads committed inputs only
            forced = method.max_iter is not None and segment_passes >= method.max_iter
            k = final if method.commit == "prefix" else (t if final == t or forced else 0)
            if k == 0:
                estimate = _usable(new, estimate)
                continue
            converged = converged and k <= final
            if k > 1:
                moved = float(_moved(new[:, :k - 1], estimate[:, :k - 1]).max())
        done.append(new[:, :k])
        aux_done.append(aux[:, :k])
        residual = max(residual, moved)
        c, segment_passes = c + k, 0
        e = min(c + span, n)
        if span > 1 and c < n:
            # Sliding: keep the unfinished estimates and extend the window; segments: start afresh.
            kept = _usable(new[:, k:], estimate[:, k:]) if method.commit == "prefix" else new[:, :0]
            estimate = torch.cat([kept, _initial(z[:, c + kept.shape[1]:e], method.init)], dim=1)
    if stats is not None:
        stats.setdefault("blocks", []).append(dict(method=method.name, passes=passes, tokens=tokens, seq_len=n,
                                                   converged=converged, residual=residual))
    return torch.cat(done, dim=1), torch.cat(aux_done, dim=1)
