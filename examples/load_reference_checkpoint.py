"""Load a checkpoint of the public reference TarFlow (apple/ml-tarflow) into flowkit and sample from it.

:meth:`flowkit.TarFlow.from_ml_tarflow` takes a reference state dict (a path or the dict itself)
and the reference constructor's arguments, and returns a flowkit :class:`~flowkit.TarFlow` that
computes the same function. A published checkpoint is a bare state dict, so pass its config::

    CONFIG=in_channels=3,img_size=64,patch_size=2,channels=768,num_blocks=8,layers_per_block=8,nvp=true,num_classes=1000
    python examples/load_reference_checkpoint.py imagenet64.pth --sigma 0.05 --config $CONFIG

flowkit's parity fixtures (``{"config", "state_dict", "x", "z", ...}``, described in
``flowkit.presets.ml_tarflow``) carry their
config and the reference's outputs; for those the script also reports how closely flowkit
reproduces them. ``--quick`` (or no path at all) builds a small random checkpoint in the
reference's layout first, so the script runs anywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import flowkit
from flowkit import TarFlow
from flowkit.data import save_grid
from flowkit.presets.ml_tarflow import reference_shapes
from flowkit.threads import add_threads_argument, apply_thread_policy
from flowkit.training.loading import parse_key_values

#: The config of the random checkpoint made by ``--quick``.
DEMO_CONFIG: dict[str, Any] = dict(in_channels=1, img_size=8, patch_size=2, channels=64, num_blocks=2,
                                   layers_per_block=1, nvp=True, num_classes=10)


def demo_checkpoint(path: Path, seed: int = 0) -> Path:
    """Save a random state dict with the key names and shapes of a reference ``Model`` to ``path``."""
    g = torch.Generator().manual_seed(seed)
    state = {k: 0.05 * torch.randn(shape, generator=g) for k, shape in reference_shapes(**DEMO_CONFIG).items()}
    n = (DEMO_CONFIG["img_size"] // DEMO_CONFIG["patch_size"]) ** 2
    state["var"] = torch.ones(n, DEMO_CONFIG["in_channels"] * DEMO_CONFIG["patch_size"] ** 2)  # NVP: unit prior
    for t in range(DEMO_CONFIG["num_blocks"]):
        state[f"blocks.{t}.attn_mask"] = torch.ones(n, n).tril()  # the reference's constant causal mask
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": DEMO_CONFIG, "state_dict": state}, path)
    return path


@torch.no_grad()
def compare_with_fixture(model: TarFlow, bundle: dict[str, Any]) -> dict[str, float]:
    """Max |difference| between flowkit's and the stored reference outputs on the stored inputs."""
    x, y = bundle["x"], bundle.get("y")
    z, _ = model(x, y if model.num_classes else None)
    out = {"z": (z - bundle["z"]).abs().max().item()}
    if model.config["nvp"]:  # the reference's VP log_prob assumes a unit prior; flowkit's uses the learned one
        out["log_prob"] = (model.log_prob(x, y if model.num_classes else None) - bundle["log_prob"]).abs().max().item()
    return out


def main(argv: Sequence[str] | None = None) -> TarFlow:
    """Load, check and sample; returns the flowkit model."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, nargs="?", default=None, help="reference checkpoint (.pt/.pth)")
    p.add_argument("--config", default="", help="reference constructor arguments as key=value,key=value")
    p.add_argument("--sigma", type=float, default=0.0, help="training noise of the checkpoint, to denoise samples")
    p.add_argument("--guidance", type=float, default=1.0, help="guidance weight for a conditional model")
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--out", type=Path, default=Path("runs/examples/reference_checkpoint"), help="output folder")
    p.add_argument("--quick", action="store_true", help="use a small random checkpoint in the reference layout")
    add_threads_argument(p)
    args = p.parse_args(argv)
    path = args.checkpoint
    if path is None or args.quick:
        path = demo_checkpoint(args.out / "demo_reference.pt")
        print(f"made a random reference-layout checkpoint: {path}")
    model = TarFlow.from_ml_tarflow(path, **parse_key_values(args.config))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"loaded {path}: {model.config} ({n_params / 1e6:.2f} M parameters)")
    bundle = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(bundle, dict) and "x" in bundle and "z" in bundle:
        diffs = compare_with_fixture(model, bundle)
        print("max |flowkit - reference|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    n = args.num_samples
    apply_thread_policy(args.threads, rows=2 * n, width=model.config["channels"])  # sampling: n rows, twice guided
    y = torch.arange(n) % model.num_classes if model.num_classes else None
    with torch.no_grad():
        x = model.sample(n, context=y, guidance=args.guidance if y is not None else 0.0,
                         generator=torch.Generator().manual_seed(0))
    if args.sigma > 0:
        x = flowkit.denoise(model, x, args.sigma, context=y)
    grid = save_grid(x.clamp(-1, 1), args.out / "samples.png", nrow=8, scale=max(1, 64 // model.config["img_size"]))
    print(f"wrote {n} samples to {grid}")
    return model


if __name__ == "__main__":
    main()
