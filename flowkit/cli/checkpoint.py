"""Loading the model named by ``flowkit sample`` / ``flowkit eval``'s checkpoint argument and flags."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Any

from .._validation import first_line


def _ml_tarflow_args(text: str) -> dict[str, Any]:
    """Parse and check ``--ml-tarflow K=V,...``: known keys, integer sizes, a boolean ``nvp``."""
    from ..presets.ml_tarflow import REFERENCE_ARGS
    from ..presets.tarflow import TarFlowConfig
    from ..training.loading import parse_key_values

    hints = typing.get_type_hints(TarFlowConfig)  # the reference's arguments are TarFlowConfig fields (int, bool)
    values = parse_key_values(text)
    for key, value in values.items():
        if key not in REFERENCE_ARGS:
            raise ValueError(f"--ml-tarflow: unknown key {key!r}; expected some of {', '.join(REFERENCE_ARGS)}")
        tp = hints[key]
        if type(value) is not tp:
            raise ValueError(f"--ml-tarflow: {key} expects {'true or false' if tp is bool else 'an integer'}, "
                             f"got {value!r}")
    return values


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The model (on ``--device``, in eval mode), its training config (or ``None``) and the device."""
    from ..training.config import DEVICE_PATTERN
    from ..training.distributed import init_distributed
    from ..training.loading import load_trained

    if DEVICE_PATTERN.fullmatch(args.device) is None:
        raise ValueError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {args.device!r}")
    if args.seed < 0:  # as `flowkit train` (its config's seed): one rule for every seed the user gives
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    ml = _ml_tarflow_args(args.ml_tarflow) if args.ml_tarflow is not None else None
    path = Path(args.checkpoint).expanduser()
    if path.is_file():  # torch.save writes a zip archive (a pickle before PyTorch 1.6): refuse anything else early
        with path.open("rb") as f:
            head = f.read(4)
        if not (head.startswith(b"PK") or head[:1] == b"\x80"):
            raise ValueError(f"{str(path)!r} is not a PyTorch checkpoint (neither a torch.save zip archive "
                             "nor a pickle)")
    device = init_distributed(args.device).device
    try:
        model, cfg = load_trained(path, ema=not args.no_ema, ml_tarflow=ml)
    except TypeError as e:  # the reference constructor's arguments came from --ml-tarflow: the user's words
        if ml is None:
            raise
        raise ValueError(f"--ml-tarflow: {first_line(e)}") from e
    return model.to(device), cfg, device
