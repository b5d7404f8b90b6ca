"""TokenAutoregressive: the autoregressive structure over token sequences, any map, any causal conditioner."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._args import positive_int
from .._validation import context_spec_for
from ..maps.affine import AffineMap
from ..maps.base import ElementwiseMap
from ..nets.conditioner import TransformerConditioner
from ..sampling.guidance import Guidance
from ..sampling.jacobi import METHODS, Update, resolve_method, solve_autoregressive
from ._affine import compute_dtype, logdet_of
from ._conditioned import check_conditioner_output, require_map
from .base import Bijector

__all__ = ["TokenAutoregressive", "CausalTransformerFlow", "TokenConditioner"]

SAMPLING_OPTIONS = frozenset(("guidance", "guide_what", "attn_temp", "annealed_guidance", "method", "stats",
                              "tol", "max_iter", "init", "segment_size", "window"))


def token_params(p: Tensor, dim: int, num_params: int) -> Tensor:
    """Parameters laid out *parameter-major* on the last axis, ``(..., P * D)``, as ``(..., D, P)``.

    Parameter-major means the first ``D`` outputs are parameter 0 of every feature, the next ``D``
    parameter 1, and so on; for the affine map that is TarFlow's ``(a, b) = p.chunk(2)`` layout,
    which keeps the reference checkpoints loadable.
    """
    return p.unflatten(-1, (num_params, dim)).transpose(-1, -2)


class TokenConditioner(nn.Module):
    r"""Give a plain causal token network the cached token protocol, by recomputing the prefix.

    The wrapped ``module(x, context) -> params`` maps tokens ``(B, T, D)`` and the context to
    ``(B, T, D, P)``, where row ``i`` depends only on tokens ``<= i`` (a causal network; the block
    shifts the rows by one token). Sampling feeds it the committed prefix again at every step,
    so a step costs a pass over the prefix (a :class:`~flowkit.nets.TransformerConditioner` keeps a
    key/value cache instead). Guidance is not available: it needs the transformer's unconditional
    branch.

    Args:
        module: the causal network.
        dim: token size ``D``.
        num_params: the map's ``P``.

    Examples:
        >>> class PerToken(torch.nn.Module):               # row i reads token i only: causal
        ...     def forward(self, x, context):
        ...         return torch.stack([x, 2 * x], dim=-1)     # (B, T, D, P) with P = 2
        >>> net = TokenConditioner(PerToken(), dim=2, num_params=2)
        >>> net(torch.ones(1, 1, 2), None).tolist()            # (B, T, P * D), parameter-major
        [[[1.0, 1.0, 2.0, 2.0]]]
    """

    def __init__(self, module: nn.Module, dim: int, num_params: int) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"TokenConditioner: module must be an nn.Module, got {type(module).__name__}")
        self.module, self.dim, self.num_params = module, dim, num_params

    def embed_context(self, context: Tensor | None, batch: int) -> Tensor | None:
        """The context, passed through to the module as it is."""
        return context

    def forward(self, x: Tensor, cond: Tensor | None, *, causal: bool = True, q_scale: Tensor | None = None,
                branches: Tensor | None = None) -> Tensor:
        """The module's parameters for every token, flattened parameter-major to ``(B, T, P * D)``."""
        params = check_conditioner_output(
            self.module(x, cond), (*x.shape[:-1], self.dim, self.num_params), "TokenConditioner", self.module,
            lambda: f"tokens' leading axes, D={self.dim} features, P={self.num_params} parameters")
        return params.transpose(-1, -2).flatten(-2)

    def branch_embeddings(self, cond: Tensor | None, guided: bool = False) -> Tensor | None:
        """No branches: guidance needs a :class:`~flowkit.nets.TransformerConditioner`."""
        if guided:
            raise ValueError("TokenAutoregressive.inverse: guidance needs a TransformerConditioner (its unconditional "
                             f"branch); this block's conditioner is {type(self.module).__name__}")
        return None

    def row_flops(self) -> int:
        """A rough cost of one token row: two FLOPs per weight."""
        return 2 * sum(p.numel() for p in self.module.parameters())

    def new_cache(self, batch: int, dtype: torch.dtype, device: torch.device) -> dict[str, Tensor]:
        """The committed prefix, empty at first."""
        return {"x": torch.zeros(batch, 0, self.dim, dtype=dtype, device=device)}

    def step(self, x: Tensor, cond: Tensor | None, cache: dict[str, Tensor], start: int,
             q_scale: Tensor | None = None, *, branches: Tensor | None = None) -> Tensor:
        """Parameters of tokens ``start..start+T-1``: the prefix before ``start`` comes from earlier calls."""
        cache["x"] = torch.cat([cache["x"][:, :start].to(x.dtype), x], dim=1)
        return self(cache["x"], cond)[:, start:]


class TokenAutoregressive(Bijector):
    r"""Autoregressive flow over a token sequence: any element-wise map, any causal conditioner.

    A causal conditioner reads tokens :math:`x_{<i}` (and the context :math:`c`) and predicts the
    parameters :math:`\theta_i` of an element-wise map :math:`\tau` of token :math:`i` (its output
    is shifted one token to the right, so token 0 gets :math:`\theta = 0`, the identity for
    flowkit's maps):

    .. math::
        \text{forward:}\; z_i = \tau\big(x_i;\ \theta_i(x_{<i}, c)\big), \qquad
        \text{inverse:}\; x_i = \tau^{-1}\big(z_i;\ \theta_i(x_{<i}, c)\big), \qquad
        \log|\det J| = \textstyle\sum_{i,d} \log|\partial \tau / \partial x_{i,d}| .

    With :class:`~flowkit.maps.AffineMap` this is TarFlow's block (:class:`~flowkit.CausalAffine`);
    with :class:`~flowkit.maps.RQSplineMap` an autoregressive *spline* transformer flow. The forward
    pass is one parallel conditioner call; the inverse solves the triangular system token by token
    (``method="sequential"``, exact) or by parallel Jacobi-type passes (:mod:`flowkit.sampling.jacobi`).

    **Conditioners** (the *token protocol*):

    - a :class:`~flowkit.nets.TransformerConditioner` with ``out_dim = map.num_params * D``, laid out
      parameter-major (parameter 0 of every feature first, then parameter 1, ...; for the affine map
      TarFlow's ``(a, b)`` halves): sampling uses its key/value cache, and guidance
      its unconditional branch; the context is its ``num_classes`` or ``context_features``;
    - any ``nn.Module`` with ``module(x, context) -> params`` ``(B, N, D, P)`` whose row ``i``
      depends only on tokens ``<= i`` (declare the context with ``num_classes`` or
      ``context_features``); it is wrapped in a :class:`TokenConditioner`. The block declares
      ``causal = True``, so :func:`flowkit.testing.check_bijector` catches a network that reads
      later tokens.

    **Guidance** (sampling option ``guidance=w``) extrapolates the *raw* parameters of the map
    from the unconditional branch, :math:`\theta \leftarrow \theta + w(\theta - \theta_u)`, for the
    entries the map's :meth:`~flowkit.maps.ElementwiseMap.guided_params` names for ``guide_what``:
    for the affine map ``a`` and/or ``b`` exactly as TarFlow does; for a spline all its
    unconstrained parameters (widths, heights, derivatives) before they are constrained.

    Args:
        dim: token size ``D``.
        seq_len: number of tokens ``N``.
        map: the element-wise map.
        conditioner: a causal network following the token protocol.
        num_classes, context_features: the context of a plain (non-transformer) conditioner.

    Shapes:
        ``x``, ``z``: ``(B, N, D)``; ``context``: labels ``(B,)`` or vectors ``(B, C)``; log-det ``(B,)``.

    Examples:
        >>> from flowkit.maps import RQSplineMap
        >>> from flowkit.testing import randomize_parameters
        >>> class Cumulative(torch.nn.Module):        # row i sees tokens <= i: a running mean
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.out = torch.nn.Linear(2, 2 * 11)
        ...     def forward(self, x, context):
        ...         mean = x.cumsum(1) / torch.arange(1, x.shape[1] + 1).view(1, -1, 1)
        ...         return self.out(mean).unflatten(-1, (2, 11))
        >>> block = randomize_parameters(TokenAutoregressive(2, 5, RQSplineMap(bins=4), Cumulative()))
        >>> x = torch.randn(3, 5, 2)
        >>> z, logdet = block(x)
        >>> x_back, logdet_inv = block.inverse(z)
        >>> bool(torch.allclose(x_back, x, atol=1e-4)), bool((logdet + logdet_inv).abs().max() < 1e-4)
        (True, True)
    """

    causal = True
    inverse_methods: tuple[str, ...] = METHODS
    sampling_options = SAMPLING_OPTIONS
    net: TransformerConditioner | TokenConditioner

    def __init__(self, dim: int, seq_len: int, map: ElementwiseMap, conditioner: nn.Module, *,
                 num_classes: int = 0, context_features: int = 0) -> None:
        super().__init__()
        owner = type(self).__name__
        positive_int(dim, "dim", owner)
        positive_int(seq_len, "seq_len", owner)
        spec = context_spec_for(num_classes, context_features, owner)
        require_map(map, owner)
        if isinstance(conditioner, TransformerConditioner):
            if num_classes or context_features:
                raise ValueError(f"{owner}: a TransformerConditioner declares its own context; leave num_classes "
                                 "and context_features at 0")
            if conditioner.out_dim != map.num_params * dim:
                raise ValueError(f"{owner}: the TransformerConditioner must predict map.num_params * dim = "
                                 f"{map.num_params} * {dim} = {map.num_params * dim} values per token, "
                                 f"got out_dim={conditioner.out_dim}")
            num_classes, context_features = conditioner.num_classes, conditioner.context_features
            spec = context_spec_for(num_classes, context_features, owner)
            net: TransformerConditioner | TokenConditioner = conditioner
        elif isinstance(conditioner, nn.Module):
            net = TokenConditioner(conditioner, dim, map.num_params)
        else:
            raise TypeError(f"{owner}: conditioner must be an nn.Module following the token protocol, "
                            f"got {type(conditioner).__name__}")
        self.net, self.map = net, map
        self.dim, self.seq_len = dim, seq_len
        self.num_classes, self.context_features = num_classes, context_features
        self.event_shape = (seq_len, dim)
        if spec is not None:
            self.context_spec = spec
        self.volume_preserving = map.volume_preserving

    def extra_repr(self) -> str:
        """Sizes and context, for ``repr``."""
        return (f"dim={self.dim}, seq_len={self.seq_len}, num_classes={self.num_classes}, "
                f"context_features={self.context_features}")

    def _token_params(self, p: Tensor) -> Tensor:
        return token_params(p, self.dim, self.map.num_params)

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Normalize: ``z_i = tau(x_i; theta_i(x_{<i}))`` for every token in one parallel pass."""
        cond = self.net.embed_context(context, x.shape[0])
        p = self._token_params(self.net(x, cond, causal=True))
        p = torch.cat([torch.zeros_like(p[:, :1]), p[:, :-1]], dim=1)  # token i's parameters from tokens < i
        z, ladj = self.map(x, p)
        return z, logdet_of(ladj, x.dtype)

    def inverse(self, z: Tensor, *, context: Tensor | None = None, guidance: float = 0.0, guide_what: str = "ab",
                attn_temp: float = 1.0, annealed_guidance: bool = False, method: str = "auto",
                stats: dict[str, Any] | None = None, **method_options: Any) -> tuple[Tensor, Tensor]:
        r"""Generate: solve ``x_i = tau^{-1}(z_i; theta_i(x_{<i}))`` with the inverse ``method``.

        Args:
            z: latents ``(B, N, D)``.
            context: labels ``(B,)`` or vectors ``(B, C)`` for a conditional block.
            guidance: guidance weight ``w >= 0`` (``0``: off), on the map's raw parameters (see the class
                docstring and :class:`~flowkit.sampling.Guidance`).
            guide_what: which parameters to guide, ``"a"``, ``"b"`` or ``"ab"`` (the map decides what
                they name: :meth:`~flowkit.maps.ElementwiseMap.guided_params`).
            attn_temp: attention temperature of the unconditional branch.
            annealed_guidance: grow the weight linearly with the token index.
            method: one of :attr:`inverse_methods` (see :mod:`flowkit.sampling.jacobi`; ``"auto"`` by
                default); ``"sequential"`` is the exact reference.
            stats: a dict; a record of this call (passes, token evaluations, convergence) is appended
                to ``stats["blocks"]``.
            **method_options: ``tol``, ``max_iter``, ``init``, ``segment_size``, ``window``, as the
                method takes them (:func:`~flowkit.sampling.jacobi.resolve_method`).

        Returns:
            ``x`` ``(B, N, D)`` and the log-det of the inverse map, ``(B,)``.
        """
        g = Guidance(guidance, guide_what, attn_temp, annealed_guidance)
        owner = f"{type(self).__name__}.inverse"
        spec = resolve_method(method, method_options, z.dtype, self.seq_len, rows=z.shape[0] * (2 if g.active else 1),
                              row_flops=self.net.row_flops(), device=z.device, owner=owner)
        cond = self.net.embed_context(context, z.shape[0])
        x, ladj = solve_autoregressive(z, self._update_fn(z, cond, g, spec.cached), spec, stats)
        return x, logdet_of(ladj, z.dtype)

    def _update_fn(self, z: Tensor, cond: Tensor | None, g: Guidance, cached: bool) -> Update:
        """The map ``F`` of the fixed-point system for :func:`~flowkit.sampling.jacobi.solve_autoregressive`.

        It takes input tokens at ``start..start+T-1`` to ``(x, log|dx/dz|)`` of tokens ``start+1..start+T``.

        Everything that does not depend on the tokens is prepared here, once per call: the context
        embeddings of both guidance branches (the branches share the input tokens, so the doubled
        batch is never built by concatenation), the query scales, the per-token guidance weights,
        the guided parameter entries and, when ``cached``, the preallocated KV cache. Without a
        cache the whole block is recomputed from position 0 by the parallel forward pass.
        """
        batch, dtype = z.shape[0], compute_dtype(z)
        branches = self.net.branch_embeddings(cond, guided=True) if g.active else None
        q_scale = g.q_scale(batch, dtype, z.device) if g.active else None
        weights = g.weights(self.seq_len, z.device).to(z.dtype).view(-1, 1, 1) if g.active else None
        guided = self.map.guided_params(g.guide_what)
        cache: Any = self.net.new_cache((2 if g.active else 1) * batch, dtype, z.device) if cached else None

        def update(inputs: Tensor, start: int) -> tuple[Tensor, Tensor]:
            targets = slice(start + 1, start + 1 + inputs.shape[1])
            if cache is None:
                p = self.net(inputs, cond, causal=True, q_scale=q_scale, branches=branches)  # start is 0 here
            else:
                p = self.net.step(inputs, cond, cache, start, q_scale, branches=branches)
            p = self._token_params(p)
            if weights is not None:
                p = g.combine_params(p, weights[targets], guided)
            return self.map.inverse(z[:, targets], p)

        return update


class CausalTransformerFlow(TokenAutoregressive):
    r"""A :class:`TokenAutoregressive` block whose conditioner is TarFlow's causal transformer.

    The transformer (:class:`~flowkit.nets.TransformerConditioner`): ``proj_in`` + learned
    positional embedding + context term (class embedding, or a projection of a context vector),
    ``num_layers`` pre-LayerNorm causal layers (head size ``head_dim``, GELU MLP of expansion
    ``expansion``), and a zero-initialised ``proj_out`` predicting ``map.num_params`` values per
    feature, so the block starts as the identity. With the default :class:`~flowkit.maps.AffineMap`
    it is :class:`~flowkit.CausalAffine`; with :class:`~flowkit.maps.RQSplineMap` the spline TarFlow
    block (``TarFlow(..., map="spline")``).

    Args:
        dim: token size ``D``.
        seq_len: number of tokens ``N``.
        channels: transformer width (a multiple of ``head_dim``).
        num_layers: transformer layers ``K``.
        map: the element-wise map (default :class:`~flowkit.maps.AffineMap`).
        head_dim: attention head size.
        expansion: MLP expansion factor.
        num_classes: ``> 0``: conditional on labels ``(B,)`` (``-1`` or ``None``: mean embedding).
        context_features: ``> 0``: conditional on float vectors ``(B, context_features)``.

    Examples:
        >>> from flowkit.maps import RQSplineMap
        >>> from flowkit.testing import randomize_parameters
        >>> block = randomize_parameters(CausalTransformerFlow(4, 6, 64, 1, map=RQSplineMap(bins=4),
        ...                                                    context_features=3), std=0.05)
        >>> x, c = torch.randn(2, 6, 4), torch.randn(2, 3)
        >>> z, logdet = block(x, context=c)
        >>> bool(torch.allclose(block.inverse(z, context=c, method="sequential")[0], x, atol=1e-4))
        True
    """

    def __init__(self, dim: int, seq_len: int, channels: int, num_layers: int, *, map: ElementwiseMap | None = None,
                 head_dim: int = 64, expansion: int = 4, num_classes: int = 0, context_features: int = 0) -> None:
        owner = type(self).__name__
        for name, v in (("dim", dim), ("seq_len", seq_len), ("channels", channels), ("num_layers", num_layers),
                        ("head_dim", head_dim), ("expansion", expansion)):
            positive_int(v, name, owner)
        context_spec_for(num_classes, context_features, owner)
        if channels % head_dim:
            raise ValueError(f"{owner}: channels ({channels}) must be a multiple of head_dim ({head_dim})")
        map = require_map(AffineMap() if map is None else map, owner)
        net = TransformerConditioner(dim, map.num_params * dim, seq_len, channels, num_layers, head_dim, expansion,
                                     num_classes, context_features)
        super().__init__(dim, seq_len, map, net)
