"""CausalAffine: the TarFlow autoregressive affine block."""

from __future__ import annotations

import torch
from torch import Tensor

from .._args import boolean
from ..maps.affine import AffineMap, ShiftMap
from ._affine import split_params
from .token_autoregressive import CausalTransformerFlow

__all__ = ["CausalAffine"]


class CausalAffine(CausalTransformerFlow):
    r"""Autoregressive affine transform of a token sequence, parameterised by a causal transformer.

    For a sequence :math:`x \in \mathbb{R}^{N \times D}`, a causal transformer reads tokens
    :math:`x_{<i}` and predicts a log-scale :math:`a_i` and a shift :math:`b_i` for token
    :math:`i` (its output is shifted one token to the right, so token 0 gets ``a = b = 0``):

    .. math::
        \text{forward:}\; z_i = (x_i - b_i(x_{<i}))\, e^{-a_i(x_{<i})}, \qquad
        \text{inverse:}\; x_i = z_i\, e^{a_i(x_{<i})} + b_i(x_{<i}),

    .. math:: \log|\det \partial z / \partial x| = -\textstyle\sum_{i,d} a_{i,d}.

    The forward pass is one parallel transformer call. The inverse solves the triangular system
    above either token by token (``method="sequential"``, exact) or by parallel Jacobi-type
    fixed-point passes over many tokens (``"jacobi"``, ``"gs_jacobi"``, ``"sliding_jacobi"``, and
    the default ``"auto"``; see :mod:`flowkit.sampling.jacobi`), with a key/value cache that exists
    only inside the call.
    With ``affine=False`` (volume-preserving, "VP") only the shift is learned and the log-det is 0.

    It is the affine special case of :class:`~flowkit.bijectors.CausalTransformerFlow` (the map
    :class:`~flowkit.maps.AffineMap`, or :class:`~flowkit.maps.ShiftMap` with ``affine=False``),
    itself a :class:`~flowkit.bijectors.TokenAutoregressive` block: use those for other maps
    (e.g. splines) or your own causal conditioner.

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
        context_features: ``> 0`` makes the block conditional on float context vectors
            ``(B, context_features)`` instead (a linear projection where the class embedding goes).
        affine: learn a scale (NVP, default) or only a shift (VP).

    Shapes:
        ``x``, ``z``: ``(B, N, D)``; ``context``: ``(B,)`` integer labels (or ``(B, C)`` vectors);
        log-det ``(B,)``.

    Inverse options (see :class:`flowkit.sampling.Guidance` and :meth:`inverse`): ``guidance``,
    ``guide_what``, ``attn_temp``, ``annealed_guidance``, ``method`` with its options, and ``stats``.

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
        >>> bool(torch.allclose(x_back, x, atol=1e-5)), bool((logdet + logdet_inv).abs().max() < 1e-5)
        (True, True)
        >>> stats = {}
        >>> x_seq, _ = block.inverse(z, context=y, method="sequential")
        >>> x_jac, _ = block.inverse(z, context=y, method="jacobi", tol=1e-6, stats=stats)
        >>> bool(torch.allclose(x_jac, x_seq, atol=1e-5)), stats["blocks"][0]["passes"] <= 5
        (True, True)
    """

    def __init__(self, dim: int, seq_len: int, channels: int, num_layers: int, *, head_dim: int = 64,
                 expansion: int = 4, num_classes: int = 0, context_features: int = 0, affine: bool = True) -> None:
        boolean(affine, "affine", "CausalAffine")
        super().__init__(dim, seq_len, channels, num_layers, map=AffineMap() if affine else ShiftMap(),
                         head_dim=head_dim, expansion=expansion, num_classes=num_classes,
                         context_features=context_features)
        self.affine = affine

    def extra_repr(self) -> str:
        """Sizes, classes and the affine/shift choice, for ``repr``."""
        return f"dim={self.dim}, seq_len={self.seq_len}, num_classes={self.num_classes}, affine={self.affine}"

    def params(self, x: Tensor, cond: Tensor | None, q_scale: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Shifted parameters ``(a, b)`` of every token from the whole sequence ``x`` in one pass."""
        p = self.net(x, cond, causal=True, q_scale=q_scale)
        p = torch.cat([torch.zeros_like(p[:, :1]), p[:, :-1]], dim=1)
        return split_params(p, self.affine)
