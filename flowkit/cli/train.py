"""``flowkit train``: the config from preset, flags and data, then the training run and its summary."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .messages import _note


def _fit_to_data(cfg: Any, given: set[str]) -> Any:
    """Take ``in_channels`` / ``img_size`` from a command-line ``--data`` unless given; say so, or refuse.

    A conversion the user asked for (a size or channel count given that differs from the data's) is
    announced in one line; nothing is converted silently.
    """
    from ..data import peek_image_shape
    from ..training import apply_overrides

    native = peek_image_shape(cfg.data, root=cfg.data_root)
    if native is None:
        return cfg
    c, h, w = native
    kind = {1: "grayscale", 3: "RGB"}.get(c, f"{c}-channel")
    if "data" in given:
        changes: dict[str, Any] = {}
        if "in_channels" not in given and c != cfg.in_channels:
            changes["in_channels"] = c
        if "img_size" not in given and h != cfg.img_size:
            if h != w:
                raise ValueError(f"the images of {cfg.data!r} are {w}x{h}, not square; pass --img-size S to "
                                 "resize and center-crop them to S x S")
            if "patch_size" not in given and h % cfg.patch_size:
                raise ValueError(f"the images of {cfg.data!r} are {h}x{h}, which patch_size {cfg.patch_size} does "
                                 "not divide; pass --patch-size P (a divisor) or --img-size S to resize")
            changes["img_size"] = h
        if changes:
            cfg = apply_overrides(cfg, changes)
            flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in changes.items())
            _note("train", f"data: {w}x{h} {kind} images, so {flags} (read from the data)")
    if (c, h, w) != (cfg.in_channels, cfg.img_size, cfg.img_size):
        target = {1: "grayscale", 3: "RGB"}.get(cfg.in_channels, str(cfg.in_channels))
        _note("train", f"data: converting {w}x{h} {kind} images to {cfg.img_size}x{cfg.img_size} {target} "
                       "(--img-size / --in-channels of the config; set them to the data's to keep it as it is)")
    return cfg


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"

def _cmd_train(args: argparse.Namespace) -> int:
    from ..threads import apply_thread_policy, rows_of
    from ..training import apply_overrides, load_config
    from ..training.trainer import train

    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    if args.resume and args.config is None and not args.overwrite:  # the run's own config, then the flags
        from ..training.run_folder import resume_config

        base = load_config(None)
        out = overrides.get("out") or base.out
        saved = resume_config(out)
        cfg = apply_overrides(apply_overrides(base, {k: v for k, v in saved.items() if hasattr(base, k)}),
                              {**overrides, "out": out})  # the folder may have moved since it was saved
    else:
        cfg = _fit_to_data(apply_overrides(load_config(args.config), overrides), set(overrides))
    apply_thread_policy(args.threads, rows=rows_of(cfg.batch_size, cfg.img_size, cfg.patch_size), width=cfg.channels)
    start = time.perf_counter()
    record = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    if args.json:
        print(json.dumps(record))
    elif record:
        out = Path(cfg.out)
        acc = f", Bayes accuracy {record['bayes_acc']:.1%}" if "bayes_acc" in record else ""
        print(f"trained {record.get('step')} steps in {_duration(time.perf_counter() - start)}: held-out "
              f"{record.get('val_bpd', float('nan')):.2f} bits/dim{acc}; files in {out}/ (checkpoint.pt, "
              f"metrics.jsonl, samples.png, config.toml)")
        print(f"next: flowkit sample {out / 'checkpoint.pt'} --num 100    |    flowkit eval {out / 'checkpoint.pt'}")
    return 0
