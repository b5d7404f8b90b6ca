"""Test helpers for flowkit and for users' own bijectors."""

from .check import check_bijector, randomize_parameters

__all__ = ["check_bijector", "randomize_parameters"]
