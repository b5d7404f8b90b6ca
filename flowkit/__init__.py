"""flowkit: exactly invertible normalizing flows in PyTorch, with the TarFlow preset.

Direction convention: ``forward`` normalizes (data to latent), ``inverse`` generates; every
log-determinant is summed over the event dimensions (shape ``(B,)``).
"""

from ._validation import set_validation, validating
from .bijectors import (ActNorm, Bijector, CausalAffine, Chain, ChannelCoupling, ContextSpec, Inverse, Patchify,
                        Permutation)
from .flows import EMADiagonalNormal, Flow, FlowDistribution, StandardNormal
from .presets import TarFlow, TarFlowConfig
from .sampling import Guidance, SamplingOptions, denoise
# General structures, element-wise maps and ready-made vector flows (the toolkit).
from .bijectors import (CausalTransformerFlow, Coupling, Elementwise, FeaturePermutation, MaskedAutoregressive,
                        TokenAutoregressive)
from .flows import MAF, NSF, RealNVP, SplineCoupling
from .maps import AffineMap, ElementwiseMap, RQSplineMap, ShiftMap
from . import metrics  # so that `flowkit.metrics.bits_per_dim` resolves after `import flowkit`

__version__ = "0.1.0"

__all__ = [
    "AffineMap",
    "CausalTransformerFlow",
    "Coupling",
    "Elementwise",
    "ElementwiseMap",
    "FeaturePermutation",
    "MAF",
    "MaskedAutoregressive",
    "NSF",
    "RQSplineMap",
    "TokenAutoregressive",
    "RealNVP",
    "ShiftMap",
    "SplineCoupling",
    "ActNorm",
    "Bijector",
    "CausalAffine",
    "Chain",
    "ChannelCoupling",
    "ContextSpec",
    "EMADiagonalNormal",
    "Flow",
    "FlowDistribution",
    "Guidance",
    "Inverse",
    "Patchify",
    "Permutation",
    "SamplingOptions",
    "StandardNormal",
    "TarFlow",
    "TarFlowConfig",
    "denoise",
    "set_validation",
    "validating",
]
