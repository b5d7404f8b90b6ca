"""Temporarily switching a module's train/eval mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["active_dropout", "eval_mode"]


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


def active_dropout(module: nn.Module) -> list[str]:
    """Names of the submodules of ``module`` that drop units now: dropout with ``p > 0`` in training mode.

    They make every call random, so no forward/inverse pair can agree.

    Examples:
        >>> net = nn.Sequential(nn.Linear(1, 1), nn.Dropout(0.1))
        >>> active_dropout(net), active_dropout(net.eval())
        (['1'], [])
    """
    return [name for name, m in module.named_modules() if isinstance(m, nn.Dropout) and m.training and m.p > 0]
