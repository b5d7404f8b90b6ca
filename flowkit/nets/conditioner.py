"""The transformer that predicts the element-wise map's parameters in TarFlow-style blocks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._args import positive_int
from .._validation import context_spec_for
from .transformer import KVCache, Transformer

__all__ = ["TransformerConditioner"]


class TransformerConditioner(nn.Module):
    r"""Token embedding, a transformer, and a zero-initialised output projection.

    .. math:: h = W_{in} x + P + e(c), \qquad p = W_{out}\,\mathrm{Transformer}(h)

    with a learned positional table :math:`P` (``(N, C)``) and a context term :math:`e(c)`: for
    ``num_classes > 0`` a class embedding :math:`E[y]` whose mean stands in for a dropped label
    (``y = -1``) or for ``context=None``; for ``context_features > 0`` a projection :math:`W_c c`
    of a float context vector ``(B, context_features)`` (no bias; the unconditional branch of
    guidance uses :math:`e = 0`). ``proj_out`` starts at zero (weights and bias), so the block it
    feeds starts as the identity map.

    This is the *cached token protocol* that :class:`~flowkit.bijectors.TokenAutoregressive` uses
    for fast sampling: :meth:`embed_context`, :meth:`forward`, :meth:`new_cache`, :meth:`step`,
    :meth:`branch_embeddings` and :meth:`row_flops`.

    Args:
        in_dim: token size fed in.
        out_dim: parameters predicted per token.
        seq_len: number of tokens ``N``.
        channels: transformer width ``C`` (a multiple of ``head_dim``).
        num_layers: transformer depth ``K``.
        head_dim: attention head size.
        expansion: MLP expansion factor.
        num_classes: number of classes (``0``: unconditional).
        context_features: size of a float context vector instead of labels (``0``: none).

    Examples:
        >>> net = TransformerConditioner(4, 8, seq_len=6, channels=64, num_layers=1, context_features=3)
        >>> c = torch.randn(2, 3)
        >>> tuple(net(torch.randn(2, 6, 4), net.embed_context(c, 2), causal=True).shape)
        (2, 6, 8)
    """

    def __init__(self, in_dim: int, out_dim: int, seq_len: int, channels: int, num_layers: int,
                 head_dim: int = 64, expansion: int = 4, num_classes: int = 0, context_features: int = 0) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim), ("seq_len", seq_len), ("channels", channels),
                            ("num_layers", num_layers)):
            positive_int(value, name, "TransformerConditioner")
        context_spec_for(num_classes, context_features, "TransformerConditioner")
        self.proj_in = nn.Linear(in_dim, channels)
        self.pos_embed = nn.Parameter(torch.randn(seq_len, channels) * 1e-2)
        self.class_embed = nn.Parameter(torch.randn(num_classes, channels) * 1e-2) if num_classes else None
        self.context_proj = nn.Linear(context_features, channels, bias=False) if context_features else None
        self.transformer = Transformer(channels, num_layers, head_dim, expansion)
        self.proj_out = nn.Linear(channels, out_dim)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)
        self.num_classes, self.context_features = num_classes, context_features
        self.in_dim, self.out_dim = in_dim, out_dim

    def embed_context(self, context: Tensor | None, batch: int) -> Tensor | None:
        """Context term per sample ``(B, 1, C)``, the mean class embedding ``(1, 1, C)``, or ``None``.

        ``None`` is for an unconditional net; the mean class embedding for a label net called without labels.

        The context is not checked here: the bijector's base class checked it (shape, dtype,
        device, range) when the call came in.
        """
        if self.context_proj is not None:
            if context is None:  # the owning block's ContextSpec requires it; a direct call gets a clear error
                raise ValueError(f"TransformerConditioner: a context vector (B, {self.context_features}) is required")
            return self.context_proj(context).unsqueeze(1)
        if self.class_embed is None:
            return None
        mean = self.class_embed.mean(dim=0)
        if context is None:
            return mean.view(1, 1, -1)
        y = context
        emb = torch.where((y < 0).unsqueeze(1), mean, self.class_embed[y.clamp(min=0)])
        return emb.unsqueeze(1)

    def branch_embeddings(self, cond: Tensor | None, guided: bool = False) -> Tensor:
        r"""The class embedding of each branch of a sampling call, ``(G, B or 1, 1, C)``.

        A guided call has two branches, the conditional one and the unconditional one (mean class
        embedding, or no context term for a context vector); they share the input tokens, so
        :meth:`embed` broadcasts ``proj_in(x)`` over them instead of copying a doubled batch. An
        unconditional net gets zeros (adding them is exact, so the result matches :meth:`embed` bit for bit).

        Args:
            cond: :meth:`embed_context` output ``(B, 1, C)`` or ``(1, 1, C)``, or ``None``.
            guided: add the unconditional branch.

        Returns:
            ``(G, B or 1, 1, C)`` with ``G = 2`` if ``guided`` else ``1``.
        """
        zero = self.pos_embed.new_zeros(1, 1, self.pos_embed.shape[1])
        conds = [zero if cond is None else cond]
        if guided:
            conds.append(zero if self.class_embed is None else self.class_embed.mean(dim=0).view(1, 1, -1))
        return torch.stack(torch.broadcast_tensors(*conds))

    def embed(self, x: Tensor, cond: Tensor | None, start: int = 0, *, branches: Tensor | None = None) -> Tensor:
        """``proj_in(x) + pos_embed[start:start+T] + cond`` (added in this order, as the reference does).

        With :meth:`branch_embeddings` ``(G, B', 1, C)`` instead of ``cond``, ``x`` (``(B, T, in_dim)``)
        is shared by the ``G`` branches and the result is ``(G * B, T, C)``, branch-major.
        """
        h = self.proj_in(x) + self.pos_embed[start:start + x.shape[1]]
        if branches is not None:
            return (h + branches).flatten(0, 1)
        return h if cond is None else h + cond

    def forward(self, x: Tensor, cond: Tensor | None, *, causal: bool, q_scale: Tensor | None = None,
                branches: Tensor | None = None) -> Tensor:
        """Parameters for every token of ``x``: ``(B, N, in_dim)`` to ``(B, N, out_dim)``.

        ``branches`` is as in :meth:`embed`.
        """
        return self.proj_out(self.transformer(self.embed(x, cond, branches=branches), causal=causal, q_scale=q_scale))

    def row_flops(self) -> int:
        """Matmul FLOPs of one token row through one transformer layer (forward), ``2 * weights``."""
        layer = self.transformer.layers[0]
        return 2 * sum(m.weight.numel() for m in layer.modules() if isinstance(m, nn.Linear))

    def new_cache(self, batch: int, dtype: torch.dtype, device: torch.device) -> KVCache:
        """An empty :class:`KVCache` for one sampling call over the whole sequence."""
        return self.transformer.new_cache(batch, self.pos_embed.shape[0], dtype, device)

    def step(self, x: Tensor, cond: Tensor | None, cache: KVCache, start: int,
             q_scale: Tensor | None = None, *, branches: Tensor | None = None) -> Tensor:
        """Causal parameters for tokens ``start..start+T-1`` given the cached earlier ones.

        ``branches`` is as in :meth:`embed`.
        """
        h = self.transformer.step(self.embed(x, cond, start, branches=branches), cache, start, q_scale)
        return self.proj_out(h)
