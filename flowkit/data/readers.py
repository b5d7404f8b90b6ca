"""Array sources of :func:`~flowkit.data.load_dataset`: the bundled digits, ``.npy``/``.npz`` files, torchvision.

Each returns arrays (``_Arrays`` of :mod:`flowkit.data.pixels`): uint8 images ``(N, C, H, W)``, integer labels or
``None``, class names or ``None``; :mod:`flowkit.data.datasets` converts and wraps them.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from flowkit._validation import first_line
from flowkit.data.pixels import _Arrays, _as_nchw, _conform_image, _native_mode, _pil_to_chw


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
