"""The training loop: run folder contents, exact resume after kill -9, 2-process DDP equals 1 process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from flowkit.training import apply_overrides, load_checkpoint, load_config, train
from flowkit.training.trainer import TrainingDiverged

TINY = dict(channels=64, num_blocks=2, layers_per_block=1, batch_size=16, log_every=2, warmup_steps=2,
            lr=1e-3, val_fraction=0.05)


def tiny(tmp: Path, **kw: object) -> object:
    return apply_overrides(load_config("digits"), {**TINY, "out": str(tmp), **kw})


def _run_cli(*args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", *args], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]


def test_run_folder(tmp_path: Path) -> None:
    record = train(tiny(tmp_path, max_steps=4, eval_every=4, sample_every=4), progress=False)  # type: ignore[arg-type]
    assert {"checkpoint.pt", "metrics.jsonl", "samples.png", "config.toml"} <= {p.name for p in tmp_path.iterdir()}
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4]
    assert {"step", "loss", "bpd", "lr", "images_per_s", "val_bpd", "bayes_acc"} <= set(lines[-1])
    assert record == lines[-1]
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 4 and state["model_config"]["num_classes"] == 10
    assert load_config(str(tmp_path / "config.toml")) == tiny(tmp_path, max_steps=4, eval_every=4, sample_every=4)


def test_divergence_stops_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flowkit.training.trainer as trainer

    step_noise = trainer._step_noise

    def poisoned(cfg, x, y, step, info):  # type: ignore[no-untyped-def]
        x, y = step_noise(cfg, x, y, step, info)
        return (x * float("nan") if step == 3 else x), y

    monkeypatch.setattr(trainer, "_step_noise", poisoned)
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 3: the loss is nan; .*checkpoint.pt holds the last good state \(step 2\)"):
        train(tiny(tmp_path, max_steps=6, eval_every=2, sample_every=0), progress=False)  # type: ignore[arg-type]
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_kill_9_then_resume_gives_identical_weights(tmp_path: Path) -> None:
    # Both runs in subprocesses with the same thread count: matmul reductions depend on it.
    steps, ref, run = 60, tmp_path / "ref", tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    common = ["flowkit", "train", "--no-progress", f"--max-steps={steps}", "--eval-every=5", "--sample-every=0", *flags]
    reference = _run_cli(*common, f"--out={ref}")
    proc = _run_cli(*common, f"--out={run}")
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(run / "checkpoint.pt")["step"]
    assert 0 < killed_at < steps, f"the run was not interrupted mid-way (checkpoint at step {killed_at})"
    resumed = _run_cli("flowkit", "train", "--resume", "--no-progress", f"--out={run}")
    for p in (resumed, reference):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    a, b = load_checkpoint(ref / "checkpoint.pt"), load_checkpoint(run / "checkpoint.pt")
    assert b["step"] == steps
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    steps_logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps_logged == sorted(set(steps_logged)), "resumed log has duplicate steps"


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_ddp_and_fsdp(tmp_path: Path) -> None:
    common = ["--no-progress", "--max-steps=3", "--eval-every=0", "--sample-every=0", "--ema-decay=0",
              "--nvp=false", *(f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "batch_size")]
    one = _run_cli("flowkit", "train", f"--out={tmp_path / 'one'}", "--batch-size=16", *common)
    two = _run_cli("torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "flowkit", "train",
                   f"--out={tmp_path / 'two'}", "--batch-size=8", *common)
    sharded = _run_cli("torch.distributed.run", "--standalone", "--nproc_per_node=2",
                       "-m", "flowkit", "train", f"--out={tmp_path / 'fsdp'}", "--batch-size=8", "--fsdp", *common)
    for proc in (one, two, sharded):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    a, b, c = (load_checkpoint(tmp_path / run / "checkpoint.pt") for run in ("one", "two", "fsdp"))
    assert a["step"] == b["step"] == c["step"] == 3
    for key in a["model"]:
        assert torch.allclose(a["model"][key], b["model"][key], atol=1e-5, rtol=1e-4), key
        assert torch.allclose(a["model"][key], c["model"][key], atol=1e-5, rtol=1e-4), key
    # The VP prior variance is averaged over ranks, so it matches too.
    assert torch.allclose(a["model"]["base.var"], b["model"]["base.var"], atol=1e-5)
