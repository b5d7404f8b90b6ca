"""The baseline sampler of the benchmarks: a plain token-by-token loop.

One forward of one token per step through the block's own layers, the KV cache grown by
``torch.cat``, guidance by concatenating the doubled batch at every step: what a first, direct
implementation of TarFlow's sequential inverse looks like. It reuses the model's modules, so it
computes the same function as ``method="sequential"`` (to float rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from flowkit import CausalAffine, Chain, Patchify, Permutation, TarFlow
from flowkit.bijectors.base import Bijector


@torch.no_grad()
def plain_block_inverse(block: CausalAffine, z: Tensor, context: Tensor | None = None, guidance: float = 0.0) -> Tensor:
    """Invert one :class:`~flowkit.CausalAffine` token by token (``z``: ``(B, N, D)``)."""
    net, (batch, n, _) = block.net, z.shape
    cond = net.embed_context(context, batch)
    if guidance:
        mean = net.class_embed.mean(0).view(1, 1, -1) if net.class_embed is not None else None
        cond = None if cond is None else torch.cat([cond.expand(batch, 1, -1), mean.expand(batch, 1, -1)])
    keys: list[Tensor | None] = [None] * len(net.transformer.layers)
    values: list[Tensor | None] = [None] * len(net.transformer.layers)
    xs = [z[:, :1]]
    for i in range(n - 1):
        token = torch.cat([xs[-1], xs[-1]]) if guidance else xs[-1]
        h = net.proj_in(token) + net.pos_embed[i:i + 1]
        if cond is not None:
            h = h + cond
        for j, layer in enumerate(net.transformer.layers):
            att = layer.attention
            qkv = att.qkv(att.norm(h)).view(h.shape[0], 1, 3, att.num_heads, att.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            keys[j] = k if keys[j] is None else torch.cat([keys[j], k], dim=2)
            values[j] = v if values[j] is None else torch.cat([values[j], v], dim=2)
            o = F.scaled_dot_product_attention(q, keys[j], values[j])
            h = h + att.proj(o.transpose(1, 2).reshape(h.shape[0], 1, -1))
            h = h + layer.mlp(h)
        p = net.proj_out(h)
        a, b = p.chunk(2, dim=-1) if block.affine else (torch.zeros_like(p), p)
        if guidance:
            (a, a_u), (b, b_u) = a.chunk(2), b.chunk(2)
            a, b = a + guidance * (a - a_u), b + guidance * (b - b_u)
        xs.append(z[:, i + 1:i + 2] * torch.exp(a) + b)
    return torch.cat(xs, dim=1)


@torch.no_grad()
def plain_inverse(model: TarFlow, z: Tensor, context: Tensor | None = None, guidance: float = 0.0) -> Tensor:
    """Invert a TarFlow (blocks of CausalAffine, reversals, Patchify) with :func:`plain_block_inverse`."""

    def inv(b: Bijector, y: Tensor) -> Tensor:
        if isinstance(b, CausalAffine):
            return plain_block_inverse(b, y, context if b.conditional else None, guidance)
        if isinstance(b, Chain):
            for part in reversed(list(b.bijectors)):
                y = inv(part, y)
            return y
        if isinstance(b, (Permutation, Patchify)):
            return b.inverse(y)[0]
        raise TypeError(f"plain_inverse: unsupported bijector {type(b).__name__}")

    for b in reversed(list(model.bijectors)):
        z = inv(b, z)
    return z
