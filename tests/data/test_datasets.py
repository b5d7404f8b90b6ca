"""Loading image data sets: built-in digits, folders, numpy files, torchvision adapters, errors."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from flowkit.data import ImageDataset, load_dataset


def _save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


# --- digits ---------------------------------------------------------------------------------------


def test_digits_shape_range_and_labels() -> None:
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    assert len(ds) == 1797
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (1797, 1, 8, 8)
    assert ds.num_classes == 10 and ds.class_names == tuple(str(i) for i in range(10))
    assert ds.labels.dtype == torch.int64 and set(ds.labels.tolist()) == set(range(10))
    # 0..16 spread over 8 bits: round(v * 255 / 16).
    raw = load_digits().images
    expected = np.array([round(v * 255 / 16) for v in raw.ravel()]).reshape(raw.shape)
    assert np.array_equal(ds.images[:, 0].numpy(), expected)
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (1, 8, 8) and y.shape == ()
    assert torch.allclose(x, ds.images[0].float() / 127.5 - 1)
    everything = ds.images.float() / 127.5 - 1
    assert everything.min() == -1 and everything.max() == 1


def test_digits_resize_and_channels() -> None:
    ds = load_dataset("digits", img_size=16, channels=3)
    assert ds.image_shape == (3, 16, 16) and len(ds) == 1797
    assert torch.equal(ds.images[:, 0], ds.images[:, 1]) and torch.equal(ds.images[:, 0], ds.images[:, 2])


def test_dataloader_batches() -> None:
    ds = load_dataset("digits")
    x, y = next(iter(DataLoader(ds, batch_size=5)))
    assert x.shape == (5, 1, 8, 8) and y.shape == (5,) and y.dtype == torch.int64


# --- folders ----------------------------------------------------------------------------------------


@pytest.fixture
def two_class_folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    for i in range(3):
        _save_png(root / "dog" / f"{i}.png", _solid(6, 6, (0, 0, 255)))
    for i in range(2):
        _save_png(root / "cat" / f"{i}.png", _solid(6, 6, (255, 0, 0)))
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_folder_classes_sorted(two_class_folder: Path) -> None:
    ds = load_dataset(str(two_class_folder))
    assert ds.class_names == ("cat", "dog") and ds.num_classes == 2
    assert ds.labels.tolist() == [0, 0, 1, 1, 1]
    assert ds.image_shape == (3, 6, 6)
    x, y = ds[0]
    assert int(y) == 0
    assert torch.equal(x[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))  # red


def test_folder_resize_and_grayscale(two_class_folder: Path) -> None:
    ds = load_dataset(str(two_class_folder), img_size=4, channels=1)
    assert ds.image_shape == (1, 4, 4) and len(ds) == 5
    # A solid image stays solid through resizing.
    assert all(len(torch.unique(img)) == 1 for img in ds.images)


def test_folder_center_crop(tmp_path: Path) -> None:
    # 12 wide, 4 high: black | gray | white thirds; the center crop keeps the gray middle.
    image = np.zeros((4, 12), dtype=np.uint8)
    image[:, 4:8], image[:, 8:] = 128, 255
    _save_png(tmp_path / "a" / "wide.png", image)
    ds = load_dataset(str(tmp_path), img_size=4)
    assert ds.image_shape == (1, 4, 4)
    assert torch.all(ds.images == 128)


def test_folder_without_subfolders_is_unlabelled(tmp_path: Path) -> None:
    for i in range(2):
        _save_png(tmp_path / f"{i}.png", np.full((5, 5), 7, dtype=np.uint8))
    ds = load_dataset(str(tmp_path))
    assert ds.num_classes is None and ds.class_names == () and ds.labels.tolist() == [0, 0]
    assert ds.image_shape == (1, 5, 5)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no images"):
        load_dataset(str(tmp_path))
    (tmp_path / "empty_class").mkdir()
    _save_png(tmp_path / "full" / "a.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="class folder .*empty_class.* holds no images"):
        load_dataset(str(tmp_path))
    (tmp_path / "empty_class").rmdir()
    _save_png(tmp_path / "full" / "b.png", np.zeros((5, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="differ in size.*pass img_size"):
        load_dataset(str(tmp_path))
    assert load_dataset(str(tmp_path), img_size=4).image_shape == (1, 4, 4)
    (tmp_path / "full" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        load_dataset(str(tmp_path), img_size=4)
    _save_png(tmp_path / "stray.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="mixes images"):
        load_dataset(str(tmp_path), img_size=4)


# --- numpy files ------------------------------------------------------------------------------------


def test_npz_channels_last_with_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 4, 4, 3), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "d.npz", x=x, y=y, class_names=np.array(["a", "b", "c"]))
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.image_shape == (3, 4, 4) and ds.num_classes == 3 and ds.class_names == ("a", "b", "c")
    assert torch.equal(ds.images, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert ds.labels.tolist() == y.tolist()


def test_npz_channels_first_unlabelled_and_resized(tmp_path: Path) -> None:
    x = np.full((3, 1, 4, 4), 200, dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=x)
    ds = load_dataset(str(tmp_path / "d.npz"), img_size=8)
    assert ds.num_classes is None and ds.image_shape == (1, 8, 8) and torch.all(ds.images == 200)


def test_npy_unlabelled(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.zeros((4, 5, 5), dtype=np.uint8))
    ds = load_dataset(str(tmp_path / "d.npy"))
    assert len(ds) == 4 and ds.image_shape == (1, 5, 5) and ds.num_classes is None


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros((2, 4, 4), dtype=np.float32)}, "expected uint8 images.*got dtype float32"),
        ({"x": np.zeros((2, 4, 4, 5), dtype=np.uint8)}, "channel axis unclear"),
        ({"pixels": np.zeros((2, 4, 4), dtype=np.uint8)}, "exactly one of 'x'/'images'.*got keys \\['pixels'\\]"),
        (
            {"x": np.zeros((2, 4, 4), dtype=np.uint8), "y": np.zeros(3, dtype=np.int64)},
            "integer labels shaped \\(2,\\)",
        ),
        ({"x": np.zeros((2, 4, 4), dtype=np.uint8), "y": np.array([0, -1])}, "labels must lie in"),
    ],
)
def test_npz_errors(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_dataset(str(tmp_path / "d.npz"))
    assert "\n" not in str(info.value)


def test_unreadable_numpy_files(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot read .*d.npy' as a numpy file"):
        load_dataset(str(tmp_path / "d.npy"))  # object arrays would need pickle: refused
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 4, 4), dtype=np.uint8))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "d.npz").read_bytes()[:40])
    with pytest.raises(ValueError, match="cannot read .*cut.npz' as a numpy file"):
        load_dataset(str(tmp_path / "cut.npz"))
    np.save(tmp_path / "array.npy", np.zeros((2, 4, 4), dtype=np.uint8))
    (tmp_path / "array.npy").rename(tmp_path / "array.npz")
    with pytest.raises(ValueError, match="is not a .npz archive"):
        load_dataset(str(tmp_path / "array.npz"))


# --- specs and arguments ----------------------------------------------------------------------------


def test_bad_specs_and_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="'mnist' not found; expected 'digits', 'torchvision:NAME'"):
        load_dataset("mnist")
    (tmp_path / "d.csv").write_text("1,2")
    with pytest.raises(ValueError, match="cannot load data from .*d.csv"):
        load_dataset(str(tmp_path / "d.csv"))
    with pytest.raises(ValueError, match="channels must be 1 \\(grayscale\\), 3 \\(RGB\\) or None, got 2"):
        load_dataset("digits", channels=2)
    with pytest.raises(ValueError, match="img_size must be a positive integer"):
        load_dataset("digits", img_size=0)


def test_image_dataset_checks_labels() -> None:
    with pytest.raises(ValueError, match="labels must lie in \\[0, 2\\)"):
        ImageDataset(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 2]), num_classes=2)
    with pytest.raises(ValueError, match="uint8 tensor shaped \\(N, C, H, W\\)"):
        ImageDataset(torch.zeros(2, 2, 2))


# --- torchvision ------------------------------------------------------------------------------------


class _FakeMNIST:
    """Stands in for a torchvision data set class: data as uint8 (N, H, W), targets, classes."""

    def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
        if not (Path(root) / "FakeMNIST").is_dir():
            raise RuntimeError("Dataset not found. You can use download=True to download it")
        self.data = torch.arange(2 * 28 * 28, dtype=torch.int64).reshape(2, 28, 28).remainder(256).to(torch.uint8)
        self.targets = torch.tensor([3, 7])
        self.classes = [f"{i} - digit" for i in range(10)]


@pytest.fixture
def fake_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    package = types.ModuleType("torchvision")
    datasets = types.ModuleType("torchvision.datasets")
    datasets.FakeMNIST = _FakeMNIST  # type: ignore[attr-defined]
    package.datasets = datasets  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


@pytest.mark.usefixtures("fake_torchvision")
def test_torchvision_adapter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a data root"):
        load_dataset("torchvision:FakeMNIST")
    with pytest.raises(FileNotFoundError, match="FakeMNIST data not found under .*download=True"):
        load_dataset("torchvision:FakeMNIST", root=tmp_path)
    with pytest.raises(ValueError, match="has no data set 'Nope'"):
        load_dataset("torchvision:Nope", root=tmp_path)
    (tmp_path / "FakeMNIST").mkdir()
    ds = load_dataset("torchvision:FakeMNIST", root=tmp_path)
    assert ds.image_shape == (1, 28, 28) and ds.num_classes == 10 and ds.labels.tolist() == [3, 7]
    assert torch.equal(ds.images[:, 0], _FakeMNIST(str(tmp_path)).data)


def test_torchvision_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    with pytest.raises(ValueError, match="needs torchvision, which is not installed"):
        load_dataset("torchvision:MNIST", root=".")
