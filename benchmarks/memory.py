"""Peak memory of training, sampling and denoising, each in a fresh subprocess.

Each measurement runs in its own Python process: build the model and inputs, read the peak
resident set size (``resource.getrusage(...).ru_maxrss``), run the operation once, read it again.
The difference is the operation's peak working memory on top of weights and inputs (activations,
gradients, optimizer state, KV caches, allocator slack), reported in MiB and relative to a forward
pass that records the autograd graph (what computing a score needs).

    python benchmarks/memory.py [--config 4-256-4-4] [--batch 32] [--markdown FILE]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

from _common import Table, finish, parser, setup

OPERATIONS = {
    "forward, no grad": "no autograd graph: activations are freed as the pass goes",
    "forward with graph": "log_prob with autograd recording (activations kept)",
    "training step": "forward + backward + AdamW step (first step: optimizer state allocated)",
    "forward + backward": "log_prob and backward to the parameters",
    "sample: sequential": "inverse, KV cache of every layer (no grad)",
    "sample: jacobi": "inverse by whole-block Jacobi passes (no grad)",
    "sample: gs_jacobi": "inverse by GS-Jacobi segments (no grad)",
    "denoise": "flowkit.denoise: one Tweedie step (score by backward to x)",
    "denoise, chunk_size=B/4": "the same, four chunks",
}


def _maxrss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024


def worker(operation: str, config: str, batch: int, threads: int | None) -> None:
    import flowkit
    from flowkit import TarFlow
    from flowkit.testing import randomize_parameters

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    patch, channels, blocks, layers = map(int, config.split("-"))
    model = TarFlow(3, 32, patch, channels, blocks, layers)
    randomize_parameters(model, std=0.005)  # every block does something, and sampling stays finite
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
    z = torch.randn(batch, *model.latent_shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4) if operation == "training step" else None
    before = _maxrss_mib()
    if operation == "forward, no grad":
        with torch.no_grad():
            model.log_prob(x)
    elif operation == "forward with graph":
        lp = model.log_prob(x)
        del lp
    elif operation in ("forward + backward", "training step"):
        (-model.log_prob(x).mean()).backward()
        if opt is not None:
            opt.step()
    elif operation.startswith("sample: "):
        with torch.no_grad():
            model.inverse(z, method=operation.split(": ")[1])
    elif operation.startswith("denoise"):
        chunk = batch // 4 if "chunk" in operation else None
        flowkit.denoise(model, x, 0.05, chunk_size=chunk)
    else:
        raise ValueError(operation)
    print(json.dumps({"before": before, "peak": _maxrss_mib()}))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--config", default="4-256-4-4", help="patch-channels-blocks-layers, 32x32x3 images")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--worker", default=None, help=argparse_hidden)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.config, args.batch, args.threads)
        return
    setup(args)
    table = Table(f"Peak memory, TarFlow {args.config} on 3x32x32, batch {args.batch}",
                  ["operation", "peak MiB", "x forward w/ graph", "what"])
    table.header()
    results = {}
    for op in OPERATIONS:
        cmd = [sys.executable, str(Path(__file__)), "--worker", op, "--config", args.config, "--batch", str(args.batch)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(f"memory worker {op!r} failed:\n{run.stderr}")
        r = json.loads(run.stdout.strip().splitlines()[-1])
        results[op] = r["peak"] - r["before"]
    ref = results["forward with graph"]
    for op, what in OPERATIONS.items():
        table.add(op, results[op], results[op] / ref, what)
    finish(args, "Peak memory", [table],
           notes="Peak resident memory added by one call, measured with `ru_maxrss` in a fresh process per row "
                 "(weights and inputs excluded; one-time library buffers included).")


argparse_hidden = "internal: run one measurement"

if __name__ == "__main__":
    main()
