"""flowkit's vector flows against zuko on 2-D densities: held-out NLL, training speed, user lines.

Protocol (issue #12): moons, 8 Gaussians and checkerboard (:func:`flowkit.data.toy_2d`), about 22k
parameters per model, Adam (learning rate 1e-3), 3000 steps of batch 256, held-out NLL in nats on
10k test points, one thread. Every model of a data set sees the same training pool, the same
batches in the same order and the same test points. Training steps/s is measured interleaved:
the models of a data set take turns in chunks of 100 steps, so a burst of load from other jobs on
a shared machine hits every contender alike.

User lines: what a user writes for the model (build, loss, sample), the training loop aside:

    flowkit:  flow = NSF(2);              loss = -flow.log_prob(x).mean();   flow.sample(n)
    zuko:     flow = zuko.flows.NSF(2);   loss = -flow().log_prob(x).mean(); flow().sample((n,))

Needs the ``bench`` extra (``pip install -e '.[bench]'``, which brings zuko).

    python benchmarks/toolkit_2d.py --threads 1 [--steps 3000] [--markdown toolkit_2d.md]
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import zuko
from torch import Tensor, nn

from flowkit import MAF, NSF
from flowkit.data import TOY_2D, toy_2d

from _common import Table, finish, parser, setup

CHUNK = 100


def contenders() -> dict[str, tuple[Callable[[], nn.Module], Callable[[nn.Module, Tensor], Tensor]]]:
    """Name -> (build, log_prob). Both NSFs: 3 layers, MADE (64, 64), 8 bins; both MAFs: 5 layers."""
    def zuko_log_prob(m: nn.Module, x: Tensor) -> Tensor:
        return m().log_prob(x)

    def flowkit_log_prob(m: nn.Module, x: Tensor) -> Tensor:
        return m.log_prob(x)

    return {
        "zuko NSF": (lambda: zuko.flows.NSF(2, transforms=3, hidden_features=(64, 64)), zuko_log_prob),
        "flowkit NSF": (lambda: NSF(2, transforms=3, hidden=(64, 64)), flowkit_log_prob),
        "flowkit NSF unbounded": (lambda: NSF(2, transforms=3, hidden=(64, 64), logit_bound=None), flowkit_log_prob),
        "zuko MAF": (lambda: zuko.flows.MAF(2, transforms=5, hidden_features=(64, 64)), zuko_log_prob),
        "flowkit MAF": (lambda: MAF(2, transforms=5, hidden=(64, 64)), flowkit_log_prob),
    }


def run_dataset(name: str, steps: int, batch: int, seed: int, labels: list[str]) -> dict[str, tuple[int, float, float]]:
    """Train the contenders ``labels`` on one data set; ``{model: (parameters, test NLL, steps/s)}``."""
    chosen = {label: spec for label, spec in contenders().items() if label in labels}
    train, test = toy_2d(name, 100_000, seed=seed), toy_2d(name, 10_000, seed=seed + 1)
    g = torch.Generator().manual_seed(seed)
    batches = torch.randint(len(train), (steps, batch), generator=g)
    models, opts, elapsed = {}, {}, {}
    for label, (build, _) in chosen.items():
        torch.manual_seed(seed)
        models[label] = build()
        opts[label] = torch.optim.Adam(models[label].parameters(), lr=1e-3)
        elapsed[label] = 0.0
    for start in range(0, steps, CHUNK):
        for label, (_, log_prob) in chosen.items():
            model, opt = models[label], opts[label]
            t = time.perf_counter()
            for idx in batches[start:start + CHUNK]:
                loss = -log_prob(model, train[idx]).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            elapsed[label] += time.perf_counter() - t
    results = {}
    for label, (_, log_prob) in chosen.items():
        with torch.no_grad():
            nll = -log_prob(models[label], test).mean().item()
        results[label] = (sum(p.numel() for p in models[label].parameters()), nll, steps / elapsed[label])
    return results


def main(argv: list[str] | None = None) -> None:
    """Run every data set and print (and optionally write) the table."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", choices=list(contenders()),
                   default=["zuko NSF", "flowkit NSF", "zuko MAF", "flowkit MAF"],
                   help="the contenders (default: both NSFs and both MAFs; 'flowkit NSF unbounded' is the NSF with "
                        "0.2.0's unbounded spline logits)")
    args = p.parse_args(argv)
    setup(args)
    lines = {"zuko NSF": 3, "flowkit NSF": 3, "flowkit NSF unbounded": 3, "zuko MAF": 3, "flowkit MAF": 3}
    per_data = {name: run_dataset(name, args.steps, args.batch, args.seed, args.models) for name in TOY_2D}
    table = Table(f"Held-out NLL (nats, 10k points) after {args.steps} steps, training steps/s (one process)",
                  ["model", "parameters", *(f"NLL {n}" for n in TOY_2D), *(f"steps/s {n}" for n in TOY_2D),
                   "user lines"])
    table.header()
    for label in args.models:
        table.add(label, per_data[TOY_2D[0]][label][0], *(f"{per_data[n][label][1]:.3f}" for n in TOY_2D),
                  *(per_data[n][label][2] for n in TOY_2D), lines[label])
    finish(args, "flowkit vs zuko on 2-D densities", [table],
           notes=f"Adam 1e-3, batch {args.batch}, {args.steps} steps, threads {torch.get_num_threads()}, "
                 f"seed {args.seed}; steps/s interleaved in chunks of {CHUNK} steps.")


if __name__ == "__main__":
    main()
