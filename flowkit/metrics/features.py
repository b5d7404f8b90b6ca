"""The offline feature map of flowkit's sample metrics: a small CNN classifier, trained once and cached.

Inception-v3, the feature map of published FIDs, is neither available offline nor meaningful on 8x8
digits. :class:`FeatureExtractor` instead trains a tiny CNN on the *same* data set (seeded, a fixed
number of steps on the CPU), caches its weights under :func:`cache_dir`, and uses its penultimate
activations as features for :mod:`flowkit.metrics.distances`.

Examples:
    >>> ex = FeatureExtractor(in_channels=1, img_size=8, num_classes=10)  # untrained, for shapes
    >>> tuple(ex(torch.zeros(3, 1, 8, 8)).shape)
    (3, 64)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .._args import finite_float, nonnegative_int, positive_int, probability
from .._io import atomic_path
from ..data.transforms import to_float
from ._loader import as_images

__all__ = ["CACHE_ENV", "ClassifierConfig", "FeatureExtractor", "cache_dir"]

#: Environment variable naming flowkit's cache folder (default ``~/.cache/flowkit``).
CACHE_ENV = "FLOWKIT_CACHE"


def cache_dir() -> Path:
    """The folder where flowkit caches trained feature extractors.

    Returns:
        ``$FLOWKIT_CACHE/features``, or ``~/.cache/flowkit/features`` (``$XDG_CACHE_HOME`` is honoured)
        when the variable is unset.
    """
    root = os.environ.get(CACHE_ENV)
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flowkit")
    return Path(root).expanduser() / "features"


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyperparameters of the feature classifier; all of them go into the cache key.

    Attributes:
        width: channels of the first convolution (the next two have ``2 * width``).
        features: size ``F`` of the feature layer.
        steps: Adam steps of training.
        batch_size: images per step.
        lr: Adam learning rate (cosine-decayed to 0).
        val_fraction: data held out to measure the accuracy.
        seed: seed of the initialisation, the split and the batches.
    """

    width: int = 32
    features: int = 64
    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-3
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "features", "steps", "batch_size"):
            positive_int(getattr(self, name), name, "ClassifierConfig")
        finite_float(self.lr, "lr", "ClassifierConfig", low=0.0, low_inclusive=False)
        if probability(self.val_fraction, "val_fraction", "ClassifierConfig") in (0.0, 1.0):
            raise ValueError(f"ClassifierConfig: val_fraction must lie in (0, 1) (the accuracy is measured on "
                             f"held-out data), got {self.val_fraction!r}")
        nonnegative_int(self.seed, "seed", "ClassifierConfig")


class _Classifier(nn.Module):
    """Three strided 3x3 convolutions, global average pooling, a feature layer and a linear head.

    Global pooling makes the same network fit any image size (8x8 digits to 64x64 ImageNet).
    """

    def __init__(self, in_channels: int, num_classes: int, width: int, features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(2 * width, features), nn.GELU(),
        )
        self.head = nn.Linear(features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)`` of images ``(B, C, H, W)``."""
        return self.head(self.body(x))


class FeatureExtractor(nn.Module):
    """Features of a small CNN classifier trained on one data set: the offline stand-in for Inception.

    Build it with :meth:`for_dataset`, which trains the classifier once (seeded, CPU, a few seconds
    on digits) and caches the weights under :func:`cache_dir`; later calls load them. Calling the
    extractor maps images to their penultimate activations.

    Args:
        in_channels: ``C`` of the images.
        img_size: ``H = W`` of the images.
        num_classes: classes of the classifier head.
        config: the classifier's hyperparameters.

    Attributes:
        accuracy: held-out accuracy of the classifier (``nan`` until trained or loaded).
        cache_path: the weights file, when built by :meth:`for_dataset`.

    Examples:
        >>> ex = FeatureExtractor(in_channels=1, img_size=8, num_classes=10)
        >>> tuple(ex(torch.zeros(5, 1, 8, 8)).shape)
        (5, 64)
    """

    def __init__(self, in_channels: int, img_size: int, num_classes: int,
                 config: ClassifierConfig = ClassifierConfig()) -> None:
        super().__init__()
        positive_int(in_channels, "in_channels", "FeatureExtractor")
        positive_int(img_size, "img_size", "FeatureExtractor")
        positive_int(num_classes, "num_classes", "FeatureExtractor")
        if not isinstance(config, ClassifierConfig):
            raise TypeError(f"FeatureExtractor: config must be a ClassifierConfig, got {type(config).__name__}")
        self.in_channels, self.img_size, self.config = in_channels, img_size, config
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG alone
            torch.manual_seed(config.seed)
            self.net = _Classifier(in_channels, num_classes, config.width, config.features)
        self.accuracy = math.nan
        self.cache_path: Path | None = None
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, images: Tensor, batch_size: int = 1024) -> Tensor:
        """Features ``(B, F)`` of images ``(B, C, H, W)`` on ``[-1, 1]`` (float) or uint8."""
        x = as_images(images, "FeatureExtractor")
        want = (self.in_channels, self.img_size, self.img_size)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"FeatureExtractor: expected images (B, {', '.join(map(str, want))}), "
                             f"got {tuple(x.shape)}")
        ref = self.net.head.weight
        return torch.cat([self.net.body(x[i:i + batch_size].to(ref)) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Class predictions ``(B,)`` of the classifier."""
        return self.net.head(self(images)).argmax(1)

    @classmethod
    def for_dataset(cls, spec: str | os.PathLike[str] = "digits", img_size: int | None = None,
                    channels: int | None = None, *, root: str | os.PathLike[str] | None = None,
                    config: ClassifierConfig = ClassifierConfig(), cache: bool = True,
                    verbose: bool = False) -> FeatureExtractor:
        """The extractor for a data set: loaded from the cache, or trained and cached.

        The cache key hashes the data spec, the image shape, ``config`` and flowkit's version, so a
        change to any of them trains a new classifier. Weights are saved with ``torch.save`` of a
        state dict (atomically, so a concurrent reader never sees half a file) and loaded with
        ``weights_only=True``.

        Args:
            spec: a data spec for :func:`flowkit.data.load_dataset` (must have labels).
            img_size: image side (``None``: the data's own).
            channels: image channels (``None``: the data's own).
            root: data root for ``torchvision:`` specs.
            config: classifier hyperparameters.
            cache: read and write the cache (``False`` always trains).
            verbose: print where the weights come from and the held-out accuracy.

        Returns:
            The extractor, in eval mode, with its ``accuracy`` and ``cache_path`` set.

        Raises:
            ValueError: the data set has no labels, or too few images to hold some out.
        """
        from .. import __version__  # deferred: flowkit's __init__ imports this package
        from ..data import load_dataset  # deferred: reading image files needs Pillow

        data = load_dataset(spec, img_size, channels, root=root)
        c, h, _ = data.image_shape
        if not data.num_classes:
            raise ValueError(f"FeatureExtractor.for_dataset: data {os.fspath(spec)!r} has no labels; the feature "
                             "classifier needs labelled images")
        key = json.dumps({"spec": os.fspath(spec), "shape": [c, h, h], "n": len(data), "config": asdict(config),
                          "flowkit": __version__}, sort_keys=True)
        path = cache_dir() / f"classifier-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"
        ex = cls(c, h, data.num_classes, config)
        if cache and path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True)
            ex.net.load_state_dict(state["state_dict"])
            ex.accuracy = float(state["accuracy"])
            how = "loaded"
        else:
            t0 = time.perf_counter()
            ex.accuracy = ex._fit(data.images, data.labels)
            how = f"trained in {time.perf_counter() - t0:.1f} s"
            if cache:
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    torch.save({"state_dict": ex.net.state_dict(), "accuracy": ex.accuracy, "key": key}, tmp)
        ex.cache_path = path if cache else None
        if verbose:
            print(f"feature classifier for {os.fspath(spec)!r} {how}; held-out accuracy {ex.accuracy:.1%} ({path})")
        return ex

    def _fit(self, images: Tensor, labels: Tensor) -> float:
        """Train the classifier on uint8 images; return its accuracy on the held-out fraction."""
        cfg = self.config
        g = torch.Generator().manual_seed(cfg.seed)
        n = len(images)
        n_val = round(cfg.val_fraction * n)
        if n - n_val < 2 or n_val < 1:
            raise ValueError(f"FeatureExtractor: {n} images are too few to hold out {cfg.val_fraction:.0%}")
        perm = torch.randperm(n, generator=g)
        x, y = to_float(images), labels
        x_val, y_val, x_tr, y_tr = x[perm[:n_val]], y[perm[:n_val]], x[perm[n_val:]], y[perm[n_val:]]
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
        self.net.train().requires_grad_(True)
        for _ in range(cfg.steps):
            idx = torch.randint(len(x_tr), (cfg.batch_size,), generator=g)
            # One pixel of random translation: cheap augmentation that makes the features care about
            # shapes rather than exact positions, as a generated digit is rarely perfectly centred.
            dx, dy = torch.randint(-1, 2, (2,), generator=g).tolist()
            xb = torch.roll(x_tr[idx], shifts=(dy, dx), dims=(2, 3))
            loss = nn.functional.cross_entropy(self.net(xb), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        self.eval().requires_grad_(False)
        return float((self.predict(x_val) == y_val).double().mean())
