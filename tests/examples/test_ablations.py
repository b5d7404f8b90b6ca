"""The ablation scripts of examples/ablations run end to end in their --quick mode.

They run in-process through their ``main(argv)``, sharing one folder of cached training runs (the
baseline trains once) and one feature-classifier cache, both temporary.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from flowkit.metrics import fid

ABLATIONS = Path(__file__).resolve().parents[2] / "examples" / "ablations"
SCRIPTS = ("vp_vs_nvp", "channel_coupling", "depth_split", "noise_sigma", "guidance", "gaussian_vs_uniform")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary feature cache (``$FLOWKIT_CACHE``) and runs folder for all the scripts."""
    root = tmp_path_factory.mktemp("ablations")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(fid.CACHE_ENV, str(root / "cache"))
        mp.syspath_prepend(str(ABLATIONS))  # the scripts import their sibling `common`
        yield root
    for name in ("common", *SCRIPTS):  # do not leave a module called `common` behind
        sys.modules.pop(name, None)


def _script(name: str) -> ModuleType:
    return importlib.import_module(name)


def _quick(shared: Path, name: str, *extra: str) -> dict:
    # No --threads: it would set torch's thread count for the rest of the test session.
    return _script(name).main(["--quick", "--no-progress", "--runs", str(shared / "runs"),
                               "--out", str(shared / "results" / name), *extra])


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_runs_quick_and_writes_its_report(shared: Path, name: str) -> None:
    results = _quick(shared, name)
    out = shared / "results" / name
    for file in ("results.json", "results.md", "results.png"):
        assert (out / file).is_file(), file
    assert json.loads((out / "results.json").read_text())["script"] == name
    assert len(list((out / "grids").glob("*.png"))) >= 1
    assert results["scale"] == "quick" and results["seeds"] == [0]
    for variant in results["variants"]:
        for metric in ("val_bpd", "fd", "kid"):
            assert math.isfinite(variant["summary"][metric]["mean"]), (variant["name"], metric)
    assert results["verdicts"] and all(v in ("agrees", "disagrees", "inconclusive") for v, _ in results["verdicts"])
    assert results["claim"] in (out / "results.md").read_text()


def test_finished_runs_are_loaded_not_retrained(shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once vp_vs_nvp has run, running it again only evaluates, and gives the same numbers."""
    first = _quick(shared, "vp_vs_nvp")

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run must be loaded from the runs folder, not trained again")

    monkeypatch.setattr(_script("common"), "train", no_training)
    again = _quick(shared, "vp_vs_nvp")
    for v, w in zip(first["variants"], again["variants"], strict=True):
        for r, q in zip(v["runs"], w["runs"], strict=True):
            assert {**r, "eval_s": 0} == {**q, "eval_s": 0}, v["name"]  # seeded: identical metrics


def test_bad_arguments_are_refused(shared: Path) -> None:
    with pytest.raises(SystemExit):
        _script("vp_vs_nvp").main(["--quick", "--scale", "mnist"])  # mutually exclusive
    with pytest.raises(SystemExit):
        _script("vp_vs_nvp").main(["--quick", "--set", "not_a_field=1"])


def test_report_renders_the_results_page(shared: Path, tmp_path: Path) -> None:
    _quick(shared, "vp_vs_nvp")  # cached runs: only evaluates
    page = _script("report").main(["--results", str(shared / "results"), "--out", str(tmp_path / "ablations.md")])
    text = page.read_text()
    assert text.startswith("# Ablations") and "Volume-preserving vs affine blocks" in text
    assert "| *real training images (floor)* |" in text
