"""Load checkpoints of the public reference TarFlow implementation (apple/ml-tarflow).

The reference ``Model`` keeps one ``MetaBlock`` per flow block under ``blocks.{t}`` and the learned
prior variance under ``var``. flowkit computes the same function with a :class:`~flowkit.TarFlow`
whose block ``t`` is ``model.transforms[t]`` (a :class:`~flowkit.CausalAffine`); the differences
are only in names and in four layouts:

- the reference adds ``permutation(pos_embed)`` to permuted tokens; flowkit's odd blocks run on
  reversed tokens with their own table, so the table of an odd block is stored reversed;
- the reference stores the class embedding as ``(num_classes, 1, C)``, flowkit as ``(num_classes, C)``;
- the reference keeps a constant causal mask buffer ``attn_mask``; flowkit builds the mask on the
  fly, so the buffer is checked (lower-triangular ones) and dropped;
- the reference keeps ``var`` for every model; flowkit has a prior variance (``base.var``) only for
  volume-preserving models, so a non-volume-preserving checkpoint's ``var`` must be all ones.

Loading is strict: every key must be expected and present and every shape must fit the config.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from torch import Tensor

from .tarflow import TarFlowConfig

if TYPE_CHECKING:
    from .tarflow import TarFlow

__all__ = ["REFERENCE_ARGS", "Checkpoint", "check_reference_state_dict", "convert_state_dict", "load_ml_tarflow",
           "reference_shapes"]

Shape = tuple[int, ...]
#: What :func:`load_ml_tarflow` reads: a file path, a state dict, or a ``{"state_dict", "config"}`` dict.
Checkpoint: TypeAlias = str | os.PathLike[str] | Mapping[str, Any]

# The reference constructor takes TarFlow's hyperparameters except flowkit's own (it has only
# autoregressive affine blocks conditioned on labels); `head_dim` and `expansion` have defaults there,
# the same as TarFlowConfig's.
_FLOWKIT_ONLY = ("coupling", "context_features", "map", "spline_bins")
_DEFAULTS: dict[str, Any] = {"head_dim": TarFlowConfig.head_dim, "expansion": TarFlowConfig.expansion}
_REQUIRED = tuple(f for f in TarFlowConfig.model_fields() if f not in _DEFAULTS and f not in _FLOWKIT_ONLY)
#: The reference constructor's arguments: the required ones, then those with defaults (``head_dim``, ``expansion``).
REFERENCE_ARGS: tuple[str, ...] = (*_REQUIRED, *_DEFAULTS)
# Prefixes that training wrappers put in front of every key (DDP, torch.compile); stripped when
# *every* key has one, since then they are wrapping and not naming.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")

# Reference layer names (inside ``blocks.{t}.attn_blocks.{k}.``) -> flowkit names (inside
# ``net.transformer.layers.{k}.``), for the weight and bias of each.
_LAYER_NAMES = {
    "attention.norm": "attention.norm",
    "attention.qkv": "attention.qkv",
    "attention.proj": "attention.proj",
    "mlp.norm": "mlp.norm",
    "mlp.main.0": "mlp.fc1",
    "mlp.main.2": "mlp.fc2",
}


def _full_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The reference constructor arguments with defaults filled in; unknown or missing ones rejected."""
    unknown = sorted(set(config) - set(_REQUIRED) - set(_DEFAULTS))
    if unknown:
        raise TypeError(f"from_ml_tarflow: unknown reference config argument(s) {unknown}; "
                        f"expected {list(_REQUIRED)} and optionally {list(_DEFAULTS)}")
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise TypeError(f"from_ml_tarflow: missing reference config argument(s) {missing}")
    full = {**_DEFAULTS, **config}
    TarFlowConfig(**full).check("from_ml_tarflow")  # types and sizes, before any shape is computed from them
    return full


def _linear(prefix: str, out_features: int, in_features: int) -> dict[str, Shape]:
    return {f"{prefix}.weight": (out_features, in_features), f"{prefix}.bias": (out_features,)}


def _norm(prefix: str, features: int) -> dict[str, Shape]:
    return {f"{prefix}.weight": (features,), f"{prefix}.bias": (features,)}


def reference_shapes(**config: Any) -> dict[str, Shape]:
    """The key -> shape table of a reference ``Model.state_dict()`` for a config.

    Args:
        **config: the reference constructor arguments ``in_channels, img_size, patch_size, channels,
            num_blocks, layers_per_block, nvp, num_classes`` and optionally ``head_dim=64,
            expansion=4``.

    Returns:
        ``{key: shape}`` for every tensor, in the reference's order.

    Examples:
        >>> shapes = reference_shapes(in_channels=3, img_size=8, patch_size=2, channels=128, num_blocks=4,
        ...                           layers_per_block=2, nvp=True, num_classes=10)
        >>> len(shapes), shapes["var"], shapes["blocks.3.class_embed"], shapes["blocks.0.proj_out.weight"]
        (125, (16, 12), (10, 1, 128), (24, 128))
    """
    cfg = _full_config(config)
    c, p = cfg["channels"], cfg["patch_size"]
    n, d = (cfg["img_size"] // p) ** 2, cfg["in_channels"] * p * p
    hidden = c * cfg["expansion"]
    shapes: dict[str, Shape] = {"var": (n, d)}
    for t in range(cfg["num_blocks"]):
        blk = f"blocks.{t}"
        shapes[f"{blk}.pos_embed"] = (n, c)
        if cfg["num_classes"]:
            shapes[f"{blk}.class_embed"] = (cfg["num_classes"], 1, c)
        shapes[f"{blk}.attn_mask"] = (n, n)
        shapes.update(_linear(f"{blk}.proj_in", c, d))
        for k in range(cfg["layers_per_block"]):
            layer = f"{blk}.attn_blocks.{k}"
            shapes.update(_norm(f"{layer}.attention.norm", c))
            shapes.update(_linear(f"{layer}.attention.qkv", 3 * c, c))
            shapes.update(_linear(f"{layer}.attention.proj", c, c))
            shapes.update(_norm(f"{layer}.mlp.norm", c))
            shapes.update(_linear(f"{layer}.mlp.main.0", hidden, c))
            shapes.update(_linear(f"{layer}.mlp.main.2", c, hidden))
        shapes.update(_linear(f"{blk}.proj_out", 2 * d if cfg["nvp"] else d, c))
    return shapes


def _strip_wrapper_prefix(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    for prefix in _WRAPPER_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            return _strip_wrapper_prefix({k[len(prefix):]: v for k, v in state_dict.items()})
    return dict(state_dict)


def check_reference_state_dict(state_dict: Mapping[str, Tensor], **config: Any) -> None:
    """Check a reference state dict against the config, strictly; values are checked where they matter.

    Keys and shapes must match :func:`reference_shapes` exactly. Values are checked for the two
    tensors that flowkit does not store: every ``attn_mask`` must be the lower-triangular matrix of
    ones, and a non-volume-preserving model's ``var`` must be all ones (its prior is the standard
    normal). Tensors on the ``meta`` device pass the value checks (they have no values), so a
    large checkpoint's layout can be checked without allocating it.

    Raises:
        ValueError: naming the first missing or unexpected key, or a key with a wrong shape
            (expected and got) or a wrong value.
        TypeError: a value that is not a tensor.

    Examples:
        >>> cfg = dict(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=1, layers_per_block=1,
        ...            nvp=False, num_classes=0)
        >>> sd = {k: torch.empty(s, device="meta") for k, s in reference_shapes(**cfg).items()}
        >>> check_reference_state_dict(sd, **cfg)
        >>> sd["blocks.0.proj_in.weight"] = torch.empty(64, 5, device="meta")
        >>> check_reference_state_dict(sd, **cfg)
        Traceback (most recent call last):
        ...
        ValueError: ml-tarflow checkpoint: 'blocks.0.proj_in.weight' has shape (64, 5), expected (64, 4) for this config
    """
    cfg = _full_config(config)
    expected = reference_shapes(**cfg)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    hint = f"(config {cfg})"
    for what, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
            raise ValueError(f"ml-tarflow checkpoint: {what} key {keys[0]!r}{more} {hint}")
    for key, shape in expected.items():
        value = state_dict[key]
        if not isinstance(value, Tensor):
            raise TypeError(f"ml-tarflow checkpoint: {key!r} must be a tensor, got {type(value).__name__}")
        if tuple(value.shape) != shape:
            raise ValueError(f"ml-tarflow checkpoint: {key!r} has shape {tuple(value.shape)}, "
                             f"expected {shape} for this config")
    for key, value in state_dict.items():
        if not value.dtype.is_floating_point:
            raise TypeError(f"ml-tarflow checkpoint: {key!r} must be a floating-point tensor, got dtype {value.dtype}")
        if value.is_meta:
            continue
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f"ml-tarflow checkpoint: {key!r} has {bad} non-finite value(s) (nan or inf)")
        if key.endswith(".attn_mask") and not torch.equal(value, torch.ones_like(value).tril()):
            raise ValueError(f"ml-tarflow checkpoint: {key!r} is not the lower-triangular causal mask of ones; "
                             "flowkit's blocks are always causal")
        if key == "var" and cfg["nvp"] and not torch.equal(value, torch.ones_like(value)):
            raise ValueError("ml-tarflow checkpoint: 'var' must be all ones for a non-volume-preserving model "
                             f"(nvp=True uses a standard normal prior), got values in "
                             f"[{value.min().item():.4g}, {value.max().item():.4g}]")


def convert_state_dict(state_dict: Mapping[str, Tensor], model: TarFlow) -> dict[str, Tensor]:
    """Rename and reshape a (checked) reference state dict into ``model.state_dict()`` keys.

    Args:
        state_dict: a reference state dict that passed :func:`check_reference_state_dict`.
        model: the flowkit model built from the same config.

    Returns:
        A dict that ``model.load_state_dict(..., strict=True)`` takes.
    """
    names = {module: name for name, module in model.named_modules()}
    out: dict[str, Tensor] = {}
    for t, transform in enumerate(model.transforms):
        src, dst = f"blocks.{t}.", f"{names[transform]}.net."
        pos = state_dict[src + "pos_embed"]
        # Odd blocks see reversed tokens; the reference reverses its table along with them.
        out[dst + "pos_embed"] = pos.flip(0) if t % 2 else pos
        if src + "class_embed" in state_dict:
            out[dst + "class_embed"] = state_dict[src + "class_embed"].squeeze(1)
        for key, value in state_dict.items():
            if not key.startswith(src):
                continue
            rest = key[len(src):]
            if rest.startswith(("proj_in.", "proj_out.")):
                out[dst + rest] = value
            elif rest.startswith("attn_blocks."):
                _, k, layer_name = rest.split(".", 2)
                module, param = layer_name.rsplit(".", 1)
                out[f"{dst}transformer.layers.{k}.{_LAYER_NAMES[module]}.{param}"] = value
    if "base.var" in model.state_dict():
        out["base.var"] = state_dict["var"]
    return out


def _read(checkpoint: Checkpoint) -> Mapping[str, Any]:
    if isinstance(checkpoint, Mapping):
        return checkpoint
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"from_ml_tarflow: checkpoint must be a path or a state dict, got {type(checkpoint).__name__}")
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"from_ml_tarflow: no checkpoint file at {str(path)!r}")
    try:
        # mmap: a multi-GB checkpoint is paged in while copying instead of held twice in memory;
        # only zip-format files (torch.save's default since 1.6) can be mapped.
        loaded = torch.load(path, weights_only=True, map_location="cpu", mmap=zipfile.is_zipfile(path))
    except (RuntimeError, pickle.UnpicklingError, EOFError) as e:
        first_line = (str(e).splitlines() or [""])[0]
        raise ValueError(f"from_ml_tarflow: cannot read {str(path)!r} as a weights-only torch checkpoint "
                         f"({type(e).__name__}: {first_line})") from e
    if not isinstance(loaded, Mapping):
        raise TypeError(f"from_ml_tarflow: {str(path)!r} holds a {type(loaded).__name__}, not a state dict")
    return loaded


def _split_checkpoint(loaded: Mapping[str, Any],
                      config: Mapping[str, Any]) -> tuple[Mapping[str, Tensor], dict[str, Any]]:
    """The state dict and the config, from a plain state dict or a ``{"state_dict", "config"}`` bundle."""
    if "state_dict" not in loaded or "config" not in loaded:
        return loaded, dict(config)
    stored = dict(loaded["config"])
    clash = {k: (stored[k], v) for k, v in config.items() if k in stored and stored[k] != v}
    if clash:
        raise ValueError(f"from_ml_tarflow: config arguments {sorted(clash)} contradict the checkpoint's config "
                         f"(stored, given): {clash}")
    return loaded["state_dict"], {**stored, **config}


def load_ml_tarflow(checkpoint: Checkpoint, **config: Any) -> TarFlow:
    r"""Build a flowkit :class:`~flowkit.TarFlow` that computes the same function as a reference checkpoint.

    The result matches the reference ``Model`` on latents, per-block outputs, log-dets
    (flowkit's is the sum, the reference's the mean over the ``C H W`` dimensions) and
    guided samples. For a volume-preserving model (``nvp=False``) the reference's ``var`` becomes
    ``model.base.var``, so flowkit's ``log_prob`` uses the learned prior variance, where the
    reference's training loss assumes unit variance:

    .. math:: \log p_{\text{flowkit}} - \log p_{\text{ref}} = -\tfrac12 \textstyle\sum_j
        \left(z_j^2 / v_j - z_j^2 + \log v_j\right).

    Args:
        checkpoint: a path to a ``torch.save``-d reference state dict, the state dict itself, or a
            dict with ``"state_dict"`` and ``"config"`` keys (the format of flowkit's parity
            fixtures), whose config is then used. Paths load with ``weights_only=True``.
        **config: the reference constructor arguments ``in_channels, img_size, patch_size,
            channels, num_blocks, layers_per_block, nvp, num_classes``, optionally ``head_dim=64,
            expansion=4``.

    Returns:
        A float32 :class:`~flowkit.TarFlow` in eval mode, on the default device (build it under
        ``with torch.device("meta"):`` to check a large checkpoint's layout without allocating it).

    Raises:
        FileNotFoundError: no file at the path.
        TypeError: missing or unknown config arguments, or something other than a state dict.
        ValueError: a missing, unexpected or wrongly shaped key (named), a value flowkit cannot
            represent (see :func:`check_reference_state_dict`), a config that contradicts the
            checkpoint's, or a file that is not a weights-only torch checkpoint.

    Examples:
        >>> from flowkit import TarFlow
        >>> cfg = dict(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=2, layers_per_block=1,
        ...            nvp=True, num_classes=0)
        >>> sd = {k: torch.zeros(s) for k, s in reference_shapes(**cfg).items()}
        >>> sd["var"] = torch.ones(4, 4)
        >>> for t in range(2):
        ...     sd[f"blocks.{t}.attn_mask"] = torch.ones(4, 4).tril()
        >>> model = TarFlow.from_ml_tarflow(sd, **cfg)
        >>> model.config.channels, model.training
        (64, False)
    """
    state_dict, config = _split_checkpoint(_read(checkpoint), config)
    state_dict = _strip_wrapper_prefix(state_dict)
    cfg = _full_config(config)
    check_reference_state_dict(state_dict, **cfg)
    from .tarflow import TarFlow

    model = TarFlow(**cfg)
    model.load_state_dict(convert_state_dict(state_dict, model), strict=True)
    return model.eval()
