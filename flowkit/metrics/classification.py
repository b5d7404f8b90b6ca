r"""Classification with a class-conditional flow by Bayes' rule.

With a uniform class prior, :math:`p(y \mid x) \propto p(x \mid y)`, so the Bayes classifier of a
conditional flow is :math:`\hat y(x) = \arg\max_y \log p(x \mid y)`: one density evaluation per class.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .._args import positive_int
from .._modes import eval_mode
from .._validation import check_tensor
from ..data.transforms import dequantize as _dequantize
from ._loader import batches, check_flow
from .likelihood import Dequantize

if TYPE_CHECKING:
    from ..flows.flow import Flow

__all__ = ["bayes_accuracy", "class_log_probs"]


def _check_conditional(flow: Flow, num_classes: int, owner: str) -> None:
    check_flow(flow, owner)
    if not getattr(flow, "conditional", False):
        raise ValueError(f"{owner}: the flow is unconditional; Bayes classification needs a class-conditional flow")
    positive_int(num_classes, "num_classes", owner)
    own = getattr(flow, "num_classes", None)
    if isinstance(own, int) and own != num_classes:
        raise ValueError(f"{owner}: num_classes={num_classes} but the flow has {own} classes")


def _check_true_labels(y: Tensor, batch: int, num_classes: int) -> None:
    """Labels to score against: integers ``(B,)`` in ``[0, K)`` (a dropped label ``-1`` has no class)."""
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"bayes_accuracy: labels must be an integer tensor, got dtype {y.dtype}")
    if tuple(y.shape) != (batch,):
        raise ValueError(f"bayes_accuracy: labels must have shape ({batch},), got {tuple(y.shape)}")
    if y.numel() and not bool(((y >= 0) & (y < num_classes)).all()):
        raise ValueError(f"bayes_accuracy: labels must lie in [0, {num_classes}), "
                         f"got values in [{int(y.min())}, {int(y.max())}]")


def class_log_probs(flow: Flow, x: Tensor, num_classes: int) -> Tensor:
    r"""The log-density of every sample under every class, :math:`\log p(x_b \mid y = c)`.

    All classes run as one batch of ``B * num_classes`` samples (``x`` repeated per class), so
    choose ``B`` with that in mind on large models.

    Args:
        flow: a class-conditional :class:`~flowkit.Flow`.
        x: samples ``(B, *event_shape)``.
        num_classes: ``K``.

    Returns:
        ``(B, K)`` log-densities in nats.

    Examples:
        >>> from flowkit import TarFlow
        >>> model = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=1,
        ...                 layers_per_block=1, num_classes=3)
        >>> tuple(class_log_probs(model, torch.zeros(5, 1, 4, 4), 3).shape)
        (5, 3)
    """
    _check_conditional(flow, num_classes, "class_log_probs")
    check_tensor(x, "x", getattr(flow, "event_shape", None), owner="class_log_probs")
    b = x.shape[0]
    # Sample-major layout: row b*K + c is sample b under class c, so a (B, K) view lines up.
    xs = x.unsqueeze(1).expand(b, num_classes, *x.shape[1:]).reshape(b * num_classes, *x.shape[1:])
    ys = torch.arange(num_classes, device=x.device).repeat(b)
    return flow.log_prob(xs, ys).view(b, num_classes)


@torch.no_grad()
def bayes_accuracy(flow: Flow, loader: Iterable[Any], num_classes: int, *, dequantize: Dequantize = "none",
                   generator: torch.Generator | None = None, progress: bool = False) -> float:
    r"""Accuracy of the flow's Bayes classifier :math:`\arg\max_y \log p(x \mid y)` on labelled data.

    Args:
        flow: a class-conditional :class:`~flowkit.Flow`.
        loader: an iterable (e.g. ``DataLoader``) of ``(x, y)`` pairs, ``y`` integer labels ``(B,)``.
        num_classes: ``K``; every class is scored (see :func:`class_log_probs`).
        dequantize: ``"none"`` (score ``x`` itself) or ``"uniform"`` (score one dequantized copy of
            ``x``, the same for every class; see :func:`flowkit.data.dequantize`).
        generator: for reproducible dequantization noise.
        progress: show a progress bar.

    The flow runs in eval mode (its modes are restored afterwards).

    Returns:
        The fraction of samples whose label has the highest class log-density (ties go to the
        lowest class index).

    Examples:
        >>> from flowkit import TarFlow
        >>> model = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=1,
        ...                 layers_per_block=1, num_classes=3)
        >>> bayes_accuracy(model, [(torch.zeros(4, 1, 4, 4), torch.tensor([0, 0, 1, 2]))], 3)  # all tie: class 0
        0.5
    """
    _check_conditional(flow, num_classes, "bayes_accuracy")
    if dequantize not in ("uniform", "none"):
        raise ValueError(f"bayes_accuracy: dequantize must be 'none' or 'uniform', got {dequantize!r}")
    correct, count = 0, 0
    with eval_mode(flow):
        for x, y in batches(flow, loader, "bayes_accuracy", progress):
            if y is None:
                raise ValueError("bayes_accuracy: the loader must yield (x, y) pairs with labels")
            _check_true_labels(y, x.shape[0], num_classes)
            x = _dequantize(x, dequantize, generator=generator)
            correct += int((class_log_probs(flow, x, num_classes).argmax(1) == y).sum())
            count += x.shape[0]
    if count == 0:
        raise ValueError("bayes_accuracy: the loader yielded no data")
    return correct / count
