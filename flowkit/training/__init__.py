"""Training: the loop behind ``flowkit train``, its configuration, checkpoints and scale-out."""

from flowkit.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from flowkit.training.config import (
    PRESETS,
    Coupling,
    Precision,
    TrainConfig,
    apply_overrides,
    config_to_toml,
    load_config,
    validate,
)

__all__ = [
    "TrainConfig",
    "PRESETS",
    "Precision",
    "Coupling",
    "load_config",
    "apply_overrides",
    "config_to_toml",
    "validate",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
]
