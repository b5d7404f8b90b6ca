"""The output folder of a training run: one writer at a time, atomic files, and a resume that checks it.

A run folder holds ``config.toml``, ``metrics.jsonl``, ``checkpoint.pt`` and sample grids
(``samples_stepNNNNNN.png``, ``samples.png``). :class:`RunFolder` keeps these promises:

- **One writer.** A run holds an exclusive ``flock`` on ``.lock`` (which records its PID) for its whole
  life; the kernel releases it on any exit, ``kill -9`` included, so a lock is never stale. A second
  trainer on the same folder stops at once, naming the holder's PID. (Without ``fcntl``, on Windows,
  there is no lock.)
- **No silent replacement.** A new run refuses a folder that holds run files unless asked to replace
  them (``overwrite``). A replacing run writes into ``.flowkit-new/`` until its first checkpoint; only
  then are the old run's files replaced (a roll-forward that a crash cannot leave half done: the next
  start finishes it). Folders with unrelated files are fine; only run file names count.
- **Atomic files.** Every file is written through :func:`flowkit._io.atomic_path` (never through a
  symlink), except the metrics log, which is appended and ``fsync``-ed line by line; a torn last line
  (a crash or a full disk mid-write) is cut on resume with a one-line notice.
- **Checked resume.** Stale temporary files are removed, log lines after the checkpoint's step are
  dropped (they are about to be redone), and a run killed before its first checkpoint restarts from
  step 0 in the same folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .._args import boolean
from .._io import atomic_path, fsync_dir, is_temp_name, with_path, write_atomic
from .checkpoint import save_checkpoint

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunFolder", "RunFolderError", "resume_config", "is_run_file",
           "CHECKPOINT", "METRICS", "CONFIG", "SAMPLES", "LOCK", "STAGING"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.toml"
SAMPLES = "samples.png"
LOCK = ".lock"
#: Where a run that replaces another one writes until its first checkpoint.
STAGING = ".flowkit-new"
# Written into STAGING once its checkpoint exists: the names the roll-forward moves (see _roll_forward).
_MANIFEST = "MANIFEST"


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked (locked, holds another run, holds no run, is a file)."""


def is_run_file(name: str) -> bool:
    """Whether a file name is one a training run writes (and a new run would replace).

    Examples:
        >>> [is_run_file(n) for n in ("checkpoint.pt", "samples_step000500.png", "notes.txt")]
        [True, True, False]
    """
    return name in (CHECKPOINT, METRICS, CONFIG, SAMPLES) or re.fullmatch(r"samples_step\d+\.png", name) is not None


def notice(message: str) -> None:
    """A one-line note on stderr about something the run folder fixed on its own."""
    print(f"flowkit: {message}", file=sys.stderr)


class RunFolder:
    """The folder a training run writes to; see the module docstring for what it guarantees.

    Use :meth:`open` (rank 0 only) before any work, then write through :meth:`write_config`,
    :meth:`log`, :meth:`save_checkpoint` and :meth:`artifact`, and :meth:`close` at the end (also on
    errors). ``dir`` is where run files go now: ``out``, or ``out/.flowkit-new`` while a replacing run
    has not reached its first checkpoint.

    Args:
        out: The run folder; ``~`` is expanded.
        resume: Continue the run in ``out`` (it must hold one).
        overwrite: Replace a run that ``out`` holds.

    Raises:
        ValueError: Both ``resume`` and ``overwrite``.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     with RunFolder(f"{d}/run").opened() as a:
        ...         RunFolder(f"{d}/run").open()
        Traceback (most recent call last):
        ...
        flowkit.training.run_folder.RunFolderError: ...run is in use by process ...
    """

    def __init__(self, out: str | os.PathLike[str], *, resume: bool = False, overwrite: bool = False) -> None:
        if not isinstance(out, (str, os.PathLike)):
            raise TypeError(f"RunFolder: out must be a path (str or os.PathLike), got {type(out).__name__}")
        boolean(resume, "resume", "RunFolder")
        boolean(overwrite, "overwrite", "RunFolder")
        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other: --resume continues the run in the folder, "
                             "--overwrite replaces it")
        self.out = Path(out).expanduser()
        self.dir = self.out
        self.resume = resume
        self.overwrite = overwrite
        self._lock_fd: int | None = None

    # ---- opening and closing ------------------------------------------------------------------------
    def open(self) -> None:
        """Take the lock, finish an interrupted replacement, clean up, and check the folder fits the request.

        Raises:
            RunFolderError: ``out`` is a file, is locked by another process, holds a run (new run
                without ``overwrite``) or holds none (``resume``).
            OSError: The folder cannot be created or written (it names the path).
        """
        if self.out.exists() and not self.out.is_dir():
            raise RunFolderError(f"the run folder {self.out} is a file, not a folder; choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._roll_forward()
            self._remove_temp_files()
            stage = self.out / STAGING
            held = sorted(p.name for p in self.out.iterdir() if is_run_file(p.name))
            if self.resume:
                if stage.is_dir():  # a replacing run killed before its first checkpoint: continue it
                    self.dir = stage
                elif not held:
                    raise RunFolderError(f"cannot resume: there is no run in {self.out} (no {CHECKPOINT} or "
                                         f"{CONFIG}); start one without --resume")
            elif held or stage.exists():
                if not self.overwrite:
                    raise RunFolderError(
                        f"{self.out} already holds a run ({', '.join(held) or STAGING}); pass --resume to "
                        "continue it or --overwrite to replace it, or choose another --out")
                shutil.rmtree(stage, ignore_errors=True)  # a replacement that never reached a checkpoint
                if held:
                    stage.mkdir()
                    self.dir = stage
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the lock (the kernel also does it when the process dies)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def opened(self) -> Iterator[RunFolder]:
        """:meth:`open` ... :meth:`close` as a ``with`` block."""
        self.open()
        try:
            yield self
        finally:
            self.close()

    def _lock(self) -> None:
        if fcntl is None:
            return
        path = self.out / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderError(f"the run folder {self.out} is in use by process {holder} (lock {path}); wait "
                                 "for it to finish or stop it, or choose another --out") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    # ---- writing ------------------------------------------------------------------------------------
    def write_config(self, text: str) -> None:
        """Write ``config.toml`` atomically, unless it already says exactly ``text``."""
        path = self.dir / CONFIG
        try:
            old = path.read_text()
        except (OSError, UnicodeDecodeError):
            old = None
        if old == text:
            return
        if old is not None and self.resume:
            notice(f"{path} did not match the config of the run being resumed (edited, cut short by a crash, or "
                   "changed by a flag); rewrote it")
        write_atomic(path, text)

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``metrics.jsonl`` and ``fsync`` it."""
        path = self.dir / METRICS
        try:
            with open(path, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise with_path(e, path) from None

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write ``checkpoint.pt`` atomically; the first one of a replacing run then replaces the old run."""
        save_checkpoint(self.dir / CHECKPOINT, state)
        if self.dir != self.out:
            self._roll_forward()
            self.dir = self.out

    @contextlib.contextmanager
    def artifact(self, name: str) -> Iterator[Path]:
        """A temporary path to write ``name`` (e.g. a sample grid) to; it appears atomically on success."""
        with atomic_path(self.dir / name) as tmp:
            yield tmp

    # ---- resuming -----------------------------------------------------------------------------------
    def prepare_log(self, step: int) -> dict[str, Any]:
        """Make ``metrics.jsonl`` end at ``step`` (the checkpoint's, 0 without one); return its last record.

        A torn last line is cut with a notice; lines of later steps are dropped (the run redoes them).

        Raises:
            ValueError: A line other than the last is not JSON (the file was edited); it names the line.
        """
        path = self.dir / METRICS
        if not path.exists():
            return {}
        raw = path.read_bytes()
        lines = raw.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline, as every complete write does
        records: list[dict[str, Any]] = []
        for number, line in enumerate(lines, 1):
            try:
                records.append(json.loads(line))
            except ValueError:
                if number == len(lines) and not tail:
                    tail = line  # an unparsable last line: torn as well
                    break
                raise ValueError(f"{path} line {number} is not a JSON record: {line[:60]!r}; fix or remove "
                                 "that line, then resume again") from None
        if tail:
            notice(f"{path}: dropped a torn last line ({len(tail)} bytes) left by an interrupted write")
        kept = [r for r in records if isinstance(r, dict) and r.get("step", 0) <= step]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        if text.encode() != raw or path.is_symlink():
            write_atomic(path, text)
        return kept[-1] if kept else {}

    def _remove_temp_files(self) -> None:
        """Delete temporary files of writers killed mid-write (safe: we hold the lock)."""
        removed, size = 0, 0
        for folder in (self.out, self.out / STAGING):
            if folder.is_dir():
                for p in folder.iterdir():
                    if is_temp_name(p.name) and p.is_file():
                        size += p.stat().st_size
                        p.unlink()
                        removed += 1
        if removed:
            notice(f"removed {removed} temporary file(s) ({size} bytes) left in {self.out} by an interrupted write")

    def _roll_forward(self) -> None:
        """Move a replacing run's files from ``.flowkit-new`` into place once it holds a checkpoint.

        Idempotent, so a crash at any point is finished by the next :meth:`open`: the list of new files
        is written first; then they are moved in, the old run's other files deleted, the checkpoint
        moved last, and the staging folder removed.
        """
        stage = self.out / STAGING
        manifest = stage / _MANIFEST
        if not manifest.exists():
            if not (stage / CHECKPOINT).exists():
                return  # nothing staged, or a replacement still before its first checkpoint
            write_atomic(manifest, "\n".join(sorted(p.name for p in stage.iterdir() if is_run_file(p.name))))
        names = set(manifest.read_text().split())
        for name in sorted(names - {CHECKPOINT}):
            if (stage / name).exists():
                os.replace(stage / name, self.out / name)
        for p in self.out.iterdir():
            if is_run_file(p.name) and p.name not in names:
                p.unlink()
        if (stage / CHECKPOINT).exists():
            os.replace(stage / CHECKPOINT, self.out / CHECKPOINT)
        fsync_dir(self.out)
        shutil.rmtree(stage)


def current_dir(out: str | os.PathLike[str]) -> Path:
    """Where the run in ``out`` keeps its files now: ``out``, or its staging folder (see :class:`RunFolder`)."""
    out = Path(out).expanduser()
    stage = out / STAGING
    if stage.is_dir() and (not (stage / _MANIFEST).exists() or (stage / CHECKPOINT).exists()):
        return stage
    return out


def resume_config(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The config of the run in ``out`` as a dict: its checkpoint's, else its ``config.toml``'s.

    The checkpoint is only peeked at (memory-mapped, not verified): training loads and verifies it.
    A checkpoint that cannot be read falls back to ``config.toml``.

    Raises:
        RunFolderError: There is no run in ``out``.
    """
    from .config import load_config

    folder = current_dir(out)
    ckpt = folder / CHECKPOINT
    if ckpt.is_file():
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
            if isinstance(state, dict) and isinstance(state.get("config"), dict):
                return dict(state["config"])
        except Exception:  # noqa: BLE001 -- training reports the damage precisely
            pass
    if (folder / CONFIG).is_file():
        return dataclasses.asdict(load_config(folder / CONFIG))
    raise RunFolderError(f"cannot resume: there is no run in {Path(out).expanduser()} (no {CHECKPOINT} or "
                         f"{CONFIG}); start one without --resume")
