"""The scripts under examples/: where they write and what their help points at."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_ablations_write_under_runs() -> None:
    sys.path.insert(0, str(ROOT / "examples" / "ablations"))
    try:
        from common import HERE, parse_args
    finally:
        sys.path.remove(str(ROOT / "examples" / "ablations"))
    quick = parse_args("vp_vs_nvp", "", ["--quick", "--threads", "1"])
    assert quick.out == Path("runs/ablations/results/vp_vs_nvp-quick")
    elsewhere = parse_args("vp_vs_nvp", "", ["--quick", "--runs", "elsewhere"]).out
    assert elsewhere == Path("elsewhere/results/vp_vs_nvp-quick")
    # The default scale's results are the ones docs/ablations.md is built from, kept in the repository.
    assert parse_args("vp_vs_nvp", "", ["--threads", "1"]).out == HERE / "results" / "vp_vs_nvp"


def test_reference_example_help_names_no_missing_file() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "load_reference_checkpoint.py"), "--help"],
                         capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert "--threads" in out
    for name in ("DESIGN.md", "CONTRIBUTING.md", "README.md"):
        assert name not in out or (ROOT / name).is_file(), name
