"""The training loop: the values it logs and learns, run folder contents, divergence, 2-process DDP
equals 1 process (resume after kill -9: test_resume.py).

Logged numbers are recomputed by an independent path: the loss of a logged step from the weights and
the batch the model saw at that step (recorded by a hook), bits/dim and the learning rate by hand,
``val_bpd`` and ``bayes_acc`` by :mod:`flowkit.metrics` on the checkpoint, the VP prior variance
against the latents' second moment on the training data, and the EMA of the prior variance by its
recursion over the recorded raw values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

import flowkit.training.trainer as trainer
from flowkit import TarFlow
from flowkit.data import dequantize, drop_labels, load_dataset, train_val_split
from flowkit.metrics import bayes_accuracy, evaluate_bpd
from flowkit.training import DistInfo, TrainConfig, apply_overrides, load_checkpoint, load_config, train
from flowkit.training.trainer import TrainingDiverged

TINY = dict(channels=64, num_blocks=2, layers_per_block=1, batch_size=16, log_every=2, warmup_steps=2,
            lr=1e-3, val_fraction=0.05)


def tiny(tmp: Path, **kw: object) -> object:
    return apply_overrides(load_config("digits"), {**TINY, "out": str(tmp), **kw})


def _run_cli(*args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", *args], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]


def _log(out: Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``."""
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _model(state: dict[str, Any], weights: str = "model") -> TarFlow:
    """A fresh model holding the ``weights`` ("model" or "ema") of a checkpoint ``state``, in eval mode."""
    model = TarFlow(**state["model_config"])
    model.load_state_dict(state[weights])
    return model.eval()


def _prior_var(model: torch.nn.Module) -> Tensor:
    """A copy of the learned variance of a VP model's prior."""
    var = model.get_buffer("base.var")
    return var.detach().clone()


def _splits(cfg: TrainConfig) -> tuple[Any, Any]:
    """The (train, held-out) split of a run's data."""
    return train_val_split(load_dataset(cfg.data, cfg.img_size, cfg.in_channels), cfg.val_fraction, seed=cfg.seed)


def _bpd_by_hand(loss: float) -> float:
    """Bits/dim from the logged loss in nats per dimension: (loss + log 128) / log 2 = loss / log 2 + 7."""
    return loss / math.log(2) + 7.0


def _lr_by_hand(cfg: TrainConfig, step: int, total: int) -> float:
    """The learning rate after ``step`` optimizer steps: linear warm-up, then cosine to ``min_lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / (total - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def test_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = tiny(out, max_steps=4, eval_every=4, sample_every=4)
    record = train(cfg, progress=False)  # type: ignore[arg-type]
    assert {"checkpoint.pt", "metrics.jsonl", "samples.png", "config.toml"} <= {p.name for p in out.iterdir()}
    lines = _log(out)
    assert [r["step"] for r in lines] == [2, 4]
    assert record == lines[-1]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 4 and state["model_config"]["num_classes"] == 10
    assert load_config(str(out / "config.toml")) == dataclasses.replace(cfg, num_classes=10)  # resolved from the data
    for r in lines:  # the values, not only the keys
        assert math.isfinite(r["loss"]) and r["images_per_s"] > 0
        assert r["bpd"] == pytest.approx(_bpd_by_hand(r["loss"]), abs=1e-5)
        assert r["lr"] == pytest.approx(_lr_by_hand(cfg, r["step"], 4), rel=1e-9)  # type: ignore[arg-type]
    # The evaluation of the last step is the EMA model of the checkpoint scored on the held-out split.
    _, val = _splits(cfg)  # type: ignore[arg-type]
    loader = DataLoader(val, batch_size=256)
    ema = _model(state, "ema")
    assert lines[-1]["val_bpd"] == pytest.approx(
        evaluate_bpd(ema, loader, generator=torch.Generator().manual_seed(cfg.seed)), abs=1e-9)  # type: ignore[attr-defined]
    assert lines[-1]["bayes_acc"] == bayes_accuracy(ema, loader, 10)


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


def test_step_noise_is_one_global_draw_sliced_by_rank() -> None:
    """The trainer's noise and label dropout: Gaussian noise of std sigma, labels dropped at rate
    label_drop, drawn for the global batch so that rank r of 2 gets rows r::2 of one process's draw."""
    cfg = apply_overrides(load_config("digits"), dict(sigma=0.1, label_drop=0.3, seed=3))
    x, y = torch.zeros(4096, 1, 2, 2), torch.arange(4096) % 10
    noisy, dropped = trainer._step_noise(cfg, x, y, 5, DistInfo())
    assert abs(noisy.std().item() - 0.1) < 0.002 and abs(noisy.mean().item()) < 0.002
    assert abs((dropped == -1).float().mean().item() - 0.3) < 0.02
    assert torch.equal(dropped[dropped != -1], y[dropped != -1])
    for rank in (0, 1):
        part = trainer._step_noise(cfg, x[rank::2], y[rank::2], 5, DistInfo(rank=rank, world_size=2))
        assert torch.equal(part[0], noisy[rank::2]) and torch.equal(part[1], dropped[rank::2])
    again, other = (trainer._step_noise(cfg, x, y, step, DistInfo())[0] for step in (5, 6))
    assert torch.equal(again, noisy) and not torch.equal(other, noisy)  # a function of the step: resumable
    uniform = apply_overrides(cfg, dict(noise="uniform", denoise=False))
    grid = torch.full((64, 1, 2, 2), 3 / 127.5 - 1)  # level k = 3 -> the bin [3/128 - 1, 4/128 - 1)
    deq, _ = trainer._step_noise(uniform, grid, y[:64], 0, DistInfo())
    assert torch.equal(torch.floor(128 * (deq + 1)), torch.full_like(deq, 3.0))


# ---- a volume-preserving run of a few hundred steps, watched from inside --------------------------------

VP_STEPS, VP_LOG_EVERY = 300, 50


@dataclass
class WatchedRun:
    """A finished run and what its model saw at each training step."""

    cfg: TrainConfig
    out: Path
    labels: list[Tensor] = field(default_factory=list)  # the labels of every training forward pass
    logged: dict[int, tuple[Tensor, Tensor, dict[str, Tensor]]] = field(default_factory=dict)  # step -> x, y, weights
    prior_var: list[tuple[Tensor, Tensor]] = field(default_factory=list)  # (raw, EMA) after each EMA update


@pytest.fixture(scope="module")
def vp_run(tmp_path_factory: pytest.TempPathFactory) -> WatchedRun:
    """A tiny VP model trained for 300 steps (about 7 s), with hooks recording the inputs of the model
    (and its weights at the logged steps) and the raw and EMA prior variances after every update."""
    out = tmp_path_factory.mktemp("vp") / "run"
    cfg = apply_overrides(load_config("digits"), dict(
        channels=32, num_blocks=2, layers_per_block=1, head_dim=32, nvp=False, batch_size=64, lr=2e-3,
        warmup_steps=10, max_steps=VP_STEPS, log_every=VP_LOG_EVERY, eval_every=150, sample_every=0,
        ema_decay=0.99, label_drop=0.1, out=str(out)))
    run = WatchedRun(cfg, out)

    def watch(module: TarFlow, args: tuple[Any, ...]) -> None:
        if module.training:  # evaluation passes run in eval mode
            step = len(run.labels) + 1  # the step this forward pass computes the loss of
            run.labels.append(args[1].clone())
            if step % VP_LOG_EVERY == 0:
                weights = {k: v.clone() for k, v in module.state_dict().items()}
                run.logged[step] = (args[0].clone(), args[1].clone(), weights)

    def build_watched(cfg: TrainConfig, num_classes: int) -> TarFlow:
        model = build_model(cfg, num_classes)
        model.register_forward_pre_hook(watch)
        return model

    class WatchedAverage(trainer.AveragedModel):  # type: ignore[misc, name-defined]
        def update_parameters(self, model: torch.nn.Module) -> None:
            super().update_parameters(model)
            run.prior_var.append((_prior_var(model), _prior_var(self.module)))

    build_model = trainer.build_model
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "build_model", build_watched)
        mp.setattr(trainer, "AveragedModel", WatchedAverage)
        train(cfg, progress=False)
    return run


def test_vp_training_is_finite_and_its_prior_variance_is_the_latents_second_moment(vp_run: WatchedRun) -> None:
    cfg, records = vp_run.cfg, _log(vp_run.out)
    assert [r["step"] for r in records] == list(range(VP_LOG_EVERY, VP_STEPS + 1, VP_LOG_EVERY))
    assert all(math.isfinite(r["loss"]) for r in records)
    assert records[-1]["loss"] < records[0]["loss"] - 0.1  # it learned (measured: 0.63 -> 0.31 nats/dim)
    # E[z^2] over the whole training split, noised and label-dropped as in training, by the final weights.
    model = _model(load_checkpoint(vp_run.out / "checkpoint.pt"))
    train_set, _ = _splits(cfg)
    x, y = (torch.stack(t) for t in zip(*(train_set[i] for i in range(len(train_set))), strict=True))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        z, _ = model(dequantize(x, "gaussian", cfg.sigma, generator=g), drop_labels(y, cfg.label_drop, generator=g))
    second_moment, var = z.square().mean(0), _prior_var(model)
    assert var.shape == second_moment.shape and (var - 1).abs().max() > 0.5  # moved far from its start, 1
    # Measured: 0.1% on the mean, 3% over the elements (the variance is an EMA of batches of 64).
    assert var.mean().item() == pytest.approx(second_moment.mean().item(), rel=0.02)
    assert ((var - second_moment).norm() / second_moment.norm()).item() < 0.06


def test_ema_copy_averages_the_prior_variance(vp_run: WatchedRun) -> None:
    """The EMA model's VP variance is the EMA of the raw one: e_1 = v_1, e_n = e_{n-1} + (1 - d_n)(v_n - e_{n-1})
    with d_n = min(decay, n / (n + 9)) (the warm-up of ``ema_with_warmup`` after n - 1 averages)."""
    raw = [v.double() for v, _ in vp_run.prior_var]
    assert len(raw) == VP_STEPS
    expected = raw[0]
    for n, (v, (_, ema)) in enumerate(zip(raw, vp_run.prior_var, strict=True), start=1):
        if n > 1:
            expected = expected + (1 - min(vp_run.cfg.ema_decay, n / (n + 9))) * (v - expected)
        torch.testing.assert_close(ema.double(), expected, rtol=1e-5, atol=1e-7, msg=f"update {n}")
    assert max((e - v).abs().max().item() for v, e in vp_run.prior_var) > 1e-2  # the average lags: not the raw one
    state = load_checkpoint(vp_run.out / "checkpoint.pt")
    assert torch.equal(state["ema"]["base.var"], vp_run.prior_var[-1][1])
    assert torch.equal(state["model"]["base.var"], vp_run.prior_var[-1][0])


def test_training_drops_labels_at_the_configured_rate(vp_run: WatchedRun) -> None:
    labels = torch.cat(vp_run.labels)
    assert len(vp_run.labels) == VP_STEPS and len(labels) == VP_STEPS * vp_run.cfg.batch_size
    dropped = (labels == -1).float().mean().item()
    assert abs(dropped - vp_run.cfg.label_drop) < 0.01, dropped  # 19200 draws: std 0.002
    assert set(labels[labels != -1].tolist()) == set(range(10))


def test_logged_loss_and_bits_per_dim_are_those_of_the_step(vp_run: WatchedRun) -> None:
    """Each logged loss is -log p / D of the batch the model saw at that step, under the weights it had
    then, recomputed with ``Flow.log_prob`` on a fresh model; bits/dim follow from it by hand."""
    records = _log(vp_run.out)
    assert sorted(vp_run.logged) == [r["step"] for r in records]
    for r in records:
        x, y, weights = vp_run.logged[r["step"]]
        model = TarFlow(**load_checkpoint(vp_run.out / "checkpoint.pt")["model_config"])
        model.load_state_dict(weights)
        with torch.no_grad():
            loss = (-model.log_prob(x, y).double().mean() / x[0].numel()).item()
        assert r["loss"] == pytest.approx(loss, rel=1e-5), r["step"]
        assert r["bpd"] == pytest.approx(_bpd_by_hand(loss), abs=1e-5), r["step"]
        assert r["lr"] == pytest.approx(_lr_by_hand(vp_run.cfg, r["step"], VP_STEPS), rel=1e-9), r["step"]
    assert records[-1]["lr"] == pytest.approx(vp_run.cfg.min_lr)


def test_logged_val_bpd_is_the_held_out_score_of_the_checkpoint(vp_run: WatchedRun) -> None:
    cfg, last = vp_run.cfg, _log(vp_run.out)[-1]
    state = load_checkpoint(vp_run.out / "checkpoint.pt")
    assert state["step"] == last["step"] == VP_STEPS
    train_set, val = _splits(cfg)
    ema = _model(state, "ema")

    def score(data: Any) -> float:
        return evaluate_bpd(ema, DataLoader(data, batch_size=256), generator=torch.Generator().manual_seed(cfg.seed))

    assert last["val_bpd"] == pytest.approx(score(val), abs=1e-9)
    assert abs(last["val_bpd"] - score(train_set)) > 1e-3  # not the training split's
    assert last["bayes_acc"] == bayes_accuracy(ema, DataLoader(val, batch_size=256), 10)
