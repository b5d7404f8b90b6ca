"""``flowkit train | sample | eval``: the entry point, dispatching to a command and turning errors into one line.

The parser is in :mod:`flowkit.cli.parser`, each command in its own module (:mod:`~flowkit.cli.train`,
:mod:`~flowkit.cli.sample`, :mod:`~flowkit.cli.eval`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .._validation import first_line
from .eval import _cmd_eval
from .messages import _os_error
from .parser import build_parser
from .sample import _cmd_sample
from .train import _cmd_train

__all__ = ["main", "build_parser"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowkit`` command; returns the exit status.

    Expected problems (a missing file, a bad config, diverged training, a run folder in use, any
    ``OSError`` such as a full disk) print one line on stderr and return ``1``; only bugs show a
    traceback.
    """
    args = build_parser().parse_args(argv)
    from ..training.run_folder import RunFolderError
    from ..training.trainer import TrainingDiverged

    try:
        return {"train": _cmd_train, "sample": _cmd_sample, "eval": _cmd_eval}[args.command](args)
    except (ValueError, TrainingDiverged, RunFolderError) as e:
        print(f"flowkit {args.command}: error: {first_line(e)}", file=sys.stderr)
        return 1
    except OSError as e:  # disk full, file too large, read-only, permissions, a file where a folder goes...
        print(f"flowkit {args.command}: error: {_os_error(e, args.command)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"flowkit {args.command}: interrupted", file=sys.stderr)
        return 130
