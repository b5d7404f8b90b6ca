"""Fixtures of the run-folder and resume tests: a 60-image data set and a tiny model config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from run_helpers import SMALL

from flowkit.training import TrainConfig, apply_overrides, load_config


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, x=rng.integers(0, 256, (60, 1, 8, 8), dtype=np.uint8), y=np.arange(60) % 4)
    return path


@pytest.fixture
def small_cfg(small_data: Path) -> Callable[..., TrainConfig]:
    """``small_cfg(out, **overrides)``: the tiny config on the small data, written to ``out``."""
    def make(out: Path, **kw: object) -> TrainConfig:
        return apply_overrides(load_config("digits"), {**SMALL, "data": str(small_data), "out": str(out), **kw})
    return make
