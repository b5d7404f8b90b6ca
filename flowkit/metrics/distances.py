r"""Distances between two sets of features: the Fréchet distance and the kernel inception distance.

Both compare feature sets ``(N, F)``, e.g. the activations of a classifier for real and generated
images (:mod:`flowkit.metrics.fid` computes them from images):

- :func:`frechet_distance` fits a Gaussian to each set and measures

  .. math:: \mathrm{FD} = \lVert \mu_a - \mu_b \rVert^2
            + \operatorname{Tr}\!\big(\Sigma_a + \Sigma_b - 2 (\Sigma_a \Sigma_b)^{1/2}\big);

- :func:`kid` is the kernel inception distance of Bińkowski et al. (2018): the unbiased estimate of
  the squared MMD with the cubic polynomial kernel :math:`k(x, y) = (x^\top y / d + 1)^3`, averaged
  over random subsets. Unlike FD it has no bias from the sample size, so it is the better number
  for the small sample counts of CPU experiments.

Examples:
    >>> g = torch.Generator().manual_seed(0)
    >>> a, b = torch.randn(500, 4, generator=g), torch.randn(500, 4, generator=g)
    >>> frechet_distance(a, a) < 1e-6
    True
    >>> frechet_distance(a, b + 3.0) > 30  # a shift of 3 in 4 dimensions: about 36
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._args import int_at_least, positive_int

__all__ = ["frechet_distance", "kid"]


def _check_features(feats: Tensor, name: str, owner: str, min_rows: int) -> Tensor:
    """``feats`` as float64 after checking it is a finite ``(N, F)`` tensor with ``N >= min_rows``."""
    if not isinstance(feats, Tensor):
        raise TypeError(f"{owner}: {name} must be a tensor of features (N, F), got {type(feats).__name__}")
    if feats.dim() != 2:
        raise ValueError(f"{owner}: {name} must be features shaped (N, F), got shape {tuple(feats.shape)}")
    if feats.shape[0] < min_rows:
        raise ValueError(f"{owner}: {name} needs at least {min_rows} rows, got {feats.shape[0]}")
    if not torch.isfinite(feats).all():
        raise ValueError(f"{owner}: {name} has non-finite values")
    return feats.detach().to(torch.float64)


def _check_pair(feats_a: Tensor, feats_b: Tensor, owner: str) -> tuple[Tensor, Tensor]:
    """Both feature sets checked (at least 2 rows each, as a covariance needs) and of one width ``F``."""
    a = _check_features(feats_a, "feats_a", owner, 2)
    b = _check_features(feats_b, "feats_b", owner, 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{owner}: feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    return a, b


def _trace_sqrt_product(cov_a: Tensor, cov_b: Tensor) -> Tensor:
    r""":math:`\operatorname{Tr}(\Sigma_a \Sigma_b)^{1/2}` for symmetric PSD matrices.

    :math:`\Sigma_a \Sigma_b` is similar to the symmetric PSD :math:`S = \Sigma_a^{1/2} \Sigma_b
    \Sigma_a^{1/2}`, so the trace of its square root is :math:`\sum_i \sqrt{\lambda_i(S)}`. Two
    symmetric eigendecompositions avoid the complex arithmetic (and the tiny imaginary parts) of a
    general matrix square root; eigenvalues that round to slightly below zero are clamped.
    """
    eva, eve = torch.linalg.eigh(cov_a)
    root_a = (eve * eva.clamp_min(0).sqrt()) @ eve.T
    s = root_a @ cov_b @ root_a
    return torch.linalg.eigvalsh((s + s.T) / 2).clamp_min(0).sqrt().sum()


def frechet_distance(feats_a: Tensor, feats_b: Tensor) -> float:
    r"""Fréchet distance between Gaussians fitted to two feature sets.

    .. math:: \mathrm{FD} = \lVert \mu_a - \mu_b \rVert^2
        + \operatorname{Tr}\!\big(\Sigma_a + \Sigma_b - 2 (\Sigma_a \Sigma_b)^{1/2}\big)

    with sample means and unbiased covariances, computed in float64. The estimate is biased upwards
    for finite samples (more so in more dimensions and with fewer rows), so only compare FDs computed
    with the same sample sizes.

    Args:
        feats_a: features ``(N_a, F)``, ``N_a >= 2``.
        feats_b: features ``(N_b, F)``, ``N_b >= 2``.

    Returns:
        The distance, a float ``>= 0`` (up to rounding).

    Examples:
        >>> a = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
        >>> round(frechet_distance(a, a + torch.tensor([3.0, 4.0])), 6)  # equal covariances: |shift|^2
        25.0
    """
    a, b = _check_pair(feats_a, feats_b, "frechet_distance")
    mu_a, mu_b = a.mean(0), b.mean(0)
    # reshape: torch.cov of a single feature returns a 0-d tensor, eigh needs (F, F).
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    fd = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * _trace_sqrt_product(cov_a, cov_b)
    return float(fd)


def _mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    r"""Unbiased :math:`\widehat{\mathrm{MMD}}^2_u` with the cubic polynomial kernel, two sets of ``m`` rows."""
    m, d = x.shape
    k_xx, k_yy, k_xy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
    off_diag = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return off_diag - 2 * k_xy.mean()


def kid(feats_a: Tensor, feats_b: Tensor, subsets: int = 100, subset_size: int = 1000,
        generator: torch.Generator | None = None) -> tuple[float, float]:
    r"""Kernel inception distance: the unbiased squared MMD with a cubic polynomial kernel.

    With :math:`k(x, y) = (x^\top y / F + 1)^3` and ``m`` rows drawn without replacement from each set,

    .. math:: \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)} \sum_{i \ne j} \big(k(a_i, a_j) + k(b_i, b_j)\big)
        - \frac{2}{m^2} \sum_{i, j} k(a_i, b_j),

    averaged over ``subsets`` random draws (Bińkowski et al., "Demystifying MMD GANs", 2018). The
    estimate is unbiased: its expectation is 0 when both sets come from one distribution, so it can
    be slightly negative.

    Args:
        feats_a: features ``(N_a, F)``.
        feats_b: features ``(N_b, F)``.
        subsets: number of random subsets.
        subset_size: ``m``, capped at ``min(N_a, N_b)``; at least 2 rows are needed.
        generator: for reproducible subsets (CPU).

    Returns:
        ``(mean, std)`` of the estimate over the subsets (``std`` is 0 for a single subset).

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g)
        >>> mean, std = kid(a, b, subsets=10, subset_size=100, generator=g)
        >>> abs(mean) < 0.05, kid(a, b + 1.0, subsets=10, subset_size=100, generator=g)[0] > 0.5
        (True, True)
    """
    a, b = _check_pair(feats_a, feats_b, "kid")
    positive_int(subsets, "subsets", "kid")
    int_at_least(subset_size, "subset_size", "kid", low=2)
    m = min(subset_size, a.shape[0], b.shape[0])
    values = torch.stack([
        _mmd2_unbiased(a[torch.randperm(a.shape[0], generator=generator)[:m]],
                       b[torch.randperm(b.shape[0], generator=generator)[:m]])
        for _ in range(subsets)
    ])
    return float(values.mean()), float(values.std()) if subsets > 1 else 0.0
