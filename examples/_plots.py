"""The plots the toolkit examples share: a learned 2-D density beside a scatter, and a scatter alone.

Both draw with matplotlib when it is installed (``pip install -e '.[examples]'``) and otherwise fall
back to a plain Pillow image (Pillow comes with torchvision): the density as a grey-level heat map
and the points as coloured dots or crosses, with no axes or legend. The example scripts import this
module by its bare name (``from _plots import ...``); run from anywhere, Python puts the script's
folder first on ``sys.path``.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> import torch
    >>> normal = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = plot_density(normal.log_prob, [Points(normal.sample((50,)), (0, 0, 0), "data")],
    ...                         Path(tmp) / "density.png", n=32)
    ...     path.is_file()
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

__all__ = ["Limits", "Points", "density_grid", "plot_density", "plot_points"]

#: A plot window ``(x_min, x_max, y_min, y_max)``.
Limits = tuple[float, float, float, float]

#: Pixels per panel side of the Pillow fallback.
PANEL = 400


@dataclass(frozen=True)
class Points:
    """One set of 2-D points of a scatter plot.

    Attributes:
        xy: the points, ``(N, 2)``.
        colour: RGB, 0-255.
        label: the legend entry.
        marker: ``"o"`` (a dot) or ``"x"`` (a cross).
        size: matplotlib's marker size.
        alpha: matplotlib's opacity.
    """

    xy: Tensor
    colour: tuple[int, int, int]
    label: str
    marker: str = "o"
    size: float = 2.0
    alpha: float = 0.4

    def __post_init__(self) -> None:
        if self.xy.dim() != 2 or self.xy.shape[1] != 2:
            raise ValueError(f"Points: xy must be (N, 2), got {tuple(self.xy.shape)}")
        if self.marker not in ("o", "x"):
            raise ValueError(f"Points: marker must be 'o' or 'x', got {self.marker!r}")


@torch.no_grad()
def density_grid(log_prob: Callable[[Tensor], Tensor], limits: Limits, n: int = 200) -> Tensor:
    r"""The density :math:`e^{\log p}` on an ``n x n`` grid over ``limits``, ``(n, n)``.

    Row ``i`` is the ``i``-th value of the second coordinate from ``y_min`` up, column ``j`` the
    ``j``-th of the first from ``x_min`` (matplotlib's ``imshow(origin="lower")`` layout).

    Args:
        log_prob: maps points ``(M, 2)`` to log-densities ``(M,)``, e.g. ``flow.log_prob``.
        limits: the window ``(x_min, x_max, y_min, y_max)``.
        n: grid points per axis.
    """
    x0, x1, y0, y1 = limits
    v, u = torch.meshgrid(torch.linspace(y0, y1, n), torch.linspace(x0, x1, n), indexing="ij")
    return log_prob(torch.stack([u.flatten(), v.flatten()], dim=1)).exp().view(n, n)


def plot_density(log_prob: Callable[[Tensor], Tensor], points: Sequence[Points], path: Path,
                 limits: Limits = (-3.0, 3.0, -3.0, 3.0), n: int = 200) -> Path:
    """Two panels: the learned density (heat map) and ``points`` (e.g. data against samples); returns ``path``.

    Args:
        log_prob: maps points ``(M, 2)`` to log-densities ``(M,)``, e.g. ``flow.log_prob``.
        points: the sets of points of the second panel, drawn in order.
        path: the PNG to write.
        limits: the window ``(x_min, x_max, y_min, y_max)`` of both panels.
        n: grid points per axis of the heat map.
    """
    density = density_grid(log_prob, limits, n).cpu()
    plt = _pyplot()
    if plt is None:
        from PIL import Image

        heat = Image.fromarray(_to_grey(density)).resize((PANEL, PANEL)).convert("RGB")
        image = Image.new("RGB", (2 * PANEL, PANEL), "white")
        image.paste(heat, (0, 0))
        image.paste(_pillow_points(points, limits), (PANEL, 0))
        image.save(path)
        return path
    x0, x1, y0, y1 = limits
    fig, axes = plt.subplots(1, 2, figsize=(8, 0.5 + 3.5 * (y1 - y0) / (x1 - x0)), layout="constrained")  # square units
    axes[0].imshow(density.numpy(), origin="lower", extent=limits, cmap="magma")
    axes[0].set_title("learned density", fontsize=10)
    _scatter(axes[1], points, limits)
    axes[1].set_title(" and ".join(p.label for p in points), fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_points(points: Sequence[Points], path: Path, limits: Limits, labels: tuple[str, str] = ("", "")) -> Path:
    """A scatter plot of ``points`` with a legend and axis ``labels``; returns ``path``.

    Args:
        points: the sets of points, drawn in order.
        path: the PNG to write.
        limits: the window ``(x_min, x_max, y_min, y_max)``.
        labels: the x and y axis labels.
    """
    plt = _pyplot()
    if plt is None:
        _pillow_points(points, limits).save(path)
        return path
    fig, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    _scatter(ax, points, limits)
    ax.set(xlabel=labels[0], ylabel=labels[1])
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _pyplot() -> ModuleType | None:
    """``matplotlib.pyplot`` on the file-only Agg backend, or ``None`` when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # no display needed, and none is opened
    import matplotlib.pyplot as plt

    return plt


def _scatter(ax: Any, points: Sequence[Points], limits: Limits) -> None:
    for p in points:
        ax.scatter(p.xy[:, 0].cpu(), p.xy[:, 1].cpu(), s=p.size, color=[c / 255 for c in p.colour], marker=p.marker,
                   alpha=p.alpha, label=p.label)
    ax.set(xlim=limits[:2], ylim=limits[2:], aspect="equal")
    # Marker sizes are areas (points^2): scale tiny ones up in the legend to about a size-12 marker.
    ax.legend(fontsize=7, markerscale=max(1.0, math.sqrt(12 / min(p.size for p in points))), loc="upper right")


def _to_grey(density: Tensor) -> Any:
    """Grey levels 0-255 (``uint8`` array), brightest at the maximum, row 0 at the top of the image."""
    return (255 * density / density.max()).flip(0).to(torch.uint8).numpy()


def _pillow_points(points: Sequence[Points], limits: Limits) -> Any:
    """A white ``PANEL x PANEL`` Pillow image with each point a dot (3 x 3 pixels) or a cross (5 x 5) of its colour."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (PANEL, PANEL), "white")
    draw = ImageDraw.Draw(image)
    x0, x1, y0, y1 = limits
    for p in points:
        # Pixel column from x, row from y counted down from the top; points outside fall off the image.
        cols = ((p.xy[:, 0].cpu() - x0) / (x1 - x0) * (PANEL - 1)).round().tolist()
        rows = ((y1 - p.xy[:, 1].cpu()) / (y1 - y0) * (PANEL - 1)).round().tolist()
        for c, r in zip(cols, rows, strict=True):
            if p.marker == "x":
                draw.line([(c - 2, r - 2), (c + 2, r + 2)], fill=p.colour)
                draw.line([(c - 2, r + 2), (c + 2, r - 2)], fill=p.colour)
            else:  # a dot 3 pixels across: a single pixel is hard to see
                draw.rectangle([(c - 1, r - 1), (c + 1, r + 1)], fill=p.colour)
    return image
