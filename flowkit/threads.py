"""How many CPU threads the entry points (``flowkit`` commands, examples, benchmarks) give PyTorch.

PyTorch's default is one intra-op thread per core. For small models that is a trap: each matmul
of a 64-wide TarFlow on a batch of 8x8 digits is a few million multiply-adds, so the threads spend
their time meeting at the end of every parallel region, and when another process holds a core,
every region waits for a descheduled thread. Measured on a 2-core machine (``benchmarks/threads.py``,
``docs/performance.md``): the default ``flowkit train`` ran at 65-130 images/s with 2 threads on a
busy machine against ~780 images/s pinned to 1 thread, while 2 threads gained only 1.5x when the
machine was idle. So the rule is, in order:

1. an explicit request (``--threads N``) wins;
2. otherwise ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, when set to a number, are left to PyTorch
   (it reads them itself), and nothing changes;
3. otherwise the model's work per operation decides: ``rows x width x width`` multiply-adds of one
   ``width x width`` matmul over ``rows`` tokens (batch x tokens per image). Below
   :data:`PARALLEL_WORK` (``1e8``, about 3 ms on one core: one scheduler time slice, so a thread
   descheduled for a slice at most doubles an operation instead of stalling hundreds of tiny ones) the
   process uses **1 thread**; above it, every core it may use (:func:`usable_cores`: CPU affinity and
   the cgroup quota, divided among ``torchrun``'s local processes) that other processes are not
   already keeping busy (the 1-minute load average).

Importing :mod:`flowkit` never changes the thread count: only entry points call
:func:`apply_thread_policy`, so a library user's own ``torch.set_num_threads`` stays as it is.

Examples:
    >>> choose_threads(None, rows=1024, width=64, env={}).threads
    1
    >>> choose_threads(3, rows=1024, width=64, env={}).threads
    3
    >>> choose_threads(None, rows=1024, width=64, env={"OMP_NUM_THREADS": "2"}).reason
    'OMP_NUM_THREADS=2'
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PARALLEL_WORK", "ThreadChoice", "add_threads_argument", "apply_thread_policy", "choose_threads",
           "rows_of", "usable_cores"]

#: Multiply-adds of one ``width x width`` matmul (``rows x width^2``) from which more than one
#: thread pays off; smaller models run on 1 thread (see the module docstring for the measurement).
PARALLEL_WORK = 1e8

_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and the reason for it, as printed at start-up.

    Attributes:
        threads: The number of intra-op threads, or ``None`` to leave PyTorch's setting alone
            (an environment variable chose it).
        reason: Why, in a few words.
    """

    threads: int | None
    reason: str

    def message(self) -> str:
        """The start-up line, e.g. ``threads: 1 (model 64 wide x 1024 rows: ...; --threads N to change)``."""
        import torch

        count = self.threads if self.threads is not None else torch.get_num_threads()
        return f"threads: {count} ({self.reason}; --threads N to change)"


def usable_cores(cgroup_cpu_max: str | os.PathLike[str] = "/sys/fs/cgroup/cpu.max") -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota if any.

    A quota of ``"150000 100000"`` (1.5 CPUs) counts as 1 core: a second thread would be throttled.

    Args:
        cgroup_cpu_max: The cgroup v2 ``cpu.max`` file (``"max PERIOD"`` or ``"QUOTA PERIOD"``).

    Returns:
        An integer ``>= 1``.

    Examples:
        >>> usable_cores("/nonexistent") >= 1
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    try:
        quota, period = Path(cgroup_cpu_max).read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def choose_threads(requested: int | None, *, rows: int, width: int, env: Mapping[str, str] | None = None,
                   cores: int | None = None, load: float | None = None) -> ThreadChoice:
    r"""Apply the thread rule of this module (explicit, environment, work per operation).

    The work per operation is :math:`W = \text{rows} \cdot \text{width}^2`. With
    :math:`W <` :data:`PARALLEL_WORK` the choice is 1; otherwise
    :math:`\max(1, \text{cores} - \lfloor \text{load} \rceil)` over the local ``torchrun`` processes.

    Args:
        requested: ``--threads N`` (``>= 1``), or ``None``.
        rows: Rows of the model's matmuls: batch size x tokens per image.
        width: The model's width (``channels``).
        env: Environment to read (default ``os.environ``).
        cores: Usable cores (default :func:`usable_cores`).
        load: Runnable processes of others (default the 1-minute load average, capped to ``cores``).

    Returns:
        A :class:`ThreadChoice`.

    Raises:
        ValueError: ``requested`` below 1.

    Examples:
        >>> choose_threads(None, rows=6272, width=128, env={}, cores=8, load=0.0).threads
        8
        >>> choose_threads(None, rows=6272, width=128, env={}, cores=8, load=6.2).threads
        2
    """
    env = os.environ if env is None else env
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"--threads must be an integer >= 1, got {requested!r}")
        return ThreadChoice(requested, "--threads")
    for var in _ENV_VARS:
        if env.get(var, "").strip():
            return ThreadChoice(None, f"{var}={env[var].strip()}")
    work = rows * width * width
    size = f"model {width} wide x {rows} rows: {work:.1e} multiply-adds per matmul"
    if work < PARALLEL_WORK:
        return ThreadChoice(1, f"{size}, below the {PARALLEL_WORK:.0e} threshold for 2 threads")
    cores = usable_cores() if cores is None else cores
    local = max(1, int(env.get("LOCAL_WORLD_SIZE", "1") or 1))
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    free = max(1, cores - min(cores, round(load)))
    threads = max(1, free // local)
    busy = f", {cores - free} kept busy by others" if free < cores else ""
    per = f", {local} processes" if local > 1 else ""
    return ThreadChoice(threads, f"{size}; {cores} usable cores{busy}{per}")


def apply_thread_policy(requested: int | None, *, rows: int, width: int, announce: bool = True) -> int:
    """Choose the thread count (:func:`choose_threads`), set it in PyTorch and print it once on stderr.

    For entry points only (commands, scripts); call it before the first tensor operation.

    Args:
        requested: ``--threads N``, or ``None``.
        rows: Batch size x tokens per image.
        width: The model's width.
        announce: Print the ``threads: ...`` line on stderr (rank 0 only under ``torchrun``).

    Returns:
        The number of threads PyTorch now uses.
    """
    import torch

    choice = choose_threads(requested, rows=rows, width=width)
    if choice.threads is not None and choice.threads != torch.get_num_threads():
        torch.set_num_threads(choice.threads)
    if announce and os.environ.get("RANK", "0") == "0":
        print(choice.message(), file=sys.stderr, flush=True)
    return torch.get_num_threads()


def add_threads_argument(parser: Any) -> None:
    """Add the entry points' ``--threads N`` option (same name and help everywhere) to an argparse parser/group."""
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for PyTorch [default: OMP_NUM_THREADS if set, else 1 for small models and "
                             "the free cores for large ones; see docs/performance.md]")


def rows_of(batch_size: int, img_size: int, patch_size: int) -> int:
    """Rows of a TarFlow's matmuls: ``batch_size x (img_size / patch_size)^2`` tokens.

    Examples:
        >>> rows_of(64, 8, 2)
        1024
    """
    return batch_size * math.ceil(img_size / patch_size) ** 2
