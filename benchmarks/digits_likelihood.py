"""Digits likelihood at equal wall-clock: spline vs affine TarFlow, flowkit's vector flows vs zuko's.

Protocol (issue #12): scikit-learn's 8x8 digits through flowkit's data code (8-bit pixels on
[-1, 1]), the same 90/10 train/held-out split (``train_val_split``, seed 0), uniform
dequantization (a fresh draw per training batch; one fixed draw for evaluation, the same for every
model), class-conditional models. Each model trains for the same wall-clock budget (default 300 s,
the issue's "about 5 minutes") with Adam (learning rate 1e-3, cosine decay over the budget), batch
128, gradient clipping at 1.
The models take turns in slices of a few seconds, so a burst of load from other jobs on a shared
machine hits every contender alike. Reported: held-out bits/dim (uniform dequantization, see
:func:`flowkit.metrics.bits_per_dim`) and the Bayes classifier's held-out accuracy
(:math:`\\arg\\max_y \\log p(x \\mid y)` on the same dequantized images).

Contenders:

- ``TarFlow affine``: the ``digits`` preset's shape (patch 2, 64 wide, 4 blocks of 2 layers, head 32);
- ``TarFlow spline``: the same with ``map="spline"`` (8 bins);
- ``flowkit NSF`` / ``flowkit MAF``: :class:`flowkit.NSF` / :class:`flowkit.MAF` on 64-D vectors with
  label context;
- ``flowkit NSF dropout``: the same NSF with dropout on the MADEs' hidden units (``--dropout``,
  default 0.2): 1,617 training images are few for 1.4M parameters, and zuko's MADE has no dropout;
- ``zuko NSF`` / ``zuko MAF``: zuko's, same sizes, with one-hot context vectors.

Needs the ``bench`` extra (zuko). Pin one thread for a fair comparison:

    OMP_NUM_THREADS=1 python benchmarks/digits_likelihood.py --threads 1 [--seconds 300] [--markdown out.md]
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import zuko
from torch import Tensor, nn

from flowkit import MAF, NSF, TarFlow
from flowkit.data import dequantize, load_dataset, train_val_split
from flowkit.metrics import bits_per_dim

from _common import Table, finish, parser, setup

NUM_CLASSES, DIMS, SLICE_S = 10, 64, 5.0


@dataclass
class Contender:
    """A model with its ``log_prob(x, y)`` on images ``(B, 1, 8, 8)`` and labels ``(B,)``."""

    model: nn.Module
    log_prob: Callable[[Tensor, Tensor], Tensor]


def _flowkit_images(model: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    return lambda x, y: model.log_prob(x, context=y)


def _flowkit_vectors(model: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    return lambda x, y: model.log_prob(x.flatten(1), context=y)


def _zuko_vectors(model: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    eye = torch.eye(NUM_CLASSES)
    return lambda x, y: model(eye[y]).log_prob(x.flatten(1))


def contenders(hidden: int, dropout: float) -> dict[str, Callable[[], Contender]]:
    """Name -> builder. NSFs: 3 transforms, 8 bins; MAFs: 5 transforms; MADE hidden (hidden, hidden)."""
    tarflow = dict(in_channels=1, img_size=8, patch_size=2, channels=64, num_blocks=4, layers_per_block=2,
                   head_dim=32, num_classes=NUM_CLASSES)
    h = (hidden, hidden)

    def build(make: Callable[[], nn.Module], wrap: Callable[[nn.Module], Callable[[Tensor, Tensor], Tensor]]
              ) -> Callable[[], Contender]:
        def contender() -> Contender:
            model = make()
            return Contender(model, wrap(model))
        return contender

    return {
        "TarFlow affine": build(lambda: TarFlow(**tarflow), _flowkit_images),
        "TarFlow spline": build(lambda: TarFlow(**tarflow, map="spline", spline_bins=8), _flowkit_images),
        "flowkit NSF": build(lambda: NSF(DIMS, transforms=3, hidden=h, num_classes=NUM_CLASSES), _flowkit_vectors),
        "flowkit NSF dropout": build(lambda: NSF(DIMS, transforms=3, hidden=h, num_classes=NUM_CLASSES,
                                                 dropout=dropout), _flowkit_vectors),
        "flowkit MAF": build(lambda: MAF(DIMS, transforms=5, hidden=h, num_classes=NUM_CLASSES), _flowkit_vectors),
        "zuko NSF": build(lambda: zuko.flows.NSF(DIMS, NUM_CLASSES, transforms=3, hidden_features=h), _zuko_vectors),
        "zuko MAF": build(lambda: zuko.flows.MAF(DIMS, NUM_CLASSES, transforms=5, hidden_features=h), _zuko_vectors),
    }


def digits_split(seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Training images and labels (pixels on [-1, 1]), held-out images dequantized once (seed + 1) and labels."""
    data = load_dataset("digits")
    train_set, val_set = train_val_split(data, 0.1, seed=0)
    train_idx, val_idx = torch.as_tensor(train_set.indices), torch.as_tensor(val_set.indices)
    x_val = data.images[val_idx].float() / 127.5 - 1
    x_eval = dequantize(x_val, "uniform", generator=torch.Generator().manual_seed(seed + 1))
    return data.images[train_idx].float() / 127.5 - 1, data.labels[train_idx], x_eval, data.labels[val_idx]


def train_step(c: Contender, opt: torch.optim.Optimizer, x_train: Tensor, y_train: Tensor, batch: int,
               g: torch.Generator) -> None:
    """One step on a random batch, freshly dequantized: nats/dim loss, gradient clip 1, the optimizer's step."""
    idx = torch.randint(len(x_train), (batch,), generator=g)
    loss = -c.log_prob(dequantize(x_train[idx], "uniform", generator=g), y_train[idx]).mean() / DIMS
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(c.model.parameters(), 1.0)
    opt.step()


def evaluate(c: Contender, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Held-out bits/dim and Bayes accuracy on dequantized images ``x`` with labels ``y``."""
    c.model.eval()
    with torch.no_grad():
        scores = torch.stack([c.log_prob(x, torch.full_like(y, k)) for k in range(NUM_CLASSES)], dim=1)
        bpd = bits_per_dim(scores.gather(1, y.unsqueeze(1)).squeeze(1), DIMS).mean().item()
        acc = (scores.argmax(1) == y).float().mean().item()
    c.model.train()
    return bpd, acc


def main(argv: list[str] | None = None) -> None:
    """Train every contender for the same wall-clock budget, then print (and optionally write) the table."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=300.0, help="training wall-clock per model (default 300)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256, help="MADE hidden width of the vector flows (default 256)")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout of 'flowkit NSF dropout' (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", default=None, help="a subset of the contenders (default: all)")
    args = p.parse_args(argv)
    setup(args)
    load_start = os.getloadavg()
    x_train, y_train, x_eval, y_val = digits_split(args.seed)

    builders = contenders(args.hidden, args.dropout)
    names = args.models or list(builders)
    models, opts, used, steps = {}, {}, {}, {}
    for name in names:
        torch.manual_seed(args.seed)
        models[name] = builders[name]()
        opts[name] = torch.optim.Adam(models[name].model.parameters(), lr=1e-3)
        used[name], steps[name] = 0.0, 0
    g = torch.Generator().manual_seed(args.seed)
    while any(used[n] < args.seconds for n in names):
        for name in names:
            c, opt = models[name], opts[name]
            start = time.perf_counter()
            stop = min(start + SLICE_S, start + args.seconds - used[name])
            while time.perf_counter() < stop:
                for group in opt.param_groups:  # cosine decay over the model's own budget
                    group["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * min(used[name] / args.seconds, 1.0)))
                train_step(c, opt, x_train, y_train, args.batch, g)
                steps[name] += 1
                used[name] += time.perf_counter() - start
                start = time.perf_counter()
        print(f"  {', '.join(f'{n}: {steps[n]} steps' for n in names)}", flush=True)
    load_end = os.getloadavg()

    table = Table(f"Digits 8x8, class-conditional, {args.seconds:.0f} s of training each (one process)",
                  ["model", "parameters", "steps", "held-out bits/dim", "Bayes accuracy"])
    table.header()
    for name in names:
        bpd, acc = evaluate(models[name], x_eval, y_val)
        table.add(name, sum(p.numel() for p in models[name].model.parameters()), steps[name], f"{bpd:.3f}",
                  f"{100 * acc:.1f}%")
    finish(args, "Digits likelihood at equal wall-clock", [table],
           notes=f"Adam 1e-3 with cosine decay over the budget, batch {args.batch}, gradient clip 1, "
                 f"threads {torch.get_num_threads()}, seed {args.seed}; {len(x_train)} training and "
                 f"{len(y_val)} held-out images; slices of {SLICE_S:.0f} s round-robin. Load average "
                 f"(1 min) {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end.")


if __name__ == "__main__":
    main()
