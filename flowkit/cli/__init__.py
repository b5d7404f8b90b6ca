"""The ``flowkit`` command line: ``train``, ``sample`` and ``eval``."""

from .main import main

__all__ = ["main"]
