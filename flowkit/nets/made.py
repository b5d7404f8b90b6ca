"""MADE: a masked MLP whose output feature d depends only on earlier input features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._args import check_permutation, index_tensor, int_at_least, positive_ints
from .context import ContextEncoder
from .mlp import hidden_dropout

__all__ = ["MADE", "MaskedLinear"]


class MaskedLinear(nn.Linear):
    r"""A linear layer whose weight is multiplied by a fixed 0/1 mask: :math:`y = (W \odot M) x + b`.

    Args:
        mask: ``(out_features, in_features)`` 0/1 tensor (a buffer, saved with the module).
        bias: add a bias.
    """

    mask: Tensor

    def __init__(self, mask: Tensor, bias: bool = True) -> None:
        if not isinstance(mask, Tensor) or mask.dim() != 2:
            got = f"shape {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"MaskedLinear: mask must be a 2-d (out_features, in_features) tensor, got {got}")
        super().__init__(mask.shape[1], mask.shape[0], bias=bias)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        """``x (W * M)^T + b``."""
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""Masked autoencoder for distribution estimation (Germain et al., 2015), as a conditioner.

    Maps ``x`` ``(B, D)`` to parameters ``(B, D, P)`` such that the parameters of feature
    ``order[k]`` depend only on the input features ``order[:k]`` (and on the context): the
    *causality* an autoregressive flow needs. Each unit gets a degree: input feature ``order[k]``
    has degree :math:`k + 1`, hidden units cycle through :math:`1, \dots, D - 1` (:math:`0, \dots,
    D - 1` with a context: degree-0 units see only the context, so even the first feature's
    parameters depend on it), and a weight from
    a unit of degree :math:`m` to one of degree :math:`m'` is kept iff :math:`m' \geq m` (hidden)
    or :math:`m' > m` (output). The first hidden layer also receives the context
    (:class:`ContextEncoder`), unmasked. The output layer starts at zero, so a flow built on it
    starts as the identity.

    .. math::
        h_1 = \phi\big((W_1 \odot M_1) x + b_1 + e(c)\big), \quad
        h_{l+1} = \phi\big((W_{l+1} \odot M_{l+1}) h_l + b_{l+1}\big) \;[+\, h_l \text{ if residual}],
        \quad \theta = (W_o \odot M_o) h_L + b_o

    With ``dropout > 0`` each hidden activation passes through :class:`torch.nn.Dropout` (masks
    zero units, never weights, so causality is untouched). Like any dropout it acts in training
    mode only: a flow in training mode is then random, and its inverse is exact only in eval mode
    (``flow.eval()`` before sampling).

    Args:
        features: ``D``.
        params_per_feature: ``P`` (an element-wise map's ``num_params``).
        hidden: widths of the hidden layers (equal widths when ``residual``).
        num_classes, context_features: the context, as in :class:`ContextEncoder`.
        order: the autoregressive order, a permutation of ``range(D)`` (default: ``0, 1, ..., D-1``).
        residual: add skip connections between hidden layers of equal width.
        activation: the nonlinearity :math:`\phi` (a module class).
        dropout: dropout probability on the hidden units, in ``[0, 1)`` (a regulariser for small data).

    Examples:
        >>> made = MADE(3, 2, hidden=(16, 16))
        >>> _ = torch.nn.init.normal_(made.output.weight)
        >>> x = torch.randn(4, 3, requires_grad=True)
        >>> made(x)[:, 1].sum().backward()      # feature 1's parameters see only feature 0
        >>> (x.grad.abs().sum(0) > 0).tolist()
        [True, False, False]
    """

    def __init__(self, features: int, params_per_feature: int, hidden: Sequence[int] = (64, 64), *,
                 num_classes: int = 0, context_features: int = 0, order: Sequence[int] | Tensor | None = None,
                 residual: bool = False, activation: type[nn.Module] = nn.ReLU, dropout: float = 0.0) -> None:
        super().__init__()
        int_at_least(features, "features", "MADE", low=1)
        self.dropout = hidden_dropout(dropout, "MADE")
        int_at_least(params_per_feature, "params_per_feature", "MADE", low=1)
        hidden = positive_ints(hidden, "hidden", "MADE")
        if residual and len(set(hidden)) != 1:
            raise ValueError(f"MADE: residual connections need equal hidden widths, got {hidden}")
        order_t = torch.arange(features) if order is None else index_tensor(order, "order", "MADE")
        check_permutation(order_t, features, "order", "MADE")
        self.features, self.params_per_feature, self.residual = features, params_per_feature, residual
        self.register_buffer("order", order_t, persistent=False)

        in_deg = torch.empty(features, dtype=torch.long)
        in_deg[order_t] = torch.arange(1, features + 1)
        # Hidden degrees run over 1..D-1; with a context also 0: units that see the context and no
        # feature, so that the first feature's parameters are conditioned too.
        low = 1 if not (num_classes or context_features) else 0
        degrees = [in_deg] + [torch.arange(h) % max(features - low, 1) + low for h in hidden]
        pairs = zip(degrees, degrees[1:], strict=False)
        self.layers = nn.ModuleList(MaskedLinear((d_out.unsqueeze(1) >= d_in.unsqueeze(0)).long())
                                    for d_in, d_out in pairs)
        out_deg = in_deg.repeat_interleave(params_per_feature)  # output unit d * P + p belongs to feature d
        self.output = MaskedLinear((out_deg.unsqueeze(1) > degrees[-1].unsqueeze(0)).long())
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)
        self.context = ContextEncoder(hidden[0], num_classes=num_classes, context_features=context_features)
        self.activation = activation()

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Parameters ``(B, D, P)`` for ``x`` ``(B, D)``."""
        h = self.layers[0](x)
        e = self.context(context)
        if e is not None:
            h = h + e.to(h.dtype)
        h = self.dropout(self.activation(h))
        for layer in self.layers[1:]:
            out = self.dropout(self.activation(layer(h)))
            h = h + out if self.residual else out
        return self.output(h).unflatten(-1, (self.features, self.params_per_feature))
