"""Training throughput and model FLOP utilisation (MFU) against ``torch.mm`` in the same process.

MFU = model FLOP/s of a training step / float32 ``torch.mm`` FLOP/s (the best of square products
of size 1024, 2048 and 4096: the machine's matmul limit), both measured interleaved in this process.
Model FLOPs per image follow the usual convention (Kaplan et al., PaLM): ``6 * P * N`` for the ``P``
weights inside matmuls (every ``nn.Linear``) applied to ``N`` tokens (forward 2, backward 4 FLOPs per
weight and token), plus ``12 * L * C * N^2`` for the attention scores and mixing of ``L`` layers of
width ``C`` (counted as full, non-causal attention).

    python benchmarks/training.py [--batch 64] [--compile] [--markdown FILE]
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from flowkit import TarFlow, validating

from _common import Table, finish, mm_flops, parser, profile_table, setup


def model_flops_per_image(model: TarFlow) -> float:
    """``6 P N + 12 L C N^2`` (forward + backward) for one image."""
    n = model.latent_shape[0]
    matmul_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    layers = model.config["num_blocks"] * model.config["layers_per_block"]
    return 6 * matmul_weights * n + 12 * layers * model.config["channels"] * n**2


def measure(step: Callable[[], None], flops: float, repeats: int) -> tuple[float, float, float]:
    """Interleave ``step`` with ``torch.mm`` runs; return (best step time, best mm FLOP/s, MFU)."""
    mms = [mm_flops(n) for n in (1024, 2048, 4096)]
    step()
    best_step, best_mm = float("inf"), 0.0
    for _ in range(repeats):
        best_mm = max(best_mm, *(mm() for mm in mms))
        t = time.perf_counter()
        step()
        best_step = min(best_step, time.perf_counter() - t)
    return best_step, best_mm, flops / best_step / best_mm


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--compile", action="store_true", help="also measure torch.compile(model)")
    p.add_argument("--config", default="4-256-4-4", help="patch-channels-blocks-layers, 32x32x3 images")
    args = p.parse_args()
    patch, channels, blocks, layers = map(int, args.config.split("-"))
    setup(args, rows=args.batch * (32 // patch) ** 2, width=channels)
    model = TarFlow(3, 32, patch, channels, blocks, layers)
    x = torch.rand(args.batch, 3, 32, 32) * 2 - 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=1e-4)
    flops = model_flops_per_image(model) * args.batch
    print(f"model {args.config}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
          f"{flops / args.batch / 1e9:.2f} GFLOP per image (forward + backward)")

    def fwd_bwd(net: Callable[..., torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            (-net(x).mean()).backward()
        return run

    def full_step() -> None:
        fwd_bwd(model.log_prob)()
        opt.step()

    variants: list[tuple[str, Callable[[], None]]] = [("forward + backward", fwd_bwd(model.log_prob)),
                                                       ("+ AdamW step", full_step)]
    if args.compile:
        compiled = torch.compile(model.log_prob)
        variants.append(("compiled fwd + bwd", fwd_bwd(compiled)))
    table = Table(f"Training, TarFlow {args.config} on 3x32x32, batch {args.batch}",
                  ["variant", "images/s", "model GFLOP/s", "mm GFLOP/s", "MFU"])
    table.header()
    with validating(False):  # the finiteness check of the input is a (tiny) device sync, not model work
        for name, step in variants:
            t, mm, mfu = measure(step, flops, args.repeats)
            table.add(name, args.batch / t, flops / t / 1e9, mm / 1e9, f"{100 * mfu:.0f}%")
        profile = None
        if args.profile:
            profile = "Profile: one forward + backward\n" + profile_table(fwd_bwd(model.log_prob))
    finish(args, "Training throughput and MFU", [table],
           notes="MFU counts `6 P N + 12 L C N^2` FLOPs per image against float32 `torch.mm` throughput "
                 "(best square product of size 1024, 2048 or 4096) measured interleaved in the same process, "
                 "best of each.", profile=profile)


if __name__ == "__main__":
    main()
