"""Patchify: images to sequences of patch tokens."""

from __future__ import annotations

from torch import Tensor
from typing_extensions import override

from .._args import positive_int
from .base import Bijector, Shape, zeros_logdet

__all__ = ["Patchify"]


class Patchify(Bijector):
    r"""Cut images into non-overlapping ``p x p`` patches, one token per patch.

    .. math::
        (B, C, H, W) \;\longleftrightarrow\; (B, N, D), \qquad N = \frac{HW}{p^2},\; D = C p^2.

    Tokens run row-major over the patch grid and each token lists channel, then row, then column
    inside its patch: exactly the layout of :func:`torch.nn.functional.unfold` with
    ``kernel_size = stride = p`` (transposed to put tokens first). A pure rearrangement, so the
    log-det is ``0`` both ways.

    Args:
        patch_size: the patch side ``p``; ``H`` and ``W`` must be multiples of it.
        img_size: optional ``(H, W)`` (or one int for square images), needed only to invert a
            sequence whose grid is not square, and to let a flow check shapes when it is built.
        in_channels: optional ``C``, for the same reasons.

    Examples:
        >>> import torch
        >>> x = torch.arange(2 * 3 * 4 * 4.0).reshape(2, 3, 4, 4)
        >>> z, logdet = Patchify(2)(x)
        >>> tuple(z.shape), logdet.tolist()
        ((2, 4, 12), [0.0, 0.0])
        >>> torch.equal(z, torch.nn.functional.unfold(x, 2, stride=2).transpose(1, 2))
        True
        >>> torch.equal(Patchify(2).inverse(z)[0], x)
        True
    """

    volume_preserving = True
    event_ndim = 3

    def __init__(self, patch_size: int, img_size: int | tuple[int, int] | None = None,
                 in_channels: int | None = None) -> None:
        super().__init__()
        self.patch_size = positive_int(patch_size, "patch_size", "Patchify")
        self.img_size: tuple[int, int] | None = None
        if img_size is not None:
            sizes = (img_size, img_size) if isinstance(img_size, int) and not isinstance(img_size, bool) else img_size
            if not isinstance(sizes, (tuple, list)) or len(sizes) != 2:
                raise TypeError(f"Patchify: img_size must be an int or a pair (H, W), got {img_size!r}")
            h, w = (positive_int(s, f"img_size[{i}]", "Patchify") for i, s in enumerate(sizes))
            self.img_size = (h, w)
        self.in_channels = None if in_channels is None else positive_int(in_channels, "in_channels", "Patchify")
        if self.img_size is not None and in_channels is not None:
            self.event_shape = (in_channels, *self.img_size)
            self.forward_shape(self.event_shape)

    @override
    def forward_shape(self, shape: Shape) -> Shape:
        p = self.patch_size
        if len(shape) != 3:
            raise ValueError(f"Patchify expects images (C, H, W), got event shape {tuple(shape)}")
        c, h, w = shape
        if h % p or w % p:
            raise ValueError(f"Patchify({p}): H and W must be multiples of {p}, got H={h}, W={w}")
        self._check_event_shape(shape)
        return (h // p) * (w // p), c * p * p

    @override
    def inverse_shape(self, shape: Shape) -> Shape:
        c, h, w = self._image_shape(tuple(shape))
        return c, h, w

    def _image_shape(self, shape: Shape) -> tuple[int, int, int]:
        p = self.patch_size
        if len(shape) != 2:
            raise ValueError(f"Patchify.inverse expects tokens (N, D), got event shape {shape}")
        n, d = shape
        if d % (p * p):
            raise ValueError(f"Patchify({p}).inverse: token size must be a multiple of {p * p}, got {d}")
        c = d // (p * p)
        if self.in_channels is not None and c != self.in_channels:
            raise ValueError(f"Patchify({p}).inverse: token size {d} means {c} channels, expected {self.in_channels}")
        if self.img_size is not None:
            h, w = self.img_size
            if (h // p) * (w // p) != n:
                raise ValueError(f"Patchify({p}).inverse: {n} tokens do not tile an image of size {h}x{w}")
            return c, h, w
        side = round(n**0.5)
        if side * side != n:
            raise ValueError(f"Patchify({p}).inverse: {n} tokens are not a square grid; pass img_size=(H, W)")
        return c, side * p, side * p

    @override
    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        p = self.patch_size
        z = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        return z, zeros_logdet(x)

    @override
    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        c, h, w = self._image_shape(tuple(z.shape[1:]))
        b, p = z.shape[0], self.patch_size
        x = z.reshape(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
        return x, zeros_logdet(z)

    @override
    def extra_repr(self) -> str:
        return f"patch_size={self.patch_size}"
