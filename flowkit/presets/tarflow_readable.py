"""TarFlow on one page: the whole model, forward and exact inverse, in plain PyTorch.

A reading companion to :class:`flowkit.TarFlow` (docs: "TarFlow in one page"), and the plain
baseline of ``benchmarks/reference_speed.py``. Its weights use the reference implementation's names
(apple/ml-tarflow), so ``TarFlow.from_ml_tarflow(model.state_dict(), **config)`` builds the library
model with the same weights; a test proves both compute the same ``log_prob``, latents and samples.
Left out here: guidance, parallel inverse methods, input checks, half precision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ReadableTarFlow"]


class Attention(nn.Module):
    """Pre-LayerNorm multi-head causal self-attention; during sampling it appends to a KV cache."""

    def __init__(self, channels: int, head_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.heads = channels // head_dim

    def forward(self, h: Tensor, cache: list[Tensor] | None = None) -> Tensor:
        b, t, c = h.shape
        q, k, v = self.qkv(self.norm(h)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, hd)
        if cache is None:  # all tokens at once: causal mask
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # one new token: it sees every cached token and itself
            cache[:] = [k, v] if not cache else [torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)]
            out = F.scaled_dot_product_attention(q, cache[0], cache[1])
        return self.proj(out.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    """LayerNorm, then ``Linear(C, eC)``, GELU, ``Linear(eC, C)``."""

    def __init__(self, channels: int, expansion: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.main = nn.Sequential(nn.Linear(channels, channels * expansion), nn.GELU(),
                                  nn.Linear(channels * expansion, channels))

    def forward(self, h: Tensor) -> Tensor:
        return self.main(self.norm(h))


class Layer(nn.Module):
    """A residual transformer layer: ``h + Attn(h)``, then ``h + MLP(h)``."""

    def __init__(self, channels: int, head_dim: int, expansion: int) -> None:
        super().__init__()
        self.attention = Attention(channels, head_dim)
        self.mlp = MLP(channels, expansion)

    def forward(self, h: Tensor, cache: list[Tensor] | None = None) -> Tensor:
        h = h + self.attention(h, cache)
        return h + self.mlp(h)


class Block(nn.Module):
    r"""One autoregressive affine flow block on tokens in its own order (reversed when ``flip``).

    A causal transformer reads tokens :math:`x_{<i}` and predicts :math:`(a_i, b_i)`; then
    :math:`z_i = (x_i - b_i) e^{-a_i}` (forward) and :math:`x_i = z_i e^{a_i} + b_i` (inverse).
    """

    def __init__(self, dim: int, seq_len: int, channels: int, layers: int, head_dim: int, expansion: int,
                 nvp: bool, num_classes: int, flip: bool) -> None:
        super().__init__()
        self.proj_in = nn.Linear(dim, channels)
        self.pos_embed = nn.Parameter(torch.randn(seq_len, channels) * 1e-2)
        self.class_embed = nn.Parameter(torch.randn(num_classes, 1, channels) * 1e-2) if num_classes else None
        self.attn_blocks = nn.ModuleList(Layer(channels, head_dim, expansion) for _ in range(layers))
        self.proj_out = nn.Linear(channels, 2 * dim if nvp else dim)
        nn.init.zeros_(self.proj_out.weight)  # every block starts as the identity
        self.register_buffer("attn_mask", torch.ones(seq_len, seq_len).tril())  # kept for the reference's layout
        self.nvp, self.flip = nvp, flip

    def order(self, t: Tensor, dim: int = 1) -> Tensor:
        """This block's token order (a reversal is its own inverse)."""
        return t.flip(dim) if self.flip else t

    def embed(self, x: Tensor, y: Tensor | None, pos: Tensor) -> Tensor:
        h = self.proj_in(x) + pos
        if self.class_embed is None:
            return h
        mean = self.class_embed.mean(0)
        if y is None:
            return h + mean
        return h + torch.where((y < 0).view(-1, 1, 1), mean, self.class_embed[y.clamp(min=0)])

    def params(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)`` from the projected output ``p``; volume-preserving blocks have ``a = 0``."""
        if not self.nvp:
            return torch.zeros_like(p), p
        a, b = p.chunk(2, dim=-1)
        return a, b

    def forward(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        x = self.order(x)
        h = self.embed(x, y, self.order(self.pos_embed, 0))
        for layer in self.attn_blocks:
            h = layer(h)
        p = self.proj_out(h)
        a, b = self.params(torch.cat([torch.zeros_like(p[:, :1]), p[:, :-1]], dim=1))  # token i sees tokens < i
        z = (x - b) * torch.exp(-a)
        return self.order(z), -a.flatten(1).sum(1)

    def inverse(self, z: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        """Exact sequential inverse: token ``i + 1`` from tokens ``<= i``, one transformer step each."""
        z = self.order(z)
        pos = self.order(self.pos_embed, 0)
        caches: list[list[Tensor]] = [[] for _ in self.attn_blocks]
        xs, logdet = [z[:, :1]], z.new_zeros(z.shape[0])
        for i in range(z.shape[1] - 1):
            h = self.embed(xs[-1], y, pos[i:i + 1])
            for layer, cache in zip(self.attn_blocks, caches, strict=True):
                h = layer(h, cache)
            a, b = self.params(self.proj_out(h))
            xs.append(z[:, i + 1:i + 2] * torch.exp(a) + b)
            logdet = logdet + a.flatten(1).sum(1)
        return self.order(torch.cat(xs, dim=1)), logdet


class ReadableTarFlow(nn.Module):
    """Patchify, then ``num_blocks`` blocks alternating token order.

    The prior is a standard normal (NVP) or a diagonal normal with the variance ``var`` (VP).
    """

    var: Tensor  # a registered buffer (declared for the type checker)

    def __init__(self, in_channels: int, img_size: int, patch_size: int, channels: int, num_blocks: int,
                 layers_per_block: int, head_dim: int = 64, expansion: int = 4, nvp: bool = True,
                 num_classes: int = 0) -> None:
        super().__init__()
        self.img_size, self.patch_size = img_size, patch_size
        seq_len, dim = (img_size // patch_size) ** 2, in_channels * patch_size**2
        self.blocks = nn.ModuleList(Block(dim, seq_len, channels, layers_per_block, head_dim, expansion, nvp,
                                          num_classes, flip=t % 2 == 1) for t in range(num_blocks))
        self.register_buffer("var", torch.ones(seq_len, dim))

    def patchify(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` to patch tokens ``(B, N, C p^2)``, as :class:`flowkit.Patchify`."""
        return F.unfold(x, self.patch_size, stride=self.patch_size).transpose(1, 2)  # (B, N, C p^2)

    def unpatchify(self, z: Tensor) -> Tensor:
        """Patch tokens ``(B, N, C p^2)`` back to images ``(B, C, H, W)``."""
        return F.fold(z.transpose(1, 2), self.img_size, self.patch_size, stride=self.patch_size)

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Images ``(B, C, H, W)`` to latents ``(B, N, D)`` and the summed log-det ``(B,)``."""
        h, logdet = self.patchify(x), x.new_zeros(x.shape[0])
        for block in self.blocks:
            h, ld = block(h, y)
            logdet = logdet + ld
        return h, logdet

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """``log N(z; 0, diag var) + logdet`` in nats, per image."""
        z, logdet = self(x, y)
        prior = -0.5 * (z.square() / self.var + self.var.log() + math.log(2 * math.pi))
        return prior.flatten(1).sum(1) + logdet

    @torch.no_grad()
    def inverse(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Latents ``(B, N, D)`` to images: the blocks inverted in reverse order."""
        for block in reversed(self.blocks):
            z, _ = block.inverse(z, y)  # type: ignore[operator]  # mypy sees nn.ModuleList's items as nn.Module
        return self.unpatchify(z)

    def sample(self, num_samples: int, y: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Images from noise ``z ~ N(0, diag var)``."""
        eps = torch.randn((num_samples, *self.var.shape), generator=generator, dtype=self.var.dtype)
        return self.inverse(eps.to(self.var.device) * self.var.sqrt(), y)
