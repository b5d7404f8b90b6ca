"""examples/_plots.py: the Pillow fallback puts points and the density's peak where their coordinates say."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture
def plots(load_example: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/_plots.py with matplotlib made unimportable, so that it draws with Pillow."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    return load_example("_plots")


def test_points_land_at_their_pixels(plots: ModuleType, tmp_path: Path) -> None:
    # Window x in [-1, 3], y in [-2, 2]: (1, 0) is the centre, (3, 2) the top-right corner.
    points = [plots.Points(torch.tensor([[1.0, 0.0]]), (255, 0, 0), "a"),
              plots.Points(torch.tensor([[3.0, 2.0]]), (0, 0, 255), "b")]
    path = plots.plot_points(points, tmp_path / "points.png", limits=(-1, 3, -2, 2))
    image = np.asarray(Image.open(path).convert("RGB"))
    side = plots.PANEL
    assert image.shape == (side, side, 3)
    centre = round((side - 1) / 2)
    assert tuple(image[centre, centre]) == (255, 0, 0)
    assert tuple(image[0, side - 1]) == (0, 0, 255)
    # Each point is a 3 x 3 dot (clipped to 2 x 2 in the corner), and nothing else is drawn.
    assert (image[centre - 1:centre + 2, centre - 1:centre + 2] == (255, 0, 0)).all()
    assert (image[:2, side - 2:] == (0, 0, 255)).all()
    assert (image != 255).any(axis=2).sum() == 9 + 4


def test_density_peak_is_where_the_mode_is(plots: ModuleType, tmp_path: Path) -> None:
    """A narrow Gaussian at (1, -1) in the window [-2, 2]^2 peaks 3/4 of the way right and down the heat map."""
    normal = torch.distributions.MultivariateNormal(torch.tensor([1.0, -1.0]), 0.05 * torch.eye(2))
    path = plots.plot_density(normal.log_prob, [plots.Points(torch.zeros(1, 2), (255, 0, 0), "origin")],
                              tmp_path / "density.png", limits=(-2, 2, -2, 2), n=81)
    image = np.asarray(Image.open(path).convert("L")).astype(float)
    side = plots.PANEL
    assert image.shape == (side, 2 * side)
    heat = image[:, :side]
    row, col = np.unravel_index(heat.argmax(), heat.shape)
    assert abs(row - 0.75 * side) < 8 and abs(col - 0.75 * side) < 8, (row, col)
    # The second panel holds the scatter: one point at the origin, its centre.
    scatter = np.asarray(Image.open(path).convert("RGB"))[:, side:]
    centre = round((side - 1) / 2)
    assert (scatter[centre - 1:centre + 2, centre - 1:centre + 2] == (255, 0, 0)).all()
    assert (scatter != 255).any(axis=2).sum() == 9
