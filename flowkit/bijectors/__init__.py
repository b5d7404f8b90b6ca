"""Exactly invertible building blocks. Each returns ``(output, logdet)`` with a summed log-det."""

from .actnorm import ActNorm
from .autoregressive import MaskedAutoregressive
from .base import Bijector, Chain, ContextSpec, Inverse, propagate_shapes
from .causal_affine import CausalAffine
from .channel_coupling import ChannelCoupling
from .coupling import Coupling
from .elementwise import Elementwise
from .feature_permutation import FeaturePermutation
from .patchify import Patchify
from .permutation import Permutation
from .token_autoregressive import CausalTransformerFlow, TokenAutoregressive, TokenConditioner

__all__ = [
    "ActNorm",
    "Bijector",
    "CausalAffine",
    "CausalTransformerFlow",
    "Chain",
    "ContextSpec",
    "ChannelCoupling",
    "Coupling",
    "Elementwise",
    "FeaturePermutation",
    "Inverse",
    "MaskedAutoregressive",
    "Patchify",
    "Permutation",
    "TokenAutoregressive",
    "TokenConditioner",
    "propagate_shapes",
]
