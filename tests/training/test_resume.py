"""kill -9 at chosen points of a run, then ``--resume``: the result equals an uninterrupted run.

Each interrupted run is a child process that kills itself (SIGKILL) at a point chosen by a patch
installed before ``flowkit train`` starts: no timers, so nothing here can flake. The reference is a
fresh process that runs the whole schedule. 48 training images in batches of 16 make epochs of 3
steps; checkpoints are written every 2 steps, so resumes start inside later epochs and exactly on an
epoch boundary. The comparison (bitwise weights, EMA, optimizer step, every logged value, the final
sample grid, every step logged exactly once) fails for a resume that drops the checkpoint step's log
line, skips the first batch of an epoch, or restarts the epoch counter at 0.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from run_helpers import SMALL, STEPS_PER_EPOCH, cli_flags, run_python

from flowkit.cli.main import main
from flowkit.training import TrainConfig, apply_overrides, load_checkpoint, load_config

EPOCHS = 4
TOTAL = EPOCHS * STEPS_PER_EPOCH  # 12 steps, checkpoints at 2, 4, ..., 12

# The child: install one deterministic kill point, then run `flowkit train` with the remaining arguments.
CHILD = r"""
import io, json, os, signal, sys
import torch
import flowkit.training.trainer as trainer
import flowkit.training.run_folder as run_folder
from flowkit.cli.main import main

kind, arg = sys.argv[1], sys.argv[2]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if kind == "step":  # at the start of the step with this 0-based index (that many steps are done)
    noise = trainer._step_noise
    def step_noise(cfg, x, y, step, info):
        if step == int(arg):
            die()
        return noise(cfg, x, y, step, info)
    trainer._step_noise = step_noise
elif kind == "checkpoint-bytes":  # K:N: the K-th checkpoint write dies after N bytes of its temporary file
    k, n = map(int, arg.split(":"))
    save, calls = torch.save, [0]
    def partial_save(obj, f, *a, **kw):
        calls[0] += 1
        if calls[0] == k:
            buf = io.BytesIO()
            save(obj, buf, *a, **kw)
            f.write(buf.getvalue()[:n])
            f.flush()
            os.fsync(f.fileno())
            die()
        return save(obj, f, *a, **kw)
    torch.save = partial_save
elif kind == "after-checkpoint":  # right after the K-th checkpoint is renamed into place
    replace, calls = os.replace, [0]
    def replace_then_die(src, dst):
        replace(src, dst)
        if os.path.basename(dst) == "checkpoint.pt":
            calls[0] += 1
            if calls[0] == int(arg):
                die()
    os.replace = replace_then_die
elif kind == "torn-log":  # half-way through writing the log line of this step
    log = run_folder.RunFolder.log
    def torn_log(self, record):
        if record["step"] == int(arg):
            with open(self.dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record)[:25])
            die()
        log(self, record)
    run_folder.RunFolder.log = torn_log
else:
    raise SystemExit(f"unknown kill point {kind}")
sys.exit(main(["train", "--no-progress", *sys.argv[3:]]))
"""


@pytest.fixture(scope="module")
def cfg_flags(small_data: Path) -> list[str]:
    cfg = apply_overrides(load_config("digits"), {**SMALL, "data": str(small_data), "epochs": EPOCHS})
    return [f for f in cli_flags(cfg) if not f.startswith("--out=")]


@pytest.fixture(scope="module")
def reference(cfg_flags: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole schedule, uninterrupted, in a fresh process."""
    out = tmp_path_factory.mktemp("reference")
    proc = run_python("-m", "flowkit", "train", "--no-progress", *cfg_flags, f"--out={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _records(out: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _assert_same_run(run: Path, ref: Path) -> None:
    a, b = load_checkpoint(ref / "checkpoint.pt"), load_checkpoint(run / "checkpoint.pt")
    assert b["step"] == a["step"] == TOTAL
    for part in ("model", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key}"
    assert torch.equal(a["ema_n_averaged"], b["ema_n_averaged"])
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"] == TOTAL
    logged, expected = _records(run), _records(ref)
    assert [r["step"] for r in logged] == list(range(1, TOTAL + 1)), "a step is missing or logged twice"
    for got, want in zip(logged, expected, strict=True):
        for key in want.keys() - {"images_per_s"}:
            assert got[key] == want[key], (got["step"], key)
    assert (run / "samples.png").read_bytes() == (ref / "samples.png").read_bytes()


def _kill(kind: str, arg: str, out: Path, flags: list[str]) -> None:
    proc = run_python("-c", CHILD, kind, arg, *flags, f"--out={out}")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def _resume(out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["train", "--resume", "--no-progress", f"--out={out}"]) == 0
    return capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "arg", "checkpoint_before", "notice"), [
    ("step", "1", None, ""),  # before the first checkpoint: restarts from step 0 in the same folder
    ("step", "7", 6, ""),  # resumes exactly on the boundary of epoch 2 (of 0..3)
    ("step", "10", 10, ""),  # resumes inside the last epoch, one batch in
    ("checkpoint-bytes", "3:700", 4, "removed 1 temporary file"),  # mid-write of the step-6 checkpoint
    ("torn-log", "5", 4, "dropped a torn last line"),  # mid-write of a log line
    ("after-checkpoint", "6", TOTAL, ""),  # after the final checkpoint: nothing left but to report
])
def test_kill_9_anywhere_then_resume_equals_an_uninterrupted_run(
        kind: str, arg: str, checkpoint_before: int | None, notice: str, reference: Path, cfg_flags: list[str],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    _kill(kind, arg, out, cfg_flags)
    if checkpoint_before is None:
        assert not (out / "checkpoint.pt").exists() and (out / "config.toml").exists()
    else:
        assert load_checkpoint(out / "checkpoint.pt")["step"] == checkpoint_before
    err = _resume(out, capsys)
    assert notice in err
    _assert_same_run(out, reference)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "checkpoint.pt", "config.toml", "metrics.jsonl",
                                                      "samples.png"]


@pytest.mark.slow
def test_a_full_disk_mid_run_then_resume(reference: Path, cfg_flags: list[str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         small_cfg: Callable[..., TrainConfig]) -> None:
    """A file-size limit (``ulimit -f``, a real EFBIG from the kernel) stops the run with one line; the
    checkpoint before it is intact, and once the limit is gone ``--resume`` ends where the reference does."""
    out = tmp_path / "run"
    _kill("step", "5", out, cfg_flags)  # checkpoint of step 4 on disk
    size = (out / "checkpoint.pt").stat().st_size
    limit = f"import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({size // 2}, {size // 2}));"
    proc = run_python("-c", limit + "from flowkit.cli.main import main; sys.exit(main(sys.argv[1:]))",
                      "train", "--resume", "--no-progress", f"--out={out}")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.strip().splitlines() if not line.startswith("threads: ")]
    assert errors == [f"flowkit train: error: cannot write {str(out / 'checkpoint.pt')!r}: File too "
                      "large; the last checkpoint is intact: free space, then continue with --resume"]
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 4
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp.pt")]
    _resume(out, capsys)
    _assert_same_run(out, reference)
