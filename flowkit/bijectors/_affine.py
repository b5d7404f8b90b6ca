"""Shared arithmetic of the affine blocks (autoregressive and coupling)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..nets.conditioner import TransformerConditioner
from ..sampling.guidance import Guidance


def split_params(p: Tensor, affine: bool) -> tuple[Tensor, Tensor]:
    """Split predicted parameters into log-scale ``a`` and shift ``b`` (``a = 0`` when volume-preserving)."""
    if affine:
        a, b = p.chunk(2, dim=-1)
        return a, b
    return torch.zeros_like(p), p


def at_least_fp32(t: Tensor) -> Tensor:
    """Upcast half-precision tensors to float32 (``exp`` and sums of log-scales need the range)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def logdet_of(a: Tensor, dtype: torch.dtype) -> Tensor:
    """``sum(a)`` over all but the batch axis, accumulated in at least float32."""
    return at_least_fp32(a).flatten(1).sum(1).to(dtype)


def affine_normalize(x: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``z = (x - b) exp(-a)``, log-det ``-sum(a)``; ``exp`` in float32 even under bf16."""
    z = (at_least_fp32(x) - at_least_fp32(b)) * torch.exp(-at_least_fp32(a))
    return z.to(x.dtype), -logdet_of(a, x.dtype)


def affine_generate(z: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``x = z exp(a) + b`` (the inverse of :func:`affine_normalize`)."""
    x = at_least_fp32(z) * torch.exp(at_least_fp32(a)) + at_least_fp32(b)
    return x if x.dtype == z.dtype else x.to(z.dtype)  # skip a no-op dispatch: this runs once per token


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype activations take under the current autocast state."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def guided_inputs(net: TransformerConditioner, cond: Tensor | None, batch: int, guidance: Guidance,
                  x: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """Embeddings and query scales for a guided pass.

    The conditional and unconditional branches run as one doubled batch (the plain pass when
    guidance is off).
    """
    if not guidance.active:
        return cond, None
    return net.guided_embedding(cond, batch), guidance.q_scale(batch, compute_dtype(x), x.device)
