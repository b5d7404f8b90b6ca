"""Exactly invertible building blocks. Each returns ``(output, logdet)`` with a summed log-det."""

from .actnorm import ActNorm
from .base import Bijector, Chain, ContextSpec, Inverse, propagate_shapes
from .causal_affine import CausalAffine
from .channel_coupling import ChannelCoupling
from .patchify import Patchify
from .permutation import Permutation

__all__ = [
    "ActNorm",
    "Bijector",
    "CausalAffine",
    "Chain",
    "ContextSpec",
    "ChannelCoupling",
    "Inverse",
    "Patchify",
    "Permutation",
    "propagate_shapes",
]
