"""One-line messages on stderr: notes on choices made for the user, and ``OSError`` explained."""

from __future__ import annotations

import errno
import sys

from .._validation import first_line


def _note(command: str, text: str) -> None:
    print(f"flowkit {command}: {text}", file=sys.stderr, flush=True)


def _os_error(e: OSError, command: str) -> str:
    """One line naming the file and the cause (``[Errno 28] No space left on device: 'run/ckpt.pt'``)."""
    if e.filename is None or e.strerror is None:  # e.g. FileNotFoundError("checkpoint not found: ...")
        return first_line(e)
    where = repr(str(e.filename)) + (f" -> {str(e.filename2)!r}" if e.filename2 is not None else "")
    hint = ""
    if command == "train" and e.errno in _WRITE_ERRORS - {errno.EROFS}:
        hint = "; the last checkpoint is intact: free space, then continue with --resume"
    return f"cannot write {where}: {e.strerror}{hint}" if e.errno in _WRITE_ERRORS else f"{where}: {e.strerror}"


_WRITE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS}
