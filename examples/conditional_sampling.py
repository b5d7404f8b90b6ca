"""Class-conditional sampling from a trained digits TarFlow, with and without guidance.

Give it a checkpoint written by ``flowkit train`` (``runs/digits/checkpoint.pt``), or let it train
a small model briefly. For each guidance weight it draws the same latent noise for every class,
denoises the samples with the training noise level (one Tweedie step), saves a grid (one row per
class) and checks the samples with a digits classifier: the fraction classified as the class they
were drawn for rises with guidance, at some cost in diversity.

Run ``python examples/conditional_sampling.py [--checkpoint PATH] [--guidance 0 1 3] [--annealed]``
(a few minutes when it trains), or ``--quick`` to check that it runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

import flowkit
from flowkit import TarFlow
from flowkit.data import save_grid
from flowkit.metrics.fid import FeatureExtractor
from flowkit.threads import add_threads_argument, apply_thread_policy, rows_of
from flowkit.training import apply_overrides, load_config, load_trained, train


def trained_model(checkpoint: Path | None, out: Path, quick: bool) -> tuple[TarFlow, float]:
    """The model of ``checkpoint``, or a freshly trained small digits model; with its noise level sigma."""
    if checkpoint is None:
        checkpoint = out / "run" / "checkpoint.pt"
        if not checkpoint.is_file():
            size = dict(channels=32, head_dim=32, layers_per_block=1, max_steps=5) if quick else \
                dict(channels=64, batch_size=32, max_steps=1200, warmup_steps=50, ema_decay=0.99)
            cfg = apply_overrides(load_config("digits"), {**size, "out": str(checkpoint.parent), "eval_every": 0,
                                                          "sample_every": 0})
            print(f"no --checkpoint: training a small digits model into {checkpoint.parent} ...")
            train(cfg, progress=not quick)
    model, cfg = load_trained(checkpoint)
    if not model.num_classes:
        raise SystemExit(f"{checkpoint} holds an unconditional model; class-conditional sampling needs num_classes > 0")
    sigma = cfg.sigma if cfg is not None and cfg.noise == "gaussian" else 0.0
    return model, sigma


def main(argv: Sequence[str] | None = None) -> dict[float, float]:
    """Sample every class at every guidance weight; returns ``{w: classifier agreement}``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=None, help="a flowkit train checkpoint.pt (digits)")
    p.add_argument("--guidance", type=float, nargs="+", default=[0.0, 1.0, 3.0], help="guidance weights w")
    p.add_argument("--annealed", action="store_true", help="weight growing linearly over the tokens")
    p.add_argument("--attn-temp", type=float, default=1.0, help="attention temperature of the unconditional pass")
    p.add_argument("--per-class", type=int, default=10, help="samples per class")
    p.add_argument("--out", type=Path, default=Path("runs/examples/conditional_sampling"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a tiny model trained for a few steps")
    add_threads_argument(p)
    args = p.parse_args(argv)
    apply_thread_policy(args.threads, rows=rows_of(64, 8, 2), width=64)  # the digits model's training batch
    model, sigma = trained_model(args.checkpoint, args.out, args.quick)
    classes = model.num_classes
    y = torch.arange(classes).repeat_interleave(args.per_class)  # row c of the grid is class c
    digits = model.config["img_size"] == 8 and model.config["in_channels"] == 1
    classifier = FeatureExtractor.for_dataset("digits") if digits else None  # scores 8x8 digits only
    agreement: dict[float, float] = {}
    for w in args.guidance:
        g = torch.Generator().manual_seed(args.seed)  # the same noise for every w: only guidance changes
        with torch.no_grad():
            x = model.sample(len(y), context=y, generator=g, guidance=w, annealed_guidance=args.annealed,
                             attn_temp=args.attn_temp)
        if sigma:
            x = flowkit.denoise(model, x, sigma, context=y)
        x = x.clamp(-1, 1)
        path = save_grid(x, args.out / f"samples_w{w:g}.png", nrow=args.per_class, scale=4)
        line = f"guidance w={w:g}{' (annealed)' if args.annealed else ''}: {path}"
        if classifier is not None:
            agreement[w] = float((classifier.predict(x) == y).double().mean())
            line += f"; the digits classifier agrees with the label for {agreement[w]:.0%}"
        print(line)
    return agreement


if __name__ == "__main__":
    main()
