"""CausalAffine: the TarFlow autoregressive affine block."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._validation import ContextSpec, boolean, nonnegative_int, positive_int
from ..nets.conditioner import TransformerConditioner
from ..sampling.guidance import Guidance
from ..sampling.jacobi import METHODS, Update, resolve_method, solve_autoregressive
from ._affine import affine_generate, affine_normalize, compute_dtype, logdet_of, split_params
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

    The forward pass is one parallel transformer call. The inverse solves the triangular system
    above either token by token (``method="sequential"``, exact) or by parallel Jacobi-type
    fixed-point passes over many tokens (``"jacobi"``, ``"gs_jacobi"``, ``"sliding_jacobi"``, and
    the default ``"auto"``; see :mod:`flowkit.sampling.jacobi`), with a key/value cache that exists
    only inside the call.
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
        >>> bool(torch.allclose(x_back, x, atol=1e-5)), bool(torch.allclose(logdet + logdet_inv, torch.zeros(2), atol=1e-5))
        (True, True)
        >>> stats = {}
        >>> x_seq, _ = block.inverse(z, context=y, method="sequential")
        >>> x_jac, _ = block.inverse(z, context=y, method="jacobi", tol=1e-6, stats=stats)
        >>> bool(torch.allclose(x_jac, x_seq, atol=1e-5)), stats["blocks"][0]["passes"] <= 5
        (True, True)
    """

    causal = True
    inverse_methods: tuple[str, ...] = METHODS
    sampling_options = frozenset(("guidance", "guide_what", "attn_temp", "annealed_guidance", "method", "stats",
                                  "tol", "max_iter", "init", "segment_size", "window"))

    def __init__(self, dim: int, seq_len: int, channels: int, num_layers: int, *, head_dim: int = 64,
                 expansion: int = 4, num_classes: int = 0, affine: bool = True) -> None:
        super().__init__()
        for name, v in (("dim", dim), ("seq_len", seq_len), ("channels", channels), ("num_layers", num_layers),
                        ("head_dim", head_dim), ("expansion", expansion)):
            positive_int(v, name, "CausalAffine")
        nonnegative_int(num_classes, "num_classes", "CausalAffine")
        boolean(affine, "affine", "CausalAffine")
        if channels % head_dim:
            raise ValueError(f"CausalAffine: channels ({channels}) must be a multiple of head_dim ({head_dim})")
        self.net = TransformerConditioner(dim, 2 * dim if affine else dim, seq_len, channels, num_layers,
                                          head_dim, expansion, num_classes)
        self.dim, self.seq_len, self.affine, self.num_classes = dim, seq_len, affine, num_classes
        self.event_shape = (seq_len, dim)
        self.context_spec = ContextSpec.labels(num_classes) if num_classes else None
        self.volume_preserving = not affine

    def extra_repr(self) -> str:
        return f"dim={self.dim}, seq_len={self.seq_len}, num_classes={self.num_classes}, affine={self.affine}"

    def params(self, x: Tensor, cond: Tensor | None, q_scale: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Shifted parameters ``(a, b)`` of every token from the whole sequence ``x`` in one pass."""
        p = self.net(x, cond, causal=True, q_scale=q_scale)
        p = torch.cat([torch.zeros_like(p[:, :1]), p[:, :-1]], dim=1)
        return split_params(p, self.affine)

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        cond = self.net.embed_context(context, x.shape[0])
        a, b = self.params(x, cond)
        return affine_normalize(x, a, b)

    def inverse(self, z: Tensor, *, context: Tensor | None = None, guidance: float = 0.0, guide_what: str = "ab",
                attn_temp: float = 1.0, annealed_guidance: bool = False, method: str = "auto",
                stats: dict[str, Any] | None = None, **method_options: Any) -> tuple[Tensor, Tensor]:
        """Generate: solve ``x_i = z_i exp(a_i(x_{<i})) + b_i(x_{<i})`` with the inverse ``method``.

        Args:
            z: latents ``(B, N, D)``.
            context: labels ``(B,)`` for a conditional block.
            guidance, guide_what, attn_temp, annealed_guidance: see :class:`~flowkit.sampling.Guidance`.
            method: one of :attr:`inverse_methods` (see :mod:`flowkit.sampling.jacobi`; ``"auto"`` by
                default); ``"sequential"`` is the exact reference.
            stats: a dict; a record of this call (passes, token evaluations, convergence) is appended
                to ``stats["blocks"]``.
            **method_options: ``tol``, ``max_iter``, ``init``, ``segment_size``, ``window``, as the
                method takes them (:func:`~flowkit.sampling.jacobi.resolve_method`).

        Returns:
            ``x`` ``(B, N, D)`` and the log-det of the inverse map ``sum(a)``, ``(B,)``.
        """
        g = Guidance(guidance, guide_what, attn_temp, annealed_guidance)
        spec = resolve_method(method, method_options, z.dtype, self.seq_len, rows=z.shape[0] * (2 if g.active else 1),
                              row_flops=self.net.row_flops(), device=z.device, owner="CausalAffine.inverse")
        cond = self.net.embed_context(context, z.shape[0])
        x, a = solve_autoregressive(z, self._update_fn(z, cond, g, spec.cached), spec, stats)
        return x, logdet_of(a, z.dtype)

    def _update_fn(self, z: Tensor, cond: Tensor | None, g: Guidance, cached: bool) -> Update:
        """The map ``F`` of the fixed-point system for :func:`~flowkit.sampling.jacobi.solve_autoregressive`:
        input tokens at ``start..start+T-1`` to ``(x, a)`` of tokens ``start+1..start+T``.

        Everything that does not depend on the tokens is prepared here, once per call: the class
        embeddings of both guidance branches (the branches share the input tokens, so the doubled
        batch is never built by concatenation), the query scales, the per-token guidance weights
        and, when ``cached``, the preallocated KV cache. Without a cache the whole block is
        recomputed from position 0 by the parallel forward pass (the pass of :meth:`params`).
        """
        batch, dtype = z.shape[0], compute_dtype(z)
        branches = self.net.branch_embeddings(cond, guided=True) if g.active else None
        q_scale = g.q_scale(batch, dtype, z.device) if g.active else None
        weights = g.weights(self.seq_len, z.device).to(z.dtype).unsqueeze(1) if g.active else None
        cache = self.net.new_cache((2 if g.active else 1) * batch, dtype, z.device) if cached else None

        def update(inputs: Tensor, start: int) -> tuple[Tensor, Tensor]:
            targets = slice(start + 1, start + 1 + inputs.shape[1])
            if cache is None:
                p = self.net(inputs, cond, causal=True, q_scale=q_scale, branches=branches)  # start is 0 here
            else:
                p = self.net.step(inputs, cond, cache, start, q_scale, branches=branches)
            a, b = split_params(p, self.affine)
            if weights is not None:
                a, b = g.combine(a, b, weights[targets])
            return affine_generate(z[:, targets], a, b), a

        return update
