"""Train / validation split: deterministic, disjoint, independent of the global random state."""

from __future__ import annotations

import pytest
import torch

from flowkit.data import ImageDataset, train_val_split


def test_split_is_deterministic_disjoint_and_complete() -> None:
    data = list(range(100))
    train, val = train_val_split(data, val_fraction=0.1, seed=3)
    assert len(val) == 10 and len(train) == 90
    assert set(train.indices).isdisjoint(val.indices)
    assert sorted(train.indices + val.indices) == data
    torch.manual_seed(123)  # the global state must not matter
    again_train, again_val = train_val_split(data, val_fraction=0.1, seed=3)
    assert again_train.indices == train.indices and again_val.indices == val.indices
    _, other_val = train_val_split(data, val_fraction=0.1, seed=4)
    assert other_val.indices != val.indices


def test_split_edge_fractions() -> None:
    train, val = train_val_split(list(range(5)), val_fraction=0.0)
    assert len(train) == 5 and len(val) == 0
    _, val = train_val_split(list(range(5)), val_fraction=0.01)
    assert len(val) == 1  # a non-zero fraction holds out at least one item
    with pytest.raises(ValueError, match="val_fraction must be in \\[0, 1\\), got 1.0"):
        train_val_split(list(range(5)), val_fraction=1.0)
    with pytest.raises(ValueError, match="keep any for training"):
        train_val_split([0], val_fraction=0.5)


def test_split_of_image_dataset() -> None:
    ds = ImageDataset(torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1), torch.arange(10) % 2)
    train, val = train_val_split(ds, val_fraction=0.3, seed=0)
    x, y = val[0]
    i = val.indices[0]
    assert torch.equal(x, ds[i][0]) and int(y) == i % 2
    assert train.dataset is ds
