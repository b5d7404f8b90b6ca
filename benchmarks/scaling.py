"""How cost grows with sequence length and batch size (training, sequential sampling, one parallel pass).

For a TarFlow on 3x32x32 images (128 wide, 2 blocks x 2 layers), the patch size sets the number of
tokens ``N``. Reported, as ratios to the smallest setting measured interleaved in one process:
training (forward + backward) time per image, sequential sampling time per image, and the cost
``r(T)`` of one cached parallel pass over ``T`` tokens relative to a single-token step, which
decides whether Jacobi-type samplers can pay off (see ``flowkit.sampling.jacobi``).

    python benchmarks/scaling.py [--markdown FILE]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from flowkit import TarFlow, validating
from flowkit.sampling.guidance import Guidance
from flowkit.testing import randomize_parameters

from _common import Table, best_times, finish, parser, setup


def model_for(patch: int) -> TarFlow:
    torch.manual_seed(0)
    return randomize_parameters(TarFlow(3, 32, patch, 128, 2, 2), std=0.02).eval()


def train_and_sample(model: TarFlow, x: torch.Tensor, z: torch.Tensor) -> tuple[Callable[[], None], Callable[[], None]]:
    """Timed closures: one forward + backward on ``x``, one sequential inverse of ``z``."""
    def train() -> None:
        model.zero_grad(set_to_none=True)
        (-model.log_prob(x).mean()).backward()

    def sample() -> None:
        with torch.no_grad():
            model.inverse(z, method="sequential")

    return train, sample


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--patches", type=int, nargs="+", default=[8, 4, 2], help="N = (32 / patch)^2 tokens")
    args = p.parse_args()
    setup(args)
    tables = []

    seq = Table("Cost per image vs tokens N (batch 16), relative to the smallest N",
                ["N", "training", "sampling (sequential)", "sampling / training"])
    runs = {}
    for patch in args.patches:
        model, x = model_for(patch), torch.rand(16, 3, 32, 32) * 2 - 1
        z = torch.randn(16, *model.latent_shape)
        runs[f"train {patch}"], runs[f"sample {patch}"] = train_and_sample(model, x, z)
    with validating(False):
        t = best_times(runs, repeats=args.repeats)
    seq.header()
    first = args.patches[0]
    for patch in args.patches:
        n = (32 // patch) ** 2
        seq.add(n, t[f"train {patch}"] / t[f"train {first}"], t[f"sample {patch}"] / t[f"sample {first}"],
                t[f"sample {patch}"] / t[f"train {patch}"])
    tables.append(seq)

    patch = 4
    model = model_for(patch)
    bat = Table(f"Cost per image vs batch (N = {(32 // patch) ** 2}), relative to batch {args.batches[0]}",
                ["batch", "training", "sampling (sequential)"])
    runs = {}
    for b in args.batches:
        x, z = torch.rand(b, 3, 32, 32) * 2 - 1, torch.randn(b, *model.latent_shape)
        runs[f"train {b}"], runs[f"sample {b}"] = train_and_sample(model, x, z)
    with validating(False):
        t = best_times(runs, repeats=args.repeats)
    bat.header()
    b0 = args.batches[0]
    for b in args.batches:
        bat.add(b, (t[f"train {b}"] / b) / (t[f"train {b0}"] / b0), (t[f"sample {b}"] / b) / (t[f"sample {b0}"] / b0))
    tables.append(bat)

    block = model.transforms[0]
    n = block.seq_len
    widths = [w for w in (1, 2, 4, 8, 16, 32, n - 1) if w < n]
    passes = Table(f"Cost r(T) of one cached pass over T tokens / a one-token step (N = {n}, 128 wide, 2 layers)",
                   ["batch"] + [f"T={w}" for w in widths])
    passes.header()
    for b in args.batches:
        z = torch.randn(b, n, block.dim)
        with torch.no_grad():
            update = block._update_fn(z, None, Guidance(), cached=True)
            x = torch.randn(b, n, block.dim)
            t = best_times({w: partial(update, x[:, :w], 0) for w in widths}, repeats=args.repeats * 4)
        passes.add(b, *(t[w] / t[1] for w in widths))
    tables.append(passes)
    finish(args, "Scaling with sequence length and batch size", tables,
           notes="Ratios of interleaved best-of timings in one process. A Jacobi-type sampler evaluates every "
                 "token about m >= 2 times, so it can beat the sequential path only where r(T) < T / m.")


if __name__ == "__main__":
    main()
