"""TarFlow: the Transformer AutoRegressive Flow of Zhai et al. (ICML 2025)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..bijectors import CausalAffine, Chain, ChannelCoupling, Patchify, Permutation
from ..bijectors.base import Bijector
from ..flows import EMADiagonalNormal, Flow, StandardNormal

if TYPE_CHECKING:
    from .ml_tarflow import Checkpoint

__all__ = ["TarFlow"]


class TarFlow(Flow):
    r"""TarFlow: patchify, then ``T`` transformer autoregressive affine blocks.

    An image :math:`(C, H, W)` in :math:`[-1, 1]` becomes :math:`N = HW/p^2` tokens of size
    :math:`D = Cp^2` (:class:`~flowkit.Patchify`). Block ``t`` runs a :class:`~flowkit.CausalAffine`
    in token order :math:`\pi_t` (identity for even ``t``, reversed for odd ``t``) and puts the tokens
    back in image order, so every block's output, and the latent, are in image order:

    .. math::
        x \xrightarrow{\text{patchify}} h_0, \qquad
        h_{t+1} = \pi_t^{-1}\,\mathrm{CausalAffine}_t(\pi_t\, h_t), \qquad z = h_T,

    .. math:: \log p(x) = \log \mathcal{N}(z; 0, \mathrm{diag}\,v) + \textstyle\sum_t \log|\det J_t|.

    The non-volume-preserving model (``nvp=True``) learns a scale and uses a standard normal prior
    (:math:`v = 1`); the volume-preserving one (``nvp=False``) learns only shifts and uses the
    EMA-variance prior :class:`~flowkit.flows.EMADiagonalNormal` (training calls
    ``model.base.update(z)``). ``coupling="channel"`` swaps each autoregressive block for a
    :class:`~flowkit.ChannelCoupling` on alternating halves (the paper's ablation).

    Args:
        in_channels: ``C``.
        img_size: ``H = W``.
        patch_size: ``p`` (divides ``img_size``).
        channels: transformer width.
        num_blocks: flow blocks ``T``.
        layers_per_block: transformer layers ``K`` per block.
        head_dim: attention head size.
        expansion: MLP expansion.
        nvp: learn scales (non-volume-preserving).
        num_classes: ``> 0`` for a class-conditional model.
        coupling: ``"autoregressive"`` (TarFlow) or ``"channel"``.

    Paper configurations (patch-channels-blocks-layers): ImageNet 64 ``2-768-8-8``, ImageNet 128
    ``4-1024-8-8``, AFHQ 256 ``8-768-8-8``.

    Examples:
        >>> import torch
        >>> model = TarFlow(in_channels=1, img_size=8, patch_size=2, channels=64, num_blocks=2,
        ...                 layers_per_block=1, num_classes=10)
        >>> x = model.sample(4, context=torch.arange(4), guidance=1.0)
        >>> tuple(x.shape), tuple(model.log_prob(x, context=torch.arange(4)).shape)
        ((4, 1, 8, 8), (4,))
    """

    def __init__(self, in_channels: int, img_size: int, patch_size: int, channels: int, num_blocks: int,
                 layers_per_block: int, head_dim: int = 64, expansion: int = 4, nvp: bool = True,
                 num_classes: int = 0, coupling: str = "autoregressive") -> None:
        for name, v in (("in_channels", in_channels), ("img_size", img_size), ("patch_size", patch_size),
                        ("channels", channels), ("num_blocks", num_blocks), ("layers_per_block", layers_per_block),
                        ("head_dim", head_dim), ("expansion", expansion)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TarFlow: {name} must be a positive int, got {v!r}")
        if img_size % patch_size:
            raise ValueError(f"TarFlow: patch_size ({patch_size}) must divide img_size ({img_size})")
        if channels % head_dim:
            raise ValueError(f"TarFlow: channels ({channels}) must be a multiple of head_dim ({head_dim})")
        if coupling not in ("autoregressive", "channel"):
            raise ValueError(f"TarFlow: coupling must be 'autoregressive' or 'channel', got {coupling!r}")
        n, d = (img_size // patch_size) ** 2, in_channels * patch_size**2
        common: dict[str, Any] = dict(head_dim=head_dim, expansion=expansion, num_classes=num_classes, affine=nvp)
        blocks: list[Bijector] = [Patchify(patch_size, img_size, in_channels)]
        for t in range(num_blocks):
            if coupling == "channel":
                blocks.append(ChannelCoupling(d, n, channels, layers_per_block, parity=t % 2, **common))
            elif t % 2 == 0:
                blocks.append(CausalAffine(d, n, channels, layers_per_block, **common))
            else:  # a reversal is its own inverse: reverse, transform, reverse back
                blocks.append(Chain([Permutation.reverse(n), CausalAffine(d, n, channels, layers_per_block, **common),
                                     Permutation.reverse(n)]))
        base = StandardNormal((n, d)) if nvp else EMADiagonalNormal((n, d))
        super().__init__(blocks, base=base, event_shape=(in_channels, img_size, img_size))
        self.config: dict[str, Any] = dict(
            in_channels=in_channels, img_size=img_size, patch_size=patch_size, channels=channels,
            num_blocks=num_blocks, layers_per_block=layers_per_block, head_dim=head_dim, expansion=expansion,
            nvp=nvp, num_classes=num_classes, coupling=coupling)
        self.num_classes = num_classes

    @classmethod
    def from_ml_tarflow(cls, checkpoint: Checkpoint, **config: Any) -> TarFlow:
        """Load a checkpoint of the public reference implementation (apple/ml-tarflow).

        ``checkpoint`` is a path, a state dict, or a ``{"state_dict", "config"}`` dict; ``config`` is
        the reference constructor's arguments. See :func:`flowkit.presets.ml_tarflow.load_ml_tarflow`.
        """
        from .ml_tarflow import load_ml_tarflow  # deferred: that module builds TarFlows

        return load_ml_tarflow(checkpoint, **config)

    @property
    def patchify(self) -> Patchify:
        """The first bijector."""
        return self.bijectors[0]  # type: ignore[return-value]

    @property
    def blocks(self) -> list[Bijector]:
        """The ``T`` flow blocks in data-to-latent order (each a ``CausalAffine``, a reversed one in a
        :class:`~flowkit.bijectors.Chain`, or a ``ChannelCoupling``)."""
        return list(self.bijectors[1:])  # type: ignore[arg-type]

    @property
    def transforms(self) -> list[CausalAffine | ChannelCoupling]:
        """The affine transforms of the blocks, in order (unwrapping the permutations)."""
        return [b.bijectors[1] if isinstance(b, Chain) else b for b in self.blocks]  # type: ignore[misc]
