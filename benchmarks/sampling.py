"""Sampling speed: every inverse method against the sequential KV-cache inverse and a plain loop.

A class-conditional TarFlow is trained briefly on the 8x8 sklearn digits; every method then
inverts the *same* latents. Reported per method: speed-up over ``method="sequential"`` and over
the plain token-by-token loop of ``plain_loop.py`` (ratios of interleaved best-of timings), the
largest pixel difference to sequential, and the transformer passes per block (sampling order).

    python benchmarks/sampling.py [--patch-size 1] [--steps 300] [--runs 1:0 16:0 16:2 256:0] [--markdown FILE]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from _common import Table, best_times, digits_model, finish, parser, profile_table, setup
from plain_loop import plain_inverse

METHODS: list[tuple[str, dict[str, Any]]] = [
    ("sequential", {}),
    ("auto", {}),
    ("jacobi", {}),
    ("gs_jacobi", {}),
    ("sliding_jacobi", {}),
    ("sliding_jacobi", {"window": 4}),
]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--patch-size", type=int, default=1, help="1: 64 tokens of 1 pixel; 2: 16 tokens of 4")
    p.add_argument("--steps", type=int, default=300, help="training steps of the digits model")
    p.add_argument("--runs", nargs="+", default=["1:0", "16:0", "16:2", "256:0"], help="batch:guidance pairs")
    args = p.parse_args()
    setup(args)
    model = digits_model(args.patch_size, args.steps)
    tables = []
    for run in args.runs:
        batch, guidance = int(run.split(":")[0]), float(run.split(":")[1])
        g = torch.Generator().manual_seed(1)
        z = torch.randn(batch, *model.latent_shape, generator=g)
        y = torch.arange(batch) % 10
        opts = dict(guidance=guidance)
        table = Table(f"batch {batch}, guidance {guidance:g} ({model.latent_shape[0]} tokens per block)",
                      ["method", "vs sequential", "vs plain loop", "max abs dx", "passes per block"])
        table.header()
        names = [f"{m} {kw}" if kw else m for m, kw in METHODS]
        with torch.no_grad():
            # partial binds this iteration's z, y and options now (a closure would see later rebindings).
            runs: dict[str, Callable[[], object]] = {
                name: partial(model.inverse, z, y, method=m, **opts, **kw)
                for name, (m, kw) in zip(names, METHODS, strict=True)}
            runs["plain loop"] = partial(plain_inverse, model, z, y, guidance)
            big = batch * (2 if guidance else 1) > 64  # whole-block passes are slow there: fewer repeats
            times = best_times(runs, repeats=1 if big else args.repeats, warmup=0 if big else 1)
            reference = model.inverse(z, y, method="sequential", **opts)
            for (m, kw), name in zip(METHODS, names, strict=True):
                stats: dict[str, Any] = {}
                x = model.inverse(z, y, method=m, stats=stats, **opts, **kw)
                passes = "/".join(str(b["passes"]) for b in stats["blocks"])
                table.add(name, times["sequential"] / times[name], times["plain loop"] / times[name],
                          (x - reference).abs().max().item(), passes)
            x = plain_inverse(model, z, y, guidance)
            table.add("plain loop", times["sequential"] / times["plain loop"], 1.0,
                      (x - reference).abs().max().item(), "-")
        tables.append(table)
    profile = None
    if args.profile:  # where the time of the default sampler goes, 16 images
        z = torch.randn(16, *model.latent_shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            profile = "Profile: model.inverse(z) with the default method, batch 16\n" + profile_table(
                lambda: model.inverse(z, torch.arange(16) % 10))
    finish(args, "Sampling: inverse methods", tables,
           notes=f"Model: TarFlow 1x8x8, patch {args.patch_size}, 128 wide, 4 blocks x 2 layers, 10 classes, "
                 f"trained {args.steps} steps on sklearn digits. Speed-ups are ratios of best-of-{args.repeats} "
                 "interleaved timings (best of 1 where a batch has over 64 rows); max abs dx in pixel units "
                 "([-1, 1]) against `method=\"sequential\"`.", profile=profile)


if __name__ == "__main__":
    main()
