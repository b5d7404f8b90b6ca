"""What the metrics share: iteration over evaluation data and the checking of image tensors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_tensor
from ..data.transforms import to_float


def unpack(batch: Any, owner: str) -> tuple[Tensor, Tensor | None]:
    """``(x, y)`` from a batch that is ``(x, y)``, ``[x, y]``, ``(x,)`` or a bare tensor ``x``."""
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 2 and isinstance(batch[0], Tensor):
        y = batch[1] if len(batch) == 2 else None
        if y is not None and not isinstance(y, Tensor):
            raise TypeError(f"{owner}: labels must be a tensor, got {type(y).__name__}")
        return batch[0], y
    raise TypeError(f"{owner}: the loader must yield (x, y) pairs or tensors x, got {type(batch).__name__}")


def check_flow(flow: object, owner: str) -> None:
    """Raise ``TypeError`` unless ``flow`` is a module with ``log_prob`` (a :class:`~flowkit.Flow`)."""
    if not isinstance(flow, nn.Module) or not callable(getattr(flow, "log_prob", None)):
        raise TypeError(f"{owner}: flow must be a flowkit Flow (a module with log_prob(x, context)), "
                        f"got {type(flow).__name__}")


def batches(flow: nn.Module, loader: Iterable[Any], owner: str,
            progress: bool) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield ``(x, y)`` moved to the flow's device and floating dtype, with an optional progress bar."""
    check_flow(flow, owner)
    ref = next(iter(flow.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else None
    if progress:
        from tqdm.auto import tqdm  # only when asked: a bar is noise in logs and tests

        loader = tqdm(loader, desc=owner, leave=False)
    for batch in loader:
        x, y = unpack(batch, owner)
        check_tensor(x, "x", event_ndim=x.dim() - 1, owner=owner)
        yield x.to(device=device, dtype=dtype), None if y is None else y.to(device)


def as_images(images: Tensor, owner: str) -> Tensor:
    """Checked float images on ``[-1, 1]`` from float or uint8 images ``(B, C, H, W)``."""
    if not isinstance(images, Tensor):
        raise TypeError(f"{owner}: images must be a tensor (B, C, H, W), got {type(images).__name__}")
    if images.dtype == torch.uint8:
        images = to_float(images)
    check_tensor(images, "images", event_ndim=3, owner=owner)
    return images
