"""The training loop behind ``flowkit train``: one function you can read top to bottom."""

from __future__ import annotations

import contextlib
import dataclasses
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

from .._args import boolean, finite_float, nonnegative_int, positive_int
from .._validation import validating
from ..data import ImageDataset, dequantize, drop_labels, load_dataset, train_val_split
from ..data.images import save_grid
from ..metrics import bayes_accuracy, bits_per_dim, evaluate_bpd
from ..presets import TarFlow
from ..sampling import denoise
from .checkpoint import load_checkpoint, rng_state, set_rng_state
from .config import TrainConfig, check_config, config_to_toml
from .distributed import DistInfo, all_reduce_mean, cleanup_distributed, full_state_dict, init_distributed, wrap_model
from .run_folder import CHECKPOINT, METRICS, SAMPLES, RunFolder, RunFolderError, current_dir

__all__ = ["TrainingDiverged", "train", "build_model", "warmup_cosine", "ema_with_warmup", "CHECKPOINT", "METRICS",
           "MAX_VAL_BPD", "RESUME_MAY_CHANGE"]

#: A held-out bits/dim above this (twice the 8 bits/dim of a uniform model of 8-bit data) means the
#: run diverged: no checkpoint is written for it, so the folder never points at a blown-up model.
MAX_VAL_BPD = 16.0
#: Config fields a resumed run may change: they decide what is logged and drawn, not what is learned.
RESUME_MAY_CHANGE = frozenset({"out", "data_root", "compile", "log_every", "eval_every", "sample_every",
                               "sample_guidance", "denoise"})


class TrainingDiverged(RuntimeError):
    """Training diverged; the message says which checkpoint (if any) holds the last good state.

    Divergence is a non-finite loss or gradient norm (caught before the update is applied) or a
    held-out bits/dim that is not finite or above ``MAX_VAL_BPD`` (16) (caught before the checkpoint
    is written). A checkpoint is therefore only ever written for a model that passed both checks.
    """


def build_model(cfg: TrainConfig, num_classes: int) -> TarFlow:
    """The :class:`~flowkit.TarFlow` a config describes."""
    check_config(cfg, "build_model")
    return TarFlow.from_config(dataclasses.replace(cfg, num_classes=num_classes))


def warmup_cosine(peak: float, floor: float, warmup: int, total: int) -> Callable[[int], float]:
    r"""Learning-rate multiplier: linear warm-up over ``warmup`` steps, then cosine decay to ``floor``.

    .. math:: \eta(s) = \eta_{peak} \frac{s + 1}{W} \;(s < W), \qquad
        \eta(s) = \eta_{floor} + \tfrac12 (\eta_{peak} - \eta_{floor})(1 + \cos \pi \tfrac{s - W}{S - W})

    Examples:
        >>> f = warmup_cosine(1.0, 0.0, warmup=2, total=6)
        >>> [round(f(s), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    finite_float(peak, "peak", "warmup_cosine", low=0.0, low_inclusive=False)
    if finite_float(floor, "floor", "warmup_cosine", low=0.0) > peak:
        raise ValueError(f"warmup_cosine: floor must be <= peak, got floor={floor!r}, peak={peak!r}")
    nonnegative_int(warmup, "warmup", "warmup_cosine")
    positive_int(total, "total", "warmup_cosine")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return (floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))) / peak
    return factor


# The parameter lists AveragedModel passes to its `multi_avg_fn` (and torch._foreach_* take).
_TensorList = tuple[Tensor, ...] | list[Tensor]


def ema_with_warmup(decay: float) -> Callable[[_TensorList, _TensorList, Tensor | int], None]:
    r"""An ``AveragedModel`` update whose decay ramps up: :math:`d_n = \min(d, \frac{1 + n}{10 + n})`.

    A fixed decay :math:`d` would keep :math:`d^n` of the random initialisation after :math:`n`
    updates (13.5% for 0.999 over 2000 steps); the ramp forgets it within the first few hundred.

    Examples:
        >>> avg, new = [torch.zeros(1)], [torch.ones(1)]
        >>> ema_with_warmup(0.999)(avg, new, 0)  # d_0 = 0.1: mostly the new value
        >>> round(avg[0].item(), 3)
        0.9
    """
    def update(averaged: _TensorList, current: _TensorList, num_averaged: Tensor | int) -> None:
        n = int(num_averaged)
        if averaged and averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1 + n) / (10 + n)))
        else:  # integer buffers (e.g. permutation indices) are copied, not averaged
            torch._foreach_copy_(averaged, current)
    return update


def _step_noise(cfg: TrainConfig, x: Tensor, y: Tensor, step: int, info: DistInfo) -> tuple[Tensor, Tensor]:
    """Input noise and label dropout for one step.

    :func:`~flowkit.data.dequantize` and :func:`~flowkit.data.drop_labels`, drawn for the *global*
    batch from a generator seeded by the step, so that any number of ranks (and a resumed run) sees
    exactly the same noise.
    """
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    n = x.shape[0] * info.world_size
    mine = slice(info.rank, None, info.world_size)  # DistributedSampler interleaves ranks the same way
    unit = (torch.randn if cfg.noise == "gaussian" else torch.rand)((n, *x.shape[1:]), generator=g)[mine]
    u = torch.rand(n, generator=g)[mine]
    return (dequantize(x, cfg.noise, cfg.sigma, noise=unit.to(x.device)),
            drop_labels(y, cfg.label_drop, noise=u.to(y.device)))


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


def _diverged(what: str, step: int, folder: RunFolder, saved_step: int | None) -> TrainingDiverged:
    """A divergence error that says truthfully what is left on disk."""
    if saved_step is not None:
        kept = f"{folder.dir / CHECKPOINT} holds the last good state (step {saved_step})"
    elif folder.dir != folder.out:
        kept = f"no checkpoint of this run was kept, and the previous run in {folder.out} is untouched"
    else:
        kept = "no checkpoint of this run was kept"
    return TrainingDiverged(f"training diverged at step {step}: {what}; {kept}; start again with a lower --lr "
                            "or --grad-clip (--overwrite replaces this run)")


def _evaluate(model: TarFlow, val: Any, cfg: TrainConfig) -> dict[str, float]:
    loader = DataLoader(val, batch_size=256)
    with validating(False):
        result = {"val_bpd": evaluate_bpd(model, loader, generator=torch.Generator().manual_seed(cfg.seed))}
        if not result["val_bpd"] <= MAX_VAL_BPD:  # also catches nan
            return result
        if model.num_classes:
            result["bayes_acc"] = bayes_accuracy(model, loader, model.num_classes)
    return result


def _checkpoint_state(model: TarFlow, ema: AveragedModel | None, opt: torch.optim.Optimizer,
                      sched: torch.optim.lr_scheduler.LRScheduler, step: int, cfg: TrainConfig,
                      whole: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """Everything a resume needs.

    Under FSDP, ``whole`` holds the gathered weights, and the sharded optimizer state is not saved
    (FSDP runs cannot be resumed yet).
    """
    return {"model": whole if whole is not None else model.state_dict(),
            "ema": ema.module.state_dict() if ema else None,
            "ema_n_averaged": ema.n_averaged if ema else None,
            "optimizer": opt.state_dict() if whole is None else None,
            "scheduler": sched.state_dict(), "step": step, "rng": rng_state(),
            "config": dataclasses.asdict(cfg), "model_config": dict(model.config)}


def _check_resumed_config(cfg: TrainConfig, saved: dict[str, Any], out: Path) -> None:
    """Refuse to resume with settings that change what is learned; name the first one that differs."""
    given = dataclasses.asdict(cfg)
    for name, value in saved.items():
        if name in given and name not in RESUME_MAY_CHANGE and _plain(given[name]) != _plain(value):
            raise ValueError(f"cannot resume {out}: {name}={given[name]!r} (from a flag or config.toml) differs from "
                             f"the run's {name}={value!r} stored in its checkpoint; drop that change, or start a "
                             "new run with --overwrite")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train a TarFlow as ``cfg`` says; write checkpoints, metrics, samples and the config to ``cfg.out``.

    The run folder is locked for the run and written atomically (see :class:`~flowkit.training.RunFolder`
    and the "Runs and checkpoints" page). Under each eval step the order is: evaluate, draw
    samples, log, then write the checkpoint, so everything a checkpoint's step produced is on disk
    before the checkpoint is.

    Args:
        cfg: The run's config; ``cfg.out`` (``~`` expanded) is the run folder.
        resume: Continue the run in ``cfg.out`` from its checkpoint, or from step 0 when it was stopped
            before its first one. ``cfg`` must agree with the checkpoint's config except in
            ``RESUME_MAY_CHANGE`` (in ``flowkit.training.trainer``).
        overwrite: Replace a run that ``cfg.out`` holds; its files are kept until the new run's first
            checkpoint.
        progress: Show a progress bar.

    Returns:
        The last logged metrics. Under ``torchrun`` every rank runs this; rank 0 locks, logs and writes.

    Raises:
        TrainingDiverged: The loss became non-finite or the held-out bits/dim blew up; the message says
            which checkpoint, if any, holds the last good state.
        RunFolderError: The folder is in use, holds another run (without ``overwrite``), holds no run
            (with ``resume``), or is a file; raised before any work.
        ValueError, FileNotFoundError: Data or config problems, with a one-line message.
        OSError: A write failed (disk full, file too large, read-only); it names the file, and the
            previous checkpoint is intact.
    """
    check_config(cfg, "train")
    for name, value in (("resume", resume), ("overwrite", overwrite), ("progress", progress)):
        boolean(value, name, "train")
    info = init_distributed(cfg.device)
    folder = RunFolder(cfg.out, resume=resume, overwrite=overwrite)
    try:
        _open_folder(folder, info)
        return _train(cfg, info, folder, progress)
    finally:
        folder.close()
        cleanup_distributed()


def _open_folder(folder: RunFolder, info: DistInfo) -> None:
    """Rank 0 opens the folder; every rank learns whether that worked (and stops if not)."""
    error: BaseException | None = None
    if info.is_main:
        try:
            folder.open()
        except (RunFolderError, OSError) as e:
            error = e
    if info.distributed:
        import torch.distributed as dist

        message = [None if error is None else str(error)]
        dist.broadcast_object_list(message, src=0)
        if message[0] is not None and error is None:
            raise RunFolderError(f"rank 0 could not open the run folder: {message[0]}")
        folder.dir = current_dir(folder.out)
    if error is not None:
        raise error


def _train(cfg: TrainConfig, info: DistInfo, folder: RunFolder, progress: bool) -> dict[str, Any]:
    device, resume = info.device, folder.resume
    # ---- data -------------------------------------------------------------------------------------
    data: ImageDataset = load_dataset(cfg.data, cfg.img_size, cfg.in_channels, root=cfg.data_root)
    num_classes = cfg.num_classes if cfg.num_classes is not None else (data.num_classes or 0)
    if num_classes and data.num_classes is not None and data.num_classes > num_classes:
        raise ValueError(f"num_classes={num_classes} but the data has {data.num_classes} classes")
    train_set, val_set = train_val_split(data, cfg.val_fraction, seed=cfg.seed)
    sampler: DistributedSampler[Any] = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                                                          shuffle=True, seed=cfg.seed, drop_last=True)
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
    state = load_checkpoint(folder.dir / CHECKPOINT) if resume and (folder.dir / CHECKPOINT).exists() else None
    if state is not None:
        if isinstance(state.get("config"), dict):
            _check_resumed_config(cfg, state["config"], folder.out)
        if state.get("model_config") != dict(model.config):
            raise ValueError(f"cannot resume: the checkpoint's model {state.get('model_config')} differs from "
                             f"the config's {dict(model.config)}")
        model.load_state_dict(state["model"])
    net = wrap_model(model, info, fsdp)  # FSDP shards `model` in place: build the optimizer after it
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(cfg.ema_decay), use_buffers=True) \
        if cfg.ema_decay > 0 else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    schedule = warmup_cosine(cfg.lr, cfg.min_lr, min(cfg.warmup_steps, total), total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
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
    saved_step = step if state is not None else None  # the step of the checkpoint on disk, if any
    record: dict[str, Any] = {}
    if info.is_main:
        # The resolved class count, so that the saved config says what the model is (not "none").
        folder.write_config(config_to_toml(dataclasses.replace(cfg, num_classes=num_classes)))
        if resume:
            record = folder.prepare_log(step)
    # ---- loop -------------------------------------------------------------------------------------
    bar = tqdm(total=total, initial=step, disable=not (progress and info.is_main), unit="step",
               dynamic_ncols=True, desc="train")
    batches = _batches(loader, sampler, step)
    num_dims = model.num_dims
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
            what = (f"the loss is {loss.item()}" if not torch.isfinite(loss)
                    else f"the gradient norm is {grad_norm.item()}")
            raise _diverged(what, step, folder, saved_step)
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
        # Everything of this step (samples, log line) is written before its checkpoint, so a kill at any
        # point leaves a checkpoint whose outputs are complete, and a resume redoes the rest.
        if do_eval:
            eval_model.eval()
            record = {**record, "step": step, **_evaluate(eval_model, val_set, cfg)}  # type: ignore[arg-type]
            if not record["val_bpd"] <= MAX_VAL_BPD:
                raise _diverged(f"the held-out bits/dim is {record['val_bpd']:.4g} (above {MAX_VAL_BPD:g})",
                                step, folder, saved_step)
        if do_sample:
            eval_model.eval()
            with folder.artifact(SAMPLES if final else f"samples_step{step:06d}.png") as tmp:
                _sample_grid(eval_model, cfg, tmp, device)  # type: ignore[arg-type]
        if record.get("step") == step:
            folder.log(record)
            shown = ("loss", "bpd", "images_per_s", "val_bpd")
            bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k in shown})
        if do_eval:
            folder.save_checkpoint(_checkpoint_state(model, ema, opt, sched, step, cfg, whole))
            saved_step = step
    bar.close()
    if info.is_main and not (folder.dir / SAMPLES).exists() and not fsdp:
        # Only a checkpoint from before flowkit wrote samples ahead of checkpoints can lack them.
        final_model = ema.module if ema is not None else model
        with folder.artifact(SAMPLES) as tmp:
            _sample_grid(final_model.eval(), cfg, tmp, device)  # type: ignore[arg-type]
    return record
