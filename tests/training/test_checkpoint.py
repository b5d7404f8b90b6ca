"""Checkpoints: atomic save, safe load (no code from the file runs), random-state round trips."""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from flowkit.training import TrainConfig, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from flowkit.training.checkpoint import CheckpointCorrupted


def test_round_trip(tmp_path: Path) -> None:
    state = {
        "step": 7,
        "model": {"w": torch.randn(3, 2), "b": torch.zeros(2, dtype=torch.bfloat16)},
        "config": dataclasses.asdict(TrainConfig()),
        "history": [1.5, None, "x", (1, 2)],
    }
    path = tmp_path / "sub" / "dir" / "ckpt.pt"  # parents are created
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["config"] == state["config"] and loaded["history"] == state["history"]
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["model"]["b"].dtype == torch.bfloat16
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temporary files left


def test_every_accepted_type_loads(tmp_path: Path) -> None:
    state = {
        "leaves": ["s", b"b", 1, 1.5, True, 1j, None, torch.ones(1), torch.nn.Parameter(torch.ones(1)),
                   torch.Size([2]), torch.float16, torch.device("cpu"), torch.strided],
        "containers": (OrderedDict(a=1), {1, 2}, {3: [4]}),
    }
    save_checkpoint(tmp_path / "c.pt", state)
    assert load_checkpoint(tmp_path / "c.pt")["containers"] == state["containers"]


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({"metrics": {"loss": np.float64(1.0)}}, "state\\['metrics'\\]\\['loss'\\] is a numpy.float64"),
        ({"opt": [1, np.zeros(2)]}, "state\\['opt'\\]\\[1\\] is a numpy.ndarray"),
        ({"cfg": TrainConfig()}, "state\\['cfg'\\] is a flowkit.training.config.TrainConfig"),
    ],
)
def test_save_refuses_what_load_would_refuse(tmp_path: Path, state: dict[str, object], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        save_checkpoint(tmp_path / "c.pt", state)
    assert not any(tmp_path.iterdir())


def test_overwrite_and_failed_save_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})
    save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 2

    def crash(obj: object, f: object) -> None:
        f.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 3})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_rng_state_restores_identical_draws(tmp_path: Path) -> None:
    random.gauss(0, 1)  # leave cached Gaussians in Python's and NumPy's generators
    np.random.standard_normal()
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    first = (random.random(), random.gauss(0, 1), np.random.rand(3), np.random.standard_normal(), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    second = (random.random(), random.gauss(0, 1), np.random.rand(3), np.random.standard_normal(), torch.rand(3))
    assert first[:2] == second[:2]
    assert np.array_equal(first[2], second[2]) and first[3] == second[3]
    assert torch.equal(first[4], second[4])


def test_malformed_rng_state() -> None:
    with pytest.raises(ValueError, match="malformed random-generator state: KeyError"):
        set_rng_state({"torch": torch.get_rng_state()})


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="is not a file"):
        load_checkpoint(tmp_path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 definitely not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt' is truncated or not a torch checkpoint") as info:
        load_checkpoint(garbage)
    assert "\n" not in str(info.value)
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"w": torch.randn(1000)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or not a torch checkpoint"):
        load_checkpoint(truncated)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="holds a list, expected a dict"):
        load_checkpoint(tmp_path / "list.pt")


def _leave_mark(path: str) -> None:
    Path(path).write_text("code from the checkpoint ran")


class Payload:
    """Unpickling this calls _leave_mark: the code a safe loader must never run."""

    def __init__(self, mark: Path) -> None:
        self.mark = str(mark)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_leave_mark, (self.mark,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize(
    ("protocol", "match"),
    [
        (None, "needs code to load \\(.*_leave_mark\\).*nothing in it was run"),  # torch.save
        (2, "needs code to load \\(.*_leave_mark\\).*nothing in it was run"),  # plain pickle
        (4, "truncated or not a torch checkpoint: Unsupported operand"),  # weights_only cannot even parse it
    ],
)
def test_pickled_code_is_refused_and_not_run(tmp_path: Path, protocol: int | None, match: str) -> None:
    mark = tmp_path / "mark.txt"
    path = tmp_path / "evil.pt"
    state = {"step": 1, "payload": Payload(mark)}
    if protocol is None:
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state, protocol=protocol))
    with pytest.raises(ValueError, match=match) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not mark.exists()


def test_checksum_catches_a_changed_tensor_or_value(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 5, "w": torch.arange(4.0)})
    for key, value in (("w", torch.tensor([0.0, 1.0, 2.0, 3.5])), ("step", 6)):
        raw = torch.load(path, weights_only=True)  # rewritten with the old checksum, as damage on disk would
        raw[key] = value
        torch.save(raw, tmp_path / "bad.pt")
        with pytest.raises(CheckpointCorrupted, match="bad.pt' is corrupted: its contents do not match the SHA-256"):
            load_checkpoint(tmp_path / "bad.pt")
    assert sorted(load_checkpoint(path)) == ["step", "w"]  # the checksum key is not handed back


def test_checksum_does_not_depend_on_the_process(tmp_path: Path) -> None:
    # Sets of strings iterate in a per-process order (PYTHONHASHSEED); the checksum must not follow it.
    code = ("import sys, torch; from flowkit.training import save_checkpoint; "
            "save_checkpoint(sys.argv[1], {'names': {'alpha', 'beta', 'gamma', 'delta'}, 'w': torch.ones(3)})")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.pt")], env=env, check=True, timeout=120)
    assert load_checkpoint(tmp_path / "c.pt")["names"] == {"alpha", "beta", "gamma", "delta"}


def test_a_failed_torch_write_is_an_oserror_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})

    def fail(obj: object, f: object) -> None:  # what torch raises when its C++ writer cannot write
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError, match=r"\[Errno 5\] torch could not write it \(\[enforce fail at "
                                      r"inline_container.cc:672\] \. unexpected pos 704 vs 598\): '.*ckpt.pt'"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
