"""`flowkit train` images/s: the default thread policy vs the same run pinned to 1 thread, idle and busy.

Short runs of the default digits config (``--max-steps 150``, no intermediate evaluation or
samples), each in a fresh process with ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` removed from the
environment, so that the default is the thread policy of ``flowkit/threads.py``:

- idle machine: default, then ``--threads 1``;
- busy machine: the same two with one busy-loop process per usable core running meanwhile;

and, for contrast, each with one thread per usable core (PyTorch's own default, without the policy),
over ``--contrast-steps`` (100) steps.

Throughput is the training rate over steps 51-150 (the first 50 include the warm-up), from the run's
``metrics.jsonl``. Prints a markdown table (and writes it with ``--markdown FILE``). The issue's bar:
busy, default >= 2/3 of 1 thread; idle, default no slower than 1 thread.

Run: ``python benchmarks/threads.py`` (about 3 minutes on 2 quiet cores; much longer on a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_rate(out: Path, threads: int | None, steps: int) -> tuple[float, str]:
    """Images/s over steps 51..steps of one ``flowkit train`` process, and its ``threads:`` start-up line."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "flowkit", "train", "--max-steps", str(steps), "--eval-every", "0",
           "--sample-every", "0", "--log-every", "50", "--no-progress", "--out", str(out)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    line = next((s for s in proc.stderr.splitlines() if s.startswith("threads: ")), "threads: ?")
    rates = [r["images_per_s"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if "images_per_s" in r and r["step"] > 50]
    return len(rates) / sum(1 / r for r in rates), line  # equal images per record: the harmonic mean


def busy_loops(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` processes that each keep one core busy until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=150, help="training steps per run (>= 100) [default: 150]")
    p.add_argument("--contrast-steps", type=int, default=100,
                   help="steps of the torch-default runs (>= 100; rate over steps 51..) [default: 100]")
    p.add_argument("--busy", type=int, default=None, help="busy-loop processes [default: one per usable core]")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from flowkit.threads import usable_cores

    cores = usable_cores()
    load = os.getloadavg()[0]
    busy = args.busy if args.busy is not None else cores
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for machine in ("idle", "busy"):  # "idle": nothing added; other users of the machine still count
            loops = busy_loops(busy) if machine == "busy" else []
            try:
                default, line = train_rate(Path(tmp) / f"{machine}-default", None, args.steps)
                pinned, _ = train_rate(Path(tmp) / f"{machine}-1", 1, args.steps)
                # torch's own default, shorter: it is the slow one on a busy machine
                every, _ = train_rate(Path(tmp) / f"{machine}-all", cores, args.contrast_steps)
            finally:
                for proc in loops:
                    proc.kill()
                    proc.wait()
            added = "no busy loops" if machine == "idle" else f"busy: {busy} busy-loop processes"
            label = f"{added} (load average {os.getloadavg()[0]:.1f} after)"
            rows.append(f"| {label} | `{line.partition(' (')[0]}` | {default:.0f} | {pinned:.0f} | "
                        f"{default / pinned:.2f} | {every:.0f} |")
            print(rows[-1], flush=True)
    header = ["| machine | default choice | default images/s | 1 thread images/s | default / 1 thread | "
              f"{cores} threads (torch's default) images/s |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    table = "\n".join(header + rows)
    print(f"\n{cores} usable cores, 1-minute load average {load:.2f} before the runs, {args.steps} steps per run\n")
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
