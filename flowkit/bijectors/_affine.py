"""Shared arithmetic of the token blocks (autoregressive and coupling): precision, log-dets, guidance inputs."""

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
