"""Sphinx configuration for the flowkit documentation.

Build (warnings are errors, as in the test suite)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The build works offline. Links to the Python, PyTorch and NumPy docs (intersphinx) are made only
from inventories saved under ``docs/_inv/`` (``python.inv``, ``torch.inv``, ``numpy.inv``), or from
the web when ``FLOWKIT_DOCS_INTERSPHINX=online`` is set; see ``docs/building.md``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # a fresh clone builds even before `pip install -e .`

import flowkit  # noqa: E402

# -- project -----------------------------------------------------------------------------------------
project = "flowkit"
author = "the flowkit developers"
copyright = "2025, the flowkit developers"
release = flowkit.__version__
version = ".".join(release.split(".")[:2])

# -- extensions --------------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "myst_parser",
    "flowkit_api",  # docs/_ext: API pages generated from __all__
    "repo_links",  # docs/_ext: Markdown links to repository files outside docs/ become file names
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_inv", "examples", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# -- autodoc / napoleon (Google style: Args:, Returns:, Examples:) -----------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_class_signature = "mixed"
autosummary_generate = False  # the flowkit-api directive writes the entries; no stub files
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = ["Shapes"]

# -- MyST (markdown pages) ---------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# Pages written by others (performance, ablations) may skip heading levels; that is style, not an error.
suppress_warnings = ["myst.header"]

# -- intersphinx: only from inventories that can be had without the network --------------------------
INVENTORIES = {
    "python": "https://docs.python.org/3/",
    "torch": "https://docs.pytorch.org/docs/stable/",
    "numpy": "https://numpy.org/doc/stable/",
}


def intersphinx_from(inv_dir: Path, online: bool) -> dict[str, tuple[str, str | None]]:
    """The mapping for the inventories saved in ``inv_dir`` (all of them when ``online``)."""
    mapping: dict[str, tuple[str, str | None]] = {}
    for name, url in INVENTORIES.items():
        local = inv_dir / f"{name}.inv"
        if local.is_file():
            mapping[name] = (url, str(local))
        elif online:
            mapping[name] = (url, None)
    return mapping


intersphinx_mapping = intersphinx_from(DOCS / "_inv", os.environ.get("FLOWKIT_DOCS_INTERSPHINX") == "online")
intersphinx_timeout = 10

# -- HTML --------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"flowkit {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
