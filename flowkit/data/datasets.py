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
"""

from __future__ import annotations

import gzip
import os
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from flowkit._validation import first_line
from flowkit.data.transforms import to_float

__all__ = ["ImageDataset", "load_dataset", "peek_image_shape", "read_idx", "DATA_SPECS"]

DATA_SPECS = "'digits', 'torchvision:NAME', 'mnist-idx:FOLDER', a .npy/.npz file or a folder of images"

# Pillow modes for the channel counts flowkit supports; every other count is refused up front.
_MODES = {1: "L", 3: "RGB"}
# Pillow modes that hold grayscale images; a folder made only of these loads with 1 channel.
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_RESAMPLE = Image.Resampling.BICUBIC


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


# --- sources ---------------------------------------------------------------------------------------

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


# What a source yields: uint8 images (N, C, H, W), integer labels (N,) or None, class names or None.
_Arrays = tuple[np.ndarray, "np.ndarray | None", "list[str] | None"]


def _load_digits() -> _Arrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # The digits hold integers 0..16; spread them over 8 bits first so that every source shares the
    # k / 127.5 - 1 mapping. 255 v / 16 is exact in float64 and only v = 8 hits a tie (127.5 -> 128).
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return images, bunch.target, [str(t) for t in bunch.target_names]


def _load_npy(path: Path) -> np.ndarray:
    arr = _np_load(path)
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{str(path)!r} is not a .npy array file; expected uint8 images")
    return _as_nchw(arr, path.name)


def _load_npz(path: Path) -> _Arrays:
    npz = _np_load(path)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{str(path)!r} is not a .npz archive; expected arrays saved with numpy.savez")
    with npz:
        keys = set(npz.files)
        image_keys = [k for k in ("x", "images") if k in keys]
        label_keys = [k for k in ("y", "labels") if k in keys]
        if len(image_keys) != 1 or len(label_keys) > 1:
            raise ValueError(
                f"{path.name} must hold images under exactly one of 'x'/'images' and labels under at most "
                f"one of 'y'/'labels', got keys {sorted(keys)}"
            )
        images = _as_nchw(npz[image_keys[0]], f"{path.name}[{image_keys[0]!r}]")
        labels = npz[label_keys[0]] if label_keys else None
        names = [str(s) for s in npz["class_names"]] if "class_names" in keys else None
    if labels is not None and (labels.shape != (len(images),) or labels.dtype.kind not in "iu"):
        raise ValueError(
            f"{path.name}[{label_keys[0]!r}] must be integer labels shaped ({len(images)},), "
            f"got {labels.dtype} {labels.shape}"
        )
    return images, labels, names


def _np_load(path: Path) -> Any:
    # allow_pickle=False: a data file must never be able to run code.
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read {str(path)!r} as a numpy file: {first_line(e)}") from None


def _load_torchvision(name: str, root: str | os.PathLike[str] | None) -> _Arrays:
    try:
        import torchvision.datasets as tvd
    except ImportError:
        raise ValueError(
            f"data 'torchvision:{name}' needs torchvision, which is not installed; "
            "install it or use 'digits', an image folder, MNIST's IDX files ('mnist-idx:FOLDER') or a .npz file"
        ) from None
    except Exception as e:  # noqa: BLE001 - e.g. a torchvision built for another torch: "operator torchvision::nms does not exist"
        raise ValueError(
            f"torchvision is installed but fails to import ({type(e).__name__}: {first_line(e)}); it does not "
            "match this torch. For MNIST use its IDX files ('mnist-idx:FOLDER'), or an image folder or .npz file"
        ) from None
    cls = getattr(tvd, name, None)
    if not isinstance(cls, type):
        raise ValueError(f"torchvision.datasets has no data set {name!r} (names are case-sensitive, e.g. 'MNIST')")
    if root is None:
        raise ValueError(f"data 'torchvision:{name}' needs a data root holding the downloaded files (data_root)")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"data root {str(root)!r} for 'torchvision:{name}' is not a folder")
    ds = None
    # Torchvision data sets name their training split either train=True or split="train".
    for split in ({"train": True}, {"split": "train"}):
        try:
            ds = cls(str(root), download=False, **split)
            break
        except TypeError:
            continue
        except RuntimeError as e:  # torchvision's "Dataset not found or corrupted."
            raise FileNotFoundError(
                f"torchvision {name} data not found under {str(root)!r} ({first_line(e)}); download it once "
                f"with torchvision.datasets.{name}({str(root)!r}, download=True)"
            ) from None
    if ds is None:
        raise ValueError(f"torchvision.datasets.{name} takes neither train=True nor split='train'")

    names = [str(c) for c in getattr(ds, "classes", [])] or None
    data = getattr(ds, "data", None)
    targets = getattr(ds, "targets", getattr(ds, "labels", None))
    if data is not None and targets is not None and np.asarray(data).dtype == np.uint8:
        return _as_nchw(np.asarray(data), f"torchvision {name}"), np.asarray(targets), names
    # Generic path: items are (PIL image, int label).
    pairs = [ds[i] for i in range(len(ds))]
    images = np.stack([_pil_to_chw(_conform_image(img, _native_mode(img), None)) for img, _ in pairs])
    return images, np.asarray([int(y) for _, y in pairs]), names


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


# --- helpers ----------------------------------------------------------------------------------------


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
