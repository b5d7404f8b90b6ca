"""Ready-made flows."""

from .tarflow import TarFlow, TarFlowConfig

__all__ = ["TarFlow", "TarFlowConfig"]
