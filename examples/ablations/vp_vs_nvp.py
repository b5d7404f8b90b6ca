"""Volume-preserving (shift-only) against non-volume-preserving (affine) TarFlow blocks.

The paper (Zhai et al., 2025, ablation on ImageNet 64) finds that learning the scales matters a
lot: FID 51.0 with volume-preserving blocks against 5.7 with affine ones. A volume-preserving
block can only translate tokens, so all the change of density has to come from the learned prior
variance.

Run ``python examples/ablations/vp_vs_nvp.py`` (about 5 minutes from scratch on two shared CPU
cores; less when another script has already trained the shared baseline), ``--quick`` for a smoke
run, ``--scale imagenet64`` on a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowkit.training.config import TrainConfig

from common import Variant, Verdict, compare, fmt, run_ablation

CLAIM = "volume-preserving blocks (no learned scale) give much worse samples than affine ones"
PAPER = "ImageNet 64: FID 51.0 (volume-preserving) vs 5.7 (affine)"
NVP, VP = "affine (NVP)", "volume-preserving (VP)"


def variants(base: TrainConfig) -> list[Variant]:
    """The affine baseline and its shift-only twin."""
    return [Variant(NVP, {"nvp": True}), Variant(VP, {"nvp": False})]


def judge(results: dict[str, Any]) -> list[Verdict]:
    """Affine should beat volume-preserving on FD; bits/dim are reported too."""
    s = {v["name"]: v["summary"] for v in results["variants"]}
    return [
        (compare(results, NVP, VP, "fd"), f"samples: FD {fmt(s[NVP]['fd'])} (affine) vs {fmt(s[VP]['fd'])} (VP)"),
        (compare(results, NVP, VP, "val_bpd"),
         f"likelihood (beyond the paper's claim): {fmt(s[NVP]['val_bpd'], 3)} vs {fmt(s[VP]['val_bpd'], 3)} bits/dim"),
    ]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the ablation; ``argv`` as on the command line (see ``--help``)."""
    return run_ablation("vp_vs_nvp", __doc__, CLAIM, PAPER, variants, judge, argv)


if __name__ == "__main__":
    main()
