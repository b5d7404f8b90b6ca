"""A plain MLP conditioner for coupling layers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .._args import dropout_rate, int_at_least, positive_ints
from .context import ContextEncoder

__all__ = ["MLPConditioner", "hidden_dropout"]


def hidden_dropout(dropout: float, owner: str) -> nn.Module:
    """The dropout layer of a conditioner's hidden units: checked, and an identity at ``dropout=0``."""
    p = dropout_rate(dropout, owner)
    return nn.Dropout(p) if p > 0 else nn.Identity()


class MLPConditioner(nn.Module):
    r"""An MLP from the kept features to the parameters of the transformed ones (coupling conditioner).

    .. math::
        h_1 = \phi(W_1 x + b_1 + e(c)), \quad h_{l+1} = \phi(W_{l+1} h_l + b_{l+1}), \quad
        \theta = W_o h_L + b_o

    with the context encoding :math:`e(c)` of :class:`ContextEncoder` (labels or vectors) and a
    zero-initialised output layer (a fresh coupling is the identity). Leading axes between the batch
    and the features (e.g. tokens ``(B, N, D)``) are kept: the same MLP runs on every token, and the
    context of sample ``b`` reaches all its tokens.

    Args:
        in_features: number of conditioning features.
        out_features: number of transformed features.
        params_per_feature: ``P`` (an element-wise map's ``num_params``).
        hidden: hidden layer widths.
        num_classes, context_features: the context, as in :class:`ContextEncoder`.
        activation: the nonlinearity :math:`\phi` (a module class).
        dropout: dropout probability on the hidden units, in ``[0, 1)``; active in training mode
            only (see :class:`MADE`).

    Examples:
        >>> import torch
        >>> net = MLPConditioner(2, 3, 5, hidden=(16,), context_features=4)
        >>> tuple(net(torch.randn(8, 2), torch.randn(8, 4)).shape)
        (8, 3, 5)
        >>> tuple(net(torch.randn(8, 7, 2), torch.randn(8, 4)).shape)   # per token
        (8, 7, 3, 5)
    """

    def __init__(self, in_features: int, out_features: int, params_per_feature: int,
                 hidden: Sequence[int] = (64, 64), *, num_classes: int = 0, context_features: int = 0,
                 activation: type[nn.Module] = nn.ReLU, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = positive_ints(hidden, "hidden", "MLPConditioner")
        self.dropout = hidden_dropout(dropout, "MLPConditioner")
        for name, v in (("in_features", in_features), ("out_features", out_features),
                        ("params_per_feature", params_per_feature)):
            int_at_least(v, name, "MLPConditioner", low=1)
        widths = [in_features, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:], strict=False))
        self.output = nn.Linear(hidden[-1], out_features * params_per_feature)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)
        self.context = ContextEncoder(hidden[0], num_classes=num_classes, context_features=context_features)
        self.activation = activation()
        self.out_features, self.params_per_feature = out_features, params_per_feature

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Parameters ``(B, ..., out_features, P)`` for ``x`` ``(B, ..., in_features)``."""
        h = self.layers[0](x)
        e = self.context(context)
        if e is not None:
            h = h + e.to(h.dtype).view(e.shape[0], *([1] * (x.dim() - 2)), -1)
        h = self.dropout(self.activation(h))
        for layer in self.layers[1:]:
            h = self.dropout(self.activation(layer(h)))
        return self.output(h).unflatten(-1, (self.out_features, self.params_per_feature))
