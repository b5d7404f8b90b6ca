"""Permutation of the token axis."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from typing_extensions import override

from .._args import check_permutation, choice, index_tensor, nonnegative_int
from .base import Bijector, Shape, zeros_logdet

__all__ = ["Permutation"]

_KINDS = ("explicit", "identity", "reverse", "random")


class Permutation(Bijector):
    r"""Reorder the tokens of a ``(B, N, D)`` sequence: ``z[:, i] = x[:, perm[i]]``.

    .. math:: z_i = x_{\pi(i)}, \qquad x_j = z_{\pi^{-1}(j)}, \qquad \log|\det J| = 0.

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
    event_ndim = 2
    perm: Tensor  # registered buffers (declared for the type checker)
    inverse_perm: Tensor

    def __init__(self, perm: Sequence[int] | Tensor | None = None, *, kind: str = "explicit",
                 seq_len: int | None = None) -> None:
        super().__init__()
        self.kind = choice(kind, "kind", _KINDS, "Permutation")
        if seq_len is not None:
            nonnegative_int(seq_len, "seq_len", "Permutation")
        if perm is None:
            if kind in ("explicit", "random"):
                raise ValueError(f"Permutation: kind={kind!r} needs perm (use Permutation.random(seq_len) for a "
                                 "random order)")
            # identity / reverse work for any length unless seq_len pins one
            index = torch.arange(seq_len) if seq_len is not None else torch.empty(0, dtype=torch.long)
            if kind == "reverse" and seq_len is not None:
                index = index.flip(0)
        else:
            if kind in ("identity", "reverse"):
                raise ValueError(f"Permutation: kind={kind!r} takes no perm (use Permutation.{kind}(seq_len))")
            index = index_tensor(perm, "perm", "Permutation")
            n = index.numel()
            if seq_len is not None and seq_len != n:
                raise ValueError(f"Permutation: perm has {n} entries but seq_len={seq_len}")
            check_permutation(index, n, "perm", "Permutation")
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
        nonnegative_int(seq_len, "seq_len", "Permutation.random")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"Permutation.random: seed must be an int, got {type(seed).__name__} {seed!r}")
        g = torch.Generator().manual_seed(seed)
        return cls(torch.randperm(seq_len, generator=g), kind="random")

    @override
    def forward_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            raise ValueError(f"Permutation expects tokens (N, D), got event shape {tuple(shape)}")
        if self.seq_len is not None and shape[0] != self.seq_len:
            raise ValueError(f"Permutation of {self.seq_len} tokens got a sequence of {shape[0]}")
        return tuple(shape)

    @override
    def inverse_shape(self, shape: Shape) -> Shape:
        return self.forward_shape(shape)

    def _permute(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        if self.kind == "identity":
            out = x
        elif self.kind == "reverse":
            out = x.flip(1)
        else:
            out = x[:, self.inverse_perm if inverse else self.perm]
        return out, zeros_logdet(x)

    @override
    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._permute(x, inverse=False)

    @override
    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._permute(z, inverse=True)

    def permute_rows(self, t: Tensor) -> Tensor:
        """Apply the forward order to the first axis of ``t`` (e.g. a positional table)."""
        return self.forward(t.unsqueeze(0))[0].squeeze(0)

    @override
    def extra_repr(self) -> str:
        return self.kind if self.kind != "explicit" else f"perm={self.perm.tolist()}"
