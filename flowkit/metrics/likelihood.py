r"""Bits per dimension of 8-bit images under a continuous flow density.

An 8-bit image lives on the grid :math:`x = k/127.5 - 1`, :math:`k \in \{0, \dots, 255\}^D`. Split
:math:`[-1, 1)` into 256 bins of width :math:`\Delta = 2/256`; a continuous density :math:`p` on
:math:`[-1, 1]^D` then defines the discrete model :math:`P(k) = \int_{\mathrm{bin}(k)} p`. With
uniform dequantization :math:`\tilde x = -1 + (k + u)\Delta`, :math:`u \sim U[0, 1)^D`, Jensen's
inequality gives

.. math:: -\log_2 P(k) \le \mathbb E_u\!\left[-\log_2 p(\tilde x)\right] - D \log_2 \Delta,

and :math:`-\log_2 \Delta = \log_2 128`. Per dimension this is

.. math:: \mathrm{bpd} = \frac{-\log p(\tilde x)/D + \log 128}{\log 2},

an upper bound on the true code length of the 8-bit data (the number the papers report). A
density that is uniform on :math:`[-1, 1]^D` (:math:`\log p = -D \log 2`) scores exactly 8 bits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import torch
from torch import Tensor

from .._args import positive_int
from .._modes import eval_mode
from ..data.transforms import dequantize as _dequantize
from ._loader import batches, check_flow

if TYPE_CHECKING:
    from ..flows.flow import Flow

__all__ = ["Dequantize", "bits_per_dim", "evaluate_bpd"]

_LOG_128 = math.log(128.0)
_LOG_2 = math.log(2.0)
# Tolerance for "x lies on the 8-bit grid", in units of one level (loaders may round-trip float32).
_GRID_TOL = 1e-3

T = TypeVar("T", Tensor, float)
#: Dequantization for likelihood evaluation (Gaussian noise gives no bound on the code length).
Dequantize = Literal["uniform", "none"]


def bits_per_dim(log_prob: T, num_dims: int) -> T:
    r"""Bits per dimension of 8-bit data on :math:`[-1, 1]` from a continuous log-density.

    .. math:: \mathrm{bpd} = \frac{-\log p / D + \log 128}{\log 2}

    (256 bins of width :math:`2/256`; the derivation is on the Concepts page of the documentation).

    Args:
        log_prob: the continuous log-density in nats, summed over the ``D`` dimensions (a float
            or a tensor of any shape, e.g. ``(B,)`` from :meth:`~flowkit.Flow.log_prob`).
        num_dims: ``D``, e.g. ``C * H * W``.

    Returns:
        Bits per dimension, of the same type and shape as ``log_prob``.

    Examples:
        >>> bits_per_dim(-3072 * math.log(2), 3072)  # uniform on [-1, 1]^D: 8 bits
        8.0
        >>> bits_per_dim(torch.tensor([0.0, -784.0]), 784)
        tensor([7.0000, 8.4427])
    """
    positive_int(num_dims, "num_dims", "bits_per_dim")
    return (-log_prob / num_dims + _LOG_128) / _LOG_2


def _check_8bit(x: Tensor) -> None:
    lo, hi = x.min().item(), x.max().item()
    if lo < -1 - 1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"evaluate_bpd: uniform dequantization needs 8-bit images on [-1, 1], got values in "
                         f"[{lo:.4g}, {hi:.4g}]")
    k = (x + 1) * 127.5
    off = (k - k.round()).abs().max().item()
    if off > _GRID_TOL:
        raise ValueError("evaluate_bpd: uniform dequantization needs 8-bit images x = k/127.5 - 1 "
                         f"(k = 0..255), got values {off:.3g} levels off that grid; pass dequantize='none' "
                         "for data that is already continuous")


@torch.no_grad()
def evaluate_bpd(flow: Flow, loader: Iterable[Any], dequantize: Dequantize = "uniform",
                 generator: torch.Generator | None = None, progress: bool = False) -> float:
    r"""Average bits per dimension of a data set under a flow.

    Each image is dequantized (``"uniform"``: :math:`\tilde x = (k + u)/128 - 1`, see
    :func:`flowkit.data.dequantize`), scored with ``flow.log_prob`` (with its labels when the flow is
    conditional) and converted with :func:`bits_per_dim`; the result is the mean over all images.
    The flow runs in eval mode (its modes are restored afterwards).

    Args:
        flow: a :class:`~flowkit.Flow`.
        loader: an iterable (e.g. ``DataLoader``) of ``(x, y)`` pairs or of tensors ``x``, with
            ``x`` of shape ``(B, C, H, W)`` on the 8-bit grid of :math:`[-1, 1]` and ``y`` ``(B,)``.
        dequantize: ``"uniform"``, or ``"none"`` for data that is already continuous.
        generator: for reproducible dequantization noise (on the flow's device).
        progress: show a progress bar.

    Returns:
        The mean bits per dimension (a Python float).

    Raises:
        ValueError: an empty loader, an unknown ``dequantize``, or data off the 8-bit grid.

    Examples:
        >>> from flowkit import ActNorm, Flow
        >>> flow = Flow([ActNorm(4)], event_shape=(4,))
        >>> data = [(torch.full((8, 4), -1.0), torch.zeros(8, dtype=torch.long))]  # k = 0
        >>> # about (1/2 + log(2 pi)/2 + log 128) / log 2: a standard normal scored near x = -1
        >>> round(evaluate_bpd(flow, data, generator=torch.Generator().manual_seed(0)), 2)
        9.04
    """
    check_flow(flow, "evaluate_bpd")
    if dequantize not in ("uniform", "none"):
        raise ValueError(f"evaluate_bpd: dequantize must be 'uniform' or 'none', got {dequantize!r} "
                         "(Gaussian noise gives no bound on the 8-bit code length)")
    conditional = bool(getattr(flow, "conditional", False))
    total, count = 0.0, 0
    with eval_mode(flow):
        for x, y in batches(flow, loader, "evaluate_bpd", progress):
            if dequantize == "uniform":
                _check_8bit(x)
                x = _dequantize(x, "uniform", generator=generator)
            log_prob = flow.log_prob(x, y if conditional else None)
            total += bits_per_dim(log_prob.double(), x[0].numel()).sum().item()
            count += x.shape[0]
    if count == 0:
        raise ValueError("evaluate_bpd: the loader yielded no data")
    return total / count
