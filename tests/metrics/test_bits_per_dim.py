"""Bits per dimension: the formula, the data-set average, and the bound it is on the 8-bit code length."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import flowkit
from flowkit import ActNorm, Flow, TarFlow
from flowkit.metrics import bits_per_dim, evaluate_bpd
from flowkit.testing import randomize_parameters


def test_import_paths() -> None:
    assert flowkit.metrics.bits_per_dim is bits_per_dim


def test_formula_by_hand() -> None:
    d = 3 * 8 * 8
    expected = (1234.5 / d + math.log(128)) / math.log(2)
    assert bits_per_dim(-1234.5, d) == pytest.approx(expected, rel=1e-15)
    torch.testing.assert_close(bits_per_dim(torch.tensor([-1234.5, 0.0], dtype=torch.float64), d),
                               torch.tensor([expected, 7.0], dtype=torch.float64))
    # Uniform on [-1, 1]^D (density 2^-D) is exactly 8 bits per dimension; a density twice as high, 7.
    assert bits_per_dim(-d * math.log(2), d) == pytest.approx(8.0, abs=1e-12)
    assert bits_per_dim(0.0, d) == pytest.approx(7.0, abs=1e-12)
    with pytest.raises(ValueError, match="num_dims must be a positive int, got 0"):
        bits_per_dim(1.0, 0)


def eight_bit(n: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g).double() / 127.5 - 1


def test_evaluate_bpd_is_the_average_of_a_hand_computation() -> None:
    torch.manual_seed(0)
    model = randomize_parameters(TarFlow(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=2,
                                         layers_per_block=1, head_dim=16, num_classes=3).double(), std=0.05)
    x, y = eight_bit(10, (1, 4, 4)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, -1])
    loader = DataLoader(TensorDataset(x, y), batch_size=4)  # batches of 4, 4, 2
    result = evaluate_bpd(model, loader, generator=torch.Generator().manual_seed(7))
    g, total = torch.Generator().manual_seed(7), 0.0
    with torch.no_grad():
        for xb, yb in loader:
            k = torch.round((xb + 1) * 127.5)
            noisy = (k + torch.rand(xb.shape, generator=g, dtype=xb.dtype)) / 128 - 1  # uniform on bin k
            total += ((-model.log_prob(noisy, yb) / 16 + math.log(128)) / math.log(2)).sum().item()
    assert result == pytest.approx(total / 10, rel=1e-12)


def test_unconditional_flows_ignore_labels_and_accept_bare_tensors() -> None:
    flow = Flow([ActNorm(3)], event_shape=(2, 3)).double().eval()
    x = eight_bit(6, (2, 3))
    with_labels = evaluate_bpd(flow, [(x, torch.zeros(6, dtype=torch.long))], dequantize="none")
    assert evaluate_bpd(flow, [x], dequantize="none") == with_labels
    expected = bits_per_dim(flow.log_prob(x), 6).mean().item()
    assert with_labels == pytest.approx(expected, rel=1e-12)


def test_bpd_bounds_the_exact_discrete_code_length() -> None:
    # One pixel under N(mu, s^2): the exact probability of bin k is a difference of normal CDFs;
    # E_u[bpd] is at least -log2 P(k) (Jensen) and, with bins much narrower than s, equal to it.
    mu, s = 0.1, 0.4
    flow = Flow([ActNorm(1)], event_shape=(1,)).double().eval()
    with torch.no_grad():
        flow.bijectors[0].loc.fill_(mu)
        flow.bijectors[0].log_scale.fill_(math.log(s))
    k = torch.tensor([40.0, 128.0, 150.0, 230.0], dtype=torch.float64)
    normal = torch.distributions.Normal(mu, s)
    exact = -torch.log2(normal.cdf((k + 1) / 128 - 1) - normal.cdf(k / 128 - 1))
    x = (k / 127.5 - 1).repeat(4000).unsqueeze(1)
    estimate = evaluate_bpd(flow, DataLoader(TensorDataset(x), batch_size=4000),
                            generator=torch.Generator().manual_seed(0))
    assert estimate == pytest.approx(exact.mean().item(), abs=1e-3)


@pytest.mark.parametrize("data, kwargs, message", [
    ([torch.full((2, 4), 0.5)], {}, "levels off that grid; pass dequantize='none'"),
    ([torch.full((2, 4), 1.5)], {}, r"8-bit images on \[-1, 1\], got values in \[1\.5, 1\.5\]"),
    ([], {}, "the loader yielded no data"),
    ([torch.zeros(2, 4)], dict(dequantize="gaussian"), "dequantize must be 'uniform' or 'none'"),
    (["x"], {}, "must yield \\(x, y\\) pairs or tensors x, got str"),
])
def test_bad_input(data: list, kwargs: dict, message: str) -> None:
    flow = Flow([ActNorm(4)], event_shape=(4,))
    with pytest.raises((ValueError, TypeError), match=message):
        evaluate_bpd(flow, data, **kwargs)


def test_evaluation_leaves_the_flow_untouched() -> None:
    flow = Flow([ActNorm(4)], event_shape=(4,)).train()
    evaluate_bpd(flow, [eight_bit(8, (4,)).float()])
    assert flow.training and not bool(flow.bijectors[0].initialized)
