"""MNIST-style IDX files (``train-images-idx3-ubyte[.gz]``), read directly without torchvision."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

from flowkit._validation import first_line
from flowkit.data.pixels import _Arrays

__all__ = ["read_idx"]

_IDX_IMAGES, _IDX_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
_IDX_HOWTO = (f"put MNIST's {_IDX_IMAGES}.gz and {_IDX_LABELS}.gz there (from any MNIST mirror; "
              "docs/quickstart.md, 'MNIST')")
# IDX type codes (third byte of the magic number) and the numpy types they hold, big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_files(spec: str) -> tuple[Path, Path | None] | None:
    """The IDX image and label files a spec points at, or ``None`` when it is not IDX data."""
    explicit = spec.startswith("mnist-idx:")
    folder = Path(spec.removeprefix("mnist-idx:")).expanduser()
    if not folder.is_dir():
        if explicit:
            raise FileNotFoundError(f"data {spec!r}: {str(folder)!r} is not a folder; {_IDX_HOWTO}")
        return None
    for sub in (folder, folder / "raw", folder / "MNIST" / "raw"):
        for suffix in ("", ".gz"):
            images = sub / (_IDX_IMAGES + suffix)
            if images.is_file():
                labels = [sub / (_IDX_LABELS + s) for s in ("", ".gz") if (sub / (_IDX_LABELS + s)).is_file()]
                return images, (labels[0] if labels else None)
    if explicit:
        raise FileNotFoundError(f"data {spec!r}: no {_IDX_IMAGES}[.gz] in {str(folder)!r} (nor in raw/ or MNIST/raw/); "
                                f"{_IDX_HOWTO}")
    return None


def _open_idx(path: Path) -> Any:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _idx_header(f: Any, path: Path) -> tuple[np.dtype[Any], tuple[int, ...]]:
    """Read an IDX header: the element type and the sizes."""
    magic = f.read(4)
    if len(magic) != 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        raise ValueError(f"{path.name} is not an IDX file (magic bytes {magic.hex()})")
    raw = f.read(4 * magic[3])
    if len(raw) != 4 * magic[3]:
        raise ValueError(f"{path.name}: truncated IDX header")
    return np.dtype(_IDX_DTYPES[magic[2]]), tuple(int(d) for d in np.frombuffer(raw, dtype=">u4"))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a numpy array.

    The format: two zero bytes, a type code (``0x08`` = uint8, ...), the number of dimensions ``n``,
    then ``n`` big-endian uint32 sizes and the data in C order.

    Args:
        path: An IDX file, e.g. ``train-images-idx3-ubyte`` or ``train-labels-idx1-ubyte.gz``.

    Returns:
        An array of the stored type and shape (uint8 ``(N, 28, 28)`` for MNIST's images).

    Raises:
        ValueError: Not an IDX file, or fewer bytes than its header promises.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x-idx1-ubyte"
        >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
        >>> read_idx(p).tolist()
        [7, 8, 9]
    """
    path = Path(path)
    try:
        with _open_idx(path) as f:
            dtype, dims = _idx_header(f, path)
            data = f.read()
    except (OSError, EOFError) as e:  # a bad gzip stream
        raise ValueError(f"cannot read {str(path)!r} as an IDX file: {first_line(e)}") from None
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) < expected:
        raise ValueError(f"{path.name}: IDX header promises {dims} values ({expected} bytes), file holds {len(data)}")
    return np.frombuffer(data[:expected], dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _load_idx(images_path: Path, labels_path: Path | None) -> _Arrays:
    images = read_idx(images_path)
    what = images_path.name
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{what}: expected uint8 images shaped (N, H, W), got {images.dtype} {images.shape}")
    labels = read_idx(labels_path) if labels_path is not None else None
    if labels is not None and (labels.shape != (len(images),) or labels.dtype.kind not in "iu"):
        raise ValueError(f"{labels_path.name}: expected {len(images)} integer labels, "  # type: ignore[union-attr]
                         f"got {labels.dtype} {labels.shape}")
    return images[:, None], labels, None
