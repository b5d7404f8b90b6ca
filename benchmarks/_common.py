"""Shared helpers of the benchmark scripts: machine description, interleaved timing, tables.

Timings on a shared machine drift, so every benchmark reports *ratios* of timings taken in one
process, interleaved round-robin (so that a burst of load from elsewhere hits every contender), and
keeps the best of several repeats (the least disturbed one).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from flowkit.threads import add_threads_argument, apply_thread_policy

__all__ = ["machine", "best_times", "mm_flops", "Table", "parser", "setup", "finish", "profile_table", "digits_model"]


def machine() -> str:
    """One line naming the CPU (``lscpu`` model name), core count and torch version."""
    name = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return (f"{name}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def best_times(fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Best wall time (s) of each function over ``repeats`` rounds, the functions interleaved."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def mm_flops(n: int = 2048) -> Callable[[], float]:
    """A closure that times one float32 ``torch.mm`` of two ``n x n`` matrices and returns FLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)

    def run() -> float:
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        return 2 * n**3 / (time.perf_counter() - t)

    run()
    return run


class Table:
    """A table printed as aligned text and written as markdown."""

    def __init__(self, title: str, columns: Sequence[str]) -> None:
        self.title, self.columns, self.rows = title, list(columns), []  # type: ignore[var-annotated]

    def add(self, *cells: object) -> None:
        self.rows.append([c if isinstance(c, str) else _fmt(c) for c in cells])
        print("  ".join(f"{c:>14}" for c in self.rows[-1]), flush=True)

    def header(self) -> None:
        print(f"\n{self.title}\n" + "  ".join(f"{c:>14}" for c in self.columns), flush=True)

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        return f"{v:.2e}" if abs(v) < 1e-2 or abs(v) >= 1e5 else f"{v:.3g}"
    return str(v)


def profile_table(fn: Callable[[], object], row_limit: int = 15) -> str:
    """``torch.profiler`` table (CPU ops, by self time) of one call of ``fn`` after a warm-up call."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables as markdown to this file")
    add_threads_argument(p)
    p.add_argument("--repeats", type=int, default=5, help="timing rounds (the best one is kept)")
    p.add_argument("--profile", action="store_true", help="add a torch.profiler table of the main case")
    return p


def setup(args: argparse.Namespace, rows: int = 1024, width: int = 64) -> None:
    """Apply the entry points' thread policy (the digits model's sizes unless given), seed, print the machine."""
    apply_thread_policy(args.threads, rows=rows, width=width)
    torch.manual_seed(0)
    print(machine())


def finish(args: argparse.Namespace, title: str, tables: Sequence[Table], notes: str = "",
           profile: str | None = None) -> None:
    """Print the profile, and write the markdown file if asked."""
    if profile:
        print(profile)
    if args.markdown is None:
        return
    text = f"### {title}\n\nMachine: {machine()}.\n\n" + "\n".join(t.markdown() for t in tables)
    if notes:
        text += "\n" + notes.strip() + "\n"
    if profile:
        text += "\n```text\n" + profile.strip() + "\n```\n"
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(text)
    print(f"\nwrote {args.markdown}")


def digits_model(patch_size: int, steps: int, channels: int = 128, blocks: int = 4, layers: int = 2,
                 cache_dir: Path | None = None, seed: int = 0) -> torch.nn.Module:
    """A class-conditional TarFlow briefly trained on the 8x8 sklearn digits (scaled to [-1, 1]).

    AdamW (lr 2e-3, betas 0.9/0.95, weight decay 1e-4, one-cycle schedule), batch 128, Gaussian
    input noise 0.05, labels dropped with probability 0.1; cached on disk under ``cache_dir``.
    """
    from sklearn.datasets import load_digits

    from flowkit import TarFlow

    torch.manual_seed(seed)
    model = TarFlow(1, 8, patch_size, channels, blocks, layers, head_dim=32, num_classes=10)
    cache_dir = cache_dir or Path(os.environ.get("FLOWKIT_BENCH_CACHE", "/tmp/flowkit-bench"))
    path = cache_dir / f"digits_p{patch_size}_c{channels}_b{blocks}_l{layers}_s{steps}_seed{seed}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16 * 2 - 1
    y = torch.tensor(digits.target)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    t = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=g)
        xb = x[idx] + 0.05 * torch.randn(128, 1, 8, 8, generator=g)
        yb = torch.where(torch.rand(128, generator=g) < 0.1, -1, y[idx])
        loss = -model.log_prob(xb, yb).mean() / model.num_dims
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  digits training step {step}: loss {loss.item():.3f} nats/dim ({time.perf_counter() - t:.0f} s)",
                  flush=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()
