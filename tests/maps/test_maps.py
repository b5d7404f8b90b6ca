"""Element-wise maps: round trips, log-derivatives against autograd, monotonicity, and the spline
at hand-computed knots and in its tails (float64)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flowkit.bijectors import Elementwise
from flowkit.maps import AffineMap, ElementwiseMap, RQSplineMap, ShiftMap
from flowkit.maps.spline import LOGIT_BOUND
from flowkit.testing import check_bijector, randomize_parameters

seeds = st.integers(0, 2**16)
MAPS = {
    "affine": lambda: AffineMap(),
    "affine_bounded": lambda: AffineMap(bound=2.0),
    "shift": lambda: ShiftMap(),
    "spline": lambda: RQSplineMap(bins=5, bound=2.0),
    "spline_one_bin": lambda: RQSplineMap(bins=1, bound=1.0),
}
maps = st.sampled_from(sorted(MAPS))


def _draw(m: ElementwiseMap, shape: tuple[int, ...], seed: int,
          scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(shape, generator=g, dtype=torch.float64)  # reaches both tails of the splines
    params = torch.randn((*shape, m.num_params), generator=g, dtype=torch.float64)
    return x, params


@given(name=maps, batch=st.integers(1, 5), d=st.integers(1, 4), seed=seeds)
def test_round_trip_and_log_derivative(name: str, batch: int, d: int, seed: int) -> None:
    m = MAPS[name]()
    x, params = _draw(m, (batch, d), seed)
    x.requires_grad_(True)
    z, ladj = m(x, params)
    # Element-wise map: the Jacobian is diagonal, so the gradient of sum(z) is the derivative.
    (deriv,) = torch.autograd.grad(z.sum(), x)
    torch.testing.assert_close(ladj, deriv.abs().log(), atol=1e-9, rtol=1e-9)
    x_back, ladj_inv = m.inverse(z.detach(), params)
    torch.testing.assert_close(x_back, x.detach(), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(ladj_inv, -ladj.detach(), atol=1e-9, rtol=1e-9)
    assert z.dtype == x.dtype and ladj.shape == x.shape


@given(name=maps, seed=seeds)
def test_monotone(name: str, seed: int) -> None:
    m = MAPS[name]()
    _, params = _draw(m, (1,), seed)
    x = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    z, _ = m(x, params.expand(2001, m.num_params))
    assert bool((z.diff() > 0).all()), "the map is not strictly increasing"


@pytest.mark.parametrize("name", sorted(MAPS))
def test_zero_params_are_the_identity(name: str) -> None:
    m = MAPS[name]()
    x = torch.linspace(-4, 4, 41, dtype=torch.float64)
    z, ladj = m(x, torch.zeros(41, m.num_params, dtype=torch.float64))
    torch.testing.assert_close(z, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, torch.zeros_like(x), atol=1e-12, rtol=0)


def _hand_spline(logit_bound: float | None = None) -> tuple[RQSplineMap, torch.Tensor]:
    """K = 2 bins on [-1, 1]: x-knots (-1, 0, 1), y-knots (-1, -0.5, 1), derivatives (1, 2, 1).

    Heights: softmax(0, log 3) = (1/4, 3/4) of 2; the middle derivative softplus(log(e + 1) + log(e - 1))
    = log(e^2) = 2. With a logit bound L the height logit is u = v / (1 - v / L), whose soft clip
    u / (1 + |u| / L) is v = log 3 again.
    """
    spline = RQSplineMap(bins=2, bound=1.0, min_width=0.0, min_height=0.0, min_derivative=0.0,
                         logit_bound=logit_bound)
    v = math.log(3.0)
    u = v if logit_bound is None else v / (1 - v / logit_bound)
    params = torch.tensor([0.0, 0.0, 0.0, u, math.log(math.e + 1)], dtype=torch.float64)
    return spline, params


@pytest.mark.parametrize("logit_bound", [None, LOGIT_BOUND, 2.0])
def test_spline_at_knots_in_bins_and_in_tails(logit_bound: float | None) -> None:
    spline, params = _hand_spline(logit_bound)
    x = torch.tensor([-1.0, 0.0, 1.0, -0.5, -7.0, 2.5], dtype=torch.float64)
    z, ladj = spline(x, params.expand(6, 5))
    # Bin 0 at xi = 1/2: s = 1/2, d0 = 1, d1 = 2, sigma = 2; z = -1 + (1/2)(1/8 + 1/4)/(1/2 + 1/2) = -13/16;
    # dz/dx = (1/4)(2/4 + 2 (1/2)(1/4) + 1/4) / 1 = 1/4.
    expected_z = torch.tensor([-1.0, -0.5, 1.0, -13 / 16, -7.0, 2.5], dtype=torch.float64)
    expected_ladj = torch.tensor([0.0, math.log(2.0), 0.0, math.log(0.25), 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(z, expected_z, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, expected_ladj, atol=1e-12, rtol=0)
    x_back, ladj_inv = spline.inverse(expected_z, params.expand(6, 5))
    torch.testing.assert_close(x_back, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj_inv, -expected_ladj, atol=1e-12, rtol=0)


def test_spline_bin_sizes_are_softly_bounded() -> None:
    """Logits +-1e6: unbounded, one bin takes everything (to the minimum); bounded, the ratio is e^(2L) at most."""
    params = torch.tensor([[1e6, -1e6, 0.0, 0.0, 0.0]], dtype=torch.float64)
    for bound, ratio in ((None, 1e6 - 1), (1.5, math.exp(3.0))):
        spline = RQSplineMap(bins=2, bound=1.0, min_width=1e-6, min_height=0.0, logit_bound=bound)
        knots = spline._knot_table(params)[0, :, 0]
        widths = knots.diff()
        assert widths[0] / widths[1] == pytest.approx(ratio, rel=1e-4), bound
    assert RQSplineMap().logit_bound == pytest.approx(0.5 * math.log(1000))


def test_spline_minimum_widths_and_heights_apply_separately() -> None:
    """All mass on bin 0: the other bin keeps its own minimum, 0.1 of the width and 0.2 of the height."""
    spline = RQSplineMap(bins=2, bound=1.0, min_width=0.1, min_height=0.2, logit_bound=None)
    table = spline._knot_table(torch.tensor([[1e6, -1e6, 1e6, -1e6, 0.0]], dtype=torch.float64))[0]
    torch.testing.assert_close(table[:, 0].diff(), torch.tensor([1.8, 0.2], dtype=torch.float64))
    torch.testing.assert_close(table[:, 1].diff(), torch.tensor([1.6, 0.4], dtype=torch.float64))


def test_spline_is_continuous_at_the_bound() -> None:
    spline = RQSplineMap(bins=4, bound=2.0)
    params = torch.randn(4, spline.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    eps = 1e-9
    x = torch.tensor([-2.0 - eps, -2.0 + eps, 2.0 - eps, 2.0 + eps], dtype=torch.float64)
    z, ladj = spline(x, params[[0, 0, 1, 1]])
    torch.testing.assert_close(z, x, atol=1e-8, rtol=0)  # the spline meets the identity tails
    torch.testing.assert_close(ladj, torch.zeros_like(x), atol=1e-6, rtol=0)  # with slope 1


def test_affine_hand_values() -> None:
    m = AffineMap(bound=1.0)
    z, ladj = m(torch.tensor([2.0], dtype=torch.float64), torch.tensor([[10.0, 1.0]], dtype=torch.float64))
    a = math.tanh(10.0)  # the soft bound keeps |a| < 1
    torch.testing.assert_close(z, torch.tensor([math.exp(-a)], dtype=torch.float64))
    torch.testing.assert_close(ladj, torch.tensor([-a], dtype=torch.float64))


@pytest.mark.parametrize("kwargs, match", [({"bins": 0}, "bins"), ({"bound": -1.0}, "bound"),
                                           ({"bins": 4, "min_width": 0.3}, "min_width"),
                                           ({"min_derivative": 1.0}, "min_derivative"),
                                           ({"logit_bound": 0.0}, "logit_bound")])
def test_spline_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RQSplineMap(**kwargs)


@given(name=maps, d=st.integers(1, 3), n=st.integers(1, 2), seed=seeds)
def test_elementwise_bijector_passes_check_bijector(name: str, d: int, n: int, seed: int) -> None:
    layer = randomize_parameters(Elementwise(d, MAPS[name]()).double(), std=1.0, seed=seed)
    x, _ = _draw(layer.map, (3, n, d), seed, scale=2.0)
    check_bijector(layer, x)
