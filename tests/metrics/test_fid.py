"""Fréchet distance, KID and the cached feature classifier of flowkit.metrics.fid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from flowkit.metrics import distances, features, fid, inception
from flowkit.metrics.fid import (
    ClassifierConfig,
    FeatureExtractor,
    InceptionExtractor,
    frechet_distance,
    kid,
    sample_quality,
)

# Small enough to train in about a second: these tests check the plumbing, not the accuracy.
TINY = ClassifierConfig(width=8, features=16, steps=30, batch_size=32)


def _scipy_fd(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's general matrix square root (as pytorch-fid computes it)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(fid.CACHE_ENV, str(tmp_path))
    return tmp_path / "features"


def test_frechet_distance_matches_scipy_sqrtm() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    b = torch.randn(150, 6, generator=g, dtype=torch.float64) * 2 + 0.5
    assert frechet_distance(a, b) == pytest.approx(_scipy_fd(a.numpy(), b.numpy()), rel=1e-8, abs=1e-8)


def test_frechet_distance_of_a_set_with_itself_is_zero() -> None:
    a = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    assert abs(frechet_distance(a, a)) < 1e-6


def test_frechet_distance_grows_with_a_shift() -> None:
    a = torch.randn(400, 8, generator=torch.Generator().manual_seed(2))
    values = [frechet_distance(a, a + s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values)
    # Equal covariances: FD is exactly the squared length of the shift, 8 s^2.
    assert values[-1] == pytest.approx(8 * 2.0**2, rel=1e-6)


def test_frechet_distance_rejects_bad_features() -> None:
    with pytest.raises(ValueError, match=r"feature sizes differ: 3 and 4"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"features shaped \(N, F\), got shape \(5,\)"):
        frechet_distance(torch.zeros(5), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(torch.full((5, 2), float("nan")), torch.zeros(5, 2))


def test_kid_is_unbiased_for_one_distribution_and_positive_for_two() -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(1000, 8, generator=g), torch.randn(1000, 8, generator=g)
    mean, std = kid(a, b, subsets=50, subset_size=200, generator=g)
    # Unbiased: the mean is 0 up to the Monte-Carlo error of 50 subsets (std / sqrt(50) each).
    assert abs(mean) < 4 * std / 50**0.5
    shifted, _ = kid(a, b + 0.5, subsets=50, subset_size=200, generator=g)
    assert shifted > 10 * std / 50**0.5


def test_kid_matches_the_formula_on_one_subset() -> None:
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)

    def k(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # the textbook kernel, pair by pair
        return (x @ y / 3 + 1) ** 3

    m = 5
    xx = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a[i], b[j]) for i in range(m) for j in range(m)) / m**2
    mean, std = kid(a, b, subsets=1, subset_size=5)  # the whole set: the permutation does not matter
    assert mean == pytest.approx(float(xx + yy - 2 * xy), rel=1e-10)
    assert std == 0.0


def test_kid_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="subset_size must be an int >= 2"):
        kid(torch.zeros(5, 2), torch.zeros(5, 2), subset_size=1)
    with pytest.raises(ValueError, match="subsets must be a positive int"):
        kid(torch.zeros(5, 2), torch.zeros(5, 2), subsets=0)


def test_extractor_is_cached_on_disk_and_loaded_without_training(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = FeatureExtractor.for_dataset("digits", config=TINY)
    assert first.cache_path is not None and first.cache_path.parent == cache and first.cache_path.is_file()

    def no_training(*args: object, **kwargs: object) -> float:
        raise AssertionError("the second call must load the cached weights, not train")

    with monkeypatch.context() as m:
        m.setattr(FeatureExtractor, "_fit", no_training)
        second = FeatureExtractor.for_dataset("digits", config=TINY)
    assert second.cache_path == first.cache_path and second.accuracy == first.accuracy
    x = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.testing.assert_close(first(x), second(x), rtol=0, atol=0)
    # Any change to the hyperparameters or the image shape is a new cache entry.
    other = FeatureExtractor.for_dataset("digits", config=ClassifierConfig(**{**TINY.__dict__, "seed": 1}))
    assert other.cache_path != first.cache_path
    assert len(list(cache.glob("*.pt"))) == 2


def test_extractor_training_is_deterministic_and_leaves_the_global_rng_alone(cache: Path) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = FeatureExtractor.for_dataset("digits", config=TINY, cache=False)
    assert torch.equal(torch.get_rng_state(), state)
    b = FeatureExtractor.for_dataset("digits", config=TINY, cache=False)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert not cache.exists()  # cache=False neither reads nor writes


def test_sample_quality_ranks_degraded_digits_worse(cache: Path) -> None:
    from flowkit.data import load_dataset, to_float

    ex = FeatureExtractor.for_dataset("digits", config=ClassifierConfig(steps=150))
    images = to_float(load_dataset("digits").images)
    real, fake = images[:600], images[600:1200]
    g = torch.Generator().manual_seed(0)
    clean = sample_quality(real, fake, ex, kid_subsets=20, kid_subset_size=300, generator=g)
    noisy = sample_quality(real, fake + 0.5 * torch.randn(fake.shape, generator=g), ex, kid_subsets=20,
                           kid_subset_size=300, generator=g)
    assert set(clean) == {"fd", "kid", "kid_std"}
    assert noisy["fd"] > 2 * clean["fd"] and noisy["kid"] > clean["kid"]


def test_sample_quality_rejects_mismatched_shapes() -> None:
    ex = FeatureExtractor(in_channels=1, img_size=8, num_classes=10)
    with pytest.raises(ValueError, match=r"real images \(1, 8, 8\) and fake images \(1, 4, 4\) differ"):
        sample_quality(torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 4, 4), ex)
    with pytest.raises(ValueError, match=r"expected images \(B, 1, 8, 8\)"):
        ex(torch.zeros(2, 1, 4, 4))


def test_unlabelled_data_is_refused(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((10, 1, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="has no labels"):
        FeatureExtractor.for_dataset(str(path))


def test_inception_extractor_needs_torchvision_and_local_weights(tmp_path: Path) -> None:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs torchvision"):
            InceptionExtractor(tmp_path / "missing.pth")
        return
    with pytest.raises(FileNotFoundError, match="never downloads"):
        InceptionExtractor(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not an Inception-v3 state dict"):
        InceptionExtractor(bad)


def test_fid_module_re_exports_the_split_modules() -> None:
    # `flowkit.metrics.fid` was one module; old imports must get the very same objects, not copies.
    assert fid.frechet_distance is distances.frechet_distance and fid.kid is distances.kid
    assert fid.FeatureExtractor is features.FeatureExtractor and fid.cache_dir is features.cache_dir
    assert fid.InceptionExtractor is inception.InceptionExtractor
    assert fid.CACHE_ENV == "FLOWKIT_CACHE"


def test_a_failed_cache_write_leaves_no_file(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def torch_save_dies_midway(obj: object, f: object) -> None:
        Path(f).write_bytes(b"half a file")  # type: ignore[arg-type]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torch_save_dies_midway)
    with pytest.raises(OSError, match="disk full"):
        FeatureExtractor.for_dataset("digits", config=TINY)
    # Neither a truncated weights file (the next call would load it) nor a temporary file is left.
    assert list(cache.iterdir()) == []
