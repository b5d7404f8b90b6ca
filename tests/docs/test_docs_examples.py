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
    assert result.failed == 0, (f"{result.failed} of {result.attempted} examples in docs/{name} failed:\n"
                                f"{out.getvalue()}")


#: What each worked example prints last when it ran to the end.
WORKED_EXAMPLES = {"mlp_coupling.py": "MLPCoupling passes check_bijector"}


def test_every_worked_example_is_listed() -> None:
    assert sorted(p.name for p in (DOCS / "examples").glob("*.py")) == sorted(WORKED_EXAMPLES)


@pytest.mark.parametrize("script", sorted(WORKED_EXAMPLES))
def test_worked_example_runs(script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    runpy.run_path(str(DOCS / "examples" / script), run_name="__main__")
    assert capsys.readouterr().out.strip().splitlines()[-1] == WORKED_EXAMPLES[script]


def test_mlp_coupling_example_is_a_correct_bijector_and_its_check_catches_a_wrong_one() -> None:
    """The page's bijector round-trips with the log-det of its autograd Jacobian (by hand here), and
    the page's ``check()`` fails when the log-det sign is flipped: it really checks."""
    namespace = runpy.run_path(str(DOCS / "examples" / "mlp_coupling.py"))
    coupling = namespace["MLPCoupling"]
    torch.manual_seed(0)
    block = coupling(dim=4).double()
    for p in block.parameters():  # move off the zero (identity) initialisation
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(1, 1, 4, dtype=torch.float64)
    z, logdet = block(x)
    jacobian = torch.autograd.functional.jacobian(lambda v: block(v.view(1, 1, 4))[0].flatten(), x.flatten())
    assert torch.linalg.slogdet(jacobian).logabsdet.item() == pytest.approx(logdet.item(), abs=1e-10)
    assert abs(logdet.item()) > 1e-2
    torch.testing.assert_close(block.inverse(z)[0], x, rtol=0, atol=1e-12)

    class FlippedLogdet(coupling):  # type: ignore[misc, valid-type]
        def forward(self, x: torch.Tensor, *, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            y, logdet = super().forward(x, context=context)
            return y, -logdet

    namespace["check"]()  # passes as written
    namespace["check"].__globals__["MLPCoupling"] = FlippedLogdet
    with pytest.raises(AssertionError, match="log-dets cancel"):
        namespace["check"]()
