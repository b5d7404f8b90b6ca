"""CausalAffine: the TarFlow autoregressive affine block."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._validation import check_tensor
from ..nets.conditioner import TransformerConditioner
from ..sampling.guidance import Guidance
from ._affine import affine_generate, logdet_of, affine_normalize, compute_dtype, guided_inputs, split_params
from .base import Bijector

__all__ = ["CausalAffine"]


class CausalAffine(Bijector):
    r"""Autoregressive affine transform of a token sequence, parameterised by a causal transformer.

    For a sequence :math:`x \in \mathbb{R}^{N \times D}`, a causal transformer reads tokens
    :math:`x_{<i}` and predicts a log-scale :math:`a_i` and a shift :math:`b_i` for token
    :math:`i` (its output is shifted one token to the right, so token 0 gets ``a = b = 0``):

    .. math::
        \text{forward:}\; z_i = (x_i - b_i(x_{<i}))\, e^{-a_i(x_{<i})}, \qquad
        \text{inverse:}\; x_i = z_i\, e^{a_i(x_{<i})} + b_i(x_{<i}),

    .. math:: \log|\det \partial z / \partial x| = -\textstyle\sum_{i,d} a_{i,d}.

    The forward pass is one parallel transformer call; the inverse is sequential over tokens
    (``method="sequential"``, exact) with a key/value cache that exists only inside the call.
    With ``affine=False`` (volume-preserving, "VP") only the shift is learned and the log-det is 0.

    The transformer is TarFlow's: ``proj_in`` + learned positional embedding (+ class embedding),
    ``num_layers`` pre-LayerNorm causal layers (head size ``head_dim``, GELU MLP of expansion
    ``expansion``), and a zero-initialised ``proj_out``, so the block starts as the identity.

    Args:
        dim: token size ``D``.
        seq_len: number of tokens ``N``.
        channels: transformer width.
        num_layers: transformer layers ``K``.
        head_dim: attention head size (``channels`` must be a multiple).
        expansion: MLP expansion factor.
        num_classes: ``> 0`` makes the block class-conditional on ``context`` labels ``(B,)``;
            label ``-1`` or ``context=None`` use the mean class embedding.
        affine: learn a scale (NVP, default) or only a shift (VP).

    Shapes:
        ``x``, ``z``: ``(B, N, D)``; ``context``: ``(B,)`` integer labels; log-det ``(B,)``.

    Inverse options (see :class:`flowkit.sampling.Guidance`): ``guidance``, ``guide_what``,
    ``attn_temp``, ``annealed_guidance``, and ``method``.

    References:
        Zhai et al., "Normalizing Flows are Capable Generative Models", ICML 2025 (arXiv 2412.06329).

    Examples:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> block = CausalAffine(dim=4, seq_len=6, channels=64, num_layers=1, num_classes=3)
        >>> _ = torch.nn.init.normal_(block.net.proj_out.weight, std=0.1)
        >>> x, y = torch.randn(2, 6, 4), torch.tensor([0, 2])
        >>> z, logdet = block(x, context=y)
        >>> x_back, logdet_inv = block.inverse(z, context=y)
        >>> bool(torch.allclose(x_back, x, atol=1e-5)), bool(torch.allclose(logdet + logdet_inv, torch.zeros(2), atol=1e-5))
        (True, True)
    """

    causal = True
    takes_sampling_options = True
    inverse_methods: tuple[str, ...] = ("sequential",)

    def __init__(self, dim: int, seq_len: int, channels: int, num_layers: int, *, head_dim: int = 64,
                 expansion: int = 4, num_classes: int = 0, affine: bool = True) -> None:
        super().__init__()
        for name, v in (("dim", dim), ("seq_len", seq_len), ("channels", channels), ("num_layers", num_layers)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"CausalAffine: {name} must be a positive int, got {v!r}")
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"CausalAffine: num_classes must be an int >= 0, got {num_classes!r}")
        self.net = TransformerConditioner(dim, 2 * dim if affine else dim, seq_len, channels, num_layers,
                                          head_dim, expansion, num_classes)
        self.dim, self.seq_len, self.affine, self.num_classes = dim, seq_len, affine, num_classes
        self.event_shape = (seq_len, dim)
        self.conditional = num_classes > 0
        self.volume_preserving = not affine

    def extra_repr(self) -> str:
        return f"dim={self.dim}, seq_len={self.seq_len}, num_classes={self.num_classes}, affine={self.affine}"

    def params(self, x: Tensor, cond: Tensor | None, q_scale: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Shifted parameters ``(a, b)`` of every token from the whole sequence ``x`` in one pass."""
        p = self.net(x, cond, causal=True, q_scale=q_scale)
        p = torch.cat([torch.zeros_like(p[:, :1]), p[:, :-1]], dim=1)
        return split_params(p, self.affine)

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_tensor(x, "x", self.event_shape, owner="CausalAffine")
        cond = self.net.embed_context(context, x.shape[0], owner="CausalAffine")
        a, b = self.params(x, cond)
        return affine_normalize(x, a, b)

    def inverse(self, z: Tensor, *, context: Tensor | None = None, guidance: float = 0.0, guide_what: str = "ab",
                attn_temp: float = 1.0, annealed_guidance: bool = False, method: str = "sequential",
                **method_options: Any) -> tuple[Tensor, Tensor]:
        check_tensor(z, "z", self.event_shape, owner="CausalAffine.inverse")
        if method not in self.inverse_methods:
            raise ValueError(f"CausalAffine.inverse: method must be one of {self.inverse_methods}, got {method!r}")
        g = Guidance(guidance, guide_what, attn_temp, annealed_guidance)
        cond = self.net.embed_context(context, z.shape[0], owner="CausalAffine.inverse")
        if method_options:
            raise TypeError(f"CausalAffine.inverse: method {method!r} takes no options {sorted(method_options)}")
        return self._inverse_sequential(z, cond, g)

    def _inverse_sequential(self, z: Tensor, cond: Tensor | None, g: Guidance) -> tuple[Tensor, Tensor]:
        """Exact inverse, one token per step: ``x_{i+1} = z_{i+1} exp(a_i) + b_i`` with ``(a_i, b_i)``
        from tokens ``<= i`` through a KV cache; guided branches run as one doubled batch."""
        batch, n, _ = z.shape
        cond, q_scale = guided_inputs(self.net, cond, batch, g, z)
        weights = g.weights(n, z.device).to(z.dtype)
        cache = self.net.new_cache(batch * (2 if g.active else 1), compute_dtype(z), z.device)
        xs, logdet = [z[:, 0]], z.new_zeros(batch)
        for i in range(n - 1):
            token = xs[-1].unsqueeze(1)
            if g.active:
                token = torch.cat([token, token])
            a, b = split_params(self.net.step(token, cond, cache, i, q_scale), self.affine)
            if g.active:
                a, b = g.combine(a, b, weights[i + 1])
            xs.append(affine_generate(z[:, i + 1], a[:, 0], b[:, 0]))
            logdet = logdet + logdet_of(a, z.dtype)
        return torch.stack(xs, dim=1), logdet
