"""Crash-safe file writes: the one way flowkit writes a file that must never be seen half-written."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_atomic", "fsync_dir", "is_temp_name", "with_path"]

# `.NAME.<12 hex>.tmp` plus the suffix of NAME (so that writers that pick a format by the file name,
# like Pillow or numpy.savez, still do): the pattern `is_temp_name` recognises when cleaning up.
_TEMP = re.compile(r"\..+\.[0-9a-f]{12}\.tmp(\.[^.]+)?")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it atomically becomes ``path``.

    The temporary file lies in the same folder (same file system, so ``os.replace`` is atomic), is
    ``fsync``-ed, renamed over ``path``, and the folder is ``fsync``-ed so the rename survives a power
    loss. Readers therefore see the old file or the complete new one, never a mix. A symlink at
    ``path`` is replaced by the new file, never written through. On any error the temporary file is
    removed, ``path`` is untouched, and an ``OSError`` without a file name (``ENOSPC`` from a write)
    gets ``path`` as its file name, so the message can say where.

    Args:
        path: Destination file; its folder must exist.

    Yields:
        The temporary path (``.NAME.<hex>.tmp.SUFFIX``), not yet created.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     with atomic_path(f"{d}/a.txt") as tmp:
        ...         _ = tmp.write_text("hello")
        ...     Path(d, "a.txt").read_text(), [p.name for p in Path(d).iterdir()]
        ('hello', ['a.txt'])
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise with_path(e, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` through :func:`atomic_path`.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_atomic(f"{d}/c.toml", "a = 1")
        ...     Path(d, "c.toml").read_text()
        'a = 1'
    """
    raw = data.encode() if isinstance(data, str) else data
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(raw)


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_path` (left behind by a killed writer).

    Examples:
        >>> is_temp_name(".checkpoint.pt.0123456789ab.tmp.pt"), is_temp_name("checkpoint.pt")
        (True, False)
    """
    return _TEMP.fullmatch(name) is not None


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Persist a folder's entries (e.g. a rename) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; its os.replace is already durable enough.
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def with_path(e: OSError, path: str | os.PathLike[str]) -> OSError:
    """``e`` itself when it names a file, else the same error (same class and errno) naming ``path``.

    Examples:
        >>> import errno
        >>> str(with_path(OSError(errno.ENOSPC, "No space left on device"), "run/ckpt.pt"))
        "[Errno 28] No space left on device: 'run/ckpt.pt'"
    """
    if e.filename is not None or e.errno is None:
        return e
    return type(e)(e.errno, e.strerror or os.strerror(e.errno), str(path))
