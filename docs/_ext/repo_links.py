"""Sphinx extension: Markdown links to repository folders outside ``docs/`` become folder names.

Pages such as ``docs/ablations.md`` are written next to the code they describe and naturally link
to it. MyST turns a link to an existing *file* (``[the benchmark](../benchmarks/sampling.py)``) into a
download link, but a link to a *folder* (``[the scripts](../examples/ablations)``) is a missing
reference, a warning that fails ``sphinx-build -W``. So, before a Markdown page is parsed, a link
whose target is an existing folder of the repository outside ``docs/`` is rewritten to its text
followed by the repository path in code style: ``the scripts (`examples/ablations/`)``. Every other
link is left alone, as is everything inside code (fenced blocks and inline code spans).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]+)\]\((?P<target>[^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


def rewrite(text: str, page: Path, docs: Path, root: Path) -> str:
    """``text`` of the Markdown page ``page`` with links to repository files outside ``docs`` replaced."""

    def replace(match: re.Match[str]) -> str:
        target = match.group("target")
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match.group(0)  # a URL, an anchor or a site-absolute path
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.is_dir() or path == docs or docs in path.parents or root not in path.parents:
            return match.group(0)
        rel = path.relative_to(root).as_posix() + "/"
        label = match.group("text")
        if label.strip("`").rstrip("/") == rel.rstrip("/"):
            return f"`{rel}`"
        return f"{label} (`{rel}`)"

    out, fenced = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            out.append(line)
            continue
        if fenced:
            out.append(line)
            continue
        # Links that start inside an inline code span are code, not links.
        spans = [m.span() for m in INLINE_CODE.finditer(line)]
        out.append(LINK.sub(
            lambda m, spans=spans: m.group(0) if any(a <= m.start() < b for a, b in spans) else replace(m), line))
    return "\n".join(out)


def on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    page = Path(app.env.doc2path(docname))
    if page.suffix != ".md":
        return
    docs = Path(app.srcdir).resolve()
    source[0] = rewrite(source[0], page.resolve(), docs, docs.parent)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("source-read", on_source_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
