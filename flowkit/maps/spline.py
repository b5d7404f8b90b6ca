"""Monotone rational-quadratic spline with linear tails (Durkan et al. 2019, "Neural Spline Flows")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from typing_extensions import override

from .._args import finite_float, int_at_least
from ..bijectors._affine import at_least_fp32
from .base import ElementwiseMap

__all__ = ["LOGIT_BOUND", "RQSplineMap"]

#: The default soft bound of the spline's bin-size logits: a bin at most 1000 times another (zuko's).
LOGIT_BOUND = 0.5 * math.log(1000.0)


class RQSplineMap(ElementwiseMap):
    r"""Monotone rational-quadratic spline on :math:`[-B, B]`, identity outside (Durkan et al., 2019).

    :math:`K` bins with knots :math:`(x_k, y_k)_{k=0}^{K}`, :math:`x_0 = y_0 = -B`,
    :math:`x_K = y_K = B`, and positive derivatives :math:`\delta_k` at the knots
    (:math:`\delta_0 = \delta_K = 1`, so the spline joins the identity tails smoothly). In bin
    :math:`k`, with :math:`w_k = x_{k+1} - x_k`, :math:`h_k = y_{k+1} - y_k`,
    :math:`s_k = h_k / w_k` and :math:`\xi = (x - x_k) / w_k \in [0, 1]`:

    .. math::
        z = y_k + \frac{h_k\,[s_k \xi^2 + \delta_k \xi(1-\xi)]}{s_k + \sigma_k \xi(1-\xi)},
        \qquad \sigma_k = \delta_{k+1} + \delta_k - 2 s_k,

    .. math::
        \frac{\partial z}{\partial x} = \frac{s_k^2\,[\delta_{k+1}\xi^2 + 2 s_k \xi(1-\xi)
        + \delta_k (1-\xi)^2]}{[s_k + \sigma_k \xi(1-\xi)]^2},

    and :math:`z = x` (log-derivative 0) for :math:`|x| > B`. The inverse is exact: with
    :math:`\Delta = z - y_k`, :math:`\xi` is the root in :math:`[0, 1]` of
    :math:`\alpha \xi^2 + \beta \xi + \gamma = 0`,

    .. math::
        \alpha = h_k (s_k - \delta_k) + \Delta \sigma_k, \quad
        \beta = h_k \delta_k - \Delta \sigma_k, \quad \gamma = -s_k \Delta, \qquad
        \xi = \frac{2\gamma}{-\beta - \sqrt{\beta^2 - 4\alpha\gamma}}

    (the numerically stable form), and :math:`x = x_k + \xi w_k`.

    Parameters per feature: :math:`3K - 1` unconstrained values, ``K`` for the widths, ``K`` for
    the heights, ``K - 1`` for the interior derivatives:

    .. math::
        w = 2B\,[m_w + (1 - K m_w)\,\mathrm{softmax}(\kappa(\tilde w))], \quad
        h = 2B\,[m_h + (1 - K m_h)\,\mathrm{softmax}(\kappa(\tilde h))], \quad
        \delta = m_\delta + \mathrm{softplus}(\tilde\delta + c),

    with :math:`c = \log(e^{1 - m_\delta} - 1)`, so all-zero parameters give equal bins with unit
    derivatives: the identity map. :math:`\kappa(u) = u / (1 + |u| / L)` softly bounds the bin-size
    logits to :math:`(-L, L)`, so that no bin is more than :math:`e^{2L}` times wider (or taller)
    than another before the minimum is added: with the default :math:`L = \tfrac12 \ln 1000`
    (zuko's bound) the 2-D benchmarks of :doc:`/performance` fit better (moons: 0.331 against 0.341
    nats unbounded, mean of 5 seeds). ``logit_bound=None`` is :math:`\kappa(u) = u`, the
    parameterisation of flowkit 0.2.0, which the spline TarFlow keeps.

    Args:
        bins: number of bins :math:`K \geq 1`.
        bound: half-width :math:`B > 0` of the spline's interval.
        min_width: :math:`m_w`, the smallest bin width as a fraction of :math:`2B` (``K m_w < 1``).
        min_height: :math:`m_h`, likewise for heights.
        min_derivative: :math:`m_\delta \in [0, 1)`, the smallest interior derivative.
        logit_bound: :math:`L > 0`, the soft bound of the bin-size logits, or ``None`` for none.

    Examples:
        >>> spline = RQSplineMap(bins=4, bound=2.0)
        >>> x = torch.tensor([-3.0, -0.5, 1.0, 5.0])
        >>> params = torch.randn(4, spline.num_params, generator=torch.Generator().manual_seed(0))
        >>> z, ld = spline(x, params)
        >>> z[[0, 3]].tolist(), ld[[0, 3]].tolist()        # identity tails
        ([-3.0, 5.0], [0.0, 0.0])
        >>> x_back, ld_inv = spline.inverse(z, params)
        >>> bool(torch.allclose(x_back, x, atol=1e-5)), bool(torch.allclose(ld + ld_inv, torch.zeros(4), atol=1e-5))
        (True, True)
    """

    def __init__(self, bins: int = 8, bound: float = 3.0, *, min_width: float = 1e-3, min_height: float = 1e-3,
                 min_derivative: float = 1e-3, logit_bound: float | None = LOGIT_BOUND) -> None:
        super().__init__()
        int_at_least(bins, "bins", "RQSplineMap", low=1)
        if not bound > 0:
            raise ValueError(f"RQSplineMap: bound must be > 0, got {bound!r}")
        for name, m in (("min_width", min_width), ("min_height", min_height)):
            if not 0 <= m * bins < 1:
                raise ValueError(f"RQSplineMap: {name} * bins must lie in [0, 1), got {name}={m!r} with bins={bins}")
        if not 0 <= min_derivative < 1:
            raise ValueError(f"RQSplineMap: min_derivative must lie in [0, 1), got {min_derivative!r}")
        if logit_bound is not None:
            logit_bound = finite_float(logit_bound, "logit_bound", "RQSplineMap", low=0.0, low_inclusive=False)
        self.bins, self.bound = bins, float(bound)
        self.min_width, self.min_height, self.min_derivative = min_width, min_height, min_derivative
        self.logit_bound = logit_bound
        self.num_params = 3 * bins - 1
        # Shift of the derivative logits so that a zero logit gives a unit derivative (identity at init).
        self._derivative_shift = math.log(math.expm1(1.0 - min_derivative))

    @override
    def extra_repr(self) -> str:
        logit_bound = "None" if self.logit_bound is None else f"{self.logit_bound:.4g}"
        return f"bins={self.bins}, bound={self.bound}, logit_bound={logit_bound}"

    def _knots(self, raw: Tensor) -> Tensor:
        """Knot positions ``(..., 2, K + 1)``, ``x`` then ``y``, from the ``2K`` unconstrained bin-size logits."""
        raw = raw.unflatten(-1, (2, self.bins))  # both knot sets at once: half the (small) kernels
        if self.logit_bound is not None:
            raw = raw / (1 + raw.abs() / self.logit_bound)
        frac = torch.softmax(raw, dim=-1)
        # The smallest fraction of the widths (row 0) and of the heights (row 1); a float when equal.
        m = self.min_width if self.min_width == self.min_height else frac.new_tensor([[self.min_width],
                                                                                      [self.min_height]])
        frac = m + (1 - self.bins * m) * frac
        cum = F.pad(torch.cumsum(frac[..., :-1], dim=-1), (1, 1), value=0.0)
        # Pin the last knot exactly, so the spline meets the tail at +B whatever the rounding of cumsum.
        cum[..., -1] = 1.0
        return (2 * cum - 1) * self.bound

    def _knot_table(self, params: Tensor) -> Tensor:
        """``(..., K + 1, 3)``: the knots' ``x``, ``y`` and derivative, stacked so one gather reads a bin."""
        k = self.bins
        params = at_least_fp32(params)
        inner = self.min_derivative + F.softplus(params[..., 2 * k:] + self._derivative_shift)
        derivs = F.pad(inner, (1, 1), value=1.0)  # slope 1 at +-B, matching the identity tails
        return torch.cat([self._knots(params[..., :2 * k]).transpose(-1, -2), derivs.unsqueeze(-1)], dim=-1)

    @staticmethod
    def _bin(table: Tensor, v: Tensor, column: int) -> tuple[Tensor, Tensor]:
        """Left and right knots ``(..., 3)`` of the bin holding ``v`` (already within ``[-B, B]``).

        The search runs on ``table[..., column]``: 0 for ``x`` (forward), 1 for ``y`` (inverse).
        """
        knots = table[..., 1:-1, column].contiguous()
        idx = torch.searchsorted(knots, v.unsqueeze(-1).contiguous())
        idx = torch.cat([idx, idx + 1], dim=-1).unsqueeze(-1).expand(*idx.shape[:-1], 2, 3)
        both = table.gather(-2, idx)
        return both[..., 0, :], both[..., 1, :]

    def _locate(self, v: Tensor, params: Tensor, column: int) -> tuple[Tensor, ...]:
        """The bin of each ``v`` (``v`` clamped to ``[-B, B]``) and its knots, shared by both directions.

        Returns ``inside, v_in, (x_k, y_k), (w_k, h_k), s_k, (delta_k, delta_{k+1})``, flattened; ``column`` is 0
        to search the ``x`` knots (forward), 1 for the ``y`` knots (inverse).
        """
        inside = (v > -self.bound) & (v < self.bound)
        v_in = v.clamp(-self.bound, self.bound)
        left, right = self._bin(self._knot_table(params), v_in, column)
        (xk, yk, d0), (x1, y1, d1) = left.unbind(-1), right.unbind(-1)
        wk, hk = x1 - xk, y1 - yk
        return inside, v_in, xk, yk, wk, hk, hk / wk, d0, d1

    @staticmethod
    def _log_derivative(s: Tensor, d0: Tensor, d1: Tensor, xi: Tensor, t: Tensor, den: Tensor) -> Tensor:
        r""":math:`\log \partial z / \partial x` in a bin, with ``t`` :math:`= \xi(1 - \xi)`."""
        return 2 * torch.log(s) + torch.log(d1 * xi.square() + 2 * s * t + d0 * (1 - xi).square()) - 2 * torch.log(den)

    @staticmethod
    def _with_identity_tails(inside: Tensor, v: Tensor, out: Tensor, logd: Tensor, dtype: torch.dtype
                             ) -> tuple[Tensor, Tensor]:
        """The spline's ``out`` and ``logd`` inside ``[-B, B]``; outside, ``v`` itself and log-derivative 0."""
        return torch.where(inside, out, v).to(dtype), torch.where(inside, logd, torch.zeros_like(logd)).to(dtype)

    @override
    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        v = at_least_fp32(x)
        inside, v_in, xk, yk, wk, hk, s, d0, d1 = self._locate(v, params, 0)
        xi = ((v_in - xk) / wk).clamp(0, 1)
        t = xi * (1 - xi)
        den = s + (d1 + d0 - 2 * s) * t
        z = yk + hk * (s * xi.square() + d0 * t) / den
        return self._with_identity_tails(inside, v, z, self._log_derivative(s, d0, d1, xi, t, den), x.dtype)

    @override
    def inverse(self, z: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        v = at_least_fp32(z)
        inside, v_in, xk, yk, wk, hk, s, d0, d1 = self._locate(v, params, 1)
        delta = v_in - yk
        sigma = d1 + d0 - 2 * s
        alpha = hk * (s - d0) + delta * sigma
        beta = hk * d0 - delta * sigma
        gamma = -s * delta
        disc = (beta.square() - 4 * alpha * gamma).clamp_min(0)
        xi = (2 * gamma / (-beta - torch.sqrt(disc))).clamp(0, 1)
        x = xk + xi * wk
        t = xi * (1 - xi)
        den = s + sigma * t
        return self._with_identity_tails(inside, v, x, -self._log_derivative(s, d0, d1, xi, t, den), z.dtype)
