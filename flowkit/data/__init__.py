"""Image data for flows: loading, splitting, dequantization noise and label dropping.

Loading reads image files with Pillow and the built-in digits with scikit-learn, so
:mod:`flowkit.data.datasets` is imported on first use of one of its names (PEP 562 module
``__getattr__``): ``import flowkit`` stays free of both.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowkit.data.images import make_grid, save_grid
from flowkit.data.split import train_val_split
from flowkit.data.toy2d import TOY_2D, toy_2d
from flowkit.data.transforms import NOISE_KINDS, NoiseKind, dequantize, drop_labels, to_float, to_uint8

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from flowkit.data.datasets import DATA_SPECS, ImageDataset, load_dataset, peek_image_shape, read_idx

__all__ = [
    "DATA_SPECS",
    "ImageDataset",
    "load_dataset",
    "peek_image_shape",
    "read_idx",
    "make_grid",
    "save_grid",
    "train_val_split",
    "NOISE_KINDS",
    "NoiseKind",
    "dequantize",
    "drop_labels",
    "to_float",
    "to_uint8",
    "TOY_2D",
    "toy_2d",
]

# Name -> submodule that defines it, for the names imported on first use.
_LAZY = {name: "datasets" for name in ("DATA_SPECS", "ImageDataset", "load_dataset", "peek_image_shape", "read_idx")}


def __getattr__(name: str) -> Any:
    """Import a lazy name's submodule on first access and cache the name in this module."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value  # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
