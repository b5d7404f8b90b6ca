"""Permutation of the feature (last) axis, for flows over vectors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from typing_extensions import override

from .._args import check_permutation
from .base import Bijector, Shape, zeros_logdet

__all__ = ["FeaturePermutation"]


class FeaturePermutation(Bijector):
    r"""Reorder the features of the last axis: ``z[..., i] = x[..., perm[i]]``.

    .. math:: z_i = x_{\pi(i)}, \qquad x_j = z_{\pi^{-1}(j)}, \qquad \log|\det J| = 0.

    Between autoregressive or coupling layers over vectors, so that each feature is conditioned on
    different ones in turn (:class:`~flowkit.Permutation` reorders *tokens* instead).

    Args:
        perm: a permutation of ``range(D)``; or use :meth:`reverse` / :meth:`random`.

    Examples:
        >>> FeaturePermutation.reverse(3)(torch.tensor([[1.0, 2.0, 3.0]]))[0].tolist()
        [[3.0, 2.0, 1.0]]
        >>> FeaturePermutation([2, 0, 1]).inverse(torch.tensor([[3.0, 1.0, 2.0]]))[0].tolist()
        [[1.0, 2.0, 3.0]]
    """

    volume_preserving = True
    perm: Tensor
    inverse_perm: Tensor

    def __init__(self, perm: Sequence[int] | Tensor) -> None:
        super().__init__()
        if isinstance(perm, Tensor):
            if perm.dtype.is_floating_point or perm.dtype == torch.bool or perm.dim() != 1:
                raise TypeError(f"FeaturePermutation: perm must be a 1-d integer tensor, got dtype {perm.dtype}, "
                                f"shape {tuple(perm.shape)}")
        elif isinstance(perm, (str, bytes)) or not isinstance(perm, Sequence) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in perm):
            raise TypeError(f"FeaturePermutation: perm must be a sequence of ints, got {perm!r}")
        index = torch.as_tensor(perm, dtype=torch.long).flatten()
        n = index.numel()
        if n < 1:
            raise ValueError(f"FeaturePermutation: perm must be a permutation of range({n}), got {index.tolist()}")
        check_permutation(index, n, "perm", "FeaturePermutation")
        self.features = n
        self.register_buffer("perm", index, persistent=False)
        self.register_buffer("inverse_perm", torch.argsort(index), persistent=False)

    @classmethod
    def reverse(cls, features: int) -> FeaturePermutation:
        """Reverse the ``features`` features."""
        return cls(torch.arange(features).flip(0))

    @classmethod
    def random(cls, features: int, seed: int = 0) -> FeaturePermutation:
        """A random order drawn from a generator seeded with ``seed`` (reproducible)."""
        return cls(torch.randperm(features, generator=torch.Generator().manual_seed(seed)))

    @override
    def extra_repr(self) -> str:
        return f"perm={self.perm.tolist()}"

    @override
    def forward_shape(self, shape: Shape) -> Shape:
        if not shape or shape[-1] != self.features:
            raise ValueError(f"FeaturePermutation of {self.features} features got event shape {tuple(shape)}")
        return tuple(shape)

    @override
    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[..., self.perm], zeros_logdet(x)

    @override
    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z[..., self.inverse_perm], zeros_logdet(z)
