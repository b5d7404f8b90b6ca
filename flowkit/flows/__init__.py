"""Flows: composed bijectors with a base distribution."""

from .base import EMADiagonalNormal, StandardNormal
from .distribution import FlowDistribution
from .flow import Flow
from .vector import MAF, NSF, RealNVP, SplineCoupling

__all__ = ["EMADiagonalNormal", "Flow", "FlowDistribution", "MAF", "NSF", "RealNVP", "SplineCoupling",
           "StandardNormal"]
