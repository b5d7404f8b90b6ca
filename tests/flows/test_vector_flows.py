"""The ready-made vector flows: densities that integrate to one, samples that invert, contexts."""

from __future__ import annotations

import math

import pytest
import torch

from flowkit import MAF, NSF, Flow, RealNVP, SplineCoupling
from flowkit.testing import randomize_parameters

FLOWS = {"MAF": MAF, "NSF": NSF, "RealNVP": RealNVP, "SplineCoupling": SplineCoupling}


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_density_integrates_to_one(name: str) -> None:
    """A randomised 2-D flow's density sums to 1 over a fine grid (an independent check of every log-det)."""
    torch.manual_seed(0)
    flow = randomize_parameters(FLOWS[name](2, transforms=2, hidden=(16,)).double(), std=0.2)
    lim, n = 9.0, 601
    axis = torch.linspace(-lim, lim, n, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum().item() * (2 * lim / (n - 1)) ** 2
    assert abs(mass - 1) < 2e-3, f"{name}: density integrates to {mass}"


@pytest.mark.parametrize("name", sorted(FLOWS))
@pytest.mark.parametrize("context", [None, "labels", "vector"])
def test_sample_log_prob_and_context(name: str, context: str | None) -> None:
    torch.manual_seed(0)
    kwargs = {"labels": {"num_classes": 3}, "vector": {"context_features": 2}}.get(context or "", {})
    flow = randomize_parameters(FLOWS[name](3, transforms=2, hidden=(16,), **kwargs).double(), std=0.2)
    assert isinstance(flow, Flow) and flow.event_shape == (3,) and flow.conditional == (context is not None)
    ctx = {"labels": torch.tensor([0, 1, 2, -1]), "vector": torch.randn(4, 2, dtype=torch.float64)}.get(context or "")
    x, log_prob = flow.sample_and_log_prob(4, context=ctx)
    assert x.shape == (4, 3) and x.dtype == torch.float64
    torch.testing.assert_close(flow.log_prob(x, context=ctx), log_prob)
    z, _ = flow(x, context=ctx)
    torch.testing.assert_close(flow.inverse(z, context=ctx), x)


def test_nsf_matches_zuko_size_and_learns() -> None:
    """22,026 parameters at the defaults (zuko's NSF(2) has as many), and a short fit beats the best Gaussian."""
    from flowkit.data import toy_2d

    torch.manual_seed(0)
    flow = NSF(2)
    assert sum(p.numel() for p in flow.parameters()) == 22026
    data, test = toy_2d("moons", 4000), toy_2d("moons", 1000, seed=1)
    gaussian_nll = 0.5 * torch.logdet(torch.cov(data.T)).item() + math.log(2 * math.pi) + 1  # fitted Gaussian
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    for _ in range(150):
        loss = -flow.log_prob(data[torch.randint(len(data), (256,))]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        nll = -flow.log_prob(test).mean().item()
    assert nll < gaussian_nll - 0.3, f"NSF NLL {nll:.3f} vs Gaussian {gaussian_nll:.3f}"


@pytest.mark.parametrize("make, match", [(lambda: NSF(0), "features"), (lambda: MAF(2, transforms=0), "transforms"),
                                         (lambda: RealNVP(1), "features")])
def test_bad_arguments(make, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        make()
