"""flowkit: exactly invertible normalizing flows in PyTorch, with the TarFlow preset.

Direction convention: ``forward`` normalizes (data to latent), ``inverse`` generates; every
log-determinant is summed over the event dimensions (shape ``(B,)``).
"""

# `metrics` is imported so that `flowkit.metrics.bits_per_dim` resolves after `import flowkit`.
from . import metrics as metrics
from ._validation import set_validation, validating
from .bijectors import (
    ActNorm,
    Bijector,
    CausalAffine,
    CausalTransformerFlow,
    Chain,
    ChannelCoupling,
    ContextSpec,
    Coupling,
    Elementwise,
    FeaturePermutation,
    Inverse,
    MaskedAutoregressive,
    Patchify,
    Permutation,
    TokenAutoregressive,
)
from .flows import MAF, NSF, EMADiagonalNormal, Flow, FlowDistribution, RealNVP, SplineCoupling, StandardNormal
from .maps import AffineMap, ElementwiseMap, RQSplineMap, ShiftMap
from .presets import TarFlow, TarFlowConfig
from .sampling import Guidance, SamplingOptions, denoise

__version__ = "0.3.0"

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
