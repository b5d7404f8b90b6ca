"""The one-page TarFlow computes what the library's TarFlow computes, on the same weights (float64)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flowkit import TarFlow
from flowkit.presets import tarflow_readable
from flowkit.presets.tarflow_readable import ReadableTarFlow


def pair(nvp: bool, num_classes: int) -> tuple[ReadableTarFlow, TarFlow]:
    torch.manual_seed(0)
    cfg = dict(in_channels=2, img_size=8, patch_size=2, channels=32, num_blocks=3, layers_per_block=2,
               head_dim=16, nvp=nvp, num_classes=num_classes)
    page = ReadableTarFlow(**cfg)
    with torch.no_grad():  # random output layers (zero-initialised blocks are the identity) and a VP prior
        for block in page.blocks:
            block.proj_out.weight.normal_(std=0.05)
        if not nvp:
            page.var.uniform_(0.5, 2.0)
    library = TarFlow.from_ml_tarflow(page.state_dict(), **cfg)  # float32 copy, then both widened exactly
    return page.double().eval(), library.double().eval()


@pytest.mark.parametrize("nvp, num_classes", [(True, 3), (False, 0)])
def test_log_prob_latents_and_samples_agree(nvp: bool, num_classes: int) -> None:
    page, library = pair(nvp, num_classes)
    x = torch.rand(4, 2, 8, 8, dtype=torch.float64) * 2 - 1
    y = torch.tensor([0, 2, -1, 1]) if num_classes else None
    z_page, _ = page(x, y)
    z_lib, _ = library(x, y)
    torch.testing.assert_close(z_page, z_lib, atol=1e-12, rtol=0)
    torch.testing.assert_close(page.log_prob(x, y), library.log_prob(x, y), atol=1e-10, rtol=0)
    x_page = page.sample(4, y, generator=torch.Generator().manual_seed(1))
    x_lib = library.sample(4, y, generator=torch.Generator().manual_seed(1), method="sequential")
    torch.testing.assert_close(x_page, x_lib, atol=1e-10, rtol=0)
    torch.testing.assert_close(page.inverse(z_page, y), x, atol=1e-10, rtol=0)  # and it is an inverse


def test_the_page_stays_one_page() -> None:
    lines = Path(tarflow_readable.__file__).read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"tarflow_readable.py has {len(lines)} lines; the docs promise one page"
