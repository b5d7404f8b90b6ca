"""Training: the loop behind ``flowkit train``, its configuration, checkpoints and scale-out."""

from flowkit.training.checkpoint import CheckpointCorrupted, load_checkpoint, rng_state, save_checkpoint, set_rng_state
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
from flowkit.training.distributed import DistInfo, init_distributed, wrap_model
from flowkit.training.loading import load_trained
from flowkit.training.run_folder import RunFolder, RunFolderError
from flowkit.training.trainer import TrainingDiverged, build_model, train, warmup_cosine

__all__ = [
    "train",
    "build_model",
    "warmup_cosine",
    "TrainingDiverged",
    "RunFolder",
    "RunFolderError",
    "CheckpointCorrupted",
    "load_trained",
    "DistInfo",
    "init_distributed",
    "wrap_model",
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
