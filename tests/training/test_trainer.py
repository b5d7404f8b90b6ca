"""The training loop: run folder contents, divergence, 2-process DDP equals 1 process (resume: test_resume.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    kept = r"training diverged at step 3: the loss is nan; .*checkpoint.pt holds the last good state \(step 2\)"
    with pytest.raises(TrainingDiverged, match=kept):
        train(tiny(tmp_path, max_steps=6, eval_every=2, sample_every=0), progress=False)  # type: ignore[arg-type]
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


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
