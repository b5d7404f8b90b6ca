"""The thread policy of the entry points (flowkit/threads.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flowkit.threads import PARALLEL_WORK, apply_thread_policy, choose_threads, usable_cores

BIG = int(PARALLEL_WORK // (128 * 128)) + 1  # rows that put a 128-wide model just over the threshold


@pytest.mark.parametrize("env, rows, cores, load, expected", [
    ({}, 1024, 8, 0.0, 1),                         # the digits model: 64 wide x 1024 rows, far below
    ({}, BIG, 8, 0.0, 8),                          # above: every core
    ({}, BIG, 8, 5.4, 3),                          # 5 cores kept busy by others
    ({}, BIG, 8, 20.0, 1),                         # an overloaded machine still gets one
    ({"LOCAL_WORLD_SIZE": "2"}, BIG, 8, 0.0, 4),  # torchrun: the cores are shared by the local ranks
    ({"OMP_NUM_THREADS": ""}, 1024, 8, 0.0, 1),   # empty counts as unset
])
def test_rule(env: dict[str, str], rows: int, cores: int, load: float, expected: int) -> None:
    assert choose_threads(None, rows=rows, width=128 if rows == BIG else 64, env=env, cores=cores,
                          load=load).threads == expected


def test_explicit_and_environment_win() -> None:
    assert choose_threads(5, rows=10, width=8, env={"OMP_NUM_THREADS": "2"}).threads == 5
    choice = choose_threads(None, rows=BIG, width=128, env={"MKL_NUM_THREADS": "3"}, cores=8, load=0.0)
    assert choice.threads is None and choice.reason == "MKL_NUM_THREADS=3"
    with pytest.raises(ValueError, match="--threads must be an integer >= 1, got 0"):
        choose_threads(0, rows=10, width=8)


def test_cgroup_quota_caps_the_cores(tmp_path: Path) -> None:
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # 1.5 CPUs: a second thread would be throttled
    assert usable_cores(quota) == 1
    quota.write_text("max 100000\n")
    assert usable_cores(quota) == usable_cores("/nonexistent") >= 1


def test_apply_sets_torch_and_prints_one_line(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    try:
        assert apply_thread_policy(None, rows=1024, width=64) == 1 == torch.get_num_threads()
        err = capsys.readouterr().err
        assert err == ("threads: 1 (model 64 wide x 1024 rows: 4.2e+06 multiply-adds per matmul, below the 1e+08 "
                       "threshold for 2 threads; --threads N to change)\n")
    finally:
        torch.set_num_threads(before)


def test_importing_flowkit_leaves_threads_alone() -> None:
    import subprocess
    import sys

    code = "import torch; torch.set_num_threads(2); import flowkit, flowkit.cli.main; print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "2"
