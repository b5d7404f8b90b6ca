"""``flowkit train | sample | eval``: argument parsing, start-up choices and one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import re
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from .._validation import first_line

__all__ = ["main", "build_parser"]

_DESCRIPTION = """\
Normalizing flows from the command line. Start with `flowkit train` (no arguments): it trains a small
class-conditional TarFlow on the bundled 8x8 digits in a few minutes on a CPU and writes runs/digits/.
Then `flowkit sample runs/digits/checkpoint.pt` draws images from it and `flowkit eval
runs/digits/checkpoint.pt` reports held-out bits/dim and Bayes accuracy. `flowkit COMMAND --help`
lists each command's options."""

# Which help group each TrainConfig field is listed in; a field not named here goes to "model" when a
# base class of TrainConfig (the model's own config, TarFlowConfig) declares it, else to "run".
_GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("data", "data_root", "val_fraction", "noise", "sigma", "label_drop"),
    "optimisation": ("batch_size", "lr", "min_lr", "warmup_steps", "weight_decay", "betas", "max_steps", "epochs",
                     "ema_decay", "grad_clip", "precision", "compile"),
    "sampling": ("sample_every", "sample_guidance", "denoise"),
}
_GROUP_TITLES = {
    "model": "model (defaults: the digits preset; --config changes them)",
    "data": "data",
    "optimisation": "optimisation",
    "run": "run",
    "sampling": "sampling",
}


def _help_text(doc: str, default: Any) -> str:
    """One help line from a docstring entry: reST markup removed, ``%`` escaped, the default appended."""
    text = re.sub(r"``(.*?)``", r"\1", doc).replace(":func:", "").replace(":class:", "")
    text = re.sub(r"`~?(?:[\w.]+\.)?([\w]+)`", r"\1", text)
    if isinstance(default, tuple):
        shown = ",".join(map(str, default))
    elif default is None:
        shown = "none"
    else:
        shown = str(default).lower() if isinstance(default, bool) else str(default)
    return f"{text} [default: {shown}]".replace("%", "%%")


def _metavar(tp: Any) -> str | None:
    if get_origin(tp) is Literal:
        return "{" + ",".join(get_args(tp)) + "}"
    if get_origin(tp) is tuple:
        return "B1,B2"
    inner = [a for a in get_args(tp) if a is not type(None)]
    base = inner[0] if inner else tp
    return {int: "N", float: "X", str: "TEXT", bool: "BOOL"}.get(base)


def _groups(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    return {key: parser.add_argument_group(title) for key, title in _GROUP_TITLES.items()}


def _config_flags(groups: dict[str, argparse._ArgumentGroup]) -> None:
    """Add one ``--field-name VALUE`` per :class:`~flowkit.training.TrainConfig` field to its help group.

    The help is the field's docstring entry with its default; values are coerced and validated by
    :func:`~flowkit.training.apply_overrides`; booleans also work as bare flags.
    """
    from ..training import TrainConfig
    from ..training.config import attribute_docs

    docs = attribute_docs(TrainConfig)
    defaults = TrainConfig()
    hints = typing.get_type_hints(TrainConfig)
    where = {name: group for group, names in _GROUPS.items() for name in names}
    inherited = {name for base in TrainConfig.__mro__[1:] for name in vars(base).get("__annotations__", {})}
    for f in dataclasses.fields(TrainConfig):
        group = groups[where.get(f.name, "model" if f.name in inherited else "run")]
        flag = "--" + f.name.replace("_", "-")
        text = _help_text(docs.get(f.name, f.name.replace("_", " ")), getattr(defaults, f.name))
        tp = hints[f.name]
        if tp is bool:
            group.add_argument(flag, dest=f"cfg_{f.name}", nargs="?", const="true", metavar="BOOL", help=text)
        else:
            metavar = "{auto,cpu,cuda,cuda:N,mps}" if f.name == "device" else _metavar(tp)
            group.add_argument(flag, dest=f"cfg_{f.name}", metavar=metavar, help=text)


def build_parser() -> argparse.ArgumentParser:
    """The ``flowkit`` argument parser."""
    from ..threads import add_threads_argument

    parser = argparse.ArgumentParser(prog="flowkit", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands (run `flowkit train` first)")

    train = sub.add_parser("train", help="train a TarFlow and write a run folder (default: class-conditional, "
                                         "on the bundled 8x8 digits, a few minutes on a CPU)",
                           description="Train a TarFlow. Without options: the digits preset, into runs/digits/. "
                                       "Every option below overrides one config field.")
    tg = _groups(train)
    tg["run"].add_argument("--config", default=None, metavar="NAME|FILE",
                           help="a preset (digits, mnist, imagenet64, imagenet128, afhq256) or a TOML file "
                                "[default: digits]")
    tg["run"].add_argument("--resume", action="store_true",
                           help="continue the run in --out from its checkpoint [default: off]")
    tg["run"].add_argument("--overwrite", action="store_true",
                           help="replace the run that --out holds (its files are kept until the new run's first "
                                "checkpoint) [default: off: a folder holding a run is refused]")
    tg["run"].add_argument("--no-progress", action="store_true", help="no progress bar [default: show it]")
    tg["run"].add_argument("--json", action="store_true",
                           help="print the final metrics as one JSON line instead of the summary [default: off]")
    add_threads_argument(tg["run"])
    _config_flags(tg)

    def model_source(p: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
        p.add_argument("checkpoint", help="checkpoint.pt of a flowkit run, or a reference ml-tarflow checkpoint")
        g = {"model": p.add_argument_group("model"), "run": p.add_argument_group("run")}
        g["model"].add_argument("--ml-tarflow", default=None, nargs="?", const="", metavar="K=V,...",
                                help="the checkpoint is a reference ml-tarflow one with these constructor arguments, "
                                     "e.g. in_channels=3,img_size=256,patch_size=8,channels=768,num_blocks=8,"
                                     "layers_per_block=8,nvp=true,num_classes=3 (none needed for a file that "
                                     "stores its config) [default: a flowkit checkpoint]")
        g["model"].add_argument("--no-ema", action="store_true",
                                help="use the raw weights instead of the EMA [default: the EMA weights]")
        g["run"].add_argument("--device", default="auto", metavar="{auto,cpu,cuda,cuda:N,mps}",
                              help="where to run [default: auto = a CUDA GPU if available, else the CPU]")
        g["run"].add_argument("--seed", type=int, default=0, metavar="N", help="random seed [default: 0]")
        add_threads_argument(g["run"])
        return g

    sample = sub.add_parser("sample", help="draw samples from a checkpoint into a PNG grid or .npz",
                            description="Draw samples from a trained model into a PNG grid or an .npz file.")
    sg = model_source(sample)
    sg["run"].add_argument("--num", type=int, default=16, metavar="N", help="number of samples [default: 16]")
    sg["run"].add_argument("--out", default=None, metavar="FILE",
                           help="output .png (grid) or .npz (arrays) [default: a new samples_N.png next to the "
                                "checkpoint; an existing file is never replaced without --overwrite]")
    sg["run"].add_argument("--overwrite", action="store_true", help="replace --out if it exists [default: off]")
    sg["run"].add_argument("--nrow", type=int, default=None, metavar="N",
                           help="images per grid row [default: samples per class, or sqrt(--num)]")
    smp = sample.add_argument_group("sampling")
    smp.add_argument("--classes", default=None, metavar="I,J,...",
                     help="comma-separated class labels, cycled over the samples [default: all classes in turn]")
    smp.add_argument("--guidance", type=float, default=None, metavar="W",
                     help="classifier-free guidance weight w, 0 = off [default: the run's sample_guidance for a "
                          "class-conditional model, else 0]")
    smp.add_argument("--guide-what", default="ab", choices=["a", "b", "ab"],
                     help="guide the scales (a), the shifts (b) or both [default: ab]")
    smp.add_argument("--attn-temp", type=float, default=1.0, metavar="T",
                     help="attention temperature of the guidance's unconditional pass; the only effect of "
                          "guidance on an unconditional model [default: 1.0]")
    smp.add_argument("--annealed", action="store_true",
                     help="guidance weight rising linearly over the tokens [default: constant]")
    smp.add_argument("--temperature", type=float, default=1.0, metavar="T",
                     help="prior temperature (std of the latent) [default: 1.0]")
    smp.add_argument("--method", default=None, metavar="NAME",
                     help="inverse method: sequential, jacobi, gs_jacobi or sliding_jacobi [default: auto]")
    smp.add_argument("--denoise", dest="denoise", action="store_true", default=None,
                     help="one Tweedie denoising step [default: when the run trained with Gaussian noise]")
    smp.add_argument("--no-denoise", dest="denoise", action="store_false", help="no denoising step")
    smp.add_argument("--sigma", type=float, default=None, metavar="S",
                     help="noise std on [-1, 1] for denoising [default: the run's sigma]")

    ev = sub.add_parser("eval", help="held-out bits/dim (uniform dequantization) and Bayes accuracy",
                        description="Held-out bits per dimension and, for a class-conditional model, Bayes "
                                    "accuracy (argmax_y log p(x|y)).")
    eg = model_source(ev)
    dg = ev.add_argument_group("data")
    dg.add_argument("--data", default=None, metavar="SPEC",
                    help="data spec (digits, mnist-idx:FOLDER, a folder, a .npz) [default: the run's held-out split]")
    dg.add_argument("--data-root", default=None, metavar="DIR",
                    help="folder of downloaded torchvision data [default: the run's]")
    eg["run"].add_argument("--batch-size", type=int, default=256, metavar="N",
                           help="images per evaluation batch [default: 256]")
    eg["run"].add_argument("--json", action="store_true",
                           help="print the result as one JSON line instead of the summary [default: off]")
    return parser


def _note(command: str, text: str) -> None:
    print(f"flowkit {command}: {text}", file=sys.stderr, flush=True)


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


def _os_error(e: OSError, command: str) -> str:
    """One line naming the file and the cause (``[Errno 28] No space left on device: 'run/ckpt.pt'``)."""
    if e.filename is None or e.strerror is None:  # e.g. FileNotFoundError("checkpoint not found: ...")
        return first_line(e)
    where = repr(str(e.filename)) + (f" -> {str(e.filename2)!r}" if e.filename2 is not None else "")
    hint = ""
    if command == "train" and e.errno in _WRITE_ERRORS - {errno.EROFS}:
        hint = "; the last checkpoint is intact: free space, then continue with --resume"
    return f"cannot write {where}: {e.strerror}{hint}" if e.errno in _WRITE_ERRORS else f"{where}: {e.strerror}"


_WRITE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS}


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


def _ml_tarflow_args(text: str) -> dict[str, Any]:
    """Parse and check ``--ml-tarflow K=V,...``: known keys, integer sizes, a boolean ``nvp``."""
    from ..presets.ml_tarflow import REFERENCE_ARGS
    from ..presets.tarflow import TarFlowConfig
    from ..training.loading import parse_key_values

    hints = typing.get_type_hints(TarFlowConfig)  # the reference's arguments are TarFlowConfig fields (int, bool)
    values = parse_key_values(text)
    for key, value in values.items():
        if key not in REFERENCE_ARGS:
            raise ValueError(f"--ml-tarflow: unknown key {key!r}; expected some of {', '.join(REFERENCE_ARGS)}")
        tp = hints[key]
        if type(value) is not tp:
            raise ValueError(f"--ml-tarflow: {key} expects {'true or false' if tp is bool else 'an integer'}, "
                             f"got {value!r}")
    return values


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The model (on ``--device``, in eval mode), its training config (or ``None``) and the device."""
    from ..training.config import DEVICE_PATTERN
    from ..training.distributed import init_distributed
    from ..training.loading import load_trained

    if DEVICE_PATTERN.fullmatch(args.device) is None:
        raise ValueError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {args.device!r}")
    if args.seed < 0:  # as `flowkit train` (its config's seed): one rule for every seed the user gives
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    ml = _ml_tarflow_args(args.ml_tarflow) if args.ml_tarflow is not None else None
    path = Path(args.checkpoint).expanduser()
    if path.is_file():  # torch.save writes a zip archive (a pickle before PyTorch 1.6): refuse anything else early
        with path.open("rb") as f:
            head = f.read(4)
        if not (head.startswith(b"PK") or head[:1] == b"\x80"):
            raise ValueError(f"{str(path)!r} is not a PyTorch checkpoint (neither a torch.save zip archive "
                             "nor a pickle)")
    device = init_distributed(args.device).device
    try:
        model, cfg = load_trained(path, ema=not args.no_ema, ml_tarflow=ml)
    except TypeError as e:  # the reference constructor's arguments came from --ml-tarflow: the user's words
        if ml is None:
            raise
        raise ValueError(f"--ml-tarflow: {first_line(e)}") from e
    return model.to(device), cfg, device


def _parse_classes(text: str, num_classes: int) -> list[int]:
    if not text.strip():
        raise ValueError("--classes expects comma-separated integer labels, got an empty string")
    try:
        classes = [int(c) for c in text.split(",")]
    except ValueError:
        raise ValueError(f"--classes expects comma-separated integer labels, got {text!r}") from None
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"--classes: label {bad[0]} is outside [0, {num_classes}) of this {num_classes}-class model")
    return classes


def _sample_path(args: argparse.Namespace) -> Path:
    """``--out``, refused if it exists without ``--overwrite``; by default a new file next to the checkpoint."""
    if args.out is None:
        folder = Path(args.checkpoint).expanduser().resolve().parent
        return next(p for i in range(1, 10**6) if not (p := folder / f"samples_{i}.png").exists())
    out = Path(args.out).expanduser()
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; give a file name ending in .png or .npz")
    if out.suffix.lower() not in (".png", ".npz"):
        raise ValueError(f"--out must end in .png or .npz, got {out.name!r}")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {str(out)!r} exists; pass --overwrite to replace it, or another --out")
    return out


def _cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .._io import atomic_path
    from ..data.images import save_grid
    from ..sampling import denoise
    from ..threads import apply_thread_policy

    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    if args.nrow is not None and args.nrow < 1:
        raise ValueError(f"--nrow must be >= 1, got {args.nrow}")
    out = _sample_path(args)
    model, cfg, device = _load(args)
    y = None
    if model.num_classes:
        classes = (_parse_classes(args.classes, model.num_classes) if args.classes is not None
                   else list(range(model.num_classes)))
        y = torch.tensor(classes).repeat(-(-args.num // len(classes)))[: args.num]
        y = (y.sort(stable=True).values if not args.classes else y).to(device)
    elif args.classes is not None:
        raise ValueError("--classes given, but the model is unconditional (trained without labels)")
    guidance = args.guidance if args.guidance is not None else (cfg.sample_guidance if cfg and y is not None else 0.0)
    if y is None and args.guidance:
        if args.attn_temp == 1.0:
            raise ValueError("--guidance on an unconditional model acts only through the attention temperature, "
                             "and with --attn-temp 1 it changes nothing; pass e.g. --attn-temp 0.5, or drop --guidance")
        _note("sample", f"unconditional model: guidance {guidance} acts only through --attn-temp {args.attn_temp}")
    options: dict[str, Any] = dict(guidance=guidance, guide_what=args.guide_what, attn_temp=args.attn_temp,
                                   annealed_guidance=args.annealed)
    if args.method:
        options["method"] = args.method
    # Sequential sampling runs one token of every sample per step: `num` rows (twice that with guidance).
    apply_thread_policy(args.threads, rows=2 * args.num, width=model.config["channels"])
    g = torch.Generator(device=device).manual_seed(args.seed)
    with torch.no_grad():
        x = model.sample(args.num, context=y, temperature=args.temperature, generator=g, **options)
    do_denoise = args.denoise if args.denoise is not None else bool(cfg and cfg.noise == "gaussian" and cfg.denoise)
    if do_denoise:
        sigma = args.sigma if args.sigma is not None else (cfg.sigma if cfg else None)
        if sigma is None:
            raise ValueError("--denoise needs --sigma for a reference checkpoint")
        x = denoise(model, x, sigma, context=y)
    x = x.clamp(-1, 1).cpu()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".npz":
            np.savez(tmp, x=x.numpy(), y=(y.cpu().numpy() if y is not None else np.zeros(0)))
        else:
            nrow = args.nrow or (int(-(-args.num // model.num_classes)) if y is not None and not args.classes
                                 else max(1, int(args.num**0.5)))
            save_grid(x, tmp, nrow=nrow, scale=max(1, 64 // x.shape[-1]))
    print(f"wrote {args.num} samples to {out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from ..data import load_dataset, peek_image_shape, train_val_split
    from ..metrics import bayes_accuracy, evaluate_bpd
    from ..threads import apply_thread_policy, rows_of

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, cfg, device = _load(args)
    c, h, _ = model.event_shape
    if args.data is None and cfg is None:
        raise ValueError("--data is required for a reference checkpoint")
    apply_thread_policy(args.threads, rows=rows_of(args.batch_size, h, model.config["patch_size"]),
                        width=model.config["channels"])
    spec = args.data or cfg.data
    root = args.data_root or (cfg.data_root if cfg else None)
    native = peek_image_shape(spec, root=root)
    if native is not None and native != (c, h, h):
        _note("eval", f"converting the data's {native[0]}x{native[1]}x{native[2]} images to the model's "
                      f"{c}x{h}x{h} (channels x height x width)")
    data: Any = load_dataset(spec, h, c, root=root)
    if model.num_classes and data.num_classes is None:
        raise ValueError(f"the model is class-conditional ({model.num_classes} classes) but the data {str(spec)!r} has "
                         "no labels; give labelled data (an .npz with 'y', or a folder with one subfolder per class)")
    if model.num_classes and data.num_classes > model.num_classes:
        raise ValueError(f"the data {str(spec)!r} has {data.num_classes} classes but the model has "
                         f"{model.num_classes}; labels must lie in [0, {model.num_classes})")
    split = "all images"
    if args.data is None:  # the run's own held-out split
        _, data = train_val_split(data, cfg.val_fraction, seed=cfg.seed)
        split = f"held-out split (val_fraction {cfg.val_fraction}, seed {cfg.seed})"
    loader = DataLoader(data, batch_size=args.batch_size)
    g = torch.Generator(device=device).manual_seed(args.seed)
    result: dict[str, Any] = {"data": str(spec), "split": split, "images": len(data), "dequantization": "uniform",
                              "bpd": evaluate_bpd(model, loader, generator=g)}
    if model.num_classes:
        result["bayes_acc"] = bayes_accuracy(model, loader, model.num_classes)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"data:           {spec}, {split}: {len(data)} images")
    print(f"bits/dim:       {result['bpd']:.3f} (uniform dequantization)")
    if "bayes_acc" in result:
        print(f"Bayes accuracy: {result['bayes_acc']:.1%} (argmax_y log p(x|y) over {model.num_classes} classes)")
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
        print(f"flowkit {args.command}: error: {first_line(e)}", file=sys.stderr)
        return 1
    except OSError as e:  # disk full, file too large, read-only, permissions, a file where a folder goes...
        print(f"flowkit {args.command}: error: {_os_error(e, args.command)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"flowkit {args.command}: interrupted", file=sys.stderr)
        return 130
