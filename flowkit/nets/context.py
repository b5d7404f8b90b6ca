"""Context encoding shared by the MLP conditioners: class labels or continuous vectors."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from typing_extensions import override

from .._args import positive_int
from .._validation import context_spec_for

__all__ = ["ContextEncoder"]


class ContextEncoder(nn.Module):
    r"""Map a context to a term added to a network's first hidden layer, ``(B, out_features)``.

    Two kinds of context, chosen at construction (at most one):

    - class labels ``(B,)`` (``num_classes > 0``): a learned embedding :math:`E[y]`; a dropped
      label ``y = -1`` and ``context=None`` use the mean embedding (as in TarFlow, for
      classifier-free guidance);
    - float vectors ``(B, C)`` (``context_features = C > 0``): a linear projection :math:`W c`
      (no bias: the layer it feeds has one), equivalent to concatenating :math:`c` to the input.

    The context is assumed valid: the bijector that owns this network declares it as its
    ``context_spec``, and the base class checks it once per top-level call (so no value check, and
    no device synchronisation, happens here).

    Args:
        out_features: width of the hidden layer the encoding is added to.
        num_classes: number of classes for label context (``0``: none).
        context_features: size ``C`` of vector context (``0``: none).

    Examples:
        >>> enc = ContextEncoder(8, context_features=3)
        >>> tuple(enc(torch.randn(5, 3)).shape), enc.kind
        ((5, 8), 'vector')
        >>> labels = ContextEncoder(8, num_classes=4)
        >>> bool(torch.equal(labels(torch.tensor([-1])), labels(None)))
        True
    """

    def __init__(self, out_features: int, *, num_classes: int = 0, context_features: int = 0) -> None:
        super().__init__()
        positive_int(out_features, "out_features", "ContextEncoder")
        context_spec_for(num_classes, context_features, "ContextEncoder")
        self.num_classes, self.context_features = num_classes, context_features
        self.embedding = nn.Embedding(num_classes, out_features) if num_classes else None
        self.projection = nn.Linear(context_features, out_features, bias=False) if context_features else None
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, std=out_features ** -0.5)

    @property
    def kind(self) -> str | None:
        """``"labels"``, ``"vector"`` or ``None`` (unconditional)."""
        return "labels" if self.num_classes else "vector" if self.context_features else None

    @override
    def extra_repr(self) -> str:
        return f"kind={self.kind}"

    def forward(self, context: Tensor | None) -> Tensor | None:
        """The encoding ``(B, out_features)`` (``(1, out_features)`` for the mean label), or ``None``."""
        if self.embedding is not None:
            mean = self.embedding.weight.mean(0)
            if context is None:
                return mean.unsqueeze(0)
            return torch.where((context < 0).unsqueeze(1), mean, self.embedding(context.clamp(min=0)))
        if self.projection is not None:
            if context is None:  # the owner's context_spec makes it required; a direct call gets a clear error
                raise ValueError(f"ContextEncoder: a context vector (B, {self.context_features}) is required, got None")
            return self.projection(context)
        return None
