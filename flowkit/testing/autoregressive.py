"""``check_autoregressive``: catch a conditioner or flow layer that breaks autoregressive causality."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._args import check_permutation, index_tensor, positive_int
from .._validation import check_tensor
from ..bijectors.base import Bijector

__all__ = ["check_autoregressive"]


def check_autoregressive(module: nn.Module, x: Tensor, context: Tensor | None = None, *,
                         order: Sequence[int] | Tensor | None = None, samples: int = 2) -> None:
    r"""Check that a vector autoregressive module respects its order; raise ``AssertionError`` if not.

    For an order :math:`\pi` (``order[k]`` is the :math:`k`-th feature of the autoregression):

    - a **conditioner** ``module(x, context) -> params (B, D, P)`` (the protocol of
      :class:`~flowkit.bijectors.MaskedAutoregressive`) is causal when the parameters of feature
      :math:`\pi(k)` depend only on :math:`x_{\pi(<k)}`: :math:`\partial \theta_{\pi(k)} /
      \partial x_{\pi(j)} = 0` for :math:`j \geq k`;
    - a **bijector** on ``(B, D)`` is autoregressive when output :math:`\pi(k)` depends only on
      :math:`x_{\pi(\leq k)}`: its Jacobian is triangular in that order.

    The dependence is read from the autograd Jacobian of ``samples`` samples (use random, not
    zero-initialised, weights: see :func:`~flowkit.testing.randomize_parameters`).

    Args:
        module: a conditioner or a :class:`~flowkit.Bijector`.
        x: a batch ``(B, D)``.
        context: passed to the module.
        order: the order :math:`\pi`; default ``module.order`` if it has one, else ``0, ..., D-1``.
        samples: how many samples get the Jacobian.

    Examples:
        >>> from flowkit.nets import MADE
        >>> from flowkit.testing import randomize_parameters
        >>> made = randomize_parameters(MADE(4, 2, hidden=(16,), order=[2, 0, 3, 1]))
        >>> check_autoregressive(made, torch.randn(3, 4))
        >>> check_autoregressive(made, torch.randn(3, 4), order=[0, 1, 2, 3])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        AssertionError: check_autoregressive: the parameters of feature 0 depend on input feature 2, which ...
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"check_autoregressive: module must be an nn.Module (a conditioner or a Bijector), "
                        f"got {type(module).__name__}")
    check_tensor(x, "x", event_ndim=1, owner="check_autoregressive")
    positive_int(samples, "samples", "check_autoregressive")
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"check_autoregressive: x must be a batch of vectors (B, D), got shape {tuple(x.shape)}")
    features = x.shape[1]
    if order is None:
        order = getattr(module, "order", None)
    order_t = torch.arange(features) if order is None else index_tensor(order, "order", "check_autoregressive")
    check_permutation(order_t, features, "order", "check_autoregressive")
    is_bijector = isinstance(module, Bijector)
    rank = torch.argsort(order_t)
    # allowed[d, j]: output feature d may depend on input feature j.
    allowed = rank.unsqueeze(1) >= rank.unsqueeze(0) if is_bijector else rank.unsqueeze(1) > rank.unsqueeze(0)
    what = "output feature" if is_bijector else "the parameters of feature"
    relation = "after" if is_bijector else "at or after"
    x = x.detach()
    for i in range(min(samples, x.shape[0])):
        ctx = None if context is None else context[i:i + 1]

        def f(v: Tensor, c: Tensor | None = ctx) -> Tensor:
            out = module(v.unsqueeze(0), context=c)[0] if is_bijector else module(v.unsqueeze(0), c)
            return out.squeeze(0).reshape(features, -1)

        jac = torch.autograd.functional.jacobian(f, x[i], vectorize=True)  # (D, P, D)
        depends = jac.abs().amax(dim=1) > 0
        bad = depends & ~allowed.to(depends.device)
        if bool(bad.any()):
            d, j = (int(v) for v in torch.nonzero(bad)[0])
            verb = "depends" if is_bijector else "depend"
            raise AssertionError(f"check_autoregressive: {what} {d} {verb} on input feature {j}, "
                                 f"which comes {relation} it in the order {order_t.tolist()}")
