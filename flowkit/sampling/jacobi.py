r"""Inverse methods for autoregressive blocks: sequential, Jacobi, GS-Jacobi and sliding-window Jacobi.

An autoregressive block generates with the lower-triangular system

.. math:: x_0 = z_0, \qquad x_i = \tau^{-1}\big(z_i;\ \theta_i(x_{<i})\big) \quad (i = 1, \dots, N-1),

with :math:`\tau^{-1}` the inverse of the block's element-wise map (:math:`z_i e^{a_i} + b_i` for
TarFlow's affine map). Solving it token by token takes ``N - 1`` dependent transformer calls. The
system is also the fixed point of :math:`x \leftarrow F(x) = \tau^{-1}(z; \theta(x))`, and Jacobi iteration evaluates
``F`` on many tokens at once. Because ``F`` is *strictly* causal, after ``k`` passes over a segment
its first ``k`` tokens are exact, so a segment of ``T`` tokens is solved exactly in at most ``T``
passes; in practice far fewer are needed where the tokens depend weakly on each other.

Every method here walks the block left to right, keeping a **committed** prefix (final values,
whose keys/values sit in the KV cache) and iterating a **window** of estimates after it:

========================  ==========================================================================
``"sequential"``          window of 1 token: one exact pass per token (the reference,
                          :func:`~flowkit.sampling.sequential.solve_sequential`).
``"jacobi"``              one window over the whole block, full forward passes (no cache).
``"gs_jacobi"``           Gauss--Seidel over segments of ``segment_size`` tokens, Jacobi inside each;
                          a segment is committed once converged (GS-Jacobi, arXiv 2505.12849).
``"sliding_jacobi"``      a window of ``window`` tokens that slides past every converged prefix after
                          each pass, so easy stretches finish in a few passes and hard ones proceed
                          at worst one token per pass, as the sequential method does.
``"auto"``                the default: sequential on a CPU, sliding windows sized to the device on
                          accelerators; the rule and its reasons are in :func:`resolve_method`.
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
``stats["blocks"]`` (sampling order): ``method``, ``window`` (tokens per pass at most),
``passes`` (transformer calls), ``tokens`` (token evaluations per sample, a compute measure:
``N - 1`` for sequential), ``seq_len``, ``converged`` (every commit met ``tol`` or was exact) and
``residual`` (the largest input change accepted at a commit).

References:
    Song et al., "Accelerating Feedforward Computation via Parallel Nonlinear Equation Solving",
    ICML 2021 (Jacobi and Gauss--Seidel--Jacobi iterations for autoregressive sampling).
    GS-Jacobi for TarFlow: arXiv 2505.12849. SeJD (selective Jacobi decoding): arXiv 2505.24791.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._args import positive_int
from .sequential import solve_sequential

__all__ = ["METHODS", "InverseMethod", "resolve_method", "auto_window", "default_tol", "solve_autoregressive"]

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
values of target tokens ``start+1..start+T`` and a per-token auxiliary output (the map's inverse
log-derivatives, summed into the log-det)."""


def default_tol(dtype: torch.dtype) -> float:
    r"""The default convergence tolerance: about :math:`100\,\epsilon` of ``dtype``.

    That is far below the ``1e-3`` pixel accuracy that sampling needs, yet above the rounding noise of a pass.

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


def auto_window(seq_len: int, rows: int, row_flops: int, device: torch.device | str = "cpu") -> int:
    r"""The window of ``method="auto"``: the most tokens a pass holds for about the cost of one step.

    The window is ``min(N - 1, F // (rows * row_flops))``, at least 1 (sequential).

    A pass of a transformer layer pays a fixed overhead (kernel launches, Python) plus its matmul
    FLOPs; ``F`` is about the FLOPs the device does in the time of that overhead: ``2**22`` on a
    CPU (measured in ``docs/performance.md``: at batch 1 a pass of 8 to 16 tokens of a 128-wide
    model costs about 1.3 single-token steps, and more rows cost in proportion),
    ``2**34`` on an accelerator (tens of microseconds of launches at hundreds of TFLOP/s; an
    estimate, not measured here).

    Args:
        seq_len: tokens ``N`` of the block.
        rows: token rows of a single-token step (the batch, doubled with guidance).
        row_flops: matmul FLOPs of one row through one transformer layer.
        device: where the block runs.

    Examples:
        >>> flops = 24 * 128**2  # a 128-wide layer with MLP expansion 4
        >>> auto_window(64, 16, flops), auto_window(64, 1, flops), auto_window(64, 16, flops, "cuda")
        (1, 10, 63)
    """
    budget = _PASS_FLOPS_CPU if torch.device(device).type == "cpu" else _PASS_FLOPS_ACCELERATOR
    return max(1, min(seq_len - 1, budget // max(rows * row_flops, 1)))


_PASS_FLOPS_CPU = 2**22
_PASS_FLOPS_ACCELERATOR = 2**34


def resolve_method(method: str, options: Mapping[str, Any], dtype: torch.dtype, seq_len: int, *,
                   rows: int = 1, row_flops: int = 0, device: torch.device | str = "cpu",
                   owner: str = "inverse") -> InverseMethod:
    r"""Check ``method`` and its options and turn them into an :class:`InverseMethod`.

    Options: ``tol`` (float > 0, default :func:`default_tol` of ``dtype``), ``max_iter`` (int >= 1,
    default: until exact), ``init`` (``"zeros"``, default, or ``"z"``), ``segment_size`` (int >= 1,
    default: a quarter of the ``seq_len - 1`` generated tokens, rounded up) and ``window`` (int >= 1,
    default: the whole block).

    **The ``"auto"`` rule** minimises cost at a fixed accuracy. Accuracy: ``tol`` defaults to
    :func:`default_tol` (``1e-5`` in float32, two orders below the ``1e-3`` pixel target) and there
    is no inexact ``max_iter`` stop. Cost: ``"auto"`` is ``"sliding_jacobi"`` with the window of
    :func:`auto_window`, the most tokens whose pass still costs about one single-token step; a
    window of one token is exactly ``"sequential"``. The reasoning:

    - a token is final only after a pass that evaluates it from converged inputs and a pass that
      confirms those inputs held still, so a Jacobi-type scheme evaluates each token ``m >= 2``
      times (``m`` ~ 2 for independent tokens, up to ``N`` for strongly coupled ones);
    - a pass that costs about one step is never wasted: its first token is always final, so it
      commits at least what a sequential step would, and weakly coupled stretches commit many
      tokens per pass. Windows whose passes cost more than a step could win only where
      ``m`` is small, and lose on strongly coupled blocks (typically the first block sampled, the
      observation behind SeJD), which the rule cannot know in advance.

    On a CPU a pass costs about in proportion to the rows it computes (``docs/performance.md``:
    ``r(T)``), so at batch 16 and beyond ``"auto"`` is the sequential KV-cache path, and only very
    small batches get a window. On accelerators, where small passes are launch-bound, whole blocks
    or long windows are solved in parallel.

    Args:
        method: one of :data:`METHODS`.
        options: the method's options.
        dtype: of the latents (sets the default ``tol``).
        seq_len: tokens ``N`` of the block.
        rows: token rows of a single-token step, for ``"auto"`` (see :func:`auto_window`).
        row_flops: matmul FLOPs of one row through one layer, for ``"auto"``.
        device: where the block runs, for ``"auto"``.
        owner: named in error messages.

    Raises:
        ValueError: unknown method or a bad option value.
        TypeError: an option the method does not take.

    Examples:
        >>> resolve_method("gs_jacobi", {"init": "z"}, torch.float32, seq_len=64)
        InverseMethod(name='gs_jacobi', window=16, commit='segment', tol=1e-05, max_iter=None, init='z', cached=True)
        >>> resolve_method("auto", {}, torch.float32, seq_len=64, rows=16, row_flops=24 * 128**2).window
        1
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
        positive_int(max_iter, "max_iter", owner)
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
        size = -(-(seq_len - 1) // 4) if size is None else positive_int(size, "segment_size", owner)
        return InverseMethod("gs_jacobi", size, "segment", tol, max_iter, init)
    if method == "auto":
        return InverseMethod("auto", auto_window(seq_len, rows, row_flops, device), "prefix", tol, None, init)
    window = options.get("window")
    window = None if window is None else positive_int(window, "window", owner)
    return InverseMethod("sliding_jacobi", window, "prefix", tol, None, init)


def _initial(z: Tensor, init: str) -> Tensor:
    """Initial estimate of target tokens whose latents are ``z``."""
    return z.clone() if init == "z" else torch.zeros_like(z)


def _usable(new: Tensor, old: Tensor) -> Tensor:
    """The next estimates: ``new`` where it is finite and below :func:`_estimate_bound`, else ``old``.

    A diverging guess must not reach the next pass: squared inside a LayerNorm it overflows to NaN,
    and a NaN key or value spoils every token of the pass, even those that mask it out (``0 * NaN``).
    Values that large cannot be the solution either (the sequential pass would overflow on them too).
    """
    return torch.where(torch.isfinite(new) & (new.abs() < _estimate_bound(new.dtype)), new, old)


def _estimate_bound(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).max ** 0.25


def _moves(new: Tensor, old: Tensor) -> list[float]:
    """``max |new - old|`` per token (over batch and features), as Python floats (one device sync)."""
    d = (new - old).detach().abs().amax(dim=0)
    return (d.flatten(1).amax(dim=1) if d.dim() > 1 else d).tolist()


def solve_autoregressive(z: Tensor, update: Update, method: InverseMethod,
                         stats: dict[str, Any] | None = None) -> tuple[Tensor, Tensor]:
    r"""Solve :math:`x_i = F_i(x_{<i}, z_i)`, :math:`x_0 = z_0`, with the windowed scheme ``method``.

    ``z`` is a batch of sequences ``(B, N, ...)``; the scheme is described in the module docstring.

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
    span = max(1, n - 1 if method.window is None else min(method.window, n - 1))
    if span == 1 and method.cached:  # one token per pass: the exact sequential inverse
        x, aux = solve_sequential(z, update)
        if stats is not None:
            stats.setdefault("blocks", []).append(dict(method=method.name, window=1, passes=n - 1, tokens=n - 1,
                                                       seq_len=n, converged=True, residual=0.0))
        return x, aux
    done, aux_done = [z[:, :1]], []
    c, e = 1, 1 + span  # targets [c, e) are iterated; tokens < c are committed
    estimate = _initial(z[:, c:e], method.init) if span > 1 else None
    passes = tokens = segment_passes = 0
    residual, converged = 0.0, True
    while c < n:
        t = e - c
        last = done[-1] if done[-1].shape[1] == 1 else done[-1][:, -1:]
        inputs = last if estimate is None or t == 1 else torch.cat([last, estimate[:, :-1]], dim=1)
        new, aux = update(inputs, c - 1)
        passes, tokens, segment_passes = passes + 1, tokens + t, segment_passes + 1
        k, moved = t, 0.0
        if t > 1 and (method.commit == "prefix" or segment_passes < t):  # else exact: pass j fixes token j
            assert estimate is not None
            moves = _moves(new, estimate)
            # A window's first token reads committed inputs only; token j is final once tokens < j held still.
            final = 1 + next((j for j, m in enumerate(moves[:-1]) if not m < method.tol), t - 1)
            forced = method.max_iter is not None and segment_passes >= method.max_iter
            k = final if method.commit == "prefix" else (t if final == t or forced else 0)
            if not max(moves) < _estimate_bound(new.dtype) / 2:  # NaN, inf or diverging somewhere
                new = torch.cat([new[:, :k], _usable(new[:, k:], estimate[:, k:])], dim=1)
            if k == 0:
                estimate = new
                continue
            converged = converged and k <= final
            moved = max(moves[:k - 1], default=0.0)
        done.append(new if k == t else new[:, :k])
        aux_done.append(aux if k == t else aux[:, :k])
        residual = max(residual, moved)
        c, segment_passes = c + k, 0
        e = min(c + span, n)
        if span > 1 and c < n:
            # Sliding: keep the unfinished estimates and extend the window; segments: start afresh.
            kept = new[:, k:] if method.commit == "prefix" else new[:, :0]
            estimate = torch.cat([kept, _initial(z[:, c + kept.shape[1]:e], method.init)], dim=1)
    if stats is not None:
        stats.setdefault("blocks", []).append(dict(method=method.name, window=span, passes=passes, tokens=tokens,
                                                   seq_len=n, converged=converged, residual=residual))
    return torch.cat(done, dim=1), torch.cat(aux_done, dim=1) if aux_done else z[:, :0]
