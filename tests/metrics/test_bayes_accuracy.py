"""Bayes classification with a conditional flow: argmax_y log p(x | y)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from flowkit import TarFlow
from flowkit.metrics import bayes_accuracy, class_log_probs
from flowkit.testing import randomize_parameters

K = 4


@pytest.fixture(scope="module")
def model() -> TarFlow:
    torch.manual_seed(0)
    flow = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=2, layers_per_block=1,
                   head_dim=16, num_classes=K).double()
    return randomize_parameters(flow, std=0.1).eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.rand(9, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1


def test_class_log_probs_line_up_with_single_class_calls(model: TarFlow, x: torch.Tensor) -> None:
    table = class_log_probs(model, x, K)
    assert table.shape == (9, K)
    with torch.no_grad():
        for c in range(K):
            torch.testing.assert_close(table[:, c], model.log_prob(x, torch.full((9,), c)), rtol=1e-12, atol=1e-12)


def test_accuracy_counts_argmax_hits(model: TarFlow, x: torch.Tensor) -> None:
    with torch.no_grad():
        best = class_log_probs(model, x, K).argmax(1)
    assert best.unique().numel() > 1, "the classes should disagree for this test to mean something"

    def loader(y: torch.Tensor) -> DataLoader:
        return DataLoader(TensorDataset(x, y), batch_size=4)

    assert bayes_accuracy(model, loader(best), K) == 1.0
    assert bayes_accuracy(model, loader((best + 1) % K), K) == 0.0
    mixed = torch.where(torch.arange(9) < 3, best, (best + 1) % K)
    assert bayes_accuracy(model, loader(mixed), K) == pytest.approx(3 / 9)


def test_uniform_dequantization_is_reproducible(model: TarFlow) -> None:
    x8 = torch.randint(0, 256, (6, 1, 4, 4), generator=torch.Generator().manual_seed(2)).double() / 127.5 - 1
    data = [(x8, torch.arange(6) % K)]
    runs = {bayes_accuracy(model, data, K, dequantize="uniform", generator=torch.Generator().manual_seed(3))
            for _ in range(2)}
    assert len(runs) == 1


def test_bad_input(model: TarFlow, x: torch.Tensor) -> None:
    unconditional = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=1, layers_per_block=1,
                            head_dim=16)
    with pytest.raises(ValueError, match="the flow is unconditional"):
        bayes_accuracy(unconditional, [(x, torch.zeros(9, dtype=torch.long))], 2)
    with pytest.raises(ValueError, match="num_classes=3 but the flow has 4 classes"):
        bayes_accuracy(model, [(x, torch.zeros(9, dtype=torch.long))], 3)
    with pytest.raises(ValueError, match="must yield \\(x, y\\) pairs with labels"):
        bayes_accuracy(model, [x], K)
    with pytest.raises(ValueError, match=r"labels must have shape \(9,\), got \(2,\)"):
        bayes_accuracy(model, [(x, torch.zeros(2, dtype=torch.long))], K)
    with pytest.raises(ValueError, match="the loader yielded no data"):
        bayes_accuracy(model, [], K)
