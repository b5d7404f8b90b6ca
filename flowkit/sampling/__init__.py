"""Sampling: guidance options and inverse methods."""

from .denoise import denoise
from .guidance import Guidance

__all__ = ["Guidance", "denoise"]
