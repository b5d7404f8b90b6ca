"""The short user examples in examples/ run in their --quick mode."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from flowkit import Chain, TarFlow
from flowkit.data import toy_2d
from flowkit.metrics import fid
from flowkit.testing import check_bijector, randomize_parameters

# Where tests/presets/test_ml_tarflow.py finds them: $FLOWKIT_FIXTURES, else ../shared next to the repository.
_BASE = Path(os.environ.get("FLOWKIT_FIXTURES") or Path(__file__).resolve().parents[3] / "shared" / "fixtures")
FIXTURES = _BASE / "ml_tarflow" if (_BASE / "ml_tarflow").is_dir() else _BASE

pytestmark = pytest.mark.slow


def _fitted_gaussian_log_prob(train: np.ndarray, test: np.ndarray) -> float:
    """Mean held-out log-density of the maximum-likelihood Gaussian of ``train``, by the closed form in numpy."""
    mean, cov = train.mean(0), np.cov(train.T, bias=True)
    diff = test - mean
    mahalanobis = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    return float(np.mean(-0.5 * (mahalanobis + np.log(np.linalg.det(cov)) + 2 * np.log(2 * np.pi))))


def test_custom_flow_2d_beats_a_fitted_gaussian(tmp_path: Path, load_example: Callable[[str], ModuleType]) -> None:
    """The quick run's held-out log-likelihood is well above the best Gaussian's on the same data (-1.88
    nats); a wrong log-det or a flow that does not train stays near or below it."""
    result = load_example("custom_flow_2d").main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "density.png").is_file()
    train, test = toy_2d("moons", 20_000, seed=0).double().numpy(), toy_2d("moons", 5000, seed=1).double().numpy()
    gaussian = _fitted_gaussian_log_prob(train, test)
    assert result["test_log_prob"] > gaussian + 0.5, (result, gaussian)
    assert math.isfinite(result["train_nll"]), result


def test_custom_flow_2d_is_a_valid_bijector(load_example: Callable[[str], ModuleType]) -> None:
    """The hand-built flow, in float64 with random weights, passes the bijector contract checks (round
    trips, log-det against the autograd Jacobian, gradients to every conditioner, serialisation)."""
    example = load_example("custom_flow_2d")
    torch.manual_seed(0)
    flow = example.build_flow(hidden=16).double()
    chain = Chain(list(flow.bijectors), event_shape=(2,))
    x = toy_2d("moons", 64, seed=2).double()
    chain(x)  # ActNorm's data-dependent initialisation, before the checks
    randomize_parameters(chain)  # the zero-initialised output layers would make the blocks identities
    check_bijector(chain, x[:8])
    # The check ran on the flow the script trains: its log-likelihood is the base's plus the chain's log-det.
    z, logdet = chain(x[:8])
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1) + logdet
    torch.testing.assert_close(flow.log_prob(x[:8]), expected)


def test_conditional_sampling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              load_example: Callable[[str], ModuleType]) -> None:
    """The reported agreement of each guidance weight is the digits classifier's agreement with the
    labels of the rows (row c is class c) on exactly the samples the script saved."""
    monkeypatch.setenv(fid.CACHE_ENV, str(tmp_path / "cache"))
    example = load_example("conditional_sampling")
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


def test_load_reference_checkpoint_quick(tmp_path: Path, load_example: Callable[[str], ModuleType]) -> None:
    model = load_example("load_reference_checkpoint").main(["--quick", "--out", str(tmp_path), "--num-samples", "4"])
    assert isinstance(model, TarFlow) and (tmp_path / "samples.png").is_file()


@pytest.mark.skipif(not (FIXTURES / "cond_nvp_c3_s8_p2.pt").is_file(),
                    reason="the shared ml-tarflow fixtures are not checked out here")
def test_load_reference_checkpoint_reproduces_the_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          load_example: Callable[[str], ModuleType]) -> None:
    example = load_example("load_reference_checkpoint")
    path = FIXTURES / "cond_nvp_c3_s8_p2.pt"
    model = example.main([str(path), "--out", str(tmp_path), "--num-samples", "2"])
    diffs = example.compare_with_fixture(model, torch.load(path, weights_only=True))
    assert diffs["z"] < 1e-4 and diffs["log_prob"] < 1e-3
    assert "max |flowkit - reference|" in capsys.readouterr().out
