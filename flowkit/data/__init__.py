"""Image data for flows: loading, splitting, dequantization noise and label dropping."""

from flowkit.data.datasets import DATA_SPECS, ImageDataset, load_dataset, peek_image_shape, read_idx
from flowkit.data.images import make_grid, save_grid
from flowkit.data.split import train_val_split
from flowkit.data.transforms import NOISE_KINDS, NoiseKind, dequantize, drop_labels, to_float, to_uint8

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
]
