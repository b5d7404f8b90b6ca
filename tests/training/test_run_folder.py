"""The run folder: one writer, no silent replacement, atomic files, and one-line errors for every failure."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from run_helpers import cli_flags, run_python

import flowkit.training.trainer as trainer
from flowkit._io import write_atomic
from flowkit.cli.main import main
from flowkit.training import TrainConfig, load_checkpoint, save_checkpoint, train
from flowkit.training.checkpoint import CheckpointCorrupted
from flowkit.training.run_folder import STAGING, RunFolder
from flowkit.training.trainer import TrainingDiverged

Cfg = Callable[..., TrainConfig]


def _stop_at(monkeypatch: pytest.MonkeyPatch, index: int) -> None:
    """Interrupt training (KeyboardInterrupt) at the start of the step with this 0-based index."""
    noise = trainer._step_noise

    def step_noise(cfg, x, y, step, info):  # type: ignore[no-untyped-def]
        if step == index:
            raise KeyboardInterrupt
        return noise(cfg, x, y, step, info)

    monkeypatch.setattr(trainer, "_step_noise", step_noise)


def _without_threads_note(err: str) -> str:
    """stderr less the start-up line of the thread policy ("threads: ..."), which may precede an error."""
    lines = err.strip().splitlines()
    return "\n".join(lines[1:] if lines and lines[0].startswith("threads: ") else lines)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = _without_threads_note(capsys.readouterr().err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".lock"}


# ---- one writer -----------------------------------------------------------------------------------------


def test_a_second_trainer_exits_at_once_naming_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunFolder(out).opened():  # this process holds the lock, as a running trainer would
        proc = run_python("-m", "flowkit", "train", "--no-progress", f"--out={out}")
    assert proc.returncode == 1
    assert _without_threads_note(proc.stderr) == (
        f"flowkit train: error: the run folder {out} is in use by process {os.getpid()} "
        f"(lock {out / '.lock'}); wait for it to finish or stop it, or choose another --out")
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # it stopped before writing anything


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    code = ("import os, signal, sys; from flowkit.training.run_folder import RunFolder; "
            "RunFolder(sys.argv[1]).open(); os.kill(os.getpid(), signal.SIGKILL)")
    assert run_python("-c", code, str(tmp_path)).returncode == -9
    with RunFolder(tmp_path).opened():  # a stale lock file does not block
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


# ---- new runs, replacing runs ---------------------------------------------------------------------------


def test_a_new_run_refuses_a_folder_with_run_files(tmp_path: Path, small_cfg: Cfg,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.toml").write_text("my = 'own file'\n")
    (tmp_path / "notes.txt").write_text("mine")
    before = _snapshot(tmp_path)
    assert main(["train", "--no-progress", f"--out={tmp_path}", "--max-steps=2"]) == 1
    assert _one_error_line(capsys) == (f"flowkit train: error: {tmp_path} already holds a run (config.toml); pass "
                                       "--resume to continue it or --overwrite to replace it, or choose another --out")
    assert _snapshot(tmp_path) == before


def test_a_folder_of_unrelated_files_is_fine(tmp_path: Path, small_cfg: Cfg) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    train(small_cfg(tmp_path, max_steps=2), progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2


def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(
        tmp_path: Path, small_cfg: Cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    train(small_cfg(tmp_path, max_steps=4, sample_every=2), progress=False)
    old = _snapshot(tmp_path)
    assert "samples_step000002.png" in old
    # A replacing run that stops before its first checkpoint (interrupted, then diverged) leaves the old run whole.
    _stop_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(small_cfg(tmp_path, max_steps=4, lr=2e-3), overwrite=True, progress=False)
    monkeypatch.undo()
    assert _snapshot(tmp_path) == old and (tmp_path / STAGING / "config.toml").exists()
    monkeypatch.setattr(trainer, "evaluate_bpd", lambda *a, **k: float("nan"))
    kept = f"no checkpoint of this run was kept, and the previous run in {tmp_path} is untouched"
    with pytest.raises(TrainingDiverged, match=kept):
        train(small_cfg(tmp_path, max_steps=4, lr=2e-3), overwrite=True, progress=False)
    monkeypatch.undo()
    assert _snapshot(tmp_path) == old
    # Once it succeeds, nothing of the old run is left.
    train(small_cfg(tmp_path, max_steps=4, lr=2e-3), overwrite=True, progress=False)
    assert sorted(_snapshot(tmp_path)) == ["checkpoint.pt", "config.toml", "metrics.jsonl", "samples.png"]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["lr"] == 2e-3
    assert "lr = 0.002" in (tmp_path / "config.toml").read_text()
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_a_replacement_killed_before_its_first_checkpoint_resumes_as_the_new_run(
        tmp_path: Path, small_cfg: Cfg, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    train(small_cfg(tmp_path, max_steps=2), progress=False)
    _stop_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(small_cfg(tmp_path, max_steps=4, lr=2e-3), overwrite=True, progress=False)
    monkeypatch.undo()
    assert main(["train", "--resume", "--no-progress", f"--out={tmp_path}"]) == 0  # the config of the new run
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 4 and state["config"]["lr"] == 2e-3 and not (tmp_path / STAGING).exists()
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_a_replacement_cut_short_mid_swap_is_finished_on_the_next_start(
        tmp_path: Path, small_cfg: Cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    train(small_cfg(tmp_path, max_steps=2, sample_every=1), progress=False)
    import flowkit.training.run_folder as run_folder

    replace = os.replace

    def crash_on_checkpoint(src: str, dst: str) -> None:  # dies between moving the files and the checkpoint
        if Path(dst) == tmp_path / "checkpoint.pt":
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(run_folder.os, "replace", crash_on_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(small_cfg(tmp_path, max_steps=4, lr=2e-3), overwrite=True, progress=False)
    monkeypatch.undo()
    with RunFolder(tmp_path, resume=True).opened():  # any start rolls the replacement forward
        pass
    assert not (tmp_path / STAGING).exists()
    assert sorted(_snapshot(tmp_path)) == ["checkpoint.pt", "config.toml", "metrics.jsonl"]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["lr"] == 2e-3 and "lr = 0.002" in (
        tmp_path / "config.toml").read_text()


# ---- resume checks -----------------------------------------------------------------------------------------


def test_resume_and_overwrite_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--resume", "--overwrite", f"--out={tmp_path}", "--max-steps=1"]) == 1
    assert _one_error_line(capsys) == ("flowkit train: error: resume and overwrite exclude each other: --resume "
                                       "continues the run in the folder, --overwrite replaces it")
    assert not any(tmp_path.iterdir())


def test_resume_of_a_folder_without_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--resume", f"--out={tmp_path}"]) == 1
    assert _one_error_line(capsys) == (f"flowkit train: error: cannot resume: there is no run in {tmp_path} (no "
                                       "checkpoint.pt or config.toml); start one without --resume")


def test_resume_refuses_a_conflicting_flag_and_keeps_config_toml(
        tmp_path: Path, small_cfg: Cfg, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _stop_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train(small_cfg(tmp_path, max_steps=6), progress=False)
    monkeypatch.undo()
    assert main(["train", "--resume", "--no-progress", f"--out={tmp_path}", "--lr=0.01"]) == 1
    assert _one_error_line(capsys) == (
        f"flowkit train: error: cannot resume {tmp_path}: lr=0.01 (from a flag or config.toml) differs from the "
        "run's lr=0.001 stored in its checkpoint; drop that change, or start a new run with --overwrite")
    # A torn config.toml (an older flowkit rewrote it in place): the checkpoint's config wins.
    (tmp_path / "config.toml").write_text("batch_size = 6")
    assert main(["train", "--resume", "--no-progress", f"--out={tmp_path}"]) == 0
    assert "config.toml did not match the config of the run being resumed" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 6
    assert "batch_size = 16" in (tmp_path / "config.toml").read_text()
    inode = (tmp_path / "config.toml").stat().st_ino
    assert main(["train", "--resume", "--no-progress", f"--out={tmp_path}"]) == 0  # already done: nothing rewritten
    assert (tmp_path / "config.toml").stat().st_ino == inode


def test_a_symlinked_config_is_replaced_not_written_through(tmp_path: Path, small_cfg: Cfg,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out, target = tmp_path / "run", tmp_path / "elsewhere.toml"
    _stop_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train(small_cfg(out, max_steps=4), progress=False)
    monkeypatch.undo()
    target.write_text("# someone else's file\n")
    (out / "config.toml").unlink()
    (out / "config.toml").symlink_to(target)
    train(small_cfg(out, max_steps=4), resume=True, progress=False)
    assert target.read_text() == "# someone else's file\n"
    assert not (out / "config.toml").is_symlink() and "batch_size = 16" in (out / "config.toml").read_text()


def test_write_atomic_replaces_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    write_atomic(tmp_path / "link", "new")
    assert (tmp_path / "target").read_text() == "keep" and (tmp_path / "link").read_text() == "new"
    assert not (tmp_path / "link").is_symlink()


def test_prepare_log_cuts_a_torn_line_and_later_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = RunFolder(tmp_path, resume=True)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "lo')
    assert folder.prepare_log(2) == {"step": 2}
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'
    torn = len(b'{"step": 4, "lo')
    assert capsys.readouterr().err == (f"flowkit: {tmp_path / 'metrics.jsonl'}: dropped a torn last line ({torn} "
                                       "bytes) left by an interrupted write\n")
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not a JSON record: b'not json'"):
        folder.prepare_log(2)


# ---- checkpoints ------------------------------------------------------------------------------------------


def test_a_flipped_tensor_byte_is_one_line(tmp_path: Path, small_cfg: Cfg, capsys: pytest.CaptureFixture[str]) -> None:
    train(small_cfg(tmp_path, max_steps=2), progress=False)
    path = tmp_path / "checkpoint.pt"
    weights = max(load_checkpoint(path)["model"].values(), key=torch.Tensor.numel)
    raw = bytearray(path.read_bytes())
    at = raw.find(weights.numpy().tobytes())
    assert at > 0
    raw[at: at + 64] = bytes(b ^ 0xFF for b in raw[at: at + 64])  # 64 flipped bytes inside one tensor
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointCorrupted, match="is corrupted: its contents do not match the SHA-256"):
        load_checkpoint(path)
    for argv in (["sample", str(path), f"--out={tmp_path / 's.png'}"], ["train", "--resume", f"--out={tmp_path}"]):
        assert main(argv) == 1
        assert _one_error_line(capsys).endswith(f"checkpoint {str(path)!r} is corrupted: its contents do not match "
                                                "the SHA-256 saved with it (damaged on disk or in transfer); use an "
                                                "earlier copy")


def test_a_checkpoint_without_checksum_still_loads(tmp_path: Path) -> None:
    torch.save({"step": 3, "w": torch.ones(2)}, tmp_path / "old.pt")  # as flowkit wrote them before checksums
    assert load_checkpoint(tmp_path / "old.pt")["step"] == 3
    save_checkpoint(tmp_path / "new.pt", {"step": 3, "w": torch.ones(2)})
    assert torch.load(tmp_path / "new.pt", weights_only=True)["sha256"] != ""


# ---- divergence -------------------------------------------------------------------------------------------


def test_a_blown_up_model_is_never_checkpointed(tmp_path: Path, small_cfg: Cfg,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    evaluate_bpd, calls = trainer.evaluate_bpd, []

    def blows_up_on_second_eval(*a: object, **k: object) -> float:
        calls.append(1)
        return 5.5e5 if len(calls) == 2 else evaluate_bpd(*a, **k)

    monkeypatch.setattr(trainer, "evaluate_bpd", blows_up_on_second_eval)
    with pytest.raises(TrainingDiverged) as info:
        train(small_cfg(tmp_path, max_steps=6), progress=False)
    assert str(info.value) == (f"training diverged at step 4: the held-out bits/dim is 5.5e+05 (above 16); "
                               f"{tmp_path / 'checkpoint.pt'} holds the last good state (step 2); start again with "
                               "a lower --lr or --grad-clip (--overwrite replaces this run)")
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2


# ---- OSErrors: one line naming the path and the cause -------------------------------------------------------


def test_disk_full_on_a_checkpoint(tmp_path: Path, small_cfg: Cfg, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    save, calls = torch.save, []

    def full_on_second(obj: object, f: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            f.write(b"x" * 100)  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, "No space left on device")
        save(obj, f)

    monkeypatch.setattr(torch, "save", full_on_second)
    out = tmp_path / "run"
    assert main(["train", "--no-progress", *cli_flags(small_cfg(out, max_steps=4))]) == 1
    assert _one_error_line(capsys) == (f"flowkit train: error: cannot write {str(out / 'checkpoint.pt')!r}: No space "
                                       "left on device; the last checkpoint is intact: free space, then continue "
                                       "with --resume")
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 2
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp.pt")]


def test_disk_full_on_the_log(tmp_path: Path, small_cfg: Cfg, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    def full(self: RunFolder, record: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.dir / "metrics.jsonl"))

    monkeypatch.setattr(RunFolder, "log", full)
    out = tmp_path / "run"
    assert main(["train", "--no-progress", *cli_flags(small_cfg(out, max_steps=2))]) == 1
    assert str(out / "metrics.jsonl") in _one_error_line(capsys)


@pytest.mark.parametrize(("err", "words"), [
    (errno.EROFS, "cannot write '{path}': Read-only file system"),
    (errno.EACCES, "'{path}': Permission denied"),
])
def test_an_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                              err: int, words: str) -> None:
    out = tmp_path / "run"

    def refuse(self: Path, *a: object, **k: object) -> None:
        raise OSError(err, os.strerror(err), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)  # as a read-only or foreign file system would
    assert main(["train", f"--out={out}"]) == 1
    assert _one_error_line(capsys) == f"flowkit train: error: {words.format(path=out)}"


def test_out_naming_a_file_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(trainer, "load_dataset", lambda *a, **k: pytest.fail("data was loaded"))
    assert main(["train", f"--out={tmp_path / 'file'}"]) == 1
    assert _one_error_line(capsys) == (f"flowkit train: error: the run folder {tmp_path / 'file'} is a file, not a "
                                       "folder; choose another --out")


def test_sample_out_naming_a_folder(tmp_path: Path, small_cfg: Cfg, capsys: pytest.CaptureFixture[str]) -> None:
    train(small_cfg(tmp_path / "run", max_steps=1), progress=False)
    (tmp_path / "grid.png").mkdir()
    assert main(["sample", str(tmp_path / "run" / "checkpoint.pt"), f"--out={tmp_path / 'grid.png'}"]) == 1
    assert _one_error_line(capsys) == (f"flowkit sample: error: --out {str(tmp_path / 'grid.png')!r} is a folder; "
                                       "give a file name ending in .png or .npz")


def test_tilde_is_expanded(tmp_path: Path, small_cfg: Cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    train(small_cfg(Path("~/runs/x"), max_steps=1), progress=False)
    assert (tmp_path / "home" / "runs" / "x" / "checkpoint.pt").exists()
    assert not (tmp_path / "~").exists()
