r"""Offline sample quality: Fréchet distance and KID of images, in the features of a small classifier.

The FID of published papers compares Inception-v3 features of generated and real images. Inception
is neither available offline nor meaningful on 8x8 digits, so flowkit's default feature map is a tiny
CNN trained once on the *same* data set and cached on disk; its penultimate activations play
Inception's part. :func:`sample_quality` puts the pieces together, which live in three modules:

- :mod:`flowkit.metrics.distances`: :func:`frechet_distance` and :func:`kid` between feature sets;
- :mod:`flowkit.metrics.features`: :class:`FeatureExtractor`, the small classifier with its training
  loop and cache (:class:`ClassifierConfig`, :func:`cache_dir`);
- :mod:`flowkit.metrics.inception`: :class:`InceptionExtractor`, Inception-v3 from weights on disk.

They are re-exported here, so ``from flowkit.metrics.fid import FeatureExtractor`` keeps working.

These numbers compare models *with each other* on one data set and one extractor; they are not
comparable with published FIDs. Only :class:`InceptionExtractor` (Inception-v3 with weights the
user already has on disk; nothing is downloaded) gives an FID on the published scale.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .._args import boolean
from ..data.transforms import to_float, to_uint8
from ._loader import as_images
from .distances import frechet_distance, kid
from .features import CACHE_ENV, ClassifierConfig, FeatureExtractor, cache_dir
from .inception import InceptionExtractor

__all__ = [
    "CACHE_ENV",
    "ClassifierConfig",
    "FeatureExtractor",
    "InceptionExtractor",
    "cache_dir",
    "frechet_distance",
    "kid",
    "sample_quality",
]


def sample_quality(real_images: Tensor, fake_images: Tensor, extractor: Callable[[Tensor], Tensor], *,
                   kid_subsets: int = 100, kid_subset_size: int = 1000, quantize: bool = True,
                   generator: torch.Generator | None = None) -> dict[str, float]:
    """Fréchet distance and KID between real and generated images in an extractor's feature space.

    Args:
        real_images: ``(N_r, C, H, W)`` on ``[-1, 1]`` (or uint8).
        fake_images: ``(N_f, C, H, W)``; compare models with the same ``N_r`` and ``N_f``, since FD
            depends on the sample sizes.
        extractor: images to features ``(N, F)``, e.g. :meth:`FeatureExtractor.for_dataset` or
            :class:`InceptionExtractor`.
        kid_subsets: subsets for :func:`kid`.
        kid_subset_size: subset size for :func:`kid`.
        quantize: clamp to ``[-1, 1]`` and round to 8 bits first, as saving a PNG would (the
            protocol of published FIDs: score the images a user gets, not the raw floats).
        generator: for reproducible KID subsets.

    Returns:
        ``{"fd": ..., "kid": ..., "kid_std": ...}``.

    Examples:
        >>> ex = FeatureExtractor(in_channels=1, img_size=8, num_classes=10)  # untrained, for shapes
        >>> x = torch.rand(50, 1, 8, 8) * 2 - 1
        >>> sorted(sample_quality(x, x, ex, kid_subsets=2, kid_subset_size=20))
        ['fd', 'kid', 'kid_std']
    """
    if not callable(extractor):
        raise TypeError(f"sample_quality: extractor must be a callable from images to features (N, F), "
                        f"got {type(extractor).__name__}")
    boolean(quantize, "quantize", "sample_quality")
    real = as_images(real_images, "sample_quality")
    fake = as_images(fake_images, "sample_quality")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"sample_quality: real images {tuple(real.shape[1:])} and fake images "
                         f"{tuple(fake.shape[1:])} differ in shape")
    if quantize:
        real, fake = to_float(to_uint8(real)), to_float(to_uint8(fake))
    fa, fb = extractor(real), extractor(fake)
    mean, std = kid(fa, fb, kid_subsets, kid_subset_size, generator=generator)
    return {"fd": frechet_distance(fa, fb), "kid": mean, "kid_std": std}
