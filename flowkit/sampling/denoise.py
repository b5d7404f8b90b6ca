"""Score-based denoising of samples: one Tweedie step with the flow's exact density."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .._args import finite_float, positive_int
from .._modes import eval_mode
from .._validation import check_tensor

if TYPE_CHECKING:
    from ..flows.flow import Flow

__all__ = ["denoise"]


def denoise(flow: Flow, x: Tensor, sigma: float, context: Tensor | None = None, *,
            chunk_size: int | None = None) -> Tensor:
    r"""Remove Gaussian noise of standard deviation ``sigma`` with one Tweedie step.

    A flow trained on data corrupted as :math:`\tilde x = x + \sigma \epsilon` models the noisy
    density :math:`p_\sigma`; Tweedie's formula gives the posterior mean of the clean data,

    .. math:: \mathbb E[x \mid \tilde x] = \tilde x + \sigma^2\, \nabla_{\tilde x} \log p_\sigma(\tilde x),

    with the score taken from the flow's exact summed log-density (:meth:`~flowkit.Flow.log_prob`).
    TarFlow samples are cleaned this way with the training noise ``sigma``.

    The gradient is taken with respect to ``x`` only (``torch.autograd.grad``), so parameter
    ``.grad`` fields and ``requires_grad`` flags are untouched, and it works when called under
    ``torch.no_grad()`` or ``torch.inference_mode()``. The flow runs in eval mode (its modes are restored afterwards).

    Args:
        flow: a :class:`~flowkit.Flow` (or anything with ``log_prob(x, context)``).
        x: noisy samples ``(B, *event_shape)``.
        sigma: the noise level ``>= 0`` (``0`` returns a copy of ``x``).
        context: labels ``(B,)`` for a conditional flow.
        chunk_size: at most this many samples per forward/backward pass, to bound memory on large
            models; ``None`` runs the whole batch at once. The result does not depend on it.

    Returns:
        The denoised samples, shaped like ``x``, detached.

    Examples:
        >>> from flowkit import ActNorm, Flow
        >>> flow = Flow([ActNorm(2)], event_shape=(2,))  # the identity: a standard normal density
        >>> denoise(flow, torch.tensor([[1.0, -2.0]]), sigma=0.5)  # x (1 - sigma^2)
        tensor([[ 0.7500, -1.5000]])
    """
    if not callable(getattr(flow, "log_prob", None)):
        raise TypeError(f"denoise: flow must be a flowkit Flow (anything with log_prob(x, context)), "
                        f"got {type(flow).__name__}")
    check_tensor(x, "x", getattr(flow, "event_shape", None), owner="denoise")
    finite_float(sigma, "sigma", "denoise", low=0.0)
    if chunk_size is not None:
        positive_int(chunk_size, "chunk_size", "denoise")
    if context is not None and (not isinstance(context, Tensor) or context.shape[:1] != x.shape[:1]):
        shape = tuple(context.shape) if isinstance(context, Tensor) else type(context).__name__
        raise ValueError(f"denoise: context must be a tensor of {x.shape[0]} labels to match x, got {shape}")
    size = chunk_size or max(x.shape[0], 1)
    out = []
    # Callers usually sample under no_grad or inference_mode, and the score needs a graph; the
    # clone turns an inference-mode tensor into one autograd can track.
    with torch.inference_mode(False), torch.enable_grad(), eval_mode(flow):
        for start in range(0, x.shape[0], size):
            xc = x[start:start + size].detach().clone().requires_grad_(True)
            ctx = None if context is None else context[start:start + size]
            (score,) = torch.autograd.grad(flow.log_prob(xc, ctx).sum(), xc)
            out.append((xc + sigma**2 * score).detach())
    return torch.cat(out) if out else x.detach().clone()
