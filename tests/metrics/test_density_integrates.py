"""Honest densities: exp(log_prob) of small flows integrates to one over the plane."""

from __future__ import annotations

import pytest
import torch

from flowkit import ActNorm, CausalAffine, EMADiagonalNormal, Flow, Permutation
from flowkit.testing import randomize_parameters

HALF_WIDTH, POINTS = 7.0, 201  # grid spacing 0.07 over [-7, 7]^2; samples stay within |x| < 6.1
# Measured |mass - 1|: 3.3e-6 (nvp), 5e-8 (vp), 3e-8 (conditional), the same on grids of 101 and 401
# points: it is the mass outside the square, not the quadrature error. A wrong log-det term is far larger.
MASS_TOL = 1e-5


def flow_2d(affine: bool, num_classes: int, ema_prior: bool) -> Flow:
    """ActNorm, then two causal blocks in opposite token orders, on 2-d data seen as two 1-d tokens."""
    torch.manual_seed(0)
    block = dict(dim=1, seq_len=2, channels=16, num_layers=1, head_dim=16, num_classes=num_classes, affine=affine)
    base = EMADiagonalNormal((2, 1)) if ema_prior else None
    flow = Flow([ActNorm(1), CausalAffine(**block), Permutation.reverse(), CausalAffine(**block)],
                base=base, event_shape=(2, 1)).double()
    randomize_parameters(flow, std=0.1)
    flow.bijectors[0].initialized.fill_(True)
    if ema_prior:
        flow.base.var.copy_(torch.tensor([[0.5], [1.7]], dtype=torch.float64))
    return flow.eval()


@pytest.mark.parametrize("affine, num_classes, ema_prior", [
    pytest.param(True, 0, False, id="nvp"),
    pytest.param(False, 0, True, id="vp-learned-variance"),
    pytest.param(True, 3, False, id="conditional"),
])
def test_density_integrates_to_one(affine: bool, num_classes: int, ema_prior: bool) -> None:
    flow = flow_2d(affine, num_classes, ema_prior)
    axis = torch.linspace(-HALF_WIDTH, HALF_WIDTH, POINTS, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis).unsqueeze(-1)
    cell = (axis[1] - axis[0]).item() ** 2
    labels = [None] if num_classes == 0 else [torch.full((len(grid),), c) for c in (0, 2)]
    with torch.no_grad():
        for y in labels:
            mass = flow.log_prob(grid, y).exp().sum().item() * cell
            assert abs(mass - 1) < MASS_TOL, f"label {None if y is None else int(y[0])}: integral {mass:.8f}"
        # The map is far from affine (else the test would only check a Gaussian): midpoints move.
        p, q = torch.randn(2, 64, 2, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        y = None if num_classes == 0 else torch.zeros(64, dtype=torch.long)
        bend = flow((p + q) / 2, y)[0] - (flow(p, y)[0] + flow(q, y)[0]) / 2
        assert bend.abs().max() > 0.05
