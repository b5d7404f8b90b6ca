"""The ready-made vector flows: densities that integrate to one, samples that invert, contexts."""

from __future__ import annotations

import math
import warnings

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


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_dropout_acts_in_training_mode_only(name: str) -> None:
    """Eval mode: exactly the dropout-free flow with the same weights (exact inverse). Training mode: random."""
    torch.manual_seed(0)
    plain = randomize_parameters(FLOWS[name](3, transforms=2, hidden=(32, 32), num_classes=2).double(), std=0.3)
    dropped = FLOWS[name](3, transforms=2, hidden=(32, 32), num_classes=2, dropout=0.5).double()
    dropped.load_state_dict(plain.state_dict())  # dropout adds no parameter or buffer
    x, y = torch.randn(64, 3, dtype=torch.float64), torch.randint(2, (64,))
    dropped.eval()
    torch.testing.assert_close(dropped.log_prob(x, context=y), plain.log_prob(x, context=y), rtol=0, atol=0)
    z, _ = dropped(x, context=y)
    torch.testing.assert_close(dropped.inverse(z, context=y), x)
    dropped.train()
    first, second = dropped.log_prob(x, context=y), dropped.log_prob(x, context=y)
    assert not torch.allclose(first, second), "training-mode dropout should draw new masks per call"
    assert not torch.allclose(first, plain.log_prob(x, context=y))


def test_sampling_in_training_mode_with_dropout_warns() -> None:
    flow = NSF(2, hidden=(8,), dropout=0.1)
    with pytest.warns(RuntimeWarning, match=r"NSF.sample: .*training mode with active dropout.*\.eval\(\)"):
        flow.sample(3)
    flow.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flow.sample(3)
        NSF(2, hidden=(8,)).sample(3)  # no dropout: training mode is deterministic, no warning


@pytest.mark.parametrize("dropout, error, match", [
    (1.0, ValueError, r"NSF: dropout must lie in \[0, 1\).*got 1.0"),
    (-0.1, ValueError, r"probability in \[0, 1\], got -0.1"),
    ("0.1", TypeError, r"probability in \[0, 1\], got str"),
])
def test_bad_dropout(dropout: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        NSF(2, dropout=dropout)  # type: ignore[arg-type]


def test_dropout_with_a_custom_conditioner_is_refused() -> None:
    from flowkit import Coupling, MaskedAutoregressive
    from flowkit.maps import AffineMap
    from flowkit.nets import MADE, MLPConditioner

    with pytest.raises(ValueError, match="MaskedAutoregressive: dropout configures the default MADE"):
        MaskedAutoregressive(3, AffineMap(), conditioner=MADE(3, 2), dropout=0.1)
    with pytest.raises(ValueError, match="Coupling: dropout configures the default MLP"):
        Coupling(4, AffineMap(), conditioner=MLPConditioner(2, 2, 2), dropout=0.1)


@pytest.mark.parametrize("name", ["NSF", "SplineCoupling"])
def test_spline_flows_pass_their_logit_bound_to_the_map(name: str) -> None:
    """Same weights: the default bound changes the density (it is applied); ``logit_bound=None`` is 0.2.0's map."""
    from flowkit.maps import RQSplineMap
    from flowkit.maps.spline import LOGIT_BOUND

    torch.manual_seed(0)
    bounded = randomize_parameters(FLOWS[name](3, transforms=2, hidden=(16,)).double(), std=1.0)
    unbounded = FLOWS[name](3, transforms=2, hidden=(16,), logit_bound=None).double()
    unbounded.load_state_dict(bounded.state_dict())
    x = torch.randn(32, 3, dtype=torch.float64)
    assert not torch.allclose(bounded.log_prob(x), unbounded.log_prob(x))
    for flow, bound in ((bounded, LOGIT_BOUND), (unbounded, None)):
        maps = [b.map for b in flow.bijectors]
        assert all(isinstance(m, RQSplineMap) and m.logit_bound == bound for m in maps)
