"""Classifier-free and attention-temperature guidance for autoregressive and coupling flow blocks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._args import boolean, finite_float

__all__ = ["Guidance"]


@dataclass(frozen=True)
class Guidance:
    r"""How a sampling call guides the affine parameters ``(a, b)`` of each token.

    Guidance runs a second, "unconditional" pass (mean class embedding, attention temperature
    ``attn_temp``) beside the conditional one and extrapolates away from it:

    .. math:: a \leftarrow a + w_i\,(a - a_u), \qquad b \leftarrow b + w_i\,(b - b_u)

    for the parts named in ``guide_what``. The weight is ``w_i = w`` or, annealed,
    ``w_i = i / (N - 1) \cdot w`` for the token at sequence index ``i`` (the token that the
    autoregressive step ``i - 1`` produces), so early tokens are guided less. For an
    unconditional model the attention temperature alone makes the second branch.

    Args:
        guidance: the weight ``w >= 0``; ``0`` turns guidance off.
        guide_what: ``"a"``, ``"b"`` or ``"ab"``.
        attn_temp: attention temperature of the unconditional branch (``> 0``).
        annealed_guidance: use the linearly increasing schedule.

    Examples:
        >>> g = Guidance(2.0, "b", annealed_guidance=True)
        >>> g.weights(5).tolist()
        [0.0, 0.5, 1.0, 1.5, 2.0]
        >>> Guidance(0.0).active
        False
    """

    guidance: float = 0.0
    guide_what: str = "ab"
    attn_temp: float = 1.0
    annealed_guidance: bool = False

    def __post_init__(self) -> None:
        finite_float(self.guidance, "guidance", low=0.0)
        if self.guide_what not in ("a", "b", "ab", "ba", ""):
            raise ValueError(f"guide_what must be 'a', 'b' or 'ab', got {self.guide_what!r}")
        finite_float(self.attn_temp, "attn_temp", low=0.0, low_inclusive=False)
        boolean(self.annealed_guidance, "annealed_guidance")

    @property
    def active(self) -> bool:
        """Whether a second pass is needed at all."""
        return self.guidance > 0 and bool(self.guide_what)

    def weights(self, seq_len: int, device: torch.device | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
        """The weight of each target token, shape ``(seq_len,)``.

        float64 by default, so that casting to the model's dtype rounds once: float32 weights would
        make a float64 model's annealed guidance off by ~1e-8 relative.
        """
        w = torch.full((seq_len,), float(self.guidance), device=device, dtype=dtype)
        if self.annealed_guidance:
            w = w * torch.arange(seq_len, device=device, dtype=dtype) / max(seq_len - 1, 1)
        return w

    def q_scale(self, batch: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """Per-sample query scale ``1/tau`` for the doubled batch: ``1`` then ``1/attn_temp``."""
        return torch.cat([torch.ones(batch, dtype=dtype, device=device),
                          torch.full((batch,), 1.0 / self.attn_temp, dtype=dtype, device=device)]).view(-1, 1, 1, 1)

    def combine(self, a: Tensor, b: Tensor, weight: Tensor | float) -> tuple[Tensor, Tensor]:
        """Guide ``(a, b)`` computed on the doubled batch (conditional first) into a batch of half size.

        ``weight`` broadcasts against ``a`` without its batch axis, e.g. a ``(T, 1)`` tensor for
        ``T`` tokens.
        """
        a_c, a_u = a.chunk(2)
        b_c, b_u = b.chunk(2)
        if "a" in self.guide_what:
            a_c = a_c + weight * (a_c - a_u)
        if "b" in self.guide_what:
            b_c = b_c + weight * (b_c - b_u)
        return a_c, b_c

    def combine_params(self, params: Tensor, weight: Tensor | float, guided: tuple[int, ...]) -> Tensor:
        r"""Guide the raw parameters of an element-wise map, computed on the doubled batch.

        ``params`` is ``(2B, ..., P)`` (conditional half first); the entries ``guided`` of its last
        axis become :math:`\theta + w(\theta - \theta_u)`, the others keep the conditional value.
        For :class:`~flowkit.maps.AffineMap` (``P = 2``, ``(a, b)``) this is exactly :meth:`combine`.
        ``weight`` broadcasts against ``params`` without its batch axis.

        Examples:
            >>> p = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])       # (2B, 1, P) with B = 1
            >>> Guidance(2.0, "b").combine_params(p, 2.0, (1,)).tolist()
            [[[1.0, 6.0]]]
        """
        p_c, p_u = params.chunk(2)
        if not guided:
            return p_c
        extrapolated = p_c + weight * (p_c - p_u)
        if len(guided) == params.shape[-1]:
            return extrapolated
        mask = torch.zeros(params.shape[-1], dtype=torch.bool, device=params.device)
        mask[list(guided)] = True
        return torch.where(mask, extrapolated, p_c)
