"""Crash-safe checkpoint files and random-generator state that loads with ``weights_only=True``.

Checkpoints are plain ``torch.save`` files of a dict. Saving is atomic: readers see either the old
file or the complete new one, even if the process dies mid-write or the machine loses power. Loading
never runs code stored in the file: ``torch.load(weights_only=True)`` only rebuilds tensors and plain
containers, so everything saved must be tensors, numbers, strings, ``None``, lists, tuples and dicts.
Every checkpoint carries a SHA-256 of its contents (under the key ``"sha256"``), which loading checks,
so flipped bits on disk are reported instead of silently loaded.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import random
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "CheckpointCorrupted"]

#: The key under which a checkpoint stores the SHA-256 of the rest of its contents.
CHECKSUM = "sha256"


class CheckpointCorrupted(ValueError):
    """A checkpoint's contents do not match the checksum stored with them."""


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically.

    The dict, plus the SHA-256 of its contents under ``"sha256"`` (see :func:`load_checkpoint`), is
    written through ``flowkit._io.atomic_path``: a temporary file in the same folder, flushed and
    ``fsync``-ed, renamed over ``path`` with ``os.replace`` (atomic on POSIX and Windows within one file
    system; a symlink at ``path`` is replaced, not written through), and the folder is ``fsync``-ed so
    that the rename itself survives a crash. Missing parent folders are created.

    Args:
        path: Destination file.
        state: Tensors, numbers, strings, ``None``, dtypes and devices, and lists / tuples / sets /
            dicts of them: what :func:`load_checkpoint` accepts.

    Raises:
        TypeError: Something else in ``state`` (e.g. a NumPy scalar), named by its position, before
            anything is written.
        OSError: The write failed (disk full, file too large, read-only folder); it names ``path``,
            and the file previously at ``path`` is intact.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     save_checkpoint(f"{d}/ckpt.pt", {"step": 3, "w": torch.ones(2)})
        ...     load_checkpoint(f"{d}/ckpt.pt")
        {'step': 3, 'w': tensor([1., 1.])}
    """
    if not isinstance(state, dict):
        raise TypeError(f"a checkpoint state must be a dict, got {type(state).__name__}")
    # Fail now rather than when resuming: load_checkpoint would refuse anything but plain data.
    _check_plain(state, "state")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        try:
            torch.save({**state, CHECKSUM: _digest(state)}, f)
        except RuntimeError as e:  # torch's C++ writer reports a failed write (e.g. a full disk) this way
            if "inline_container" not in str(e) and "PytorchStreamWriter" not in str(e):
                raise
            raise OSError(errno.EIO, f"torch could not write it ({str(e).strip().splitlines()[0]})") from None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    r"""Load a checkpoint dict onto the CPU without executing anything stored in the file.

    The SHA-256 that :func:`save_checkpoint` stored is recomputed over the loaded contents (every
    tensor's dtype, shape and bytes, every other value's ``repr``, in order) and must match. Files
    without one (written by ``torch.save`` directly, or by flowkit before checksums) still load,
    unverified.

    Args:
        path: A file written by :func:`save_checkpoint` (or any ``torch.save`` of a plain dict).

    Returns:
        The saved dict, with every tensor on the CPU, without the checksum entry.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointCorrupted: A ``ValueError``: the contents do not match the stored checksum.
        ValueError: The file is truncated or not a torch checkpoint, needs code to load (pickled
            objects other than tensors and plain containers, which ``weights_only`` loading refuses), or
            does not hold a dict.

    Examples:
        >>> load_checkpoint("no/such/ckpt.pt")
        Traceback (most recent call last):
        ...
        FileNotFoundError: checkpoint not found: 'no/such/ckpt.pt'
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {str(path)!r}")
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is many lines of advice; keep the one fact that matters.
        message = str(e)
        refused = re.search(r"GLOBAL\s+([\w.]+)", message)
        if refused:
            raise ValueError(
                f"checkpoint {str(path)!r} needs code to load ({refused.group(1)}); weights_only loading "
                "allows only tensors and plain containers, so it is refused and nothing in it was run"
            ) from None
        found = re.search(r"Unsupported operand \d+", message)
        raise ValueError(
            f"checkpoint {str(path)!r} is truncated or not a torch checkpoint: "
            f"{found.group(0) if found else _reason(e)}"
        ) from None
    except Exception as e:  # zip / pickle / storage errors of a truncated or foreign file
        raise ValueError(
            f"checkpoint {str(path)!r} is truncated or not a torch checkpoint: {_reason(e)}"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {str(path)!r} holds a {type(state).__name__}, expected a dict")
    stored = state.pop(CHECKSUM, None)
    if stored is not None and stored != _digest(state):
        raise CheckpointCorrupted(f"checkpoint {str(path)!r} is corrupted: its contents do not match the SHA-256 "
                                  "saved with it (damaged on disk or in transfer); use an earlier copy")
    return state


def rng_state() -> dict[str, Any]:
    """Capture the global random generators as tensors and plain data.

    Covers Python's ``random``, NumPy's legacy global generator (``np.random.*``; ``Generator``
    objects are not global and are not covered), torch's CPU generator and, when CUDA is available, the
    generator of every CUDA device. The result survives ``torch.load(weights_only=True)``.

    Returns:
        A dict with keys ``"python"``, ``"numpy"``, ``"torch"`` and, with CUDA, ``"cuda"``.

    Examples:
        >>> state = rng_state()
        >>> a = torch.rand(2)
        >>> set_rng_state(state)
        >>> torch.equal(a, torch.rand(2))
        True
    """
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the global random generators from :func:`rng_state`.

    CUDA states are restored only when CUDA is available, one per device present (a checkpoint taken on
    a GPU machine thus resumes on a CPU one, with fresh CUDA generators).

    Args:
        state: A dict from :func:`rng_state`, possibly after a save / load round trip.

    Raises:
        ValueError: ``state`` lacks a generator or has a malformed one.
    """
    try:
        py, npy = state["python"], state["numpy"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
        np.random.set_state(
            (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"]),
        )
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(cuda_state, device)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise ValueError(f"malformed random-generator state: {_reason(e)}") from None


# Exactly these types (not subclasses: numpy.float64 subclasses float but would need numpy's code to
# load) pass torch.load(weights_only=True).
_PLAIN_LEAVES = (
    str, bytes, int, float, bool, complex, type(None),
    torch.Tensor, torch.nn.Parameter, torch.Size, torch.dtype, torch.device, torch.layout,
)
_PLAIN_CONTAINERS = (dict, OrderedDict, list, tuple, set)


def _check_plain(obj: Any, where: str) -> None:
    """Raise ``TypeError`` naming the first item of ``obj`` that weights-only loading would refuse."""
    kind = type(obj)
    if kind in _PLAIN_LEAVES:
        return
    if kind not in _PLAIN_CONTAINERS:
        raise TypeError(
            f"checkpoint {where} is a {kind.__module__}.{kind.__qualname__}, which load_checkpoint would "
            "refuse; store tensors or plain Python data instead"
        )
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_plain(key, f"{where} key {key!r}")
            _check_plain(value, f"{where}[{key!r}]")
    else:
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")


def _digest(state: dict[str, Any]) -> str:
    """SHA-256 over a plain-data tree: each tensor's dtype, shape and raw bytes, other leaves' ``repr``."""
    h = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
        elif isinstance(obj, dict):
            h.update(f"D{len(obj)}".encode())
            for key, value in obj.items():
                feed(key)
                feed(value)
        elif isinstance(obj, (set, frozenset)):  # iteration order of a set of strings varies between processes
            h.update(f"S{len(obj)}".encode())
            for r in sorted(repr(v) for v in obj):
                h.update(r.encode())
        elif isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
            h.update(f"L{len(obj)}".encode())
            for value in obj:
                feed(value)
        else:
            h.update(f"V{obj!r}".encode())

    feed(state)
    return h.hexdigest()


def _reason(e: BaseException) -> str:
    """The exception type and the first sentence of its message: torch's can run over many lines."""
    first = re.split(r"(?<=\.)\s", str(e).strip(), maxsplit=1)[0].partition("\n")[0]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
