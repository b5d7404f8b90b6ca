"""In-memory image data sets for image flows, loaded from a short spec string.

A spec names where the images come from:

- ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes, no network).
- a folder of images: one subfolder per class (class index = position of the subfolder name in sorted
  order), or images directly in the folder for unlabelled data. Read with Pillow.
- a ``.npy`` file of uint8 images, unlabelled; or a ``.npz`` file with the images under ``x`` or
  ``images``, optional integer labels under ``y`` or ``labels`` and optional ``class_names``.
- MNIST-style IDX files (``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``, optionally
  ``.gz``): a folder holding them (or holding them under ``raw/`` or ``MNIST/raw/``, torchvision's
  layout) is read directly, without torchvision; ``"mnist-idx:FOLDER"`` says so explicitly.
- ``"torchvision:NAME"`` (e.g. ``"torchvision:MNIST"``): the training split of a torchvision data set
  already downloaded under ``root``; nothing is downloaded.

Images are kept as uint8 ``(N, C, H, W)`` and converted to float on :math:`[-1, 1]` per item.

This module holds the data set class, the dispatch on the spec and the image-folder reader; the other
sources are read by :mod:`flowkit.data.readers` (digits, ``.npy``/``.npz``, torchvision) and
:mod:`flowkit.data.idx` (MNIST IDX), with the Pillow conversions in :mod:`flowkit.data.pixels`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from flowkit.data.idx import _idx_files, _idx_header, _load_idx, _open_idx, read_idx
from flowkit.data.pixels import (
    _GRAY_MODES,
    _MODES,
    _chw_to_pil,
    _common,
    _conform_image,
    _pil_to_chw,
    _read_image,
)
from flowkit.data.readers import _load_digits, _load_npy, _load_npz, _load_torchvision
from flowkit.data.transforms import to_float

__all__ = ["ImageDataset", "load_dataset", "peek_image_shape", "read_idx", "DATA_SPECS"]

DATA_SPECS = "'digits', 'torchvision:NAME', 'mnist-idx:FOLDER', a .npy/.npz file or a folder of images"


class ImageDataset(Dataset[tuple[Tensor, Tensor]]):
    r"""A labelled image data set held in memory as 8-bit pixels.

    Items are ``(image, label)`` with ``image`` a float32 ``(C, H, W)`` tensor on :math:`[-1, 1]`
    (:math:`x = k / 127.5 - 1` for 8-bit value :math:`k`) and ``label`` an int64 scalar tensor.

    Args:
        images: uint8 tensor ``(N, C, H, W)``.
        labels: Integer tensor ``(N,)`` with values in ``[0, num_classes)``, or ``None`` for unlabelled
            data: every label is then ``0`` and ``num_classes`` is ``None`` (an unconditional model).
        num_classes: Number of classes; defaults to ``len(class_names)``, else ``labels.max() + 1``.
        class_names: One name per class; defaults to ``"0"``, ``"1"``, ...

    Attributes:
        images: uint8 ``(N, C, H, W)``.
        labels: int64 ``(N,)``.
        num_classes: ``int``, or ``None`` for unlabelled data.
        class_names: ``tuple[str, ...]``, empty for unlabelled data.

    Examples:
        >>> ds = ImageDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 1, 0]))
        >>> ds
        ImageDataset(4 images of shape (1, 2, 2), 2 classes)
        >>> x, y = ds[1]
        >>> x.shape, float(x.min()), int(y)
        (torch.Size([1, 2, 2]), -1.0, 1)
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 tensor shaped (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        n = images.shape[0]
        if labels is None:
            if num_classes is not None or class_names:
                raise ValueError("num_classes/class_names given for unlabelled images; pass labels too")
            labels = torch.zeros(n, dtype=torch.int64)
            names: tuple[str, ...] = ()
        else:
            if labels.shape != (n,) or labels.is_floating_point() or labels.dtype == torch.bool:
                raise ValueError(
                    f"labels must be integers shaped ({n},) to match the images, "
                    f"got {labels.dtype} {tuple(labels.shape)}"
                )
            labels = labels.to(torch.int64)
            if num_classes is None:
                num_classes = len(class_names) if class_names else int(labels.max()) + 1 if n else 0
            names = tuple(class_names) if class_names else tuple(str(i) for i in range(num_classes))
            if len(names) != num_classes:
                raise ValueError(f"expected {num_classes} class names, got {len(names)}")
            if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
                raise ValueError(
                    f"labels must lie in [0, {num_classes}), got values in "
                    f"[{int(labels.min())}, {int(labels.max())}]"
                )
        self.images = images
        self.labels = labels
        self.num_classes = num_classes
        self.class_names = names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The ``(C, H, W)`` shape of every image."""
        c, h, w = self.images.shape[1:]
        return (c, h, w)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return to_float(self.images[index]), self.labels[index]

    def __repr__(self) -> str:
        classes = "unlabelled" if self.num_classes is None else f"{self.num_classes} classes"
        return f"ImageDataset({len(self)} images of shape {self.image_shape}, {classes})"


def load_dataset(
    spec: str | os.PathLike[str] = "digits",
    img_size: int | None = None,
    channels: int | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
) -> ImageDataset:
    """Load a whole image data set into memory from a spec string (see the module docstring).

    Images are converted to ``channels`` (1: grayscale, 3: RGB) with Pillow when they differ, and
    resized so that the shorter side is ``img_size`` then center-cropped to ``img_size x img_size``
    (bicubic). ``None`` keeps the native channels / size. The built-in name ``"digits"`` wins over a
    folder of that name; write ``"./digits"`` for the folder.

    Args:
        spec: ``"digits"``, ``"torchvision:NAME"``, a ``.npy``/``.npz`` path or a folder path.
        img_size: Side of the square output images, or ``None``.
        channels: 1 or 3, or ``None``.
        root: Folder holding downloaded torchvision data (only for ``"torchvision:NAME"``).

    Returns:
        An :class:`ImageDataset`; ``num_classes`` is ``None`` for unlabelled sources.

    Raises:
        FileNotFoundError: A file, folder or torchvision download that does not exist.
        ValueError: Anything else that does not fit, with one line saying what was expected.

    Examples:
        >>> ds = load_dataset("digits")
        >>> ds
        ImageDataset(1797 images of shape (1, 8, 8), 10 classes)
        >>> load_dataset("digits", img_size=16).image_shape
        (1, 16, 16)
    """
    if img_size is not None and (isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1):
        raise ValueError(f"img_size must be a positive integer or None, got {img_size!r}")
    if channels is not None and channels not in _MODES:
        raise ValueError(f"channels must be 1 (grayscale), 3 (RGB) or None, got {channels!r}")

    spec = os.fspath(spec)
    if spec == "digits":
        return _conform_dataset(*_load_digits(), img_size, channels)
    if spec.startswith("torchvision:"):
        return _conform_dataset(*_load_torchvision(spec.removeprefix("torchvision:"), root), img_size, channels)
    idx = _idx_files(spec)
    if idx is not None:
        return _conform_dataset(*_load_idx(*idx), img_size, channels)
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data {spec!r} not found; expected {DATA_SPECS}")
    if path.is_dir():
        return _load_folder(path, img_size, channels)
    if path.suffix.lower() == ".npy":
        return _conform_dataset(_load_npy(path), None, None, img_size, channels)
    if path.suffix.lower() == ".npz":
        return _conform_dataset(*_load_npz(path), img_size, channels)
    raise ValueError(f"cannot load data from {str(path)!r}: expected {DATA_SPECS}")


def peek_image_shape(spec: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
                     ) -> tuple[int, int, int] | None:
    """The native ``(C, H, W)`` of a data set's images, read cheaply (headers only where possible).

    Used to take the model's ``in_channels`` / ``img_size`` from the data instead of converting it.

    Args:
        spec: As for :func:`load_dataset`.
        root: As for :func:`load_dataset`.

    Returns:
        ``(C, H, W)``; ``None`` for ``torchvision:`` specs and folders whose images differ in size.

    Raises:
        FileNotFoundError, ValueError: As :func:`load_dataset` would for the same spec.

    Examples:
        >>> peek_image_shape("digits")
        (1, 8, 8)
    """
    spec = os.fspath(spec)
    if spec == "digits":
        return (1, 8, 8)
    if spec.startswith("torchvision:"):
        return None
    idx = _idx_files(spec)
    if idx is not None:
        with _open_idx(idx[0]) as f:
            _, dims = _idx_header(f, idx[0])
        return (1, dims[1], dims[2]) if len(dims) == 3 else None
    path = Path(spec).expanduser()
    if path.is_dir():
        extensions = set(Image.registered_extensions())
        files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
        if not files:
            return None  # load_dataset says what is wrong
        headers = [_read_image(f, lazy=True) for f in files]
        sizes = {img.size for img in headers}
        if len(sizes) != 1:
            return None
        (w, h), = sizes
        return (1 if all(img.mode in _GRAY_MODES for img in headers) else 3, h, w)
    return load_dataset(spec).image_shape  # .npy / .npz: the arrays themselves


def _load_folder(path: Path, img_size: int | None, channels: int | None) -> ImageDataset:
    extensions = set(Image.registered_extensions())
    subdirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    top_files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in extensions)
    if subdirs and top_files:
        raise ValueError(
            f"folder {str(path)!r} mixes images ({top_files[0].name}) with class subfolders "
            f"({subdirs[0].name}); expected one or the other"
        )
    files: list[Path] = top_files
    labels: list[int] = []
    for label, d in enumerate(subdirs):
        found = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
        if not found:
            raise ValueError(f"class folder {str(d)!r} holds no images (looked for {', '.join(_common(extensions))})")
        files += found
        labels += [label] * len(found)
    if not files:
        raise ValueError(
            f"folder {str(path)!r} holds no images; expected image files in it or in one subfolder per class"
        )

    if channels is None:
        # Image.open only parses headers, so this pass is cheap; it also surfaces unreadable files early.
        channels = 1 if all(_read_image(f, lazy=True).mode in _GRAY_MODES for f in files) else 3
    mode = _MODES[channels]
    # Decode, convert and resize one file at a time so that full-size images never pile up in memory;
    # Pillow releases the GIL while decoding and resizing, so threads help.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(lambda f: _pil_to_chw(_conform_image(_read_image(f), mode, img_size)), files))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape
        odd = next(i for i, a in enumerate(arrays) if a.shape != first)
        raise ValueError(
            f"images in {str(path)!r} differ in size ({files[0].name}: {first[2]}x{first[1]}, "
            f"{files[odd].name}: {arrays[odd].shape[2]}x{arrays[odd].shape[1]}); pass img_size to resize them"
        )
    images = torch.from_numpy(np.stack(arrays))
    if subdirs:
        return ImageDataset(images, torch.tensor(labels), class_names=[d.name for d in subdirs])
    return ImageDataset(images)


def _conform_dataset(
    images: np.ndarray,
    labels: np.ndarray | None,
    names: list[str] | None,
    img_size: int | None,
    channels: int | None,
) -> ImageDataset:
    """Convert array images to the requested channels and size and wrap them."""
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels; expected one label per image")
    c, h, w = images.shape[1:]
    mode = _MODES[channels if channels is not None else c]
    if mode != _MODES[c] or (img_size is not None and (h, w) != (img_size, img_size)):
        images = np.stack([_pil_to_chw(_conform_image(_chw_to_pil(im), mode, img_size)) for im in images])
    return ImageDataset(
        torch.from_numpy(np.ascontiguousarray(images)),
        None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        class_names=names,
    )
