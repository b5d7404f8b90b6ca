"""The short user examples in examples/ run in their --quick mode."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch

from flowkit import TarFlow
from flowkit.metrics import fid

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Where tests/presets/test_ml_tarflow.py finds them: $FLOWKIT_FIXTURES, else ../shared next to the repository.
_BASE = Path(os.environ.get("FLOWKIT_FIXTURES") or Path(__file__).resolve().parents[3] / "shared" / "fixtures")
FIXTURES = _BASE / "ml_tarflow" if (_BASE / "ml_tarflow").is_dir() else _BASE

pytestmark = pytest.mark.slow


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_custom_flow_2d(tmp_path: Path) -> None:
    result = _load("custom_flow_2d").main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "density.png").is_file()
    assert all(map(torch.isfinite, map(torch.tensor, result.values())))


def test_custom_flow_2d_learns_the_moons() -> None:
    """A short fit already beats the best Gaussian (-2.84 nats) on held-out points."""
    example = _load("custom_flow_2d")
    torch.manual_seed(0)
    flow = example.build_flow(num_blocks=4)
    example.fit(flow, example.two_moons(2000), steps=150)
    with torch.no_grad():
        assert flow.eval().log_prob(example.two_moons(500, seed=1)).mean() > -2.6


def test_conditional_sampling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reported agreement of each guidance weight is the digits classifier's agreement with the
    labels of the rows (row c is class c) on exactly the samples the script saved."""
    monkeypatch.setenv(fid.CACHE_ENV, str(tmp_path / "cache"))
    example = _load("conditional_sampling")
    saved: dict[str, torch.Tensor] = {}

    def save_grid(x: torch.Tensor, path: Path, **kwargs: object) -> Path:
        saved[Path(path).name] = x.clone()
        return example_save_grid(x, path, **kwargs)

    example_save_grid = example.save_grid
    monkeypatch.setattr(example, "save_grid", save_grid)
    agreement = example.main(["--quick", "--out", str(tmp_path), "--guidance", "0", "2", "--per-class", "2"])
    assert set(agreement) == {0.0, 2.0} and set(saved) == {"samples_w0.png", "samples_w2.png"}
    assert (tmp_path / "samples_w0.png").is_file() and (tmp_path / "samples_w2.png").is_file()
    classifier = fid.FeatureExtractor.for_dataset("digits")  # the script's, from the cache
    labels = torch.arange(10).repeat_interleave(2)
    for w, file in ((0.0, "samples_w0.png"), (2.0, "samples_w2.png")):
        x = saved[file]
        assert x.shape == (20, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
        assert agreement[w] == (classifier.predict(x) == labels).double().mean().item()
    assert (saved["samples_w2.png"] - saved["samples_w0.png"]).abs().max() > 1e-3  # guidance was applied


def test_load_reference_checkpoint_quick(tmp_path: Path) -> None:
    model = _load("load_reference_checkpoint").main(["--quick", "--out", str(tmp_path), "--num-samples", "4"])
    assert isinstance(model, TarFlow) and (tmp_path / "samples.png").is_file()


@pytest.mark.skipif(not (FIXTURES / "cond_nvp_c3_s8_p2.pt").is_file(),
                    reason="the shared ml-tarflow fixtures are not checked out here")
def test_load_reference_checkpoint_reproduces_the_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = _load("load_reference_checkpoint")
    path = FIXTURES / "cond_nvp_c3_s8_p2.pt"
    model = example.main([str(path), "--out", str(tmp_path), "--num-samples", "2"])
    diffs = example.compare_with_fixture(model, torch.load(path, weights_only=True))
    assert diffs["z"] < 1e-4 and diffs["log_prob"] < 1e-3
    assert "max |flowkit - reference|" in capsys.readouterr().out
