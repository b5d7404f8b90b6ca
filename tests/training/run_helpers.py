"""Helpers of the run-folder and resume tests: a tiny config, CLI flags for it, a child Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flowkit.training import TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[2]

# 60 images, 12 held out: 48 training images in batches of 16 make 3 steps per epoch, so a short run
# crosses several epochs. Four classes keep the sample grids (10 per class) cheap.
SMALL = dict(channels=32, head_dim=32, num_blocks=2, layers_per_block=1, batch_size=16, val_fraction=0.2,
             log_every=1, warmup_steps=2, lr=1e-3, eval_every=2, sample_every=0)
STEPS_PER_EPOCH = 3


def cli_flags(cfg: TrainConfig) -> list[str]:
    """The ``flowkit train`` flags that rebuild ``cfg`` from the digits preset."""
    base = load_config("digits")
    flags = []
    for name, value in vars(cfg).items():
        if value != getattr(base, name) or name in ("max_steps", "epochs"):
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value).lower() if isinstance(
                value, bool) else "none" if value is None else str(value)
            flags.append(f"--{name.replace('_', '-')}={text}")
    return flags


def run_python(*args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` with this checkout first on the path and one thread (matmul sums depend on it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, *args], env=env, text=True, capture_output=True, timeout=300,
                          **kw)  # type: ignore[call-overload]
