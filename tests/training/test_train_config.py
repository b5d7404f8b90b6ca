"""TrainConfig: presets, TOML files, typed overrides and validation."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from flowkit.training import PRESETS, TrainConfig, apply_overrides, config_to_toml, load_config, validate


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_validate_and_round_trip_through_toml(name: str, tmp_path: Path) -> None:
    cfg = load_config(name)
    validate(cfg)
    path = tmp_path / "config.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(path) == cfg


def test_preset_layouts() -> None:
    layouts = {n: (c.patch_size, c.channels, c.num_blocks, c.layers_per_block, c.sigma) for n, c in PRESETS.items()}
    assert layouts["mnist"] == (4, 128, 4, 4, 0.1)
    assert layouts["imagenet64"] == (2, 768, 8, 8, 0.05)
    assert layouts["imagenet128"] == (4, 1024, 8, 8, 0.15)
    assert layouts["afhq256"] == (8, 768, 8, 8, 0.07)
    assert PRESETS["afhq256"].num_classes == 3 and PRESETS["mnist"].img_size == 28
    assert all(c.betas == (0.9, 0.95) and c.weight_decay == 1e-4 and c.min_lr == 1e-6 for c in PRESETS.values())
    assert load_config(None) == PRESETS["digits"] == TrainConfig()


def test_loaded_configs_are_copies() -> None:
    cfg = load_config("digits")
    cfg.batch_size = 1
    assert PRESETS["digits"].batch_size != 1


def test_round_trip_of_unusual_values(tmp_path: Path) -> None:
    cfg = apply_overrides(
        TrainConfig(),
        {"epochs": 3, "num_classes": 0, "out": 'runs/"q"\\ü\t', "data_root": "/d", "lr": 1 / 3, "sigma": 1e-7},
    )
    text = config_to_toml(cfg)
    assert tomllib.loads(text)["out"] == 'runs/"q"\\ü\t'
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path) == cfg


def test_toml_file_with_preset_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('preset = "mnist"\nbatch_size = 32\nbetas = [0.8, 0.9]\nnoise = "uniform"\ndenoise = false\n')
    cfg = load_config(path)
    assert (cfg.data, cfg.patch_size, cfg.batch_size, cfg.betas, cfg.noise) == (
        "mnist-idx:data", 4, 32, (0.8, 0.9), "uniform")


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        (
            "batchsize = 3\n",
            ValueError,
            "unknown config key 'batchsize' \\(did you mean 'batch_size'\\?\\); valid keys: in_channels, ",
        ),
        ('preset = "cifar"\n', ValueError, "unknown preset 'cifar'; expected one of digits, mnist"),
        ("batch_size = \n", ValueError, "not valid TOML"),
        ("[model]\nchannels = 3\n", ValueError, "unknown config key 'model'"),
        ('lr = "fast"\n', ValueError, "config key 'lr' expects a number, got 'fast'"),
    ],
)
def test_bad_toml_files(tmp_path: Path, text: str, error: type[Exception], match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(error, match=match) as info:
        load_config(path)
    assert "\n" not in str(info.value) and "bad.toml" in str(info.value)


def test_missing_config_and_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file not found: .*nope.toml"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ValueError, match="unknown config 'cifar'; expected a preset \\(digits, mnist, imagenet64"):
        load_config("cifar")


def test_overrides_coerce_types() -> None:
    cfg = apply_overrides(
        TrainConfig(),
        {
            "batch-size": "32", "lr": "1e-3", "max_steps": "1e4", "nvp": "false", "compile": "yes",
            "betas": "0.8,0.99", "num_classes": "none", "precision": "bf16", "sigma": 1, "ema_decay": "0",
        },
    )
    assert (cfg.batch_size, cfg.lr, cfg.max_steps, cfg.nvp, cfg.compile) == (32, 1e-3, 10_000, False, True)
    assert cfg.betas == (0.8, 0.99) and cfg.num_classes is None and cfg.precision == "bf16"
    assert isinstance(cfg.sigma, float) and cfg.sigma == 1.0 and cfg.ema_decay == 0.0
    assert apply_overrides(TrainConfig(), {"num_classes": "10"}).num_classes == 10


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"batch_size": "many"}, "config key 'batch_size' expects an integer, got 'many'"),
        ({"batch_size": 1.5}, "expects an integer, got 1.5"),
        ({"batch_size": True}, "expects an integer, got True"),
        ({"nvp": "maybe"}, "config key 'nvp' expects true or false, got 'maybe'"),
        ({"precision": "fp16"}, "config key 'precision' expects one of 'fp32', 'bf16', 'auto', got 'fp16'"),
        ({"betas": "0.9"}, "config key 'betas' expects 2 comma-separated numbers"),
        ({"num_classes": "ten"}, "config key 'num_classes' expects an integer or none, got 'ten'"),
        ({"data": 3}, "config key 'data' expects a string, got 3"),
        ({"learning_rate": 1.0}, "unknown config key 'learning_rate'; valid keys: "),
    ],
)
def test_overrides_reject_bad_values(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        apply_overrides(TrainConfig(), overrides)
    assert "\n" not in str(info.value)


def test_epochs_and_max_steps_are_exclusive() -> None:
    cfg = apply_overrides(TrainConfig(), {"epochs": 4})
    assert (cfg.epochs, cfg.max_steps) == (4, None)
    cfg = apply_overrides(cfg, {"max_steps": 100})
    assert (cfg.epochs, cfg.max_steps) == (None, 100)
    with pytest.raises(ValueError, match="set exactly one of max_steps and epochs"):
        apply_overrides(TrainConfig(), {"epochs": 4, "max_steps": 100})


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"patch_size": 3}, "patch_size 3 must divide img_size 8"),
        ({"channels": 100}, "channels 100 must be a multiple of head_dim 32"),
        ({"num_blocks": 0}, "num_blocks must be >= 1, got 0"),
        ({"sigma": -0.1}, "sigma must be finite and >= 0"),
        ({"sigma": 0.0}, "noise 'gaussian' needs sigma > 0"),
        ({"noise": "uniform"}, "denoise needs noise 'gaussian', got 'uniform'; set denoise false"),
        ({"min_lr": 1.0}, "min_lr must be in \\[0, lr=0.002\\]"),
        ({"lr": float("nan")}, "lr must be finite and > 0"),
        ({"label_drop": 2.0}, "label_drop must be in \\[0, 1\\]"),
        ({"ema_decay": 1.0}, "ema_decay must be in \\[0, 1\\)"),
        ({"betas": (0.9, 1.0)}, "betas must lie in \\[0, 1\\)"),
        ({"val_fraction": 1.0}, "val_fraction must be in \\[0, 1\\)"),
        ({"num_classes": -1}, "num_classes must be >= 0 or none"),
        ({"batch_size": "64"}, "config key 'batch_size' expects an integer, got '64'"),
    ],
)
def test_validate_rejects(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        validate(dataclasses.replace(TrainConfig(), **changes))
    assert "\n" not in str(info.value)
