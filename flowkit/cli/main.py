"""``flowkit train | sample | eval``: argument parsing and one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]


def _config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--field-name VALUE`` per :class:`~flowkit.training.TrainConfig` field (values are coerced
    and validated by :func:`~flowkit.training.apply_overrides`); booleans also work as bare flags."""
    from ..training import TrainConfig

    group = parser.add_argument_group("config overrides (any TrainConfig field)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            group.add_argument(flag, dest=f"cfg_{f.name}", nargs="?", const="true", metavar="BOOL")
        else:
            group.add_argument(flag, dest=f"cfg_{f.name}", metavar=f.name.upper())


def build_parser() -> argparse.ArgumentParser:
    """The ``flowkit`` argument parser."""
    parser = argparse.ArgumentParser(prog="flowkit", description="Normalizing flows: train, sample, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a TarFlow (default: class-conditional, on the bundled 8x8 digits)")
    train.add_argument("--config", default=None, help="a preset name (digits, mnist, imagenet64, imagenet128, "
                       "afhq256) or a TOML file; default: digits")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace the run that --out holds (its files are "
                       "kept until the new run's first checkpoint)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _config_flags(train)

    def model_source(p: argparse.ArgumentParser) -> None:
        p.add_argument("checkpoint", help="checkpoint.pt of a flowkit run, or a reference ml-tarflow checkpoint")
        p.add_argument("--ml-tarflow", default=None, nargs="?", const="", metavar="K=V,...",
                       help="the checkpoint is a reference ml-tarflow one with these constructor arguments, "
                            "e.g. in_channels=3,img_size=256,patch_size=8,channels=768,num_blocks=8,"
                            "layers_per_block=8,nvp=true,num_classes=3 (none needed for a file that "
                            "stores its config)")
        p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")

    sample = sub.add_parser("sample", help="draw samples from a checkpoint into a PNG grid or .npz")
    model_source(sample)
    sample.add_argument("--num", type=int, default=16, help="number of samples (default 16)")
    sample.add_argument("--out", default="samples.png", help="output .png (grid) or .npz (arrays)")
    sample.add_argument("--classes", default=None, help="comma-separated labels, cycled over the samples "
                        "(default: all classes in turn)")
    sample.add_argument("--guidance", type=float, default=None, help="guidance weight (default: the run's)")
    sample.add_argument("--guide-what", default="ab", choices=["a", "b", "ab"])
    sample.add_argument("--attn-temp", type=float, default=1.0)
    sample.add_argument("--annealed", action="store_true", help="linearly increasing guidance weight")
    sample.add_argument("--temperature", type=float, default=1.0, help="prior temperature")
    sample.add_argument("--method", default=None, help="inverse method (sequential, jacobi, ...; default auto)")
    sample.add_argument("--denoise", dest="denoise", action="store_true", default=None,
                        help="one Tweedie denoising step (default: when the run trained with Gaussian noise)")
    sample.add_argument("--no-denoise", dest="denoise", action="store_false")
    sample.add_argument("--sigma", type=float, default=None, help="noise level for denoising (default: the run's)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--nrow", type=int, default=None, help="images per grid row")

    ev = sub.add_parser("eval", help="held-out bits/dim (uniform dequantization) and Bayes accuracy")
    model_source(ev)
    ev.add_argument("--data", default=None, help="data spec (default: the run's held-out split)")
    ev.add_argument("--data-root", default=None)
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--seed", type=int, default=0)
    return parser


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def _os_error(e: OSError, command: str) -> str:
    """One line naming the file and the cause (``[Errno 28] No space left on device: 'run/ckpt.pt'``)."""
    if e.filename is None or e.strerror is None:  # e.g. FileNotFoundError("checkpoint not found: ...")
        return _first_line(e)
    where = repr(str(e.filename)) + (f" -> {str(e.filename2)!r}" if e.filename2 is not None else "")
    hint = ""
    if command == "train" and e.errno in _WRITE_ERRORS - {errno.EROFS}:
        hint = "; the last checkpoint is intact: free space, then continue with --resume"
    return f"cannot write {where}: {e.strerror}{hint}" if e.errno in _WRITE_ERRORS else f"{where}: {e.strerror}"


_WRITE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS}


def _cmd_train(args: argparse.Namespace) -> int:
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
        cfg = apply_overrides(load_config(args.config), overrides)
    record = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    if record:
        print(json.dumps(record))
    return 0


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from ..training.loading import load_trained, parse_key_values

    ml = parse_key_values(args.ml_tarflow) if args.ml_tarflow is not None else None
    return load_trained(Path(args.checkpoint).expanduser(), ema=not args.no_ema, ml_tarflow=ml)


def _cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .._io import atomic_path
    from ..data.images import save_grid
    from ..sampling import denoise

    model, cfg = _load(args)
    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    out = Path(args.out).expanduser()
    if out.suffix.lower() not in (".png", ".npz"):
        raise ValueError(f"--out must end in .png or .npz, got {out.name!r}")
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; give a file name ending in .png or .npz")
    y = None
    if model.num_classes:
        classes = [int(c) for c in args.classes.split(",")] if args.classes else list(range(model.num_classes))
        y = torch.tensor(classes).repeat(-(-args.num // len(classes)))[: args.num]
        y = y.sort(stable=True).values if not args.classes else y
    elif args.classes:
        raise ValueError("--classes given, but the model is unconditional")
    guidance = args.guidance if args.guidance is not None else (cfg.sample_guidance if cfg and y is not None else 0.0)
    options: dict[str, Any] = dict(guidance=guidance, guide_what=args.guide_what, attn_temp=args.attn_temp,
                                   annealed_guidance=args.annealed)
    if args.method:
        options["method"] = args.method
    g = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        x = model.sample(args.num, context=y, temperature=args.temperature, generator=g, **options)
    do_denoise = args.denoise if args.denoise is not None else bool(cfg and cfg.noise == "gaussian" and cfg.denoise)
    if do_denoise:
        sigma = args.sigma if args.sigma is not None else (cfg.sigma if cfg else None)
        if sigma is None:
            raise ValueError("--denoise needs --sigma for a reference checkpoint")
        x = denoise(model, x, sigma, context=y)
    x = x.clamp(-1, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".npz":
            np.savez(tmp, x=x.numpy(), y=(y.numpy() if y is not None else np.zeros(0)))
        else:
            nrow = args.nrow or (int(-(-args.num // model.num_classes)) if y is not None and not args.classes
                                 else max(1, int(args.num**0.5)))
            save_grid(x, tmp, nrow=nrow, scale=max(1, 64 // x.shape[-1]))
    print(f"wrote {args.num} samples to {out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from ..data import load_dataset, train_val_split
    from ..metrics import bayes_accuracy, evaluate_bpd

    model, cfg = _load(args)
    c, h, _ = model.event_shape
    if args.data is None and cfg is None:
        raise ValueError("--data is required for a reference checkpoint")
    spec = args.data or cfg.data
    data = load_dataset(spec, h, c, root=args.data_root or (cfg.data_root if cfg else None))
    if args.data is None:  # the run's own held-out split
        _, data = train_val_split(data, cfg.val_fraction, seed=cfg.seed)
    loader = DataLoader(data, batch_size=args.batch_size)
    result: dict[str, Any] = {"images": len(data),
                              "bpd": evaluate_bpd(model, loader, generator=torch.Generator().manual_seed(args.seed))}
    if model.num_classes:
        result["bayes_acc"] = bayes_accuracy(model, loader, model.num_classes)
    print(json.dumps(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowkit`` command; returns the exit status.

    Expected problems (a missing file, a bad config, diverged training, a run folder in use, any
    ``OSError`` such as a full disk) print one line on stderr and return ``1``; only bugs show a
    traceback.
    """
    args = build_parser().parse_args(argv)
    from ..training.run_folder import RunFolderError
    from ..training.trainer import TrainingDiverged

    try:
        return {"train": _cmd_train, "sample": _cmd_sample, "eval": _cmd_eval}[args.command](args)
    except (ValueError, TrainingDiverged, RunFolderError) as e:
        print(f"flowkit {args.command}: error: {_first_line(e)}", file=sys.stderr)
        return 1
    except OSError as e:  # disk full, file too large, read-only, permissions, a file where a folder goes...
        print(f"flowkit {args.command}: error: {_os_error(e, args.command)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"flowkit {args.command}: interrupted", file=sys.stderr)
        return 130
