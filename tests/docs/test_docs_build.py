"""The documentation builds with warnings as errors, offline, and documents every public name."""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

import flowkit

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOCS_PACKAGES = ("sphinx", "furo", "myst_parser")
# Names other code relies on (DESIGN.md); each must have its own entry once the code has it.
CONTRACT_NAMES = ("flowkit.TarFlow.from_ml_tarflow", "flowkit.testing.check_bijector",
                  "flowkit.metrics.bits_per_dim", "flowkit.denoise")


def _require_sphinx() -> None:
    missing = [m for m in DOCS_PACKAGES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the docs build needs {', '.join(missing)}: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HTML docs once (``sphinx-build -W --keep-going``) into a temporary folder."""
    _require_sphinx()
    out = tmp_path_factory.mktemp("docs")
    env = {k: v for k, v in os.environ.items() if k != "FLOWKIT_DOCS_INTERSPHINX"}  # offline, always
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        pytest.fail(f"sphinx-build -W failed (exit {proc.returncode}) after {elapsed:.0f} s:\n"
                    f"{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}", pytrace=False)
    return out / "html"


def read_inventory(path: Path) -> dict[str, set[str]]:
    """``{name: {"py:class", ...}}`` from a Sphinx ``objects.inv`` (format version 2)."""
    data = path.read_bytes()
    header_lines = 4
    parts = data.split(b"\n", header_lines)
    if not parts[0].startswith(b"# Sphinx inventory version 2"):
        raise ValueError(f"{path} is not a version 2 Sphinx inventory: {parts[0]!r}")
    entries: dict[str, set[str]] = {}
    for line in zlib.decompress(parts[header_lines]).decode().splitlines():
        name, role = line.split(" ", 2)[:2]
        entries.setdefault(name, set()).add(role)
    return entries


def public_modules() -> list[str]:
    """``flowkit`` and its public subpackages/modules (no leading underscore) that have code."""
    names = ["flowkit"]
    for info in pkgutil.iter_modules(flowkit.__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"flowkit.{info.name}")
            if getattr(module, "__file__", None) is not None:  # not an empty namespace folder
                names.append(module.__name__)
    return names


def test_build_passes_with_warnings_as_errors(built_docs: Path) -> None:
    for page in ("index", "quickstart", "concepts", "writing-a-bijector", "tarflow", "cli", "ablations",
                 "performance", "changelog", "api/index", "api/flowkit"):
        assert (built_docs / f"{page}.html").is_file(), f"page {page}.html was not built"
    assert (built_docs / "_static" / "tarflow.svg").is_file()


def test_every_public_name_has_an_api_entry(built_docs: Path) -> None:
    inventory = read_inventory(built_docs / "objects.inv")
    py = {name for name, roles in inventory.items() if any(r.startswith("py:") for r in roles)}
    missing = [f"flowkit.{n}" for n in flowkit.__all__ if f"flowkit.{n}" not in py]
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        if module_name not in py:
            missing.append(f"{module_name} (the module: add a page under docs/api/)")
        for n in getattr(module, "__all__", ()):
            obj = getattr(module, n, None)
            # A re-exported name may be documented once, under the top-level package.
            if f"{module_name}.{n}" not in py and not (getattr(flowkit, n, None) is obj and f"flowkit.{n}" in py):
                missing.append(f"{module_name}.{n}")
    for name in CONTRACT_NAMES:
        module_name, _, attr = name.partition(".")
        obj: object = importlib.import_module(module_name)
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue  # not written yet
        if name not in py:
            missing.append(name)
    assert not missing, f"public names without an entry in the API reference: {missing}"


def _load_conf():
    spec = importlib.util.spec_from_file_location("flowkit_docs_conf", DOCS / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


def test_intersphinx_only_from_local_inventories(tmp_path: Path) -> None:
    conf = _load_conf()
    assert conf.intersphinx_from(tmp_path, online=False) == {}
    (tmp_path / "torch.inv").write_bytes(b"# Sphinx inventory version 2\n")
    mapping = conf.intersphinx_from(tmp_path, online=False)
    assert mapping == {"torch": (conf.INVENTORIES["torch"], str(tmp_path / "torch.inv"))}
    online = conf.intersphinx_from(tmp_path, online=True)
    assert set(online) == {"python", "torch", "numpy"} and online["numpy"][1] is None
