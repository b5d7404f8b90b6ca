"""Pre-LayerNorm transformer layers with an optional per-call KV cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._args import nonnegative_int, positive_int

__all__ = ["Attention", "MLP", "TransformerLayer", "Transformer", "KVCache", "offset_causal_mask"]

_HALF = (torch.float16, torch.bfloat16)


def norm_fp32(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """LayerNorm computed in float32 when ``x`` is half precision (bf16 statistics are too coarse)."""
    if x.dtype in _HALF:
        return F.layer_norm(x.float(), norm.normalized_shape, norm.weight, norm.bias, norm.eps).to(x.dtype)
    return norm(x)


def offset_causal_mask(t: int, start: int, device: torch.device | None = None) -> Tensor | None:
    r"""Boolean causal attention mask ``(t, start + t)`` for queries at positions ``start..start+t-1``.

    The keys are at positions ``0..start+t-1``: query ``start+i`` sees keys ``<= start+i``.

    ``None`` when nothing needs masking (a single query sees every cached key, and from
    ``start = 0`` attention uses SDPA's ``is_causal`` instead).

    Examples:
        >>> offset_causal_mask(2, 1).int().tolist()
        [[1, 1, 0], [1, 1, 1]]
        >>> offset_causal_mask(1, 5) is None, offset_causal_mask(3, 0) is None
        (True, True)
    """
    if t == 1 or start == 0:
        return None
    return torch.ones(t, start + t, dtype=torch.bool, device=device).tril(diagonal=start)


class KVCache:
    """Keys and values of every layer for one sampling call.

    Preallocated to ``max_len`` tokens, keys and values of a layer in one ``(2, B, H, max_len, hd)``
    buffer, and written in place when no gradient is needed (the fast path); when autograd is on,
    the entries are kept in a list and concatenated instead, because in-place writes would
    invalidate tensors saved for the backward pass. Positions can be rewritten (iterative solvers
    revise a segment). The cache is a local object of one call: nothing is stored on the modules.
    """

    def __init__(self, num_layers: int, batch: int, num_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        for name, value in (("num_layers", num_layers), ("batch", batch), ("num_heads", num_heads),
                            ("max_len", max_len), ("head_dim", head_dim)):
            positive_int(value, name, "KVCache")
        self.inplace = not torch.is_grad_enabled()
        if self.inplace:  # keys and values of a layer side by side: one copy per token and layer
            shape = (2, batch, num_heads, max_len, head_dim)
            self.kv = [torch.empty(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        else:
            self.kv_list: list[list[Tensor]] = [[] for _ in range(num_layers)]

    def update(self, layer: int, start: int, kv: Tensor) -> Tensor:
        """Store keys and values ``kv`` of ``layer`` at ``start..start+T-1``; return all up to ``start + T``.

        ``kv`` is ``(2, B, H, T, hd)``; the result is ``(2, B, H, start + T, hd)``.
        """
        t = kv.shape[3]
        if self.inplace:  # narrow + copy_: the cheapest way to address a slice (this runs per token and layer)
            self.kv[layer].narrow(3, start, t).copy_(kv)
            return self.kv[layer].narrow(3, 0, start + t)
        entries = self.kv_list[layer]
        # Drop what lies at or after `start` (a segment can be recomputed, e.g. by Jacobi iterations),
        # trimming an entry that straddles it.
        length = sum(e.shape[3] for e in entries)
        while entries and length > start:
            old = entries.pop()
            length -= old.shape[3]
            if start > length:
                entries.append(old[:, :, :, :start - length])
                length = start
        entries.append(kv)
        return torch.cat(entries, dim=3)


class Attention(nn.Module):
    r"""Multi-head self-attention after a LayerNorm, with fused ``qkv``.

    .. math:: \mathrm{Attn}(h) = W_o\,\mathrm{softmax}\!\left(\frac{q k^\top}{\tau\sqrt{d_h}} + M\right) v,
        \quad (q, k, v) = W_{qkv}\,\mathrm{LN}(h)

    with a causal mask :math:`M` when asked and a per-sample attention temperature :math:`\tau`
    (passed as ``q_scale = 1/\tau`` of shape ``(B, 1, 1, 1)``; used by guidance).
    """

    def __init__(self, channels: int, head_dim: int = 64) -> None:
        super().__init__()
        positive_int(channels, "channels", "Attention")
        positive_int(head_dim, "head_dim", "Attention")
        if channels % head_dim:
            raise ValueError(f"Attention: channels ({channels}) must be a multiple of head_dim ({head_dim})")
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.num_heads = channels // head_dim
        self.head_dim = head_dim

    def _qkv(self, x: Tensor, q_scale: Tensor | None) -> tuple[Tensor, Tensor]:
        """Queries ``(B, H, T, hd)`` and keys and values stacked ``(2, B, H, T, hd)``."""
        b, t, _ = x.shape
        qkv = self.qkv(norm_fp32(self.norm, x)).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, kv = qkv[0], qkv[1:]
        if q_scale is not None:
            q = q * q_scale.to(q.dtype)
        return q, kv

    def _out(self, o: Tensor) -> Tensor:
        """Merge the heads of ``o`` ``(B, H, T, hd)`` and project: ``(B, T, C)``."""
        b, _, t, _ = o.shape
        return self.proj(o.transpose(1, 2).reshape(b, t, -1))

    def forward(self, x: Tensor, *, causal: bool = True, q_scale: Tensor | None = None) -> Tensor:
        """Attention over all of ``x`` ``(B, T, C)``, causal unless ``causal=False``: ``(B, T, C)``."""
        q, kv = self._qkv(x, q_scale)
        return self._out(F.scaled_dot_product_attention(q, kv[0], kv[1], is_causal=causal))

    def step(self, x: Tensor, cache: KVCache, layer: int, start: int, q_scale: Tensor | None = None,
             mask: Tensor | None = None) -> Tensor:
        """Causal attention for tokens at ``start..start+T-1`` given the cached earlier ones.

        ``mask`` is :func:`offset_causal_mask` ``(T, start, ...)``, built once per step by the caller
        (it is the same for every layer); ``None`` computes it here.
        """
        q, kv = self._qkv(x, q_scale)
        kv = cache.update(layer, start, kv)
        t = x.shape[1]
        if mask is None:
            mask = offset_causal_mask(t, start, x.device)
        # From position 0 the mask is the plain causal one: SDPA's `is_causal` kernel skips the masked half.
        causal = start == 0 and t > 1
        return self._out(F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=None if causal else mask,
                                                        is_causal=causal))


class MLP(nn.Module):
    """LayerNorm, then ``Linear(C, eC)``, GELU, ``Linear(eC, C)``."""

    def __init__(self, channels: int, expansion: int = 4) -> None:
        super().__init__()
        positive_int(channels, "channels", "MLP")
        positive_int(expansion, "expansion", "MLP")
        self.norm = nn.LayerNorm(channels)
        self.fc1 = nn.Linear(channels, channels * expansion)
        self.fc2 = nn.Linear(channels * expansion, channels)

    def forward(self, x: Tensor) -> Tensor:
        """The MLP applied to each token of ``x`` ``(..., C)``: ``(..., C)``."""
        return self.fc2(F.gelu(self.fc1(norm_fp32(self.norm, x))))


class TransformerLayer(nn.Module):
    """Pre-norm residual layer: ``h + Attn(h)``, then ``h + MLP(h)``."""

    def __init__(self, channels: int, head_dim: int = 64, expansion: int = 4) -> None:
        super().__init__()
        self.attention = Attention(channels, head_dim)
        self.mlp = MLP(channels, expansion)

    def forward(self, x: Tensor, *, causal: bool = True, q_scale: Tensor | None = None) -> Tensor:
        """The layer applied to ``x`` ``(B, T, C)``, with the arguments of :meth:`Attention.forward`."""
        x = x + self.attention(x, causal=causal, q_scale=q_scale)
        return x + self.mlp(x)

    def step(self, x: Tensor, cache: KVCache, layer: int, start: int, q_scale: Tensor | None = None,
             mask: Tensor | None = None) -> Tensor:
        """The layer applied to tokens at ``start..`` with ``cache``, as in :meth:`Attention.step`."""
        x = x + self.attention.step(x, cache, layer, start, q_scale, mask)
        return x + self.mlp(x)


def _as_layers(modules: nn.ModuleList) -> Sequence[TransformerLayer]:
    """``modules`` typed as the layers it holds (an ``nn.ModuleList`` is typed as holding modules)."""
    return cast("Sequence[TransformerLayer]", modules)


class Transformer(nn.Module):
    """A stack of :class:`TransformerLayer` (no final norm: a projection follows in every flow)."""

    def __init__(self, channels: int, num_layers: int, head_dim: int = 64, expansion: int = 4) -> None:
        super().__init__()
        nonnegative_int(num_layers, "num_layers", "Transformer")
        self.layers = nn.ModuleList(TransformerLayer(channels, head_dim, expansion) for _ in range(num_layers))
        self.channels, self.head_dim = channels, head_dim

    def forward(self, x: Tensor, *, causal: bool = True, q_scale: Tensor | None = None) -> Tensor:
        """Every layer applied in turn to ``x`` ``(B, T, C)``, with the arguments of :meth:`Attention.forward`."""
        for layer in self.layers:
            x = layer(x, causal=causal, q_scale=q_scale)
        return x

    def new_cache(self, batch: int, max_len: int, dtype: torch.dtype, device: torch.device) -> KVCache:
        """An empty :class:`KVCache` for one sampling call."""
        return KVCache(len(self.layers), batch, self.channels // self.head_dim, max_len, self.head_dim, dtype, device)

    def step(self, x: Tensor, cache: KVCache, start: int, q_scale: Tensor | None = None) -> Tensor:
        """Run tokens ``start..start+T-1`` (``x`` is ``(B, T, C)``) through every layer with ``cache``.

        The positions ``start..`` may have been written before (an iterative solver rewriting a
        segment): their cache entries are overwritten.
        """
        mask = offset_causal_mask(x.shape[1], start, x.device)  # one mask for all layers
        for i, layer in enumerate(_as_layers(self.layers)):
            x = layer.step(x, cache, i, start, q_scale, mask)
        return x
