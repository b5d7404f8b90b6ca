"""Ready-made flows."""

from .tarflow import TarFlow

__all__ = ["TarFlow"]
