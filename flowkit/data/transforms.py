r"""Pixel transforms: 8-bit <-> [-1, 1], dequantization noise and label dropping.

All images in flowkit live on :math:`[-1, 1]`: an 8-bit value :math:`k \in \{0, \dots, 255\}` maps to
:math:`x = k / 127.5 - 1`, so that :math:`k = 0 \mapsto -1` and :math:`k = 255 \mapsto 1` exactly.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["NoiseKind", "NOISE_KINDS", "to_float", "to_uint8", "dequantize", "drop_labels"]

#: Training noise: Gaussian (for samples), uniform dequantization (for bits/dim), or none.
NoiseKind = Literal["gaussian", "uniform", "none"]
#: The values of :data:`NoiseKind`, for argument checking.
NOISE_KINDS: tuple[str, ...] = ("gaussian", "uniform", "none")


def to_float(images: Tensor) -> Tensor:
    r"""Map 8-bit images to float32 on :math:`[-1, 1]`: :math:`x = k / 127.5 - 1`.

    Args:
        images: A ``torch.uint8`` tensor of any shape.

    Returns:
        A ``torch.float32`` tensor of the same shape with values in :math:`[-1, 1]`.

    Examples:
        >>> to_float(torch.tensor([0, 255], dtype=torch.uint8))
        tensor([-1.,  1.])
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"to_float expects a torch.uint8 tensor, got {images.dtype}")
    return images.float() / 127.5 - 1.0


def to_uint8(x: Tensor) -> Tensor:
    r"""Map float images on :math:`[-1, 1]` back to 8-bit: :math:`k = \mathrm{round}(127.5 (x + 1))`.

    Values outside :math:`[-1, 1]` (e.g. noisy samples) are clamped, so any float tensor is accepted.

    Args:
        x: A floating-point tensor of any shape.

    Returns:
        A ``torch.uint8`` tensor of the same shape; ``to_uint8(to_float(k)) == k``.

    Examples:
        >>> to_uint8(torch.tensor([-1.5, -1.0, 0.0, 1.0]))
        tensor([  0,   0, 128, 255], dtype=torch.uint8)
    """
    if not x.is_floating_point():
        raise TypeError(f"to_uint8 expects a floating-point tensor, got {x.dtype}")
    # NaN would silently become pixel 0; +-inf clamps like any other out-of-range value.
    if bool(x.isnan().any()):
        raise ValueError(f"to_uint8: x has {int(x.isnan().sum())} NaN value(s); a NaN is no pixel value")
    return ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def dequantize(
    x: Tensor,
    kind: NoiseKind,
    sigma: float = 0.0,
    generator: torch.Generator | None = None,
    *,
    noise: Tensor | None = None,
) -> Tensor:
    r"""Add training noise to images on :math:`[-1, 1]`, turning discrete pixels into a density.

    ``"gaussian"``
        :math:`\tilde x = x + \sigma \epsilon` with :math:`\epsilon \sim \mathcal N(0, I)`. This is the
        TarFlow recipe for generation; samples are later cleaned by one denoising step with the same
        :math:`\sigma`. ``sigma`` must be positive.

    ``"uniform"``
        Uniform dequantization for likelihoods. Split :math:`[-1, 1)` into 256 bins of width
        :math:`\Delta = 2/256`; bin :math:`k` is :math:`[-1 + k\Delta, -1 + (k + 1)\Delta)`. With
        :math:`k = \mathrm{round}(127.5 (x + 1))` recovered from the 8-bit grid and
        :math:`u \sim U[0, 1)^D`,

        .. math:: \tilde x = -1 + (k + u)\,\Delta = \frac{k + u}{128} - 1 ,

        so :math:`\tilde x` is uniform on bin :math:`k` and :math:`\lfloor 128 (\tilde x + 1) \rfloor = k`.
        The bins tile :math:`[-1, 1)`, hence any continuous density :math:`p` on :math:`[-1, 1]^D`
        defines a discrete model :math:`P(k) = \int_{\mathrm{bin}(k)} p`, and by Jensen

        .. math:: \log P(k) \ge \mathbb E_u[\log p(\tilde x)] + D \log \Delta .

        In bits per dimension, :math:`-\log_2 P(k) / D \le (-\log p(\tilde x) / D + \log 128) / \log 2`,
        exactly the ``bpd`` formula of the design notes. Note that :math:`\tilde x` is *not*
        :math:`x + u\Delta`: the 8-bit grid :math:`k / 127.5 - 1` has spacing :math:`2/255`, and the
        factor :math:`255/256` between the two keeps :math:`\tilde x` inside :math:`[-1, 1)` and the bins
        tiling it with no gaps. ``sigma`` is ignored. Precondition: ``x`` lies on the 8-bit grid (not
        checked, to avoid a device sync per batch).

    ``"none"``
        ``x`` is returned unchanged.

    Args:
        x: Images on :math:`[-1, 1]`, any shape, floating point.
        kind: ``"gaussian"``, ``"uniform"`` or ``"none"``.
        sigma: Standard deviation of the Gaussian noise.
        generator: Optional random generator on ``x``'s device, for reproducible noise.
        noise: Optional pre-drawn unit noise shaped like ``x``, used instead of drawing: standard
            normal :math:`\epsilon` for ``"gaussian"``, :math:`u \sim U[0, 1)` for ``"uniform"``.
            Lets data-parallel ranks slice the noise of one global batch.

    Returns:
        A new tensor shaped like ``x`` (or ``x`` itself for ``"none"``).

    Examples:
        >>> x = torch.tensor([-1.0, 1.0])
        >>> g = torch.Generator().manual_seed(0)
        >>> y = dequantize(x, "uniform", generator=g)
        >>> torch.floor(128 * (y + 1)).tolist()
        [0.0, 255.0]
        >>> bool(((y >= -1) & (y < 1)).all())
        True
        >>> dequantize(x, "gaussian", sigma=0.1, generator=g).shape
        torch.Size([2])
    """
    if not x.is_floating_point():
        raise TypeError(f"dequantize expects floating-point images on [-1, 1], got dtype {x.dtype}")
    if noise is not None:
        if noise.shape != x.shape:
            raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, got {tuple(noise.shape)}")
        if generator is not None:
            raise ValueError("pass either noise or generator, not both")
    if kind == "none":
        return x
    if kind == "gaussian":
        if not sigma > 0:
            raise ValueError(f"gaussian noise needs sigma > 0, got sigma={sigma}; use kind='none' for no noise")
        if noise is None:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + sigma * noise
    if kind == "uniform":
        k = ((x + 1.0) * 127.5).round()
        if noise is None:
            noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (k + noise) / 128.0 - 1.0
    raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(map(repr, NOISE_KINDS))}")


def drop_labels(y: Tensor, p: float, generator: torch.Generator | None = None, *,
                noise: Tensor | None = None) -> Tensor:
    r"""Replace each label by ``-1`` ("no label") independently with probability ``p``.

    Training with dropped labels teaches a class-conditional flow its unconditional density too,
    which classifier-free guidance needs at sampling time.

    Args:
        y: Integer labels, any shape (usually ``(B,)``).
        p: Drop probability in :math:`[0, 1]`. ``p = 0`` returns ``y`` and draws no random numbers.
        generator: Optional random generator on ``y``'s device.
        noise: Optional pre-drawn :math:`u \sim U[0, 1)` shaped like ``y``, used instead of drawing:
            label ``i`` is dropped where :math:`u_i < p`. Lets data-parallel ranks slice the draws of
            one global batch, as ``noise`` does for :func:`dequantize`.

    Returns:
        A tensor shaped like ``y`` with some entries set to ``-1``.

    Examples:
        >>> y = torch.arange(5)
        >>> drop_labels(y, 1.0).tolist()
        [-1, -1, -1, -1, -1]
        >>> drop_labels(y, 0.0).tolist()
        [0, 1, 2, 3, 4]
        >>> drop_labels(y, 0.5, noise=torch.tensor([0.1, 0.9, 0.5, 0.4, 0.6])).tolist()
        [-1, 1, 2, -1, 4]
    """
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"drop_labels expects integer labels, got dtype {y.dtype}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label drop probability must be in [0, 1], got {p}")
    if noise is not None:
        if noise.shape != y.shape:
            raise ValueError(f"noise must have the shape of y {tuple(y.shape)}, got {tuple(noise.shape)}")
        if generator is not None:
            raise ValueError("pass either noise or generator, not both")
    if p == 0.0:
        return y
    if noise is None:
        noise = torch.rand(y.shape, generator=generator, device=y.device)
    drop = noise.to(y.device) < p
    return torch.where(drop, torch.full_like(y, -1), y)
