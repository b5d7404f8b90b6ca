"""Digits held-out bits/dim along training, step-matched: where each vector flow starts to overfit.

The companion of ``digits_likelihood.py`` (same data, split, dequantization, optimizer, batch and
contenders), with the clock taken out: every model trains for the same number of steps (default
6000, about what the NSFs make in 300 s on one thread), Adam 1e-3 with a cosine decay over those
steps, and is scored at evenly spaced checkpoints on the held-out images and on 180 training images
(dequantized once, scored in eval mode). A held-out score that rises while the training score keeps
falling is overfitting: 1,617 training images are few for a 1.4M-parameter NSF.

    OMP_NUM_THREADS=1 python benchmarks/digits_curves.py --threads 1 [--steps 6000] [--models ...]
"""

from __future__ import annotations

import math

import torch

from flowkit.data import dequantize
from flowkit.metrics import bits_per_dim

from _common import Table, finish, parser, setup
from digits_likelihood import DIMS, contenders, digits_split, train_step


def main(argv: list[str] | None = None) -> None:
    """Train each contender for the same steps and print held-out / training bits/dim at each checkpoint."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--checkpoints", type=int, default=4, help="evenly spaced evaluations (default 4)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", default=["flowkit NSF", "flowkit NSF dropout", "zuko NSF"])
    args = p.parse_args(argv)
    setup(args)
    x_train, y_train, x_eval, y_val = digits_split(args.seed)
    x_seen = dequantize(x_train[:180], "uniform", generator=torch.Generator().manual_seed(args.seed + 2))
    at = [round(args.steps * (k + 1) / args.checkpoints) for k in range(args.checkpoints)]
    table = Table(f"Digits 8x8, bits/dim held-out (training) after each number of steps, cosine over {args.steps}",
                  ["model", *(f"step {s}" for s in at)])
    table.header()
    builders = contenders(args.hidden, args.dropout)
    for name in args.models:
        torch.manual_seed(args.seed)
        c = builders[name]()
        opt = torch.optim.Adam(c.model.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / args.steps)))
        g = torch.Generator().manual_seed(args.seed)
        cells = []
        for step in range(1, args.steps + 1):
            train_step(c, opt, x_train, y_train, args.batch, g)
            sched.step()
            if step in at:
                c.model.eval()
                with torch.no_grad():
                    held = bits_per_dim(c.log_prob(x_eval, y_val), DIMS).mean().item()
                    seen = bits_per_dim(c.log_prob(x_seen, y_train[:180]), DIMS).mean().item()
                c.model.train()
                cells.append(f"{held:.3f} ({seen:.2f})")
        table.add(name, *cells)
    finish(args, "Digits likelihood along training, step-matched", [table],
           notes=f"Adam 1e-3, cosine over {args.steps} steps, batch {args.batch}, gradient clip 1, seed {args.seed}, "
                 f"threads {torch.get_num_threads()}; in parentheses: 180 training images, dequantized once.")


if __name__ == "__main__":
    main()
