"""What the example tests share: importing a script of examples/ as a module."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """A loader of ``examples/<name>.py`` as a fresh module, to call its ``main(argv)`` and functions in-process.

    examples/ goes first on ``sys.path`` for the test, as when the script runs, so that its import
    of a sibling helper (``from _plots import ...``) resolves.
    """
    monkeypatch.syspath_prepend(str(EXAMPLES))

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)  # as an import does; dataclasses look it up
        spec.loader.exec_module(module)
        return module

    return load
