"""``flowkit sample``: samples of a checkpoint into a PNG grid or an ``.npz`` file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .checkpoint import _load
from .messages import _note


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
