"""The ablation scripts of examples/ablations run end to end in their --quick mode.

They run in-process through their ``main(argv)``, sharing one folder of cached training runs (the
baseline trains once) and one feature-classifier cache, both temporary.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from flowkit.metrics import fid

ABLATIONS = Path(__file__).resolve().parents[2] / "examples" / "ablations"
SCRIPTS = ("vp_vs_nvp", "channel_coupling", "depth_split", "noise_sigma", "guidance", "gaussian_vs_uniform")
#: The two-variant scripts' verdicts, in order, as (claimed better, claimed worse, metric): lower wins.
PAIRWISE = {
    "vp_vs_nvp": [("affine (NVP)", "volume-preserving (VP)", "fd"),
                  ("affine (NVP)", "volume-preserving (VP)", "val_bpd")],
    "channel_coupling": [("autoregressive (TarFlow)", "channel coupling", "fd"),
                         ("autoregressive (TarFlow)", "channel coupling", "val_bpd")],
    "gaussian_vs_uniform": [("Gaussian noise + denoising", "uniform dequantization", "fd"),
                            ("uniform dequantization", "Gaussian noise + denoising", "val_bpd")],
}
#: Relative gaps below these are ties (the scripts' documented rule).
TIES = {"fd": 0.05, "val_bpd": 0.002}

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
    assert results["verdicts"]
    # The verdicts follow from the numbers: by hand for the two-variant scripts (one seed: one gap) ...
    pairs = PAIRWISE.get(name)
    for (verdict, _), (better, worse, metric) in zip(results["verdicts"] if pairs else [], pairs or [], strict=True):
        [b], [w] = ([r[metric] for r in _variant(results, n)["runs"]] for n in (better, worse))
        gap = (w - b) / max(abs(b), abs(w))
        assert verdict == ("agrees" if gap > TIES[metric] else "disagrees" if gap < -TIES[metric] else "inconclusive")
    # ... and for every script, variants that all score the same make every verdict inconclusive.
    tied = [v for v, _ in _script(name).judge(_all_tied(results))]
    assert tied == ["inconclusive"] * len(results["verdicts"]), tied
    assert results["claim"] in (out / "results.md").read_text()


def _variant(results: dict[str, Any], name: str) -> dict[str, Any]:
    [variant] = [v for v in results["variants"] if v["name"] == name]
    return variant


def _all_tied(results: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``results`` in which every variant and seed scores 1.0 on every metric."""
    tied = copy.deepcopy(results)
    for variant in tied["variants"]:
        for run in variant["runs"]:
            run.update({k: 1.0 for k in ("fd", "kid", "val_bpd", "inception_fd") if k in run})
        for k, stats in variant["summary"].items():
            if k in ("fd", "kid", "val_bpd", "inception_fd"):
                stats.update(mean=1.0, std=0.0)
    return tied


def test_verdict_rule_by_hand(shared: Path) -> None:
    """``direction``: lower wins beyond a relative tie; ``verdict``: every seed must agree."""
    common = _script("common")
    assert [common.direction(90.0, 100.0), common.direction(96.0, 100.0), common.direction(100.0, 90.0)] == [-1, 0, 1]
    assert common.direction(7.00, 7.02, tie=0.002) == -1 and common.direction(7.01, 7.02, tie=0.002) == 0
    assert common.verdict([-1, -1]) == "agrees" and common.verdict([1, 1]) == "disagrees"
    assert common.verdict([-1, 0]) == common.verdict([-1, 1]) == "inconclusive"


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
