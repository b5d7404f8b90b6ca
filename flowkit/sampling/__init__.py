"""Sampling: guidance options and inverse methods."""

from .guidance import Guidance

__all__ = ["Guidance"]
