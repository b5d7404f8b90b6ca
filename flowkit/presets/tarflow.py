"""TarFlow: the Transformer AutoRegressive Flow of Zhai et al. (ICML 2025)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .._args import boolean, choice, nonnegative_int, positive_int
from ..bijectors import CausalAffine, CausalTransformerFlow, Chain, ChannelCoupling, Patchify, Permutation
from ..bijectors.base import Bijector
from ..flows import EMADiagonalNormal, Flow, StandardNormal
from ..maps import RQSplineMap

if TYPE_CHECKING:
    from .ml_tarflow import Checkpoint

__all__ = ["TarFlow", "TarFlowConfig"]

Coupling = Literal["autoregressive", "channel"]
ElementMap = Literal["affine", "spline"]


@dataclass
class TarFlowConfig:
    """The hyperparameters of a :class:`TarFlow`, each written once (nanoGPT's ``GPTConfig`` pattern).

    ``TarFlow.from_config(cfg)`` builds the model, ``model.config`` is its config, checkpoints
    store ``dataclasses.asdict(model.config)``, and :class:`flowkit.training.TrainConfig` inherits
    these fields. The config also reads like a mapping (``cfg["channels"]``, ``dict(cfg)``,
    ``TarFlow(**cfg)``), as ``model.config`` did when it was a dict.

    Attributes:
        in_channels: Image channels ``C`` (1 grayscale, 3 RGB).
        img_size: Side ``H = W`` of the square images, in pixels.
        patch_size: Side ``p`` of the square patches, in pixels; divides ``img_size``; tokens have size ``C p^2``.
        channels: Transformer width (features of a token inside the transformer), a multiple of ``head_dim``.
        num_blocks: Number of flow blocks ``T``.
        layers_per_block: Transformer layers ``K`` per block.
        head_dim: Attention head size (64 in the paper).
        expansion: MLP hidden size as a multiple of ``channels`` (4 in the paper).
        nvp: Affine blocks that learn a scale (``True``) or volume-preserving, shift-only blocks (``False``).
        num_classes: Classes to condition on; ``0`` is an unconditional model.
        coupling: ``"autoregressive"`` (TarFlow blocks) or ``"channel"`` (the channel-coupling ablation).
        context_features: Condition on float context vectors ``(B, context_features)`` instead of
            labels (a linear projection where the class embedding goes); ``0``: none.
        map: The blocks' element-wise map: ``"affine"`` (TarFlow; shift-only with ``nvp=False``) or
            ``"spline"`` (a monotone rational-quadratic spline per feature, needs ``nvp=True``).
        spline_bins: Bins of the spline map (``map="spline"``).

    Examples:
        >>> cfg = TarFlowConfig(in_channels=1, img_size=8, patch_size=2, channels=64, num_blocks=2,
        ...                     layers_per_block=1, head_dim=32)
        >>> cfg.check().seq_len, cfg.token_dim, cfg["channels"]
        (16, 4, 64)
        >>> TarFlowConfig(nvp="no").check()
        Traceback (most recent call last):
        ...
        TypeError: TarFlow: nvp must be True or False, got str 'no'
    """

    in_channels: int = 3
    img_size: int = 32
    patch_size: int = 2
    channels: int = 256
    num_blocks: int = 4
    layers_per_block: int = 4
    head_dim: int = 64
    expansion: int = 4
    nvp: bool = True
    num_classes: int = 0
    coupling: Coupling = "autoregressive"
    context_features: int = 0
    map: ElementMap = "affine"
    spline_bins: int = 8

    @classmethod
    def model_fields(cls) -> tuple[str, ...]:
        """The names of the model hyperparameters (also in subclasses that add fields)."""
        return tuple(f.name for f in dataclasses.fields(TarFlowConfig))

    def check(self, owner: str = "TarFlow") -> TarFlowConfig:
        """Check every field (types, ranges, divisibility); returns ``self``.

        Raises:
            TypeError: a field of the wrong type (``bool`` is not an int, ``"no"`` is not a bool).
            ValueError: a value out of range, or sizes that do not fit together.
        """
        for name in ("in_channels", "img_size", "patch_size", "channels", "num_blocks", "layers_per_block",
                     "head_dim", "expansion"):
            positive_int(getattr(self, name), name, owner)
        boolean(self.nvp, "nvp", owner)
        nonnegative_int(self.num_classes, "num_classes", owner)
        choice(self.coupling, "coupling", ("autoregressive", "channel"), owner)
        nonnegative_int(self.context_features, "context_features", owner)
        choice(self.map, "map", ("affine", "spline"), owner)
        positive_int(self.spline_bins, "spline_bins", owner)
        if self.num_classes and self.context_features:
            raise ValueError(f"{owner}: condition on labels (num_classes={self.num_classes}) or on context vectors "
                             f"(context_features={self.context_features}), not both")
        if self.map == "spline" and not self.nvp:
            raise ValueError(f"{owner}: map='spline' is not volume-preserving; it needs nvp=True")
        if self.img_size % self.patch_size:
            raise ValueError(f"{owner}: patch_size ({self.patch_size}) must divide img_size ({self.img_size})")
        if self.channels % self.head_dim:
            raise ValueError(f"{owner}: channels ({self.channels}) must be a multiple of head_dim ({self.head_dim})")
        return self

    @property
    def seq_len(self) -> int:
        """Tokens per image, ``N = (img_size / patch_size)^2``."""
        return (self.img_size // self.patch_size) ** 2

    @property
    def token_dim(self) -> int:
        """Token size ``D = in_channels * patch_size^2``."""
        return self.in_channels * self.patch_size**2

    # Read-only mapping view of the model fields, so code written for the former dict keeps working.
    def keys(self) -> tuple[str, ...]:
        """The model field names (the mapping view's keys)."""
        return self.model_fields()

    def __getitem__(self, name: str) -> Any:
        if name not in self.model_fields():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.model_fields())

    def __len__(self) -> int:
        return len(self.model_fields())


def _spline(bins: int) -> RQSplineMap:
    """The spline TarFlow's map: unbounded bin-size logits as in 0.2.0, so its checkpoints keep their meaning."""
    return RQSplineMap(bins, logit_bound=None)


class TarFlow(Flow):
    r"""TarFlow: patchify, then ``T`` transformer autoregressive affine (or spline) blocks.

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

    ``map="spline"`` replaces each block's affine map by a monotone rational-quadratic spline with
    ``spline_bins`` bins on :math:`[-3, 3]` (identity tails) whose :math:`3K - 1` parameters per
    feature the transformer predicts (:class:`~flowkit.CausalTransformerFlow` with
    :class:`~flowkit.maps.RQSplineMap`): the spline TarFlow. ``context_features=C`` conditions on
    float vectors ``(B, C)`` (e.g. an embedding computed elsewhere) instead of labels.

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
        context_features: ``> 0`` for a model conditional on context vectors ``(B, context_features)``.
        map: ``"affine"`` (TarFlow) or ``"spline"``.
        spline_bins: bins of the spline map.

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
                 num_classes: int = 0, coupling: str = "autoregressive", context_features: int = 0,
                 map: str = "affine", spline_bins: int = 8) -> None:
        cfg = TarFlowConfig(in_channels, img_size, patch_size, channels, num_blocks, layers_per_block, head_dim,
                            expansion, nvp, num_classes, coupling, context_features, map,  # type: ignore[arg-type]
                            spline_bins).check()
        n, d = cfg.seq_len, cfg.token_dim
        common: dict[str, Any] = dict(head_dim=head_dim, expansion=expansion, num_classes=num_classes,
                                      context_features=context_features)

        def autoregressive() -> Bijector:
            if map == "spline":
                return CausalTransformerFlow(d, n, channels, layers_per_block, map=_spline(spline_bins), **common)
            return CausalAffine(d, n, channels, layers_per_block, affine=nvp, **common)

        blocks: list[Bijector] = [Patchify(patch_size, img_size, in_channels)]
        for t in range(num_blocks):
            if coupling == "channel":
                spline = _spline(spline_bins) if map == "spline" else None
                blocks.append(ChannelCoupling(d, n, channels, layers_per_block, parity=t % 2, affine=nvp, map=spline,
                                              **common))
            elif t % 2 == 0:
                blocks.append(autoregressive())
            else:  # a reversal is its own inverse: reverse, transform, reverse back
                blocks.append(Chain([Permutation.reverse(n), autoregressive(), Permutation.reverse(n)]))
        base = StandardNormal((n, d)) if nvp else EMADiagonalNormal((n, d))
        super().__init__(blocks, base=base, event_shape=(in_channels, img_size, img_size))
        self.config: TarFlowConfig = cfg
        self.num_classes = num_classes

    @classmethod
    def from_config(cls, config: TarFlowConfig) -> TarFlow:
        """Build the model a :class:`TarFlowConfig` (or a subclass, such as a training config) describes.

        Examples:
            >>> model = TarFlow.from_config(TarFlowConfig(in_channels=1, img_size=4, channels=64, num_blocks=1,
            ...                                           layers_per_block=1))
            >>> model.config.img_size, type(model.config).__name__
            (4, 'TarFlowConfig')
        """
        if not isinstance(config, TarFlowConfig):
            raise TypeError(f"TarFlow.from_config: config must be a TarFlowConfig, got {type(config).__name__}")
        return cls(**{name: getattr(config, name) for name in TarFlowConfig.model_fields()})

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
        """The ``T`` flow blocks in data-to-latent order.

        Each is a ``CausalAffine`` (for splines a ``CausalTransformerFlow``), a reversed one in a
        :class:`~flowkit.bijectors.Chain`, or a ``ChannelCoupling``.
        """
        return list(self.bijectors[1:])  # type: ignore[arg-type]

    @property
    def transforms(self) -> list[CausalTransformerFlow | ChannelCoupling]:
        """The transforms of the blocks, in order (unwrapping the permutations)."""
        return [b.bijectors[1] if isinstance(b, Chain) else b for b in self.blocks]  # type: ignore[misc]
