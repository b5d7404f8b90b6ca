"""Guidance at sampling time: constant against annealed weights, and attention-temperature guidance.

Guidance extrapolates each token's affine parameters away from a second, weaker prediction,
``a + w (a - a_u)`` (and the same for ``b``). For a class-conditional model the weaker prediction
drops the label (classifier-free guidance); for an unconditional model it comes from the same
network with a different attention temperature. The paper (Zhai et al., 2025) finds that guidance
helps, that a weight growing linearly over the token sequence (annealed) beats a constant one, and
that attention-temperature guidance helps unconditional models.

Guidance only changes sampling: the script trains the conditional baseline and one unconditional
model per seed and sweeps the weight ``w``.

Run ``python examples/ablations/guidance.py`` (about 6 minutes from scratch on two shared CPU cores;
less when another script has already trained the shared baseline), ``--quick`` for a smoke run,
``--scale imagenet64`` on a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowkit.training.config import TrainConfig

from common import Variant, Verdict, by_name, direction, per_seed, run_ablation, verdict

CLAIM = ("guidance helps; an annealed (linearly increasing) weight beats a constant one; attention-temperature "
         "guidance helps unconditional models")
PAPER = "ImageNet 64: guidance lowers FID; annealed beats constant; attention temperature helps unconditional models"
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
UNCOND_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
#: Attention temperatures of the unconditional model's second pass: queries are divided by the
#: temperature, so above 1 the second pass attends more uniformly, below 1 more sharply. The paper
#: gives no value for this scale, so both directions are tried and reported.
ATTN_TEMPS = (0.5, 2.0)
CONSTANT, ANNEALED = "constant w", "annealed w"


def uncond(tau: float) -> str:
    """The group of the unconditional model guided with attention temperature ``tau``."""
    return f"unconditional, attn_temp={tau:g}"


def name(group: str, w: float) -> str:
    """The variant name of one weight of one sweep."""
    return f"{group}, w={w:g}" if group.startswith("unconditional") else f"{group}={w:g}"


def variants(base: TrainConfig) -> list[Variant]:
    """Constant and annealed classifier-free guidance, then attention-temperature guidance.

    Every sweep starts at ``w = 0`` (no guidance), which is evaluated once per model and shared.
    """
    out = [Variant(name(g, w), {}, {"guidance": w, "annealed_guidance": g == ANNEALED}, group=g, x=w)
           for g in (CONSTANT, ANNEALED) for w in WEIGHTS]
    out += [Variant(name(uncond(t), w), {"num_classes": 0}, {"guidance": w, "attn_temp": t}, group=uncond(t), x=w)
            for t in ATTN_TEMPS for w in UNCOND_WEIGHTS]
    return out


def _best(fd: dict[str, list[float]], group: str, weights: Sequence[float], seed: int) -> tuple[float, float]:
    """``(w, FD)`` of the best weight of a sweep for one seed (by index into the seeds)."""
    return min(((w, fd[name(group, w)][seed]) for w in weights), key=lambda p: p[1])


def judge(results: dict[str, Any]) -> list[Verdict]:
    """Does the best ``w > 0`` beat ``w = 0``; does the best annealed weight beat the best constant one?"""
    fd = {n: per_seed(results, n) for n in by_name(results)}
    seeds = list(enumerate(results["seeds"]))

    def against_none(group: str, weights: Sequence[float]) -> Verdict:
        """Best ``w > 0`` of a sweep against its ``w = 0``, seed by seed."""
        pairs = [(fd[name(group, 0.0)][i], _best(fd, group, weights[1:], i)) for i, _ in seeds]
        text = "; ".join(f"seed {s}: FD {none:.1f} at w=0, {fd_w:.1f} at w={w:g}"
                         for (_, s), (none, (w, fd_w)) in zip(seeds, pairs, strict=True))
        return verdict([direction(fd_w, none) for none, (_, fd_w) in pairs]), text

    helps, text = against_none(CONSTANT, WEIGHTS)
    out = [(helps, "guidance (constant w) vs none: " + text)]
    best = [(_best(fd, ANNEALED, WEIGHTS, i), _best(fd, CONSTANT, WEIGHTS, i)) for i, _ in seeds]
    text = "; ".join(f"seed {s}: {a[1]:.1f} (w={a[0]:g}) vs {c[1]:.1f} (w={c[0]:g})"
                     for (_, s), (a, c) in zip(seeds, best, strict=True))
    out.append((verdict([direction(a[1], c[1]) for a, c in best]), "best annealed vs best constant: " + text))
    for t in ATTN_TEMPS:
        wins, text = against_none(uncond(t), UNCOND_WEIGHTS)
        out.append((wins, f"attention-temperature guidance (attn_temp={t:g}) on the unconditional model: {text}"))
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the ablation; ``argv`` as on the command line (see ``--help``)."""
    return run_ablation("guidance", __doc__, CLAIM, PAPER, variants, judge, argv, x_label="guidance weight w")


if __name__ == "__main__":
    main()
