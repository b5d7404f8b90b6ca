"""``flowkit train --data``: the data's channels and size are used, or a conversion is announced."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from flowkit.cli.main import main

TINY = ["--channels", "32", "--head-dim", "32", "--num-blocks", "1", "--layers-per-block", "1", "--batch-size", "4",
        "--max-steps", "1", "--sample-every", "0", "--no-progress", "--threads", "1"]


@pytest.fixture
def rgb16(tmp_path: Path) -> Path:
    folder = tmp_path / "rgb"
    folder.mkdir()
    for i in range(12):
        Image.new("RGB", (16, 16), (20 * i, 0, 255 - 20 * i)).save(folder / f"{i:02d}.png")
    return folder


def test_data_folder_sets_channels_and_size(rgb16: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(rgb16), "--out", str(tmp_path / "run"), *TINY]) == 0
    captured = capsys.readouterr()
    assert "data: 16x16 RGB images, so --in-channels 3 --img-size 16 (read from the data)" in captured.err
    assert "converting" not in captured.err
    text = (tmp_path / "run" / "config.toml").read_text()
    assert "in_channels = 3" in text and "img_size = 16" in text and "num_classes = 0" in text
    assert "trained 1 steps in" in captured.out and f"files in {tmp_path / 'run'}/" in captured.out
    assert "next: flowkit sample" in captured.out


def test_given_size_is_a_announced_conversion(rgb16: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(rgb16), "--img-size", "8", "--in-channels", "1",
                 "--out", str(tmp_path / "run"), *TINY]) == 0
    assert "data: converting 16x16 RGB images to 8x8 grayscale" in capsys.readouterr().err


def test_size_the_patch_does_not_divide_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    for i in range(4):
        Image.new("L", (9, 9), i).save(folder / f"{i}.png")
    assert main(["train", "--data", str(folder), "--out", str(tmp_path / "run"), *TINY]) == 1
    err = capsys.readouterr().err
    assert "are 9x9, which patch_size 2 does not divide; pass --patch-size P" in err
    assert len(err.strip().splitlines()) == 1
