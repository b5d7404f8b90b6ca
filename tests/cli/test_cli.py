"""The command line: sample and eval on a trained run, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flowkit.cli.main import main
from flowkit.training import apply_overrides, load_config, train


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


def test_eval_prints_bpd_and_accuracy(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run / "checkpoint.pt")]) == 0
    out = capsys.readouterr().out
    assert '"bpd"' in out and '"bayes_acc"' in out


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
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    if "unrecognized" not in message:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


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


@pytest.mark.skipif(not (FIXTURES / "cond_nvp_c3_s8_p2.pt").exists(), reason=f"reference fixtures not found in {FIXTURES}")
def test_sample_and_eval_a_reference_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = str(FIXTURES / "cond_nvp_c3_s8_p2.pt")
    assert main(["sample", ckpt, "--ml-tarflow", "--num", "4", "--guidance", "1.5", "--out", str(tmp_path / "r.npz")]) == 0
    assert np.load(tmp_path / "r.npz")["x"].shape == (4, 3, 8, 8)
    images = (np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3))).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x=images, y=np.arange(12) % 10)
    assert main(["eval", ckpt, "--ml-tarflow", "--data", str(tmp_path / "d.npz")]) == 0
    assert '"bpd"' in capsys.readouterr().out
    assert main(["sample", ckpt, "--ml-tarflow", "--denoise"]) == 1
    assert "--denoise needs --sigma" in capsys.readouterr().err
