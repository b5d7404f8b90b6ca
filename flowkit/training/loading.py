"""Load a trained model from a flowkit run checkpoint or a reference ml-tarflow checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..presets import TarFlow
from .checkpoint import load_checkpoint
from .config import TrainConfig, apply_overrides

__all__ = ["load_trained", "parse_key_values"]


def parse_key_values(text: str) -> dict[str, Any]:
    """Parse ``"a=1,b=true,c=x"`` into ``{"a": 1, "b": True, "c": "x"}`` (ints, floats, booleans).

    Examples:
        >>> parse_key_values("in_channels=3,img_size=64,nvp=true")
        {'in_channels': 3, 'img_size': 64, 'nvp': True}
    """
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {item!r}")
        v: Any = value.strip()
        if v.lower() in ("true", "false"):
            v = v.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    v = kind(v)
                    break
                except ValueError:
                    pass
        out[key.strip()] = v
    return out


def load_trained(path: str | os.PathLike[str], *, ema: bool = True,
                 ml_tarflow: dict[str, Any] | None = None) -> tuple[TarFlow, TrainConfig | None]:
    """Rebuild the model saved at ``path``, in eval mode.

    Args:
        path: a ``checkpoint.pt`` written by ``flowkit train``, or (with ``ml_tarflow``) a checkpoint
            of the public reference implementation.
        ema: use the EMA weights when the checkpoint has them.
        ml_tarflow: the reference model's constructor arguments (see :meth:`TarFlow.from_ml_tarflow`).

    Returns:
        The model and the training config (``None`` for a reference checkpoint).
    """
    if ml_tarflow is not None:
        return TarFlow.from_ml_tarflow(path, **ml_tarflow).eval(), None
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "model_config" not in state or "model" not in state:
        raise ValueError(f"{Path(path)} is not a flowkit training checkpoint (no 'model'/'model_config'); "
                         "for a reference ml-tarflow checkpoint pass its config with --ml-tarflow")
    model = TarFlow(**state["model_config"])
    weights = state["ema"] if ema and state.get("ema") is not None else state["model"]
    model.load_state_dict(weights)
    cfg = apply_overrides(TrainConfig(), state["config"]) if state.get("config") else None
    return model.eval(), cfg
