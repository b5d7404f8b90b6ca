"""The code examples of the documentation pages run, and give the output the pages show.

Every ``>>>`` example in ``docs/**/*.md`` and ``docs/**/*.rst`` is a doctest, one namespace per page,
with pytest's doctest defaults (``...`` matches anything). Markdown code fences end an example's
expected output, so a fenced example needs no trailing blank line. ``docs/examples/*.py`` are
worked examples included in the pages; each must run as a script.
"""

from __future__ import annotations

import doctest
import io
import re
import runpy
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[2] / "docs"
SKIP_DIRS = {"_build", "_inv", "_static", "_ext"}
FENCE = re.compile(r"^\s*(```|~~~|:::)")
PROMPT = re.compile(r"^\s*>>> ", re.MULTILINE)


def doc_pages() -> list[Path]:
    pages = [p for ext in ("*.md", "*.rst") for p in DOCS.rglob(ext)
             if not SKIP_DIRS.intersection(p.relative_to(DOCS).parts)]
    return sorted(p for p in pages if PROMPT.search(p.read_text(encoding="utf-8")))


def doctest_text(text: str) -> str:
    """Blank out fence lines (keeping line numbers), so a closing fence ends the expected output."""
    return "\n".join("" if FENCE.match(line) else line for line in text.splitlines()) + "\n"


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_page_examples(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.syspath_prepend(str(DOCS / "examples"))  # "save the file as mlp_coupling.py"
    torch.manual_seed(0)
    name = str(page.relative_to(DOCS))
    test = doctest.DocTestParser().get_doctest(doctest_text(page.read_text(encoding="utf-8")),
                                               {"__name__": "__docs__"}, name, str(page), 0)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only adds synchronisation (slow on a busy machine)
    try:
        with torch.random.fork_rng():
            result = runner.run(test, out=out.write)
    finally:
        torch.set_num_threads(threads)
    assert result.attempted > 0, f"{name}: no examples found"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in docs/{name} failed:\n{out.getvalue()}"


@pytest.mark.parametrize("script", sorted((DOCS / "examples").glob("*.py")), ids=lambda p: p.name)
def test_worked_example_runs(script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
