"""Inception-v3 pool features from weights on disk: the feature map of published FIDs.

Only needed to put a number next to a paper's; flowkit's offline metrics use
:class:`~flowkit.metrics.features.FeatureExtractor` and need neither torchvision nor a download.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ._loader import as_images

__all__ = ["InceptionExtractor"]

# torchvision's ImageNet weights expect inputs normalised with the ImageNet channel statistics.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


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
        net.fc = nn.Identity()
        self.net = net.eval().requires_grad_(False)
        # The TF port expects inputs on [-1, 1]; torchvision's ImageNet weights expect ImageNet statistics.
        self.tf_inputs = num_classes == 1008

    @torch.no_grad()
    def forward(self, images: Tensor, batch_size: int = 64) -> Tensor:
        """Features ``(B, 2048)`` of images ``(B, C, H, W)``, C = 1 or 3, on ``[-1, 1]`` or uint8."""
        x = as_images(images, "InceptionExtractor")
        if x.shape[1] not in (1, 3):
            raise ValueError(f"InceptionExtractor: images need 1 or 3 channels, got {x.shape[1]}")
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        ref = next(self.net.parameters())
        out = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].float().expand(-1, 3, -1, -1)
            xb = nn.functional.interpolate(xb, size=(299, 299), mode="bilinear", align_corners=False)
            if not self.tf_inputs:
                xb = ((xb + 1) / 2 - mean) / std
            out.append(self.net(xb.to(ref)).float().cpu())
        return torch.cat(out)
