"""``check_bijector``: the checklist every flowkit bijector passes, public for users' own bijectors."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any, NoReturn

import torch
from torch import Tensor

from .._args import finite_float, nonnegative_int
from .._modes import active_dropout
from ..bijectors.base import Bijector

__all__ = ["check_bijector", "randomize_parameters"]


def _fail(prop: str, detail: str) -> NoReturn:
    raise AssertionError(f"check_bijector: {prop} failed: {detail}")


def _close(prop: str, a: Tensor, b: Tensor, atol: float, rtol: float) -> None:
    if a.shape != b.shape:
        _fail(prop, f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if not torch.allclose(a, b, atol=atol, rtol=rtol):
        err = (a - b).abs().max().item()
        _fail(prop, f"max abs difference {err:.3g} exceeds atol={atol:g}, rtol={rtol:g}")


def _jacobian(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Jacobian of ``f`` at one sample ``x`` (no batch axis) as an ``(out, in)`` matrix."""
    jac = torch.autograd.functional.jacobian(f, x, vectorize=True)
    return jac.reshape(f(x).numel(), x.numel())


def _malformed_contexts(b: Bijector, context: Tensor) -> list[tuple[Tensor | None, str]]:
    """Contexts a conditional bijector must reject, for the kind of context it declares."""
    bad: list[tuple[Tensor | None, str]] = [(context[:-1], "a context of the wrong batch size")]
    spec = b.context_spec
    # A bijector without a spec is checked by what it was given: a float (B, C) context as vectors.
    vector = spec.kind == "vector" if spec is not None else context.dtype.is_floating_point and context.dim() == 2
    if not vector:
        bad += [(context.float(), "float labels"), (torch.full_like(context, 10**6), "out-of-range labels")]
    else:
        bad += [(context.long(), "an integer context vector"),
                (context.new_full(context.shape, float("nan")), "a non-finite context vector"),
                (torch.cat([context, context[:, :1]], dim=1), "a context vector with one feature too many"),
                (context[:, 0], "a context vector without its feature axis")]
        if spec is not None and not spec.optional:
            bad.append((None, "a missing context (None)"))
    return bad


def _other_context(context: Tensor) -> Tensor:
    """Another sample's context for each sample (labels or vectors alike): the batch rolled by one."""
    other = context.roll(1, dims=0)
    if torch.equal(other, context):
        kind = "labels" if context.dim() == 1 else "context vectors"
        _fail("context", f"use at least two distinct {kind} in the context")
    return other


def _slice_context(context: Tensor | None, index: slice) -> Tensor | None:
    return None if context is None else context[index]


def check_bijector(bijector: Bijector, x: Tensor, context: Tensor | None = None, *, atol: float = 1e-6,
                   rtol: float = 1e-5, jacobian_samples: int = 2,
                   inverse_options: dict[str, Any] | None = None) -> None:
    r"""Check the :class:`~flowkit.Bijector` contract on a batch ``x``.

    Raises ``AssertionError`` naming the first property that fails.

    Properties checked, in order:

    1. shapes: output matches :meth:`~flowkit.Bijector.forward_shape`, log-dets are ``(B,)``,
       dtype and device are kept;
    2. round trips ``inverse(forward(x)) == x`` and ``forward(inverse(z)) == z``;
    3. the log-dets cancel: ``logdet_fwd(x) + logdet_inv(forward(x)) == 0``;
    4. the log-det equals :math:`\log|\det J|` of the autograd Jacobian (run ``x`` in float64 and
       keep the event small: the Jacobian is dense);
    5. declared structure: ``causal`` (output token ``i`` does not depend on input tokens
       ``> i``) and ``volume_preserving`` (log-det exactly 0);
    6. every parameter gets a gradient;
    7. samples in a batch do not affect each other;
    8. a conditional bijector reacts to its context (each sample given another's) and rejects a
       malformed one: for labels, wrong batch, float or out-of-range labels; for vectors, wrong
       batch, integer dtype, non-finite values, wrong width, a missing feature axis, and ``None``
       when the context is required;
    9. every inverse method in ``inverse_methods`` agrees;
    10. no state is left on the module by a call;
    11. ``state_dict``, ``torch.save``/``torch.load(weights_only=True)`` and ``deepcopy`` keep the output.

    Use random (not zero-initialised) parameters, or the checks prove little. A bijector in training
    mode with active dropout is refused (each call would draw new masks): check it in eval mode.

    Args:
        bijector: the bijector to test.
        x: a batch of inputs ``(B, *event_shape)`` with ``B >= 2``.
        context: for a conditional bijector, what its ``context_spec`` declares: labels ``(B,)`` or
            float vectors ``(B, C)`` of ``x``'s dtype (use at least two distinct values).
        atol: absolute tolerance of the numerical comparisons.
        rtol: relative tolerance of the numerical comparisons.
        jacobian_samples: how many samples get the (dense, costly) Jacobian check.
        inverse_options: extra keywords for every :meth:`~flowkit.Bijector.inverse` call.

    Examples:
        >>> from flowkit import Permutation
        >>> check_bijector(Permutation.reverse(), torch.randn(3, 5, 2, dtype=torch.float64))
    """
    if not isinstance(bijector, Bijector):
        raise TypeError(f"check_bijector: expected a flowkit Bijector, got {type(bijector).__name__}")
    if not isinstance(x, Tensor):
        raise TypeError(f"check_bijector: x must be a torch.Tensor, got {type(x).__name__}")
    finite_float(atol, "atol", "check_bijector", low=0.0)
    finite_float(rtol, "rtol", "check_bijector", low=0.0)
    nonnegative_int(jacobian_samples, "jacobian_samples", "check_bijector")
    if inverse_options is not None and not isinstance(inverse_options, dict):
        raise TypeError(f"check_bijector: inverse_options must be a dict or None, got {type(inverse_options).__name__}")
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(f"check_bijector: x needs a batch of at least 2 samples, got shape {tuple(x.shape)}")
    active = active_dropout(bijector)
    if active:
        raise ValueError(f"check_bijector: {type(bijector).__name__} is in training mode with active dropout "
                         f"({active[0]}), so every call draws new masks and no round trip can hold; call .eval() "
                         f"first")
    opts = inverse_options or {}
    x = x.detach()  # the gradient check below must see only this bijector's graph
    b = bijector
    fwd = lambda inp, ctx=context: b(inp, context=ctx)  # noqa: E731
    inv = lambda out, ctx=context, **kw: b.inverse(out, context=ctx, **{**opts, **kw})  # noqa: E731
    batch = x.shape[0]
    state_keys = set(b.state_dict().keys())
    attrs = {name: set(vars(m).keys()) for name, m in b.named_modules()}

    with torch.no_grad():
        z, ld = fwd(x)
        # 1. shapes, dtype, device
        expected = tuple(b.forward_shape(tuple(x.shape[1:])))
        if tuple(z.shape[1:]) != expected or z.shape[0] != batch:
            _fail("shape", f"forward output {tuple(z.shape)} but forward_shape says (B, *{expected})")
        if tuple(b.inverse_shape(expected)) != tuple(x.shape[1:]):
            _fail("shape", f"inverse_shape{expected} = {b.inverse_shape(expected)}, expected {tuple(x.shape[1:])}")
        if ld.shape != (batch,):
            _fail("log-det shape", f"log-det must be (B,) = ({batch},), got {tuple(ld.shape)}")
        if z.dtype != x.dtype or z.device != x.device:
            _fail("dtype/device", f"input {x.dtype} on {x.device}, output {z.dtype} on {z.device}")
        # 2-3. round trips and cancelling log-dets
        x_back, ld_inv = inv(z)
        _close("round trip inverse(forward(x)) == x", x_back, x, atol, rtol)
        _close("log-dets cancel: logdet_fwd(x) + logdet_inv(forward(x)) == 0", ld + ld_inv, torch.zeros_like(ld),
               atol, rtol)
        # A latent batch that forward did not produce (nearby, so a generating pass stays finite).
        g = torch.Generator(device=z.device).manual_seed(0)
        z2 = z + 1e-2 * torch.randn(z.shape, generator=g, device=z.device, dtype=z.dtype)
        _close("round trip forward(inverse(z)) == z", fwd(inv(z2)[0])[0], z2, atol, rtol)
        # 5b. volume preservation
        if b.volume_preserving and not torch.equal(ld, torch.zeros_like(ld)):
            _fail("volume_preserving", f"log-det must be exactly 0, got max |logdet| {ld.abs().max().item():.3g}")
        # 7. batch independence
        z_one, ld_one = fwd(x[:1], _slice_context(context, slice(0, 1)))
        _close("batch independence (one sample alone == in the batch)", z_one, z[:1], atol, rtol)
        _close("batch independence of the log-det", ld_one, ld[:1], atol, rtol)
        # 9. every inverse method agrees with the first
        for method in b.inverse_methods[1:]:
            xm, ldm = inv(z, method=method)
            _close(f"inverse method {method!r} agrees with {b.inverse_methods[0]!r}", xm, x_back, atol * 10, rtol * 10)
            _close(f"inverse method {method!r} log-det", ldm, ld_inv, atol * 10, rtol * 10)

    # 4-5. Jacobian: log-det and causal structure
    for i in range(min(jacobian_samples, batch)):
        ctx_i = _slice_context(context, slice(i, i + 1))
        f = lambda v, c=ctx_i: b(v.unsqueeze(0), context=c)[0].squeeze(0)  # noqa: E731
        jac = _jacobian(f, x[i])
        if jac.shape[0] != jac.shape[1]:
            _fail("Jacobian", f"the map is not square: {tuple(jac.shape)}")
        sign, logabsdet = torch.linalg.slogdet(jac)
        if sign == 0:
            _fail("Jacobian", "the Jacobian is singular")
        _close(f"log-det equals slogdet of the autograd Jacobian (sample {i})", ld[i:i + 1],
               logabsdet.reshape(1).to(ld.dtype), atol * 10, rtol * 10)
        if b.causal:
            n = x.shape[1]
            blocks = jac.reshape(n, -1, n, x[i][0].numel()).abs().amax(dim=(1, 3))
            upper = torch.triu(blocks, diagonal=1)
            if upper.max() > 0:
                out_tok, in_tok = divmod(int(upper.argmax()), n)
                _fail("causality", f"output token {out_tok} depends on later input token {in_tok}")

    # 6. every parameter gets a gradient
    if any(p.requires_grad for p in b.parameters()):
        b.zero_grad(set_to_none=True)
        z, ld = fwd(x)
        (z.square().sum() + ld.sum()).backward()
        missing = [name for name, p in b.named_parameters() if p.requires_grad and p.grad is None]
        if missing:
            _fail("gradients", f"parameters without a gradient: {missing}")
        b.zero_grad(set_to_none=True)

    with torch.no_grad():
        z, ld = fwd(x)
        # 8. context
        if b.conditional:
            if context is None:
                _fail("context", "a conditional bijector must be checked with a context")
            z_other, _ = fwd(x, _other_context(context))
            if torch.allclose(z_other, z):
                _fail("context", "the output does not react to the context")
            for bad, what in _malformed_contexts(b, context):
                try:
                    fwd(x, bad)
                except (ValueError, TypeError):
                    continue
                except Exception as e:  # the contract: a clear ValueError/TypeError, never a deep error
                    _fail("context", f"{what} raised {type(e).__name__} instead of ValueError/TypeError: {e}")
                _fail("context", f"{what} were accepted")
        elif context is not None:
            _fail("context", "a context was given for an unconditional bijector")
        # 10. no hidden state
        now = {name: set(vars(m).keys()) for name, m in b.named_modules()}
        if now != attrs or set(b.state_dict().keys()) != state_keys:
            _fail("no hidden state", "a call added attributes or state to the module")
        # 11. serialisation
        buf = io.BytesIO()
        torch.save(b.state_dict(), buf)
        buf.seek(0)
        clone = copy.deepcopy(b)
        clone.load_state_dict(torch.load(buf, weights_only=True))
        _close("state_dict / torch.save / torch.load(weights_only=True) round trip", clone(x, context=context)[0], z,
               atol, rtol)
        _close("deepcopy keeps the log-det", copy.deepcopy(b)(x, context=context)[1], ld, atol, rtol)


@torch.no_grad()
def randomize_parameters(module: torch.nn.Module, std: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Add seeded Gaussian noise of standard deviation ``std`` to every parameter (in place).

    Zero-initialised output layers make fresh flow blocks the identity, which hides bugs from
    :func:`check_bijector`; perturbing them first makes every block do something.

    Examples:
        >>> from flowkit import CausalAffine
        >>> block = randomize_parameters(CausalAffine(dim=2, seq_len=3, channels=64, num_layers=1))
        >>> bool(block.net.proj_out.weight.abs().sum() > 0)
        True
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"randomize_parameters: module must be a torch.nn.Module, got {type(module).__name__}")
    finite_float(std, "std", "randomize_parameters", low=0.0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"randomize_parameters: seed must be an int, got {type(seed).__name__} {seed!r}")
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device) * std)
    return module
