"""Shared arithmetic of the token blocks (autoregressive and coupling): precision and log-dets."""

from __future__ import annotations

import torch
from torch import Tensor


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

