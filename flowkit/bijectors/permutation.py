"""Permutation of the token axis."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .._validation import check_tensor
from .base import Bijector, Shape, zeros_logdet

__all__ = ["Permutation"]


class Permutation(Bijector):
    r"""Reorder the tokens of a ``(B, N, D)`` sequence: ``y[:, i] = x[:, perm[i]]``.

    .. math:: y_i = x_{\pi(i)}, \qquad x_j = y_{\pi^{-1}(j)}, \qquad \log|\det J| = 0.

    Autoregressive blocks see tokens in one order only; alternating orders between blocks lets
    every token condition on every other one across the stack.

    Build with :meth:`identity`, :meth:`reverse`, :meth:`random` (seeded) or an explicit index.

    Args:
        perm: a permutation of ``range(N)``.

    Examples:
        >>> import torch
        >>> x = torch.arange(4.0).reshape(1, 4, 1)
        >>> Permutation.reverse(4)(x)[0].flatten().tolist()
        [3.0, 2.0, 1.0, 0.0]
        >>> Permutation([2, 0, 1]).inverse(torch.tensor([[[2.0], [0.0], [1.0]]]))[0].flatten().tolist()
        [0.0, 1.0, 2.0]
    """

    volume_preserving = True

    def __init__(self, perm: Sequence[int] | Tensor | None = None, *, kind: str = "explicit",
                 seq_len: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        if perm is None:  # identity / reverse work for any length unless seq_len pins one
            index = torch.arange(seq_len) if seq_len is not None else torch.empty(0, dtype=torch.long)
            if kind == "reverse" and seq_len is not None:
                index = index.flip(0)
        else:
            index = torch.as_tensor(perm, dtype=torch.long).flatten()
            n = index.numel()
            if not torch.equal(index.sort().values, torch.arange(n)):
                raise ValueError(f"Permutation: perm must be a permutation of range({n}), got {index.tolist()}")
            seq_len = n
        self.seq_len = seq_len
        self.register_buffer("perm", index, persistent=False)
        self.register_buffer("inverse_perm", torch.argsort(index), persistent=False)

    @classmethod
    def identity(cls, seq_len: int | None = None) -> Permutation:
        """The identity order (any length unless ``seq_len`` is given)."""
        return cls(kind="identity", seq_len=seq_len)

    @classmethod
    def reverse(cls, seq_len: int | None = None) -> Permutation:
        """Reverse the token order (any length unless ``seq_len`` is given)."""
        return cls(kind="reverse", seq_len=seq_len)

    @classmethod
    def random(cls, seq_len: int, seed: int = 0) -> Permutation:
        """A random order drawn from a generator seeded with ``seed`` (reproducible)."""
        g = torch.Generator().manual_seed(seed)
        return cls(torch.randperm(seq_len, generator=g), kind="random")

    def forward_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            raise ValueError(f"Permutation expects tokens (N, D), got event shape {tuple(shape)}")
        if self.seq_len is not None and shape[0] != self.seq_len:
            raise ValueError(f"Permutation of {self.seq_len} tokens got a sequence of {shape[0]}")
        return tuple(shape)

    def _permute(self, x: Tensor, name: str, inverse: bool) -> tuple[Tensor, Tensor]:
        check_tensor(x, name, event_ndim=2, owner=type(self).__name__)
        self.forward_shape(tuple(x.shape[1:]))
        if self.kind == "identity":
            y = x
        elif self.kind == "reverse":
            y = x.flip(1)
        else:
            y = x[:, self.inverse_perm if inverse else self.perm]
        return y, zeros_logdet(x)

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_context(context)
        return self._permute(x, "x", inverse=False)

    def inverse(self, y: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_context(context)
        return self._permute(y, "y", inverse=True)

    def permute_rows(self, t: Tensor) -> Tensor:
        """Apply the forward order to the first axis of ``t`` (e.g. a positional table)."""
        return self.forward(t.unsqueeze(0))[0].squeeze(0)

    def extra_repr(self) -> str:
        return self.kind if self.kind != "explicit" else f"perm={self.perm.tolist()}"
