"""Splitting a fixed total depth into flow blocks ``T`` and transformer layers per block ``K``.

The paper (Zhai et al., 2025) keeps the number of transformer layers ``T * K`` fixed and finds
that balanced splits work best (``T = K``), while a single flow block (``T = 1``: one
autoregressive pass in one token order) fails outright (FID 267 on ImageNet 64). More blocks give
more passes over the sequence in alternating directions; deeper blocks give each pass a stronger
conditioner.

The total depth is the base config's ``num_blocks * layers_per_block`` (8 at the default scale:
``T`` in 1, 2, 4, 8; 8 is not a square, so "balanced" means ``T`` = 2 or 4).

Run ``python examples/ablations/depth_split.py`` (about 9 minutes from scratch on two shared CPU
cores; less when another script has already trained the shared baseline), ``--quick`` for a smoke
run, ``--scale imagenet64`` on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from flowkit.training.config import TrainConfig

from common import Variant, Verdict, by_name, direction, fmt, per_seed, run_ablation, verdict

CLAIM = "at a fixed total depth T*K, balanced splits (T = K) are best and a single block (T = 1) fails"
PAPER = "ImageNet 64, fixed total depth: T = K best; T = 1 fails (FID 267)"


def name(t: int, k: int) -> str:
    """The variant name of ``T`` blocks of ``K`` layers."""
    return f"T={t}, K={k}"


def splits(total: int) -> list[tuple[int, int]]:
    """Every ``(T, K)`` with ``T * K = total``."""
    return [(t, total // t) for t in range(1, total + 1) if total % t == 0]


#: At most this many splits: ``T = 1`` and those nearest to ``T = K`` (a 64-layer model has 7).
MAX_SPLITS = 5


def variants(base: TrainConfig) -> list[Variant]:
    """Splits of the base config's total depth, plotted against ``T``."""
    total = base.num_blocks * base.layers_per_block
    if total < 2:
        raise ValueError(f"depth_split: the base config has a total depth of {total}; at least 2 layers are needed")
    near = sorted(splits(total)[1:], key=lambda tk: abs(math.log(tk[0] / tk[1])))[:MAX_SPLITS - 1]
    return [Variant(name(t, k), {"num_blocks": t, "layers_per_block": k}, group=f"T*K = {total}", x=t)
            for t, k in sorted([(1, total), *near])]


def judge(results: dict[str, Any]) -> list[Verdict]:
    """Is ``T = 1`` clearly the worst in every seed; does a balanced split beat every other one?"""
    arms = by_name(results)
    names = list(arms)
    first = arms[names[0]]["train"]
    total = int(first["num_blocks"] * first["layers_per_block"])
    fd = {n: per_seed(results, n) for n in names}
    seeds = range(len(results["seeds"]))
    single = name(1, total)
    others = [n for n in names if n != single]
    # T = 1 "fails": far worse (here: 1.5x the FD) than the best other split, in every seed.
    ratios = [fd[single][i] / min(fd[n][i] for n in others) for i in seeds]
    out: list[Verdict] = [(
        verdict([-1 if r > 1.5 else 1 if r < 1 else 0 for r in ratios]),
        f"T = 1 scores FD {fmt(arms[single]['summary']['fd'])}, "
        + " and ".join(f"{r:.1f}x" for r in ratios) + " the best other split (per seed)")]
    root = math.sqrt(total)  # the splits on either side of T = K = sqrt(T * K) count as balanced
    balanced = {name(t, total // t) for t in (max(t for t, _ in splits(total) if t <= root),
                                               min(t for t, _ in splits(total) if t >= root))}
    rest = [n for n in names if n not in balanced]
    pairs = [(min(fd[n][i] for n in balanced), min(fd[n][i] for n in rest)) for i in seeds]
    best = min(names, key=lambda n: arms[n]["summary"]["fd"]["mean"])
    out.append((verdict([direction(b, r) for b, r in pairs]),
                f"best balanced split ({' or '.join(sorted(balanced))}) vs best other, per seed: "
                + "; ".join(f"{b:.1f} vs {r:.1f}" for b, r in pairs) + f"; best by mean FD: {best} "
                f"({fmt(arms[best]['summary']['fd'])})"))
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the ablation; ``argv`` as on the command line (see ``--help``)."""
    return run_ablation("depth_split", __doc__, CLAIM, PAPER, variants, judge, argv, x_label="flow blocks T")


if __name__ == "__main__":
    main()
