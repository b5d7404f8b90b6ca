"""Flows: composed bijectors with a base distribution."""

from .base import EMADiagonalNormal, StandardNormal
from .distribution import FlowDistribution
from .flow import Flow

__all__ = ["EMADiagonalNormal", "Flow", "FlowDistribution", "StandardNormal"]
