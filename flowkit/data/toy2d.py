"""Two-dimensional toy densities for flows over vectors: two moons, 8 Gaussians, checkerboard."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._args import nonnegative_int, positive_int

__all__ = ["TOY_2D", "toy_2d"]

#: The names :func:`toy_2d` accepts.
TOY_2D = ("moons", "8gaussians", "checkerboard")


def toy_2d(name: str, n: int, seed: int = 0) -> Tensor:
    r"""``n`` points ``(n, 2)`` (float32) of a 2-D toy density, reproducible from ``seed``.

    - ``"moons"``: scikit-learn's ``make_moons`` with noise 0.05 (two interleaved half circles).
    - ``"8gaussians"``: an equal mixture of 8 isotropic Gaussians of standard deviation 0.2
      centred on the circle of radius 2 at angles :math:`k\pi/4`; its entropy is
      :math:`\log 8 + 1 + \log(2\pi \cdot 0.2^2) \approx 1.70` nats (the mixture's components barely
      overlap), the best held-out NLL a model can reach.
    - ``"checkerboard"``: uniform on the 8 black cells of a 4 x 4 checkerboard on
      :math:`[-2, 2]^2` (cells of side 1), entropy :math:`\log 8 \approx 2.08` nats.

    Examples:
        >>> tuple(toy_2d("checkerboard", 5).shape)
        (5, 2)
        >>> torch.equal(toy_2d("moons", 3, seed=1), toy_2d("moons", 3, seed=1))
        True
    """
    if name not in TOY_2D:
        raise ValueError(f"toy_2d: name must be one of {', '.join(TOY_2D)}, got {name!r}")
    positive_int(n, "n", "toy_2d")
    nonnegative_int(seed, "seed", "toy_2d")
    g = torch.Generator().manual_seed(seed)
    if name == "moons":
        from sklearn.datasets import make_moons

        return torch.as_tensor(make_moons(n, noise=0.05, random_state=seed)[0], dtype=torch.float32)
    if name == "8gaussians":
        angle = torch.randint(0, 8, (n,), generator=g) * (math.pi / 4)
        centres = 2 * torch.stack([angle.cos(), angle.sin()], dim=1)
        return centres + 0.2 * torch.randn(n, 2, generator=g)
    # Checkerboard: a random column, then a random row of the same colour in that column.
    col = torch.randint(0, 4, (n,), generator=g)
    row = 2 * torch.randint(0, 2, (n,), generator=g) + (col % 2)
    cell = torch.stack([col, row], dim=1).float() - 2
    return cell + torch.rand(n, 2, generator=g)
