"""Base (latent) distributions of a flow."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from typing_extensions import override

from .._args import finite_float, positive_int
from ..bijectors.base import Shape

__all__ = ["StandardNormal", "EMADiagonalNormal"]

_LOG_2PI = math.log(2 * math.pi)


class StandardNormal(nn.Module):
    r"""The standard normal :math:`\mathcal{N}(0, I)` over an event shape.

    .. math:: \log p(z) = -\tfrac12 \textstyle\sum_j z_j^2 - \tfrac{D}{2}\log 2\pi

    Args:
        event_shape: shape of one latent sample.

    Examples:
        >>> base = StandardNormal((2, 3))
        >>> round(base.log_prob(torch.zeros(1, 2, 3)).item(), 4)
        -5.5136
        >>> tuple(base.sample(4).shape)
        (4, 2, 3)
    """

    _anchor: Tensor  # a registered buffer (declared for the type checker)

    def __init__(self, event_shape: Sequence[int]) -> None:
        super().__init__()
        owner = type(self).__name__
        if isinstance(event_shape, (str, bytes)) or not isinstance(event_shape, Sequence):
            raise TypeError(f"{owner}: event_shape must be a tuple of positive ints, got {type(event_shape).__name__}")
        self.event_shape: Shape = tuple(positive_int(s, f"event_shape[{i}]", owner) for i, s in enumerate(event_shape))
        # An empty buffer only so the distribution follows the flow's device and dtype.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def _variance(self) -> Tensor | None:
        return None

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of each sample, shape ``(B,)``."""
        var = self._variance()
        sq = z.square() if var is None else z.square() / var + var.log()
        d = math.prod(self.event_shape)
        return -0.5 * (sq.flatten(1).sum(1) + d * _LOG_2PI)

    def sample(self, num_samples: int, *, temperature: float = 1.0, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None, device: torch.device | None = None) -> Tensor:
        """Draw ``num_samples`` latents (standard deviation scaled by ``temperature``)."""
        device = device if device is not None else self._anchor.device
        eps = torch.randn((num_samples, *self.event_shape), generator=generator, device=device,
                          dtype=dtype or self._anchor.dtype)
        return self.scale(eps) * temperature

    def scale(self, eps: Tensor) -> Tensor:
        """Map standard normal noise to this distribution (identity here)."""
        var = self._variance()
        return eps if var is None else eps * var.sqrt().to(eps.dtype)

    def update(self, z: Tensor) -> None:
        """Hook for distributions fitted during training: :meth:`update_moment` with the batch mean of ``z**2``."""
        self.update_moment(z.detach().float().square().mean(0))

    def update_moment(self, second_moment: Tensor) -> None:
        """Hook for distributions fitted to :math:`E[z^2]` (shape ``event_shape``); no-op here."""

    @override
    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}"


class EMADiagonalNormal(StandardNormal):
    r"""A zero-mean diagonal normal whose variance tracks :math:`E[z^2]` by an exponential moving average.

    .. math::
        \log p(z) = -\tfrac12 \textstyle\sum_j \left(z_j^2/v_j + \log v_j + \log 2\pi\right),
        \qquad v \leftarrow (1 - r)\, v + r\, \overline{z^2}

    This is the prior of TarFlow's volume-preserving variant: with no learned scale the latent's
    variance is not 1, so it is estimated (rate ``r = 0.1``) with :meth:`update` during training
    and used both in the density and to scale sampling noise. ``var`` is a buffer (saved, no
    gradient).

    Args:
        event_shape: shape of one latent sample (one variance per element).
        rate: EMA rate ``r``.

    Examples:
        >>> base = EMADiagonalNormal((3,))
        >>> base.update(torch.full((8, 3), 2.0))
        >>> base.var.tolist()
        [1.2999999523162842, 1.2999999523162842, 1.2999999523162842]
    """

    var: Tensor  # a registered buffer (declared for the type checker)

    def __init__(self, event_shape: Sequence[int], rate: float = 0.1) -> None:
        super().__init__(event_shape)
        rate = finite_float(rate, "rate", "EMADiagonalNormal")
        if not 0 < rate <= 1:
            raise ValueError(f"EMADiagonalNormal: rate must be in (0, 1], got {rate!r}")
        self.rate = rate
        self.register_buffer("var", torch.ones(self.event_shape))

    def _variance(self) -> Tensor:
        return self.var

    @torch.no_grad()
    def update_moment(self, second_moment: Tensor) -> None:
        """Move ``var`` toward ``second_moment``, an estimate of :math:`E[z^2]`.

        The estimate is e.g. a batch mean, averaged over ranks in distributed training.
        """
        self.var.lerp_(second_moment.to(self.var), self.rate)
