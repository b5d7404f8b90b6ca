"""Every ```python block of README.md and of the docs pages runs, in seconds and within 2 GB.

``>>>`` examples are doctests (tests/docs/test_docs_examples.py); this covers the plain code blocks a
reader copies. A block that needs a GPU, big data or a file the reader supplies is marked in the
markdown on the line just above its fence::

    <!-- code-block: skip (needs a downloaded reference checkpoint) -->

and is reported here as skipped with that reason, under its page and line; nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"_build", "_inv", "_static", "_ext"}
SKIP_MARK = re.compile(r"<!--\s*code-block:\s*skip\s*\((.+)\)\s*-->")
MAX_SECONDS = 60
MAX_RSS_BYTES = 2 * 1024**3


class Block(NamedTuple):
    name: str  # page:line
    code: str
    skip: str | None  # the marker's reason


def python_blocks(page: Path) -> list[Block]:
    """The ```python fenced blocks of a markdown page, with the skip reason of the line above, if any."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            mark = SKIP_MARK.search(lines[start - 1]) if start else None
            where = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name
            blocks.append(Block(f"{where}:{start + 1}", "\n".join(lines[start + 1:i]),
                                mark.group(1) if mark else None))
        i += 1
    return blocks


def all_blocks() -> list[Block]:
    pages = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").rglob("*.md")
                                          if not SKIP_DIRS.intersection(p.relative_to(ROOT / "docs").parts))
    return [b for page in pages for b in python_blocks(page)]


# Appended to each block: the peak resident memory of the process, read back by the test.
PEAK = ("\nimport resource as _r, sys as _s\n"
        "print('PEAK_RSS_KB', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss, file=_s.stderr)\n")


def test_the_blocks_are_found(tmp_path: Path) -> None:
    names = [b.name for b in all_blocks()]
    assert any(n.startswith("README.md:") for n in names), names  # the README's "In a few lines"
    page = tmp_path / "page.md"
    page.write_text("text\n<!-- code-block: skip (needs a GPU) -->\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n")
    assert python_blocks(page) == [Block("page.md:3", "x = 1", "needs a GPU"), Block("page.md:7", "y = 2", None)]


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: b.name)
def test_block_runs(block: Block, tmp_path: Path) -> None:
    if block.skip is not None:
        pytest.skip(f"{block.name} is marked skip in the markdown: {block.skip}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([sys.executable, "-c", block.code + PEAK], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=MAX_SECONDS)
    assert proc.returncode == 0, f"{block.name} failed:\n{proc.stderr[-3000:]}"
    peak_kb = int(re.search(r"PEAK_RSS_KB (\d+)", proc.stderr).group(1))  # type: ignore[union-attr]
    assert peak_kb * 1024 < MAX_RSS_BYTES, f"{block.name} peaked at {peak_kb / 1024**2:.2f} GB"
