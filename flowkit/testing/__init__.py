"""Test helpers for flowkit and for users' own bijectors."""

from .autoregressive import check_autoregressive
from .check import check_bijector, randomize_parameters

__all__ = ["check_autoregressive", "check_bijector", "randomize_parameters"]
