"""MNIST-style IDX files read without torchvision, and the data's shape read before loading."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowkit.data import load_dataset, peek_image_shape, read_idx


def _write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """The IDX layout written independently of the reader: magic 0 0 type ndim, big-endian sizes, data."""
    payload = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.fixture
def mnist_like(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 6, 6), dtype=np.uint8)
    labels = np.arange(12, dtype=np.uint8) % 10
    raw = tmp_path / "MNIST" / "raw"  # torchvision's layout
    raw.mkdir(parents=True)
    _write_idx(raw / "train-images-idx3-ubyte.gz", images, compress=True)
    _write_idx(raw / "train-labels-idx1-ubyte", labels)
    return tmp_path, images, labels


def test_idx_folder_is_read_exactly(mnist_like: tuple[Path, np.ndarray, np.ndarray]) -> None:
    root, images, labels = mnist_like
    for spec in (f"mnist-idx:{root}", str(root), str(root / "MNIST" / "raw")):
        ds = load_dataset(spec)
        assert ds.image_shape == (1, 6, 6) and ds.num_classes == 10
        assert np.array_equal(ds.images[:, 0].numpy(), images) and ds.labels.tolist() == labels.tolist()
    assert peek_image_shape(f"mnist-idx:{root}") == (1, 6, 6)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x01\x02\x08\x03")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(bad)
    _write_idx(bad, np.zeros((2, 3, 3)))
    bad.write_bytes(bad.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"promises \(2, 3, 3\) values \(18 bytes\), file holds 17"):
        read_idx(bad)
    with pytest.raises(ValueError, match="promises"):  # the truncated file found through the folder
        load_dataset(f"mnist-idx:{tmp_path}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no train-images-idx3-ubyte"):
        load_dataset(f"mnist-idx:{tmp_path / 'empty'}")


def test_peek_reads_a_folder_without_converting(tmp_path: Path) -> None:
    for i in range(3):
        Image.new("RGB", (16, 16), (i, 2 * i, 3 * i)).save(tmp_path / f"{i}.png")
    assert peek_image_shape(tmp_path) == (3, 16, 16)
    Image.new("RGB", (12, 16)).save(tmp_path / "odd.png")
    assert peek_image_shape(tmp_path) is None  # sizes differ: load_dataset asks for img_size


def test_broken_torchvision_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A torchvision built for another torch fails at import with a RuntimeError, not an ImportError.
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ValueError) as info:
        load_dataset("torchvision:MNIST", root=tmp_path)
    message = str(info.value)
    assert "torchvision is installed but fails to import (RuntimeError: operator torchvision::nms does not exist)" \
        in message and "mnist-idx:FOLDER" in message and "\n" not in message
