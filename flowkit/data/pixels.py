"""Pixel arrays and Pillow images for the data readers: layouts, modes, reading, converting and resizing.

Imports Pillow, so only the data-loading modules (:mod:`flowkit.data.datasets`, :mod:`flowkit.data.readers`,
:mod:`flowkit.data.idx`) import it, on first use of a lazy name of :mod:`flowkit.data`; ``import flowkit`` does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from flowkit._validation import first_line

# Pillow modes for the channel counts flowkit supports; every other count is refused up front.
_MODES = {1: "L", 3: "RGB"}
# Pillow modes that hold grayscale images; a folder made only of these loads with 1 channel.
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_RESAMPLE = Image.Resampling.BICUBIC

# What a source yields: uint8 images (N, C, H, W), integer labels (N,) or None, class names or None.
_Arrays = tuple[np.ndarray, "np.ndarray | None", "list[str] | None"]


def _as_nchw(arr: np.ndarray, what: str) -> np.ndarray:
    """Bring uint8 images shaped (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3} to (N, C, H, W)."""
    expected = "uint8 images shaped (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3"
    if arr.dtype != np.uint8:
        raise ValueError(f"{what}: expected {expected}, got dtype {arr.dtype}")
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim != 4:
        raise ValueError(f"{what}: expected {expected}, got shape {arr.shape}")
    s = arr.shape
    # Layouts whose channel axis has a supported size; a tie (e.g. (N, 3, 3, 3)) is broken by which
    # layout leaves square images, since image flows work on square images.
    layouts = [lay for lay, c in (("NCHW", s[1]), ("NHWC", s[3])) if c in _MODES]
    if len(layouts) == 2:
        layouts = [lay for lay in layouts if (s[2] == s[3] if lay == "NCHW" else s[1] == s[2])]
    if len(layouts) != 1:
        raise ValueError(f"{what}: expected {expected}, got shape {s} (channel axis unclear)")
    return arr if layouts[0] == "NCHW" else arr.transpose(0, 3, 1, 2)


def _read_image(path: Path, lazy: bool = False) -> Image.Image:
    """Open an image file with Pillow; ``lazy`` reads only the header (mode and size)."""
    try:
        with Image.open(path) as img:
            if not lazy:
                img.load()
            return img
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {str(path)!r}: {first_line(e)}") from None


def _conform_image(img: Image.Image, mode: str, size: int | None) -> Image.Image:
    """Convert to ``mode``; resize the shorter side to ``size`` and center-crop a square."""
    if img.mode != mode:
        img = img.convert(mode)
    if size is not None and img.size != (size, size):
        img = ImageOps.fit(img, (size, size), method=_RESAMPLE)
    return img


def _native_mode(img: Image.Image) -> str:
    return "L" if img.mode in _GRAY_MODES else "RGB"


def _chw_to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))


def _pil_to_chw(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _common(extensions: set[str]) -> list[str]:
    return [e for e in (".png", ".jpg", ".jpeg", ".bmp", ".webp") if e in extensions] + ["..."]
