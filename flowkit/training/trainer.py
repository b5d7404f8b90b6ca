"""The training loop behind ``flowkit train``: one function you can read top to bottom."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from .._validation import validating
from ..data import ImageDataset, dequantize, load_dataset, train_val_split
from ..data.images import save_grid
from ..metrics import bayes_accuracy, bits_per_dim, evaluate_bpd
from ..presets import TarFlow
from ..sampling import denoise
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, config_to_toml
from .distributed import (DistInfo, all_reduce_mean, cleanup_distributed, full_state_dict, init_distributed,
                          wrap_model)

__all__ = ["TrainingDiverged", "train", "build_model", "warmup_cosine", "ema_with_warmup", "CHECKPOINT", "METRICS"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; the last good checkpoint was kept."""


def build_model(cfg: TrainConfig, num_classes: int) -> TarFlow:
    """The :class:`~flowkit.TarFlow` a config describes."""
    return TarFlow(cfg.in_channels, cfg.img_size, cfg.patch_size, cfg.channels, cfg.num_blocks,
                   cfg.layers_per_block, head_dim=cfg.head_dim, expansion=cfg.expansion, nvp=cfg.nvp,
                   num_classes=num_classes, coupling=cfg.coupling)


def warmup_cosine(peak: float, floor: float, warmup: int, total: int) -> Callable[[int], float]:
    r"""Learning-rate multiplier: linear warm-up over ``warmup`` steps, then cosine decay to ``floor``.

    .. math:: \eta(s) = \eta_{peak} \frac{s + 1}{W} \;(s < W), \qquad
        \eta(s) = \eta_{floor} + \tfrac12 (\eta_{peak} - \eta_{floor})(1 + \cos \pi \tfrac{s - W}{S - W})

    Examples:
        >>> f = warmup_cosine(1.0, 0.0, warmup=2, total=6)
        >>> [round(f(s), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return (floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))) / peak
    return factor


def ema_with_warmup(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor | int], None]:
    r"""An ``AveragedModel`` update whose decay ramps up: :math:`d_n = \min(d, \frac{1 + n}{10 + n})`.

    A fixed decay :math:`d` would keep :math:`d^n` of the random initialisation after :math:`n`
    updates (13.5% for 0.999 over 2000 steps); the ramp forgets it within the first few hundred.

    Examples:
        >>> avg, new = [torch.zeros(1)], [torch.ones(1)]
        >>> ema_with_warmup(0.999)(avg, new, 0)  # d_0 = 0.1: mostly the new value
        >>> round(avg[0].item(), 3)
        0.9
    """
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor | int) -> None:
        n = int(num_averaged)
        if averaged and averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1 + n) / (10 + n)))
        else:  # integer buffers (e.g. permutation indices) are copied, not averaged
            torch._foreach_copy_(averaged, current)
    return update


def _step_noise(cfg: TrainConfig, x: Tensor, y: Tensor, step: int, info: DistInfo) -> tuple[Tensor, Tensor]:
    """Input noise and label dropout for one step, drawn for the *global* batch from a generator seeded
    by the step, so that any number of ranks (and a resumed run) sees exactly the same noise."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    n = x.shape[0] * info.world_size
    mine = slice(info.rank, None, info.world_size)  # DistributedSampler interleaves ranks the same way
    unit = (torch.randn if cfg.noise == "gaussian" else torch.rand)((n, *x.shape[1:]), generator=g)[mine]
    drop = torch.rand(n, generator=g)[mine] < cfg.label_drop
    x = dequantize(x, cfg.noise, cfg.sigma, noise=unit.to(x.device))
    return x, torch.where(drop.to(y.device), torch.full_like(y, -1), y)


def _autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _batches(loader: DataLoader, sampler: DistributedSampler, start_step: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless batches in the order an uninterrupted run would see them from ``start_step`` on."""
    epoch, skip = divmod(start_step, len(loader))
    while True:
        sampler.set_epoch(epoch)
        for i, batch in enumerate(loader):
            if i >= skip:
                yield batch
        epoch, skip = epoch + 1, 0


@torch.no_grad()
def _sample_grid(model: TarFlow, cfg: TrainConfig, path: Path, device: torch.device) -> None:
    """Guided (and denoised) samples, one row per class, as a PNG."""
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    per_row = 10
    classes = model.num_classes
    y = torch.arange(classes, device=device).repeat_interleave(per_row) if classes else None
    n = classes * per_row if classes else 8 * per_row
    # A young model can overflow on a rare sample; a progress picture must not end the run for it.
    with validating(False):
        x = model.sample(n, context=y, generator=g, guidance=cfg.sample_guidance if classes else 0.0)
        if cfg.denoise and cfg.noise == "gaussian":
            x = denoise(model, x, cfg.sigma, context=y)
    save_grid(torch.nan_to_num(x, nan=-1.0).clamp(-1, 1), path, nrow=per_row, scale=max(1, 64 // cfg.img_size))


def _evaluate(model: TarFlow, val: Any, cfg: TrainConfig, step: int, out: Path) -> dict[str, float]:
    loader = DataLoader(val, batch_size=256)
    with validating(False):
        result = {"val_bpd": evaluate_bpd(model, loader, generator=torch.Generator().manual_seed(cfg.seed))}
        if not math.isfinite(result["val_bpd"]):
            raise TrainingDiverged(f"the held-out bits/dim became {result['val_bpd']} at step {step}; the last "
                                   f"good checkpoint is kept in {out / CHECKPOINT}; try a lower --lr or --grad-clip")
        if model.num_classes:
            result["bayes_acc"] = bayes_accuracy(model, loader, model.num_classes)
    return result


def _checkpoint_state(model: TarFlow, ema: AveragedModel | None, opt: torch.optim.Optimizer,
                      sched: torch.optim.lr_scheduler.LRScheduler, step: int, cfg: TrainConfig,
                      whole: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """Everything a resume needs. Under FSDP, ``whole`` holds the gathered weights, and the sharded
    optimizer state is not saved (FSDP runs cannot be resumed yet)."""
    return {"model": whole if whole is not None else model.state_dict(),
            "ema": ema.module.state_dict() if ema else None,
            "ema_n_averaged": ema.n_averaged if ema else None,
            "optimizer": opt.state_dict() if whole is None else None,
            "scheduler": sched.state_dict(), "step": step, "rng": rng_state(),
            "config": dataclasses.asdict(cfg), "model_config": dict(model.config)}


def _log(out: Path, record: dict[str, Any]) -> None:
    with open(out / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_log(out: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint (their steps are about to be redone)."""
    path = out / METRICS
    if path.exists():
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train a TarFlow as ``cfg`` says; write checkpoints, metrics, samples and the config to ``cfg.out``.

    Returns the last logged metrics. Under ``torchrun`` every rank runs this; rank 0 logs and writes.

    Raises:
        TrainingDiverged: the loss became non-finite (the last good checkpoint stays on disk).
        ValueError, FileNotFoundError: data or config problems, with a one-line message.
    """
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, info, resume, progress)
    finally:
        cleanup_distributed()


def _train(cfg: TrainConfig, info: DistInfo, resume: bool, progress: bool) -> dict[str, Any]:
    device, out = info.device, Path(cfg.out)
    # ---- data -------------------------------------------------------------------------------------
    data: ImageDataset = load_dataset(cfg.data, cfg.img_size, cfg.in_channels, root=cfg.data_root)
    num_classes = cfg.num_classes if cfg.num_classes is not None else (data.num_classes or 0)
    if num_classes and data.num_classes is not None and data.num_classes > num_classes:
        raise ValueError(f"num_classes={num_classes} but the data has {data.num_classes} classes")
    train_set, val_set = train_val_split(data, cfg.val_fraction, seed=cfg.seed)
    sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"batch size {cfg.batch_size} x {info.world_size} process(es) exceeds the "
                         f"{len(train_set)} training images")
    total = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * len(loader)  # type: ignore[operator]
    # ---- model, EMA, optimizer --------------------------------------------------------------------
    fsdp = cfg.fsdp and info.distributed
    if fsdp and cfg.ema_decay > 0:
        raise ValueError("FSDP keeps no EMA copy of the weights (it would need them whole on every rank); "
                         "pass --ema-decay 0")
    if fsdp and resume:
        raise ValueError("resuming an FSDP run is not supported yet; resume it with DDP (drop --fsdp)")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, num_classes).to(device)
    state = load_checkpoint(out / CHECKPOINT) if resume else None
    if state is not None:
        if state.get("model_config") != dict(model.config):
            raise ValueError(f"cannot resume: the checkpoint's model {state.get('model_config')} differs from "
                             f"the config's {dict(model.config)}")
        model.load_state_dict(state["model"])
    net = wrap_model(model, info, fsdp)  # FSDP shards `model` in place: build the optimizer after it
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(cfg.ema_decay), use_buffers=True) \
        if cfg.ema_decay > 0 else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.lr, cfg.min_lr, min(cfg.warmup_steps, total), total))
    step = 0
    if state is not None:
        if ema is not None and state["ema"] is not None:
            ema.module.load_state_dict(state["ema"])
            ema.n_averaged.copy_(state["ema_n_averaged"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
        set_rng_state(state["rng"])
    if cfg.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        # The resolved class count, so that the saved config says what the model is (not "none").
        (out / "config.toml").write_text(config_to_toml(dataclasses.replace(cfg, num_classes=num_classes)))
        if resume:
            _truncate_log(out, step)
        else:  # a fresh run into an old folder starts a fresh log
            (out / METRICS).unlink(missing_ok=True)
    # ---- loop -------------------------------------------------------------------------------------
    bar = tqdm(total=total, initial=step, disable=not (progress and info.is_main), unit="step",
               dynamic_ncols=True, desc="train")
    batches = _batches(loader, sampler, step)
    num_dims = model.num_dims
    record: dict[str, Any] = {}
    seen, t0 = 0, time.perf_counter()
    while step < total:
        x, y = next(batches)
        x, y = _step_noise(cfg, x.to(device), y.to(device), step, info)
        model.train()
        # Value checks inside the flow would sync every block and turn a diverging run into a
        # confusing "non-finite input" error; the loss and gradient checks below cover it.
        with _autocast(cfg, device), validating(False):
            z, logdet = net(x, y if num_classes else None)
        z = z.float()
        log_prob = model.base.log_prob(z) + logdet.float()
        loss = -log_prob.mean() / num_dims  # nats per dimension
        opt.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)  # also on FSDP's sharded tensors
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):  # stop before the update spoils the weights
            what = f"loss {loss.item()}" if not torch.isfinite(loss) else f"gradient norm {grad_norm.item()}"
            raise TrainingDiverged(f"the loss became non-finite ({what}) at step {step}; the last good checkpoint "
                                   f"is kept in {out / CHECKPOINT}; try a lower --lr or --grad-clip")
        opt.step()
        sched.step()
        # The VP prior's variance tracks E[z^2] over the global batch.
        model.base.update_moment(all_reduce_mean(z.detach().square().mean(0), info))
        if ema is not None:
            ema.update_parameters(model)
        step += 1
        seen += x.shape[0] * info.world_size
        bar.update(1)
        final = step == total
        do_eval = bool(cfg.eval_every and step % cfg.eval_every == 0) or final
        do_sample = bool(cfg.sample_every and step % cfg.sample_every == 0) or final
        # Sharded weights are gathered by all ranks together; rank 0 then works on a whole copy.
        whole = full_state_dict(model) if fsdp and (do_eval or do_sample) else None
        if not info.is_main:
            continue
        if step % cfg.log_every == 0 or final:
            elapsed = time.perf_counter() - t0
            record = {"step": step, "loss": loss.item(), "bpd": bits_per_dim(-loss * num_dims, num_dims).item(),
                      "lr": sched.get_last_lr()[0], "images_per_s": seen / max(elapsed, 1e-9)}
            seen, t0 = 0, time.perf_counter()
        eval_model = ema.module if ema is not None else model
        if whole is not None:
            eval_model = build_model(cfg, num_classes).to(device)
            eval_model.load_state_dict(whole)
        if do_eval:
            eval_model.eval()
            record = {**record, "step": step, **_evaluate(eval_model, val_set, cfg, step, out)}  # type: ignore[arg-type]
            save_checkpoint(out / CHECKPOINT, _checkpoint_state(model, ema, opt, sched, step, cfg, whole))
        if do_sample:
            eval_model.eval()
            name = "samples.png" if final else f"samples_step{step:06d}.png"
            _sample_grid(eval_model, cfg, out / name, device)  # type: ignore[arg-type]
        if record.get("step") == step:
            _log(out, record)
            bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k in ("loss", "bpd", "images_per_s", "val_bpd")})
    bar.close()
    return record
