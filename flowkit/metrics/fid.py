r"""Offline sample quality: Fréchet distance and KID on features of a small classifier.

The FID of published papers compares Inception-v3 features of generated and real images. Inception
is neither available offline nor meaningful on 8x8 digits, so flowkit's default feature map is a tiny
CNN trained once on the *same* data set (seeded, a fixed number of steps on the CPU) and cached on
disk. Its penultimate activations play Inception's part:

- :func:`frechet_distance` fits a Gaussian to each feature set and measures

  .. math:: \mathrm{FD} = \lVert \mu_a - \mu_b \rVert^2
            + \operatorname{Tr}\!\big(\Sigma_a + \Sigma_b - 2 (\Sigma_a \Sigma_b)^{1/2}\big);

- :func:`kid` is the kernel inception distance of Bińkowski et al. (2018): the unbiased estimate of
  the squared MMD with the cubic polynomial kernel :math:`k(x, y) = (x^\top y / d + 1)^3`, averaged
  over random subsets. Unlike FD it has no bias from the sample size, so it is the better number
  for the small sample counts of CPU experiments.

These numbers compare models *with each other* on one data set and one extractor; they are not
comparable with published FIDs. Only :class:`InceptionExtractor` (Inception-v3 with weights the
user already has on disk; nothing is downloaded) gives an FID on the published scale.

Examples:
    >>> g = torch.Generator().manual_seed(0)
    >>> a, b = torch.randn(500, 4, generator=g), torch.randn(500, 4, generator=g)
    >>> frechet_distance(a, a) < 1e-6
    True
    >>> frechet_distance(a, b + 3.0) > 30  # a shift of 3 in 4 dimensions: about 36
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .._validation import check_tensor
from ..data.transforms import to_float, to_uint8

__all__ = [
    "ClassifierConfig",
    "FeatureExtractor",
    "InceptionExtractor",
    "cache_dir",
    "frechet_distance",
    "kid",
    "sample_quality",
]

#: Environment variable naming flowkit's cache folder (default ``~/.cache/flowkit``).
CACHE_ENV = "FLOWKIT_CACHE"


def cache_dir() -> Path:
    """The folder where flowkit caches trained feature extractors: ``$FLOWKIT_CACHE/features``, or
    ``~/.cache/flowkit/features`` (``$XDG_CACHE_HOME`` is honoured) when the variable is unset."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flowkit")
    return Path(root).expanduser() / "features"


# --- the distances ----------------------------------------------------------------------------------


def _check_features(feats: Tensor, name: str, owner: str, min_rows: int) -> Tensor:
    if not isinstance(feats, Tensor):
        raise TypeError(f"{owner}: {name} must be a tensor of features (N, F), got {type(feats).__name__}")
    if feats.dim() != 2:
        raise ValueError(f"{owner}: {name} must be features shaped (N, F), got shape {tuple(feats.shape)}")
    if feats.shape[0] < min_rows:
        raise ValueError(f"{owner}: {name} needs at least {min_rows} rows, got {feats.shape[0]}")
    if not torch.isfinite(feats).all():
        raise ValueError(f"{owner}: {name} has non-finite values")
    return feats.detach().to(torch.float64)


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
    a = _check_features(feats_a, "feats_a", "frechet_distance", 2)
    b = _check_features(feats_b, "feats_b", "frechet_distance", 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance: feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
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
    a = _check_features(feats_a, "feats_a", "kid", 2)
    b = _check_features(feats_b, "feats_b", "kid", 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"kid: feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    if isinstance(subsets, bool) or not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"kid: subsets must be a positive int, got {subsets!r}")
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"kid: subset_size must be an int >= 2, got {subset_size!r}")
    m = min(subset_size, a.shape[0], b.shape[0])
    values = torch.stack([
        _mmd2_unbiased(a[torch.randperm(a.shape[0], generator=generator)[:m]],
                       b[torch.randperm(b.shape[0], generator=generator)[:m]])
        for _ in range(subsets)
    ])
    return float(values.mean()), float(values.std()) if subsets > 1 else 0.0


# --- the feature extractor --------------------------------------------------------------------------


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


class _Classifier(nn.Module):
    """Three strided 3x3 convolutions, global average pooling, a feature layer and a linear head.

    Global pooling makes the same network fit any image size (8x8 digits to 64x64 ImageNet)."""

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
        return self.head(self.body(x))


def _as_images(images: Tensor, owner: str) -> Tensor:
    """Float images on [-1, 1] from float or uint8 ``(B, C, H, W)``."""
    if not isinstance(images, Tensor):
        raise TypeError(f"{owner}: images must be a tensor (B, C, H, W), got {type(images).__name__}")
    if images.dtype == torch.uint8:
        images = to_float(images)
    check_tensor(images, "images", event_ndim=3, owner=owner)
    return images


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
        x = _as_images(images, "FeatureExtractor")
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
        state dict and loaded with ``weights_only=True``.

        Args:
            spec: a data spec for :func:`flowkit.data.load_dataset` (must have labels).
            img_size: image side (``None``: the data's own).
            channels: image channels (``None``: the data's own).
            root: data root for ``torchvision:`` specs.
            config: classifier hyperparameters.
            cache: read and write the cache (``False`` always trains).
            verbose: print where the weights come from and the held-out accuracy.

        Raises:
            ValueError: the data set has no labels, or too few images to hold some out.
        """
        from .. import __version__  # deferred: flowkit's __init__ imports this package
        from ..data import load_dataset

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
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                torch.save({"state_dict": ex.net.state_dict(), "accuracy": ex.accuracy, "key": key}, tmp)
                os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
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


class InceptionExtractor(nn.Module):
    """Inception-v3 pool features (2048) from weights on disk: the FID of published papers.

    Uses torchvision's ``inception_v3`` architecture with a state dict the user already has (for
    example torchvision's ``inception_v3_google-0cc3c7bd.pth``); nothing is ever downloaded. Images
    are resized to 299x299 (bilinear) and normalised as the weights expect. Published FIDs use the
    TensorFlow Inception graph (ported as pytorch-fid's ``pt_inception-2015-12-05`` weights, which
    this architecture also loads); torchvision's pooling differs in a few layers from that port, so
    expect values close to, not identical with, ``pytorch-fid`` — use that package for numbers you
    put next to a paper's. Features also need thousands of samples per side to be meaningful.

    Args:
        weights: path to an Inception-v3 state dict (``torch.load``-able with ``weights_only=True``).

    Raises:
        ImportError: torchvision is not installed.
        FileNotFoundError: ``weights`` does not exist.
        ValueError: the file is not an Inception-v3 state dict.
    """

    def __init__(self, weights: str | os.PathLike[str]) -> None:
        super().__init__()
        try:
            from torchvision.models import inception_v3
        except ImportError:
            raise ImportError("InceptionExtractor needs torchvision (pip install torchvision); flowkit's offline "
                              "metric FeatureExtractor.for_dataset needs nothing extra") from None
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Inception weights {str(path)!r} not found; flowkit never downloads them, pass "
                                    "the path of a local Inception-v3 state dict")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict) or "fc.weight" not in state:
            raise ValueError(f"{path} is not an Inception-v3 state dict (no 'fc.weight')")
        num_classes = state["fc.weight"].shape[0]  # 1000 (torchvision) or 1008 (the TF port)
        net = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=num_classes,
                           transform_input=False)
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{path} does not fit torchvision's Inception-v3: {str(e).splitlines()[0]}") from None
        net.fc = nn.Identity()  # type: ignore[assignment]
        self.net = net.eval().requires_grad_(False)
        # The TF port expects inputs on [-1, 1]; torchvision's ImageNet weights expect ImageNet statistics.
        self.tf_inputs = num_classes == 1008

    @torch.no_grad()
    def forward(self, images: Tensor, batch_size: int = 64) -> Tensor:
        """Features ``(B, 2048)`` of images ``(B, C, H, W)``, C = 1 or 3, on ``[-1, 1]`` or uint8."""
        x = _as_images(images, "InceptionExtractor")
        if x.shape[1] not in (1, 3):
            raise ValueError(f"InceptionExtractor: images need 1 or 3 channels, got {x.shape[1]}")
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        out = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].float().expand(-1, 3, -1, -1)
            xb = nn.functional.interpolate(xb, size=(299, 299), mode="bilinear", align_corners=False)
            if not self.tf_inputs:
                xb = ((xb + 1) / 2 - mean) / std
            out.append(self.net(xb.to(next(self.net.parameters()))).float().cpu())
        return torch.cat(out)


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
    real = _as_images(real_images, "sample_quality")
    fake = _as_images(fake_images, "sample_quality")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"sample_quality: real images {tuple(real.shape[1:])} and fake images "
                         f"{tuple(fake.shape[1:])} differ in shape")
    if quantize:
        real, fake = to_float(to_uint8(real)), to_float(to_uint8(fake))
    fa, fb = extractor(real), extractor(fake)
    mean, std = kid(fa, fb, kid_subsets, kid_subset_size, generator=generator)
    return {"fd": frechet_distance(fa, fb), "kid": mean, "kid_std": std}
