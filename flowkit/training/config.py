"""Training configuration: one flat dataclass, named presets, TOML files and typed overrides.

A run is described by a :class:`TrainConfig`. It starts from a preset (``digits`` by default) or from
a TOML file (a flat table of fields, optionally naming its base with ``preset = "mnist"``), then takes
overrides such as command-line flags through :func:`apply_overrides`, which coerces strings to the
field types and validates the result. :func:`config_to_toml` writes the resolved config next to a run
so that ``load_config`` reproduces it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flowkit.data.transforms import NoiseKind
from flowkit.presets.tarflow import TarFlowConfig
from flowkit.training._fields import attribute_docs, coerce, describe_type, field_types, is_instance, toml_value

__all__ = [
    "TrainConfig",
    "PRESETS",
    "Precision",
    "Coupling",
    "load_config",
    "apply_overrides",
    "config_to_toml",
    "validate",
    "attribute_docs",  # defined in _fields; re-exported for the CLI and tests that import it from here
    "DEVICE_PATTERN",
]

#: Accepted ``device`` values: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")

#: Numeric precision of training: float32, bf16 autocast, or bf16 on GPUs and float32 on the CPU.
Precision = Literal["fp32", "bf16", "auto"]
#: Flow block type: TarFlow's autoregressive blocks, or the channel-coupling ablation.
Coupling = Literal["autoregressive", "channel"]


@dataclass
class TrainConfig(TarFlowConfig):
    """Every setting of a training run; the defaults are the ``digits`` preset.

    The model fields are inherited from :class:`flowkit.TarFlowConfig` (only the defaults that differ
    are restated below); ``num_classes`` may also be ``None`` here, meaning "take the data's".

    The defaults train a small class-conditional TarFlow (patch 2, 64 wide with 2 heads of 32, 4 blocks
    of 2 layers) on scikit-learn's 8x8 digits in about three minutes on two CPU cores.

    Attributes:
        in_channels: Image channels ``C`` (1 grayscale, 3 RGB); ``flowkit train --data`` reads it from the
            data, and data with other channels is converted with a note.
        img_size: Side ``H = W`` of the square images, in pixels; ``flowkit train --data`` reads it from the
            data, and data of another size is resized with a note.
        patch_size: Side ``p`` of the square patches; tokens have size ``C p^2``.
        channels: Transformer width.
        num_blocks: Number of autoregressive flow blocks ``T``.
        layers_per_block: Transformer layers ``K`` per block.
        head_dim: Attention head size; ``channels`` must be a multiple of it.
        expansion: MLP hidden size as a multiple of ``channels``.
        nvp: Affine (``True``) or volume-preserving, shift-only (``False``) blocks.
        num_classes: Classes to condition on; ``None`` takes the data's (unconditional for unlabelled
            data), ``0`` forces an unconditional model.
        coupling: ``"autoregressive"`` (TarFlow blocks) or ``"channel"`` (channel coupling).
        context_features: Must stay ``0`` for training: the trainer conditions on the data's labels
            (context vectors are for models built in code, :class:`flowkit.TarFlow`).
        map: The blocks' element-wise map, ``"affine"`` (TarFlow) or ``"spline"`` (rational-quadratic
            spline TarFlow, needs ``nvp=True``).
        spline_bins: Bins of the spline map.
        data: Data spec for :func:`flowkit.data.load_dataset` (``"digits"``, ``"mnist-idx:FOLDER"``,
            ``"torchvision:NAME"``, a folder, a ``.npy``/``.npz`` file).
        data_root: Folder holding downloaded torchvision data.
        val_fraction: Fraction of the data held out for validation, in ``[0, 1)``.
        noise: Training noise: ``"gaussian"`` (generation), ``"uniform"`` (likelihood) or ``"none"``.
        sigma: Standard deviation of the Gaussian noise on ``[-1, 1]``.
        label_drop: Probability of dropping a label during training (for guidance).
        batch_size: Batch size per process; under ``torchrun`` the global batch is this times the
            number of processes.
        lr: Peak learning rate of AdamW, reached after ``warmup_steps`` of linear warm-up.
        min_lr: Final learning rate of the cosine decay.
        warmup_steps: Linear warm-up steps.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        max_steps: Optimizer steps to run; exclusive with ``epochs``.
        epochs: Passes over the training set; exclusive with ``max_steps``.
        ema_decay: Decay of the exponential moving average of the weights; ``0`` disables it.
        grad_clip: Gradient-norm clipping threshold; ``0`` disables it.
        precision: ``"fp32"``, ``"bf16"`` autocast, or ``"auto"`` (bf16 on a GPU that supports it).
        compile: Wrap the model in ``torch.compile``.
        out: Output folder of the run.
        seed: Seed of every random generator (``>= 0``).
        log_every: Steps between log lines.
        eval_every: Steps between validation passes, each followed by a checkpoint; ``0`` disables
            them (the last step always evaluates and saves).
        sample_every: Steps between sample grids; ``0`` disables them.
        sample_guidance: Guidance weight for the sample grids (``0`` = off).
        denoise: Apply one Tweedie denoising step to samples (needs ``noise="gaussian"``).
        fsdp: Shard the model with FSDP instead of DDP when launched with ``torchrun``.
        device: ``"auto"`` (the GPU of this process if CUDA is available, else the CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Examples:
        >>> cfg = TrainConfig()
        >>> cfg.data, cfg.img_size, cfg.patch_size, cfg.max_steps
        ('digits', 8, 2, 2000)
    """

    # model: TarFlowConfig's fields, with the digits preset's defaults where they differ
    in_channels: int = 1
    img_size: int = 8
    channels: int = 64
    layers_per_block: int = 2
    head_dim: int = 32
    num_classes: int | None = None  # type: ignore[assignment]
    # data
    data: str = "digits"
    data_root: str | None = None
    val_fraction: float = 0.1
    noise: NoiseKind = "gaussian"
    sigma: float = 0.1
    label_drop: float = 0.1
    # optimisation
    batch_size: int = 64
    lr: float = 2e-3
    min_lr: float = 1e-6
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    max_steps: int | None = 2000
    epochs: int | None = None
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    precision: Precision = "auto"
    compile: bool = False
    # run
    out: str = "runs/digits"
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500
    sample_every: int = 1000
    sample_guidance: float = 1.0
    denoise: bool = True
    fsdp: bool = False
    device: str = "auto"


def _paper(**fields: Any) -> TrainConfig:
    """A preset with the paper's optimizer (AdamW 0.9/0.95, wd 1e-4, cosine to 1e-6, peak 1e-4)."""
    base: dict[str, Any] = dict(lr=1e-4, min_lr=1e-6, weight_decay=1e-4, betas=(0.9, 0.95), noise="gaussian",
                                head_dim=64)
    return TrainConfig(**{**base, **fields})


# Architectures (patch-channels-blocks-layers), sigma and optimizer follow the TarFlow paper; batch
# sizes, step counts, warm-up and EMA decay of the large presets are starting points, not paper values.
#: Named configs: ``digits`` (the default CPU run) and the paper's ``mnist`` (4-128-4-4),
#: ``imagenet64`` (2-768-8-8), ``imagenet128`` (4-1024-8-8) and ``afhq256`` (8-768-8-8).
PRESETS: dict[str, TrainConfig] = {
    "digits": TrainConfig(),
    "mnist": _paper(
        data="mnist-idx:data", in_channels=1, img_size=28,
        patch_size=4, channels=128, num_blocks=4, layers_per_block=4, sigma=0.1,
        lr=2e-3, batch_size=128, warmup_steps=500, max_steps=20_000, eval_every=1000,
        sample_every=2000, out="runs/mnist",
    ),
    "imagenet64": _paper(
        data="data/imagenet/train", in_channels=3, img_size=64,
        patch_size=2, channels=768, num_blocks=8, layers_per_block=8, sigma=0.05,
        batch_size=256, warmup_steps=1000, max_steps=500_000, ema_decay=0.9999,
        log_every=100, eval_every=5000, sample_every=10_000, sample_guidance=2.0, out="runs/imagenet64",
    ),
    "imagenet128": _paper(
        data="data/imagenet/train", in_channels=3, img_size=128,
        patch_size=4, channels=1024, num_blocks=8, layers_per_block=8, sigma=0.15,
        batch_size=256, warmup_steps=1000, max_steps=500_000, ema_decay=0.9999,
        log_every=100, eval_every=5000, sample_every=10_000, sample_guidance=2.0, out="runs/imagenet128",
    ),
    "afhq256": _paper(
        data="data/afhq/train", in_channels=3, img_size=256, num_classes=3,
        patch_size=8, channels=768, num_blocks=8, layers_per_block=8, sigma=0.07,
        batch_size=256, warmup_steps=1000, max_steps=200_000, ema_decay=0.9999,
        log_every=100, eval_every=5000, sample_every=10_000, sample_guidance=2.0, out="runs/afhq256",
    ),
}


def load_config(preset_or_path: str | Path | None = None) -> TrainConfig:
    """Load a validated config from a preset name or a TOML file.

    A TOML file is a flat table of :class:`TrainConfig` fields; ``preset = "NAME"`` picks the preset
    its fields override (``digits`` when absent). Strings and numbers are coerced as in
    :func:`apply_overrides`.

    Args:
        preset_or_path: A key of :data:`PRESETS`, a path to a ``.toml`` file, or ``None`` (``digits``).

    Returns:
        A new :class:`TrainConfig`; the presets themselves are never handed out.

    Raises:
        FileNotFoundError: A ``.toml`` path that does not exist.
        ValueError: An unknown preset, invalid TOML, an unknown key or a bad value.

    Examples:
        >>> load_config("mnist").patch_size
        4
        >>> load_config(None) == PRESETS["digits"]
        True
    """
    if preset_or_path is None:
        preset_or_path = "digits"
    if isinstance(preset_or_path, str) and preset_or_path in PRESETS:
        cfg = dataclasses.replace(PRESETS[preset_or_path])
        validate(cfg)
        return cfg
    path = Path(preset_or_path).expanduser()
    if path.suffix != ".toml" and not path.is_file():
        raise ValueError(
            f"unknown config {str(preset_or_path)!r}; expected a preset ({', '.join(PRESETS)}) or a .toml file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {str(path)!r}")
    try:
        with path.open("rb") as f:
            table = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    preset = table.pop("preset", "digits")
    if preset not in PRESETS:
        raise ValueError(f"{path}: unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    try:
        return apply_overrides(PRESETS[preset], table)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def check_config(cfg: object, owner: str) -> None:
    """Raise ``TypeError`` unless ``cfg`` is a :class:`TrainConfig` (``owner`` names the caller)."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"{owner}: cfg must be a TrainConfig (see load_config), got {type(cfg).__name__}")


def apply_overrides(cfg: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """Return a validated copy of ``cfg`` with some fields replaced.

    Keys may use ``-`` for ``_`` (``max-steps``). Values are coerced to the field's type: strings as
    typed on a command line (``"1e-3"``, ``"true"``, ``"none"`` for optional fields, ``"0.9,0.95"``
    for ``betas``), integral floats to ints (``1e4`` steps), lists to tuples. ``max_steps`` and
    ``epochs`` are alternative run lengths: setting one (not ``None``) unsets the other unless both are
    given.

    Args:
        cfg: The config to start from; it is not modified.
        overrides: Field names mapped to new values.

    Returns:
        A new, validated :class:`TrainConfig`.

    Raises:
        ValueError: An unknown key (the message lists the valid ones), a value that does not fit the
            field's type, or a resulting config that fails :func:`validate`.

    Examples:
        >>> cfg = apply_overrides(TrainConfig(), {"batch-size": "32", "lr": "1e-3", "epochs": 5})
        >>> cfg.batch_size, cfg.lr, cfg.epochs, cfg.max_steps
        (32, 0.001, 5, None)
    """
    check_config(cfg, "apply_overrides")
    if not isinstance(overrides, Mapping):
        raise TypeError(f"apply_overrides: overrides must be a mapping of field names to values, "
                        f"got {type(overrides).__name__}")
    types_ = field_types(TrainConfig)
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        name = key.replace("-", "_")
        if name not in types_:
            close = difflib.get_close_matches(name, types_, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown config key {key!r}{hint}; valid keys: {', '.join(types_)}")
        changes[name] = coerce(name, value, types_[name])
    for one, other in (("epochs", "max_steps"), ("max_steps", "epochs")):
        if changes.get(one) is not None and other not in changes:
            changes[other] = None
    new = dataclasses.replace(cfg, **changes)
    validate(new)
    return new


def config_to_toml(cfg: TrainConfig) -> str:
    """Write a config as a flat TOML table that :func:`load_config` reads back to an equal config.

    Every field is written; a field that is ``None`` becomes a comment, since TOML has no null and
    ``load_config`` then keeps the ``digits`` default (``None`` for every optional field, and
    ``max_steps`` is unset by ``epochs``).

    Args:
        cfg: The config to write.

    Returns:
        The TOML text, one ``key = value`` line per field.

    Examples:
        >>> print(config_to_toml(TrainConfig()).splitlines()[1])
        in_channels = 1
        >>> text = config_to_toml(TrainConfig())
        >>> "betas = [0.9, 0.95]" in text and "# num_classes = none" in text
        True
    """
    check_config(cfg, "config_to_toml")
    lines = ["# flowkit training config (resolved); fields that are none are commented out"]
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        lines.append(f"# {f.name} = none" if value is None else f"{f.name} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def validate(cfg: TrainConfig) -> None:
    """Check that a config is complete and consistent; raise ``ValueError`` naming the first problem.

    Checks the type of every field, positive sizes, that ``patch_size`` divides ``img_size`` and
    ``head_dim`` divides ``channels``, probabilities and decays in range, ``sigma >= 0`` (and ``> 0``
    for Gaussian noise), ``min_lr <= lr``, exactly one of ``max_steps`` / ``epochs``, and that
    denoising comes with Gaussian noise.

    Args:
        cfg: The config to check.

    Examples:
        >>> validate(TrainConfig())
        >>> validate(TrainConfig(patch_size=3))
        Traceback (most recent call last):
        ...
        ValueError: patch_size 3 must divide img_size 8
    """
    check_config(cfg, "validate")
    for name, tp in field_types(TrainConfig).items():
        value = getattr(cfg, name)
        if not is_instance(value, tp):
            raise ValueError(f"config key {name!r} expects {describe_type(tp)}, got {value!r}")
    c = cfg
    for name in ("in_channels", "img_size", "patch_size", "channels", "num_blocks", "layers_per_block",
                 "head_dim", "expansion", "batch_size", "log_every"):
        _require(getattr(c, name) >= 1, f"{name} must be >= 1, got {getattr(c, name)}")
    for name in ("warmup_steps", "eval_every", "sample_every", "seed"):
        _require(getattr(c, name) >= 0, f"{name} must be >= 0, got {getattr(c, name)}")
    _require(c.in_channels in (1, 3), f"in_channels must be 1 (grayscale) or 3 (RGB), got {c.in_channels}")
    _require(c.img_size % c.patch_size == 0, f"patch_size {c.patch_size} must divide img_size {c.img_size}")
    _require(c.channels % c.head_dim == 0, f"channels {c.channels} must be a multiple of head_dim {c.head_dim}")
    _require(c.num_classes is None or c.num_classes >= 0, f"num_classes must be >= 0 or none, got {c.num_classes}")
    _require(c.context_features == 0, "context_features must be 0 for training (the trainer conditions on the "
             f"data's labels), got {c.context_features}")
    _require(c.spline_bins >= 1, f"spline_bins must be >= 1, got {c.spline_bins}")
    _require(c.map != "spline" or c.nvp, "map='spline' is not volume-preserving; it needs nvp=true")
    _require(bool(c.data), "data must name a data set, got an empty string")
    _require(bool(c.out), "out must name an output folder, got an empty string")
    _require(0 <= c.val_fraction < 1, f"val_fraction must be in [0, 1), got {c.val_fraction}")
    _require(0 <= c.sigma < math.inf, f"sigma must be finite and >= 0, got {c.sigma}")
    _require(c.noise != "gaussian" or c.sigma > 0, "noise 'gaussian' needs sigma > 0; use noise 'none' for no noise")
    _require(not c.denoise or c.noise == "gaussian",
             f"denoise needs noise 'gaussian', got {c.noise!r}; set denoise false")
    _require(0 <= c.label_drop <= 1, f"label_drop must be in [0, 1], got {c.label_drop}")
    _require(0 < c.lr < math.inf, f"lr must be finite and > 0, got {c.lr}")
    _require(0 <= c.min_lr <= c.lr, f"min_lr must be in [0, lr={c.lr}], got {c.min_lr}")
    _require(0 <= c.weight_decay < math.inf, f"weight_decay must be finite and >= 0, got {c.weight_decay}")
    _require(all(0 <= b < 1 for b in c.betas), f"betas must lie in [0, 1), got {c.betas}")
    _require(0 <= c.ema_decay < 1, f"ema_decay must be in [0, 1) (0 disables it), got {c.ema_decay}")
    _require(0 <= c.grad_clip < math.inf, f"grad_clip must be finite and >= 0 (0 disables it), got {c.grad_clip}")
    _require(0 <= c.sample_guidance < math.inf, f"sample_guidance must be finite and >= 0, got {c.sample_guidance}")
    _require((c.max_steps is None) != (c.epochs is None),
             f"set exactly one of max_steps and epochs, got max_steps={c.max_steps}, epochs={c.epochs}")
    if c.max_steps is not None:
        _require(c.max_steps >= 1, f"max_steps must be >= 1, got {c.max_steps}")
    if c.epochs is not None:
        _require(c.epochs >= 1, f"epochs must be >= 1, got {c.epochs}")
    _require(DEVICE_PATTERN.fullmatch(c.device) is not None,
             f"device must be auto, cpu, cuda, cuda:N or mps, got {c.device!r}")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
