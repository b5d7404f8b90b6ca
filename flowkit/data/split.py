"""Deterministic train / validation split of a data set."""

from __future__ import annotations

from typing import TypeVar

import torch
from torch.utils.data import Dataset, Subset

from .._args import nonnegative_int, probability

__all__ = ["train_val_split"]

T = TypeVar("T")


def train_val_split(
    dataset: Dataset[T], val_fraction: float = 0.1, seed: int = 0
) -> tuple[Subset[T], Subset[T]]:
    """Split a data set at random into disjoint training and held-out validation subsets.

    The permutation comes from its own seeded ``torch.Generator``, so the split depends only on
    ``len(dataset)``, ``val_fraction`` and ``seed``, never on the global random state. The validation
    set has ``round(val_fraction * N)`` items, at least one when ``val_fraction > 0``; indices within
    each subset are sorted. The split is not stratified.

    Args:
        dataset: Any sized map-style data set (``len(dataset) = N``).
        val_fraction: Fraction held out, in ``[0, 1)``; ``0`` gives an empty validation set.
        seed: Seed of the permutation.

    Returns:
        ``(train, val)`` as :class:`torch.utils.data.Subset`; ``subset.dataset`` is ``dataset``.

    Examples:
        >>> train, val = train_val_split(list(range(10)), val_fraction=0.2, seed=0)
        >>> len(train), len(val)
        (8, 2)
        >>> sorted(train.indices + val.indices) == list(range(10))
        True
    """
    n = len(dataset)  # type: ignore[arg-type]
    if probability(val_fraction, "val_fraction", "train_val_split") == 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in [0, 1), got {val_fraction!r}")
    nonnegative_int(seed, "seed", "train_val_split")
    n_val = round(val_fraction * n)
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if n - n_val < 1:
        raise ValueError(f"cannot hold out {n_val} of {n} items and keep any for training; lower val_fraction")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val = sorted(perm[:n_val].tolist())
    train = sorted(perm[n_val:].tolist())
    return Subset(dataset, train), Subset(dataset, val)
