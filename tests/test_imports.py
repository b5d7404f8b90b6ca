"""``import flowkit`` loads torch and numpy, and none of the optional heavy packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Imported only inside the functions that need them (Pillow to read and write images, scikit-learn for
# the digits, tqdm for progress bars, scipy and matplotlib in examples and tests).
LAZY = ("PIL", "sklearn", "tqdm", "scipy", "matplotlib", "torchvision")


def _loaded_after(statement: str) -> list[str]:
    """Top-level packages of ``LAZY`` in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    code = (f"import sys, json\n{statement}\n"
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(LAZY)!r}))))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_import_flowkit_loads_no_optional_package() -> None:
    # torch itself may load some of them (torch.hub imports tqdm): count only what flowkit adds.
    baseline = _loaded_after("import torch, numpy")
    added = sorted(set(_loaded_after("import flowkit, flowkit.metrics, flowkit.data")) - set(baseline))
    assert added == [], f"`import flowkit` loads {added}; import them inside the functions that use them"


def test_lazy_names_resolve_to_their_module() -> None:
    import flowkit.data as data
    from flowkit.data import datasets

    for name in ("load_dataset", "ImageDataset", "DATA_SPECS"):  # a typo in the lazy table breaks one
        assert getattr(data, name) is getattr(datasets, name), name
    assert set(data.__all__) <= set(dir(data))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        data.nope  # noqa: B018
