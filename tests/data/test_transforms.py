"""Dequantization noise, label dropping and the 8-bit <-> [-1, 1] maps."""

from __future__ import annotations

import pytest
import torch

from flowkit.data import dequantize, drop_labels, to_float, to_uint8


def _all_levels(repeats: int) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.arange(256, dtype=torch.uint8).repeat(repeats)
    return k, to_float(k)


def test_uint8_round_trip() -> None:
    k, x = _all_levels(1)
    assert x[0] == -1 and x[-1] == 1
    assert torch.equal(to_uint8(x), k)


def test_uniform_noise_stays_in_its_bin() -> None:
    k, x = _all_levels(200)
    g = torch.Generator().manual_seed(0)
    y = dequantize(x, "uniform", generator=g)
    assert y.min() >= -1 and y.max() < 1
    # Bin k of width 2/256 is [-1 + 2k/256, -1 + 2(k+1)/256): flooring recovers the integer.
    assert torch.equal(torch.floor(128 * (y + 1)).long(), k.long())
    u = 128 * (y + 1) - k.float()  # the uniform draw within the bin
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.005


def test_gaussian_noise_statistics() -> None:
    x = torch.zeros(100_000)
    y = dequantize(x, "gaussian", sigma=0.05, generator=torch.Generator().manual_seed(0))
    assert abs(y.mean().item()) < 1e-3 and abs(y.std().item() - 0.05) < 1e-3


def test_noise_is_reproducible_and_none_is_identity() -> None:
    x = torch.rand(3, 4) * 2 - 1
    a = dequantize(x, "gaussian", sigma=0.1, generator=torch.Generator().manual_seed(5))
    b = dequantize(x, "gaussian", sigma=0.1, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert dequantize(x, "none") is x


def test_pre_drawn_noise() -> None:
    x = torch.tensor([-1.0, 1.0])
    assert torch.equal(dequantize(x, "gaussian", sigma=0.5, noise=torch.tensor([1.0, -2.0])), torch.tensor([-0.5, 0.0]))
    expected = torch.tensor([-1 + 0.5 / 128, 255 / 128 - 1])  # (k + u) / 128 - 1 for k = 0, 255
    assert torch.equal(dequantize(x, "uniform", noise=torch.tensor([0.5, 0.0])), expected)
    with pytest.raises(ValueError, match="noise must have the shape of x \\(2,\\), got \\(3,\\)"):
        dequantize(x, "uniform", noise=torch.zeros(3))
    with pytest.raises(ValueError, match="either noise or generator"):
        dequantize(x, "uniform", generator=torch.Generator(), noise=torch.zeros(2))


def test_dequantize_errors() -> None:
    with pytest.raises(ValueError, match="unknown noise kind 'salt'; expected one of 'gaussian', 'uniform', 'none'"):
        dequantize(torch.zeros(2), "salt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gaussian noise needs sigma > 0, got sigma=0"):
        dequantize(torch.zeros(2), "gaussian", sigma=0.0)
    with pytest.raises(TypeError, match="floating-point images"):
        dequantize(torch.zeros(2, dtype=torch.uint8), "uniform")


def test_drop_labels() -> None:
    y = torch.arange(10).repeat(1000)
    dropped = drop_labels(y, 0.1, generator=torch.Generator().manual_seed(0))
    mask = dropped == -1
    assert abs(mask.float().mean().item() - 0.1) < 0.01
    assert torch.equal(dropped[~mask], y[~mask])
    assert torch.equal(drop_labels(y, 0.0), y)
    with pytest.raises(ValueError, match="must be in \\[0, 1\\], got 1.5"):
        drop_labels(y, 1.5)
    with pytest.raises(TypeError, match="integer labels"):
        drop_labels(y.float(), 0.1)
