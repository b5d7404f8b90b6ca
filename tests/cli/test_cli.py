"""The command line: sample and eval on a trained run, and one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flowkit.cli.main import build_parser, main
from flowkit.training import TrainConfig, apply_overrides, load_config, train
from flowkit.training.config import attribute_docs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = apply_overrides(load_config("digits"), dict(channels=64, num_blocks=2, layers_per_block=1, batch_size=16,
                                                       max_steps=2, eval_every=2, sample_every=0, out=str(out)))
    train(cfg, progress=False)
    return out


def test_sample_png_and_npz(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(run / "checkpoint.pt"), "--num", "20", "--out", str(tmp_path / "s.png")]) == 0
    img = Image.open(tmp_path / "s.png")
    assert img.mode == "L" and img.width > 8
    assert main(["sample", str(run / "checkpoint.pt"), "--num", "4", "--classes", "3,7", "--guidance", "2",
                 "--annealed", "--no-denoise", "--out", str(tmp_path / "s.npz")]) == 0
    data = np.load(tmp_path / "s.npz")
    assert data["x"].shape == (4, 1, 8, 8) and data["y"].tolist() == [3, 7, 3, 7]
    assert "wrote 4 samples" in capsys.readouterr().out


def test_eval_prints_a_summary_and_json(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run / "checkpoint.pt"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "bits/dim:" in out and "Bayes accuracy:" in out and "held-out split" in out and "180 images" in out
    assert main(["eval", str(run / "checkpoint.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 180 and result["dequantization"] == "uniform"
    # The summary shows the same number as the JSON, rounded.
    assert f"{result['bpd']:.3f}" in out and f"{result['bayes_acc']:.1%}" in out


def test_saved_config_has_the_resolved_class_count(run: Path) -> None:
    text = (run / "config.toml").read_text()
    assert "num_classes = 10" in text and "# num_classes = none" not in text


def test_sample_without_out_never_overwrites(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "samples.png").write_bytes(b"mine")
    for expected in ("samples_1.png", "samples_2.png"):
        assert main(["sample", str(run / "checkpoint.pt"), "--num", "2"]) == 0
        assert (run / expected).is_file()
    assert (tmp_path / "samples.png").read_bytes() == b"mine"
    assert main(["sample", str(run / "checkpoint.pt"), "--num", "2", "--out", "samples.png"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["sample", str(run / "checkpoint.pt"), "--num", "2", "--out", "samples.png", "--overwrite"]) == 0
    assert Image.open(tmp_path / "samples.png").mode == "L"


@pytest.mark.parametrize("extra, message", [
    (["--classes", "a,b"], "--classes expects comma-separated integer labels, got 'a,b'"),
    (["--classes", "-1"], "--classes: label -1 is outside [0, 10)"),
    (["--classes", "10"], "--classes: label 10 is outside [0, 10)"),
    (["--nrow", "0"], "--nrow must be >= 1, got 0"),
    (["--num", "0"], "--num must be >= 1, got 0"),
    (["--threads", "0"], "--threads must be an integer >= 1, got 0"),
    (["--device", "gpu"], "--device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["--ml-tarflow", "img_size=abc"], "--ml-tarflow: img_size expects an integer, got 'abc'"),
    (["--ml-tarflow", "img_size=8,colour=3"], "--ml-tarflow: unknown key 'colour'"),
    (["--ml-tarflow", "img_size"], "expected key=value, got 'img_size'"),
])
def test_sample_option_errors_are_one_line(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           extra: list[str], message: str) -> None:
    assert main(["sample", str(run / "checkpoint.pt"), "--out", str(tmp_path / "s.png"), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.png").exists()


def test_text_file_as_reference_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 50)
    assert main(["sample", str(text), "--ml-tarflow", "img_size=8", "--out", str(tmp_path / "s.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flowkit sample: error: ") and "notes.txt" in err and len(err.strip().splitlines()) == 1


def _unconditional_run(root: Path) -> Path:
    data = root / "d.npz"
    np.savez(data, x=np.random.default_rng(0).integers(0, 256, (40, 4, 4), dtype=np.uint8))
    out = root / "u"
    train(apply_overrides(load_config("digits"), dict(data=str(data), img_size=4, channels=32, num_blocks=1,
                                                       layers_per_block=1, batch_size=8, max_steps=1,
                                                       sample_every=0, out=str(out))), progress=False)
    return out / "checkpoint.pt"


def test_guidance_on_an_unconditional_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _unconditional_run(tmp_path)
    assert "num_classes = 0" in (ckpt.parent / "config.toml").read_text()
    assert main(["sample", str(ckpt), "--guidance", "2", "--out", str(tmp_path / "a.npz")]) == 1
    assert "changes nothing" in capsys.readouterr().err
    assert main(["sample", str(ckpt), "--guidance", "2", "--attn-temp", "0.5", "--out", str(tmp_path / "b.npz")]) == 0
    assert "acts only through --attn-temp 0.5" in capsys.readouterr().err
    assert main(["sample", str(ckpt), "--out", str(tmp_path / "c.npz")]) == 0  # no guidance: no note
    assert "guidance" not in capsys.readouterr().err
    # The attention temperature is a real change: guided samples differ from plain ones (same seed).
    assert not np.allclose(np.load(tmp_path / "b.npz")["x"], np.load(tmp_path / "c.npz")["x"])


def test_device_flag(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(run / "checkpoint.pt"), "--device", "cpu", "--num", "2",
                 "--out", str(tmp_path / "s.npz")]) == 0
    if torch.cuda.is_available():
        pytest.skip("this check is for machines without CUDA; the GPU path is checked on the GPU machine")
    capsys.readouterr()
    assert main(["sample", str(run / "checkpoint.pt"), "--device", "cuda", "--out", str(tmp_path / "t.npz")]) == 1
    err = capsys.readouterr().err
    assert "device 'cuda' asked for, but this PyTorch build sees no CUDA GPU" in err
    assert len(err.strip().splitlines()) == 1


def _actions(parser: argparse.ArgumentParser, path: str = "flowkit") -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_flag_has_help() -> None:
    parser = build_parser()
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in _actions(parser)
               if not a.help or a.help == argparse.SUPPRESS]
    assert missing == []
    train_help = parser._subparsers._group_actions[0].choices["train"].format_help()  # type: ignore[union-attr]
    for title in ("model", "data", "optimisation", "run", "sampling"):
        assert f"\n{title}" in train_help, title
    # Each config flag's help is its docstring line with the default (digits preset) appended.
    assert "Peak learning rate of AdamW, reached after warmup_steps of linear warm-up. [default: 0.002]" in \
        " ".join(train_help.split())
    # Every TrainConfig field is documented, so none falls back to its bare name.
    assert set(attribute_docs(TrainConfig)) >= {f.name for f in dataclasses.fields(TrainConfig)}


def test_top_level_help_says_what_to_run_first(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "Start with `flowkit train`" in out and "sample" in out and "eval" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "/nonexistent/folder"], "flowkit train: error: data '/nonexistent/folder' not found"),
    (["train", "--config", "imagenet9000"], "flowkit train: error: "),
    (["train", "--num-classes", "3", "--max-steps", "1"], "num_classes=3 but the data has 10 classes"),
    (["train", "--patch-size", "3"], "patch_size 3 must divide img_size 8"),
    (["train", "--bogus-flag", "1"], "unrecognized arguments"),
    (["sample", "/nonexistent/checkpoint.pt"], "flowkit sample: error: "),
    (["eval", "/nonexistent/checkpoint.pt"], "flowkit eval: error: "),
])
def test_errors_are_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowkit", *argv, "--out" if argv[0] == "train" else "--seed",
                           str(tmp_path / "o") if argv[0] == "train" else "0"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout, not the installed one
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    if "unrecognized" not in message:  # one error line; the start-up "threads: ..." line may precede it
        lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("threads: ")]
        assert len(lines) == 1, proc.stderr


def test_corrupt_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["sample", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flowkit sample: error: ") and len(err.strip().splitlines()) == 1
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    assert main(["eval", str(tmp_path / "other.pt")]) == 1
    assert "not a flowkit training checkpoint" in capsys.readouterr().err


FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "ml_tarflow"


@pytest.mark.skipif(not (FIXTURES / "cond_nvp_c3_s8_p2.pt").exists(),
                    reason=f"reference fixtures not found in {FIXTURES}")
def test_sample_and_eval_a_reference_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = str(FIXTURES / "cond_nvp_c3_s8_p2.pt")
    out = str(tmp_path / "r.npz")
    assert main(["sample", ckpt, "--ml-tarflow", "--num", "4", "--guidance", "1.5", "--out", out]) == 0
    assert np.load(tmp_path / "r.npz")["x"].shape == (4, 3, 8, 8)
    images = (np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3))).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x=images, y=np.arange(12) % 10)
    assert main(["eval", ckpt, "--ml-tarflow", "--data", str(tmp_path / "d.npz")]) == 0
    assert "bits/dim:" in capsys.readouterr().out
    assert main(["sample", ckpt, "--ml-tarflow", "--denoise"]) == 1
    assert "--denoise needs --sigma" in capsys.readouterr().err
