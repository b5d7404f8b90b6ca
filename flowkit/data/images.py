"""Image grids: save batches of samples as one PNG."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from .._args import nonnegative_int, positive_int
from .transforms import to_uint8

__all__ = ["make_grid", "save_grid"]


def _check_images(images: object, owner: str) -> None:
    if not isinstance(images, Tensor) or not images.is_floating_point():
        what = f"dtype {images.dtype}" if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(f"{owner}: images must be a float tensor (B, C, H, W) on [-1, 1] "
                        f"(convert uint8 with flowkit.data.to_float), got {what}")
    if images.dim() != 4:
        raise ValueError(f"{owner}: images must have shape (B, C, H, W), got {tuple(images.shape)}")


def make_grid(images: Tensor, nrow: int, padding: int = 1) -> Tensor:
    """Tile a batch of images ``(B, C, H, W)`` on ``[-1, 1]`` into one uint8 image ``(C, H', W')``.

    Images fill the grid row by row, ``nrow`` per row; gaps of ``padding`` pixels are black.

    Examples:
        >>> make_grid(torch.zeros(6, 1, 4, 4), nrow=3).shape
        torch.Size([1, 11, 16])
    """
    _check_images(images, "make_grid")
    positive_int(nrow, "nrow", "make_grid")
    nonnegative_int(padding, "padding", "make_grid")
    b, c, h, w = images.shape
    rows = -(-b // nrow)
    grid = torch.zeros(c, rows * (h + padding) + padding, nrow * (w + padding) + padding, dtype=torch.uint8)
    pixels = to_uint8(images.detach().cpu())
    for i in range(b):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = pixels[i]
    return grid


def save_grid(images: Tensor, path: str | os.PathLike[str], nrow: int, scale: int = 1) -> Path:
    """Save images as one PNG grid, upscaled with nearest-neighbour so that small images stay visible.

    Args:
        images: ``(B, C, H, W)`` on ``[-1, 1]``, ``C = 1`` or ``3``.
        path: the file to write (the suffix picks the format); missing folders are created.
        nrow: images per row of the grid.
        scale: integer upscaling factor.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from PIL import Image  # deferred: `import flowkit` must not load Pillow

    _check_images(images, "save_grid")
    positive_int(scale, "scale", "save_grid")
    grid = make_grid(images, nrow)
    array = grid.permute(1, 2, 0).numpy()
    img = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)  # uint8 (H, W) -> L, (H, W, 3) -> RGB
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
