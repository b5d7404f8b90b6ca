"""``flowkit eval``: held-out bits/dim and Bayes accuracy of a checkpoint."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .checkpoint import _load
from .messages import _note


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from ..data import load_dataset, peek_image_shape, train_val_split
    from ..metrics import bayes_accuracy, evaluate_bpd
    from ..threads import apply_thread_policy, rows_of

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, cfg, device = _load(args)
    c, h, _ = model.event_shape
    if args.data is None and cfg is None:
        raise ValueError("--data is required for a reference checkpoint")
    apply_thread_policy(args.threads, rows=rows_of(args.batch_size, h, model.config["patch_size"]),
                        width=model.config["channels"])
    spec = args.data or cfg.data
    root = args.data_root or (cfg.data_root if cfg else None)
    native = peek_image_shape(spec, root=root)
    if native is not None and native != (c, h, h):
        _note("eval", f"converting the data's {native[0]}x{native[1]}x{native[2]} images to the model's "
                      f"{c}x{h}x{h} (channels x height x width)")
    data: Any = load_dataset(spec, h, c, root=root)
    if model.num_classes and data.num_classes is None:
        raise ValueError(f"the model is class-conditional ({model.num_classes} classes) but the data {str(spec)!r} has "
                         "no labels; give labelled data (an .npz with 'y', or a folder with one subfolder per class)")
    if model.num_classes and data.num_classes > model.num_classes:
        raise ValueError(f"the data {str(spec)!r} has {data.num_classes} classes but the model has "
                         f"{model.num_classes}; labels must lie in [0, {model.num_classes})")
    split = "all images"
    if args.data is None:  # the run's own held-out split
        _, data = train_val_split(data, cfg.val_fraction, seed=cfg.seed)
        split = f"held-out split (val_fraction {cfg.val_fraction}, seed {cfg.seed})"
    loader = DataLoader(data, batch_size=args.batch_size)
    g = torch.Generator(device=device).manual_seed(args.seed)
    result: dict[str, Any] = {"data": str(spec), "split": split, "images": len(data), "dequantization": "uniform",
                              "bpd": evaluate_bpd(model, loader, generator=g)}
    if model.num_classes:
        result["bayes_acc"] = bayes_accuracy(model, loader, model.num_classes)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"data:           {spec}, {split}: {len(data)} images")
    print(f"bits/dim:       {result['bpd']:.3f} (uniform dequantization)")
    if "bayes_acc" in result:
        print(f"Bayes accuracy: {result['bayes_acc']:.1%} (argmax_y log p(x|y) over {model.num_classes} classes)")
    return 0
