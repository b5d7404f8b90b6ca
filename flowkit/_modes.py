"""Temporarily switching a module's train/eval mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` (and every submodule) in eval mode, restoring each one's own mode on exit.

    Evaluation must not change a model: in training mode an uninitialised
    :class:`~flowkit.ActNorm` would initialise itself from the evaluation batch.

    Examples:
        >>> net = nn.Sequential(nn.Linear(1, 1), nn.Dropout())
        >>> net[1].eval()
        Dropout(p=0.5, inplace=False)
        >>> with eval_mode(net):
        ...     net.training
        False
        >>> net.training, net[1].training
        (True, False)
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training
