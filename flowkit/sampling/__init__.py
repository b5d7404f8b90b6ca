"""Sampling: guidance options and inverse methods."""

from .denoise import denoise
from .guidance import Guidance
from .options import SamplingOptions

__all__ = ["Guidance", "SamplingOptions", "denoise"]
