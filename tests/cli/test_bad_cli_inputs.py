"""Bad command-line inputs (issue 10): ``flowkit train | sample | eval`` exits non-zero with one error line
on stderr that names the flag, key or file and what was expected, never a traceback, and never runs on.

In-process (``flowkit.cli.main.main``), on two tiny checkpoints trained once for the module. Placeholders
in the rows: ``CK`` the conditional checkpoint (10 classes), ``UK`` the unconditional one, ``D/`` a folder
of bad data and config files, ``OUT`` where samples would go (nothing may be written there). One row per
distinct bad input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowkit.cli.main import main
from flowkit.training import apply_overrides, load_config, train

TINY = dict(
    channels=32, head_dim=16, num_blocks=1, layers_per_block=1, batch_size=16, max_steps=2, eval_every=0, sample_every=0
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two tiny checkpoints and a folder of bad inputs."""
    root = tmp_path_factory.mktemp("badcli")
    for name, classes in (("cond", {}), ("uncond", {"num_classes": 0})):
        train(apply_overrides(load_config("digits"), {**TINY, **classes, "out": str(root / name)}), progress=False)
    d = root / "bad"
    d.mkdir()
    (d / "notes.pt").write_text("not a checkpoint\n")
    np.savez(d / "negative.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array([-1, 0, 1, 2]))
    np.savez(d / "unlabelled.npz", x=np.zeros((4, 8, 8), np.uint8))
    np.savez(d / "float_labels.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array([0.5, 0, 1, 2]))
    np.savez(d / "label_99.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 2, 99]))
    np.save(d / "float_images.npy", np.random.default_rng(0).random((4, 8, 8)))
    for key, value in {
        "batch_size": '"x"',
        "bogus_key": "1",
        "lr": "-1.0",
        "img_size": "8.5",
        "label_drop": "1.5",
        "max_steps": "true",
        "sigma": "nan",
        "preset": '"imagenet9000"',
        "in_channels": "2",
    }.items():
        (d / f"{key}.toml").write_text(f"{key} = {value}\n")
    (d / "section.toml").write_text("[section]\nlr = 1\n")
    (d / "not_toml.toml").write_text("this is not toml\n")
    return {"CK": str(root / "cond" / "checkpoint.pt"), "UK": str(root / "uncond" / "checkpoint.pt"), "D/": f"{d}/"}


# (argv, words of the error line); argv placeholders are replaced by `files`.
SAMPLE = [
    (["--classes", "a,b"], "--classes expects comma-separated integer labels, got 'a,b'"),
    (["--classes", "1,,2"], "--classes expects comma-separated integer labels, got '1,,2'"),
    (["--classes", ""], "--classes expects comma-separated integer labels, got an empty string"),
    (["--classes", "-1"], "--classes: label -1 is outside [0, 10) of this 10-class model"),
    (["--classes", "10"], "--classes: label 10 is outside [0, 10) of this 10-class model"),
    (["--nrow", "0"], "--nrow must be >= 1, got 0"),
    (["--num", "0"], "--num must be >= 1, got 0"),
    (["--num", "-3"], "--num must be >= 1, got -3"),
    (["--num", "abc"], "argument --num: invalid int value: 'abc'"),
    (["--num", "2.5"], "argument --num: invalid int value: '2.5'"),
    (["--guidance", "inf"], "guidance must be a finite float >= 0, got inf"),
    (["--guidance", "nan"], "guidance must be a finite float >= 0, got nan"),
    (["--guidance", "-1"], "guidance must be a finite float >= 0, got -1.0"),
    (["--guidance", "abc"], "argument --guidance: invalid float value: 'abc'"),
    (["--temperature", "inf"], "temperature must be a finite float >= 0, got inf"),
    (["--temperature", "-1"], "temperature must be a finite float >= 0, got -1.0"),
    (["--temperature", "nan"], "temperature must be a finite float >= 0, got nan"),
    (["--attn-temp", "0", "--guidance", "1"], "attn_temp must be a finite float > 0, got 0.0"),
    (["--attn-temp", "nan", "--guidance", "1"], "attn_temp must be a finite float > 0, got nan"),
    (["--guide-what", "c"], "argument --guide-what: invalid choice: 'c'"),
    (["--method", "magic"], "method must be one of ('sequential', 'jacobi'"),
    (["--sigma", "-1", "--denoise"], "denoise: sigma must be a finite float >= 0, got -1.0"),
    (["--sigma", "nan", "--denoise"], "denoise: sigma must be a finite float >= 0, got nan"),
    (["--seed", "x"], "argument --seed: invalid int value: 'x'"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--out", "D/s.jpg"], "--out must end in .png or .npz, got 's.jpg'"),
    (["--out", "D/"], "is a folder; give a file name ending in .png or .npz"),
    (["--out", "D/notes.pt"], "--out must end in .png or .npz, got 'notes.pt'"),
    (["--device", "bogus"], "--device must be auto, cpu, cuda, cuda:N or mps, got 'bogus'"),
    (["--device", "meta"], "--device must be auto, cpu, cuda, cuda:N or mps, got 'meta'"),
    (["--threads", "0"], "--threads must be an integer >= 1, got 0"),
    (["--threads", "x"], "argument --threads: invalid int value: 'x'"),
    (["--ml-tarflow", "img_size=abc"], "--ml-tarflow: img_size expects an integer, got 'abc'"),
    (["--ml-tarflow", "img_size=8.0"], "--ml-tarflow: img_size expects an integer, got 8.0"),
    (["--ml-tarflow", "bogus=1"], "--ml-tarflow: unknown key 'bogus'; expected some of in_channels"),
    (["--ml-tarflow", "img_size"], "expected key=value, got 'img_size'"),
    (["--ml-tarflow", "nvp=maybe"], "--ml-tarflow: nvp expects true or false, got 'maybe'"),
    (["--ml-tarflow", "img_size=8"], "--ml-tarflow: from_ml_tarflow: missing reference config argument(s)"),
]
SAMPLE_SOURCE = [  # the checkpoint argument itself, or the model it holds
    (["D/notes.pt"], "'D/notes.pt' is not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)"),
    (["D/notes.pt", "--ml-tarflow", "in_channels=1,img_size=8"], "'D/notes.pt' is not a PyTorch checkpoint"),
    (["D/"], "is not a file"),
    (["D/missing.pt"], "checkpoint not found: 'D/missing.pt'"),
    (["UK", "--classes", "1"], "--classes given, but the model is unconditional"),
    (["UK", "--classes", ""], "--classes given, but the model is unconditional"),
    (["UK", "--guidance", "2"], "--guidance on an unconditional model acts only through the attention temperature"),
]
EVAL = [
    (["--data", "D/negative.npz"], "labels must lie in [0, 3), got values in [-1, 2]"),
    (
        ["--data", "D/unlabelled.npz"],
        "the model is class-conditional (10 classes) but the data 'D/unlabelled.npz' has no labels",
    ),
    (["--data", "D/float_labels.npz"], "float_labels.npz['y'] must be integer labels shaped (4,), got float64"),
    (["--data", "D/label_99.npz"], "the data 'D/label_99.npz' has 100 classes but the model has 10"),
    (["--data", "D/float_images.npy"], "float_images.npy: expected uint8 images shaped (N, H, W)"),
    (["--data", "D/missing"], "data 'D/missing' not found; expected 'digits'"),
    (["--data", "D/notes.pt"], "cannot load data from 'D/notes.pt'"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--seed", "-5"], "--seed must be >= 0, got -5"),
    (["--batch-size", "-1"], "--batch-size must be >= 1, got -1"),
    (["--batch-size", "x"], "argument --batch-size: invalid int value: 'x'"),
    (["--device", "cuda:x"], "--device must be auto, cpu, cuda, cuda:N or mps, got 'cuda:x'"),
]
EVAL_SOURCE = [
    (["D/notes.pt"], "'D/notes.pt' is not a PyTorch checkpoint"),
    (["D/missing.pt"], "checkpoint not found: 'D/missing.pt'"),
    (["D/notes.pt", "--ml-tarflow", "img_size=8"], "'D/notes.pt' is not a PyTorch checkpoint"),
]
TRAIN = [
    (["--config", "D/batch_size.toml"], "batch_size.toml: config key 'batch_size' expects an integer, got 'x'"),
    (["--config", "D/bogus_key.toml"], "bogus_key.toml: unknown config key 'bogus_key'"),
    (["--config", "D/lr.toml"], "lr.toml: lr must be finite and > 0, got -1.0"),
    (["--config", "D/img_size.toml"], "img_size.toml: config key 'img_size' expects an integer, got 8.5"),
    (["--config", "D/label_drop.toml"], "label_drop.toml: label_drop must be in [0, 1], got 1.5"),
    (["--config", "D/max_steps.toml"], "max_steps.toml: config key 'max_steps' expects an integer or none, got True"),
    (["--config", "D/sigma.toml"], "sigma.toml: sigma must be finite and >= 0, got nan"),
    (["--config", "D/preset.toml"], "preset.toml: unknown preset 'imagenet9000'"),
    (["--config", "D/in_channels.toml"], "in_channels.toml: in_channels must be 1 (grayscale) or 3 (RGB), got 2"),
    (["--config", "D/section.toml"], "section.toml: unknown config key 'section'"),
    (["--config", "D/not_toml.toml"], "not_toml.toml: not valid TOML"),
    (["--config", "D/notes.pt"], "notes.pt: not valid TOML"),
    (["--config", "D/missing.toml"], "config file not found: 'D/missing.toml'"),
    (["--config", "imagenet9000"], "unknown config 'imagenet9000'; expected a preset"),
    (["--batch-size", "0"], "batch_size must be >= 1, got 0"),
    (["--batch-size", "-4"], "batch_size must be >= 1, got -4"),
    (["--batch-size", "x"], "config key 'batch_size' expects an integer, got 'x'"),
    (["--batch-size", "1.5"], "config key 'batch_size' expects an integer, got '1.5'"),
    (["--lr", "abc"], "config key 'lr' expects a number, got 'abc'"),
    (["--lr", "nan"], "lr must be finite and > 0, got nan"),
    (["--lr", "inf"], "lr must be finite and > 0, got inf"),
    (["--lr", "-1"], "lr must be finite and > 0, got -1.0"),
    (["--lr", "0"], "lr must be finite and > 0, got 0.0"),
    (["--nvp", "maybe"], "config key 'nvp' expects true or false, got 'maybe'"),
    (["--label-drop", "1.5"], "label_drop must be in [0, 1], got 1.5"),
    (["--label-drop", "nan"], "label_drop must be in [0, 1], got nan"),
    (["--noise", "bogus"], "config key 'noise' expects one of 'gaussian', 'uniform', 'none', got 'bogus'"),
    (["--sigma", "-1"], "sigma must be finite and >= 0, got -1.0"),
    (["--coupling", "bogus"], "config key 'coupling' expects one of 'autoregressive', 'channel', got 'bogus'"),
    (["--channels", "0"], "channels must be >= 1, got 0"),
    (["--channels", "48", "--head-dim", "32"], "channels 48 must be a multiple of head_dim 32"),
    (["--img-size", "abc"], "config key 'img_size' expects an integer, got 'abc'"),
    (["--img-size", "7"], "patch_size 2 must divide img_size 7"),
    (["--patch-size", "3"], "patch_size 3 must divide img_size 8"),
    (["--in-channels", "2"], "in_channels must be 1 (grayscale) or 3 (RGB), got 2"),
    (["--num-classes", "-1"], "num_classes must be >= 0 or none, got -1"),
    (["--num-classes", "3"], "num_classes=3 but the data has 10 classes"),
    (["--max-steps", "0"], "max_steps must be >= 1, got 0"),
    (["--max-steps", "-1"], "max_steps must be >= 1, got -1"),
    (["--warmup-steps", "-1"], "warmup_steps must be >= 0, got -1"),
    (["--val-fraction", "1"], "val_fraction must be in [0, 1), got 1.0"),
    (["--val-fraction", "-0.1"], "val_fraction must be in [0, 1), got -0.1"),
    (["--eval-every", "-1"], "eval_every must be >= 0, got -1"),
    (["--ema-decay", "2"], "ema_decay must be in [0, 1) (0 disables it), got 2.0"),
    (["--grad-clip", "-1"], "grad_clip must be finite and >= 0 (0 disables it), got -1.0"),
    (["--weight-decay", "nan"], "weight_decay must be finite and >= 0, got nan"),
    (["--precision", "fp8"], "config key 'precision' expects one of 'fp32', 'bf16', 'auto', got 'fp8'"),
    (["--device", "meta"], "device must be auto, cpu, cuda, cuda:N or mps, got 'meta'"),
    (["--seed", "x"], "config key 'seed' expects an integer, got 'x'"),
    (["--seed", "-1"], "seed must be >= 0, got -1"),
    (["--sample-guidance", "-1"], "sample_guidance must be finite and >= 0, got -1.0"),
    (["--threads", "0"], "--threads must be an integer >= 1, got 0"),
    (["--bogus-flag", "1"], "unrecognized arguments: --bogus-flag 1"),
    (["--data", "D/negative.npz"], "labels must lie in [0, 3), got values in [-1, 2]"),
    (["--data", "D/float_labels.npz"], "float_labels.npz['y'] must be integer labels shaped (4,), got float64"),
    (["--data", "D/float_images.npy"], "float_images.npy: expected uint8 images shaped (N, H, W)"),
    (["--data", "D/notes.pt"], "cannot load data from 'D/notes.pt'"),
    (["--data", "D/missing"], "data 'D/missing' not found"),
    (["--out", "D/notes.pt"], "the run folder D/notes.pt is a file, not a folder; choose another --out"),
    (["--resume", "--out", "D/no_run_here"], "cannot resume: there is no run in D/no_run_here"),
    (["--resume", "--overwrite"], "resume and overwrite exclude each other"),
]

ROWS = (
    [pytest.param(["sample", "CK", "--out", "OUT", *a], w, id=f"sample {' '.join(a)}") for a, w in SAMPLE]
    + [pytest.param(["sample", *a, "--out", "OUT"], w, id=f"sample source {' '.join(a)}") for a, w in SAMPLE_SOURCE]
    + [pytest.param(["eval", "CK", *a], w, id=f"eval {' '.join(a)}") for a, w in EVAL]
    + [pytest.param(["eval", *a], w, id=f"eval source {' '.join(a)}") for a, w in EVAL_SOURCE]
    # --max-steps 1 first (a row's own flags come later and win): a row that slipped through trains one step, not 2000
    + [
        pytest.param(["train", "--max-steps", "1", "--out", "D/run", *a], w, id=f"train {' '.join(a)}")
        for a, w in TRAIN
    ]
)


def _fill(text: str, files: dict[str, str]) -> str:
    for key, value in files.items():
        text = text.replace(key, value)
    return text


@pytest.mark.parametrize("argv, words", ROWS)
def test_bad_flag_is_one_error_line(
    argv: list[str], words: str, files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "samples.png"
    try:
        status = main([_fill(a, {**files, "OUT": str(out)}) for a in argv])
    except SystemExit as e:  # argparse's own refusals (exit status 2, after a usage line)
        status = e.code
    err = capsys.readouterr().err
    assert status not in (0, None)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("threads:")]  # the thread-count note
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and errors[0] == lines[-1], err
    assert errors[0].startswith(f"flowkit {argv[0]}: error: " if status == 1 else "flowkit")
    assert _fill(words, files) in errors[0]
    if status == 1:  # our own errors are exactly one line; argparse adds its usage above
        assert len(lines) == 1, err
    assert not out.exists()


def test_eval_says_when_it_converts_images(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RGB and RGBA folders scored by a grayscale model: converted, and said so in one line."""
    for mode in ("RGB", "RGBA"):
        folder = tmp_path / mode / "cat"
        folder.mkdir(parents=True)
        for i in range(2):
            Image.new(mode, (8, 8), (200, 10, 10, 255)[: len(mode)]).save(folder / f"{i}.png")
        assert main(["eval", files["UK"], "--data", str(folder.parent), "--json"]) == 0
        notes = [line for line in capsys.readouterr().err.splitlines() if "converting" in line]
        assert notes == [
            "flowkit eval: converting the data's 3x8x8 images to the model's 1x8x8 (channels x height x width)"
        ]


def test_the_rows_are_distinct() -> None:
    ids = [p.id for p in ROWS]
    assert len(ids) == len(set(ids))
