r"""The exact sequential inverse of an autoregressive block: one token per step.

An autoregressive block generates by solving the lower-triangular system

.. math:: x_0 = z_0, \qquad x_{i+1} = \tau^{-1}\big(z_{i+1};\ \theta_{i+1}(x_{\le i})\big)

(:math:`\tau^{-1}` the element-wise map's inverse, e.g. :math:`z\, e^{a} + b` for TarFlow's affine
map, a rational-quadratic spline's inverse for a spline block),
so token ``i + 1`` needs every token up to ``i``, and ``N - 1`` dependent steps solve it exactly.
Each step feeds one new token to the network, whose keys and values for earlier tokens wait in a
cache (:class:`flowkit.nets.KVCache`), so a step costs one token's worth of compute. This is the
reference that the parallel methods of :mod:`flowkit.sampling.jacobi` are measured against.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["solve_sequential"]


def solve_sequential(z: Tensor, step: Callable[[Tensor, int], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Solve the system token by token.

    Args:
        z: latents ``(B, N, ...)``.
        step: ``step(x_i, i) -> (x_{i+1}, aux_{i+1})``: from token ``i`` (``(B, 1, ...)``; the tokens
            before it are the step's own business, e.g. in a KV cache) the next token and an
            auxiliary output (the inverse log-derivatives: the log-scales ``a`` for an affine map).

    Returns:
        ``x`` ``(B, N, ...)`` and the auxiliary outputs of tokens ``1..N-1``.

    Examples:
        The recurrence :math:`x_{i+1} = z_{i+1} + x_i / 2`:

        >>> z = torch.ones(1, 4, 1)
        >>> x, _ = solve_sequential(z, lambda x_i, i: (z[:, i + 1:i + 2] + x_i / 2, x_i))
        >>> x.flatten().tolist()
        [1.0, 1.5, 1.75, 1.875]
    """
    xs, aux = [z[:, :1]], []
    for i in range(z.shape[1] - 1):
        x_next, a = step(xs[-1], i)
        xs.append(x_next)
        aux.append(a)
    return torch.cat(xs, dim=1), torch.cat(aux, dim=1) if aux else z[:, :0]
