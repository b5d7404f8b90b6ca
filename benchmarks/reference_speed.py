"""flowkit's public ``TarFlow.log_prob`` (checks on) against a plain reference-style TarFlow, same weights.

The plain model is :mod:`flowkit.presets.tarflow_readable`, written as the reference implementation
(apple/ml-tarflow) is: plain modules, no input checks. Both get the same weights
(``TarFlow.from_ml_tarflow(plain.state_dict())``), the same batch, and a training step of
forward + backward + AdamW; the steps are timed interleaved in one process, in
``--repeats`` rounds, rotating the order; the speed is the median over rounds of the ratio of the
steps timed in that round. A ratio above 1 means flowkit is faster.

    python benchmarks/reference_speed.py --threads 1 [--batch 64] [--markdown FILE]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from flowkit import TarFlow, validating
from flowkit.presets.tarflow_readable import ReadableTarFlow

from _common import Table, finish, parser, profile_table, setup

CONFIG = dict(in_channels=3, img_size=16, patch_size=2, channels=128, num_blocks=4, layers_per_block=4,
              head_dim=64, nvp=True, num_classes=10)


def train_step(log_prob: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], params: list[torch.nn.Parameter],
               x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One AdamW step on ``-log_prob(x, y).mean()`` (the paper's optimiser settings)."""
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=1e-4)

    def step() -> None:
        loss = -log_prob(x, y).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def paired_rounds(steps: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Time every step once per round, rotating which goes first; returns the times of each.

    On a shared machine the load changes within seconds, so each round's steps are compared with
    each other (a ratio per round, then the median) rather than best times across the whole run.
    """
    names = list(steps)
    for fn in steps.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - t)
    return times


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    setup(args)
    plain = ReadableTarFlow(**CONFIG)
    with torch.no_grad():  # non-trivial blocks (fresh ones are the identity)
        for block in plain.blocks:
            block.proj_out.weight.normal_(std=0.02)
    model = TarFlow.from_ml_tarflow(plain.state_dict(), **CONFIG).train()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, 16, 16, generator=g) * 2 - 1
    y = torch.randint(-1, 10, (args.batch,), generator=g)
    with torch.no_grad():
        gap = (model.log_prob(x, y) - plain.log_prob(x, y)).abs().max().item()
    print(f"same function: max |log_prob difference| = {gap:.2e} nats")

    def unchecked(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with validating(False):
            return model.log_prob(x, y)

    steps = {
        "plain": train_step(plain.log_prob, list(plain.parameters()), x, y),
        "flowkit": train_step(model.log_prob, list(model.parameters()), x, y),
        "flowkit, checks off": train_step(unchecked, list(model.parameters()), x, y),
    }
    rounds = paired_rounds(steps, args.repeats)
    table = Table(f"Training step, 3x16x16, patch 2, width 128, 4x4 blocks, batch {args.batch}",
                  ["variant", "best ms / step", "median speed vs plain", "range over rounds"])
    table.header()
    for name, times in rounds.items():
        ratios = sorted(p / t for p, t in zip(rounds["plain"], times, strict=True))
        table.add(name, min(times) * 1e3, statistics.median(ratios), f"{ratios[0]:.2f}-{ratios[-1]:.2f}")
    profile = profile_table(steps["flowkit"]) if args.profile else None
    finish(args, "flowkit against a plain reference-style TarFlow", [table],
           notes=f"Same weights; max |log_prob difference| {gap:.2e} nats.", profile=profile)


if __name__ == "__main__":
    main()
