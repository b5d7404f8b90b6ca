"""TarFlow: exact log-dets for every variant, structure, sampling shapes."""

from __future__ import annotations

import pytest
import torch

from flowkit import CausalAffine, Chain, ChannelCoupling, EMADiagonalNormal, Patchify, StandardNormal, TarFlow
from flowkit.testing import check_bijector, randomize_parameters

VARIANTS = [
    pytest.param(dict(nvp=True, num_classes=0), id="nvp"),
    pytest.param(dict(nvp=True, num_classes=3), id="nvp-cond"),
    pytest.param(dict(nvp=False, num_classes=0), id="vp"),
    pytest.param(dict(nvp=False, num_classes=3), id="vp-cond"),
    pytest.param(dict(nvp=True, num_classes=0, coupling="channel"), id="channel"),
    pytest.param(dict(nvp=True, num_classes=3, coupling="channel"), id="channel-cond"),
]


def small(**kw: object) -> TarFlow:
    torch.manual_seed(0)
    model = TarFlow(in_channels=2, img_size=4, patch_size=2, channels=32, num_blocks=3, layers_per_block=1,
                    head_dim=16, **kw)  # type: ignore[arg-type]
    return randomize_parameters(model.double(), std=0.1)


@pytest.mark.parametrize("kw", VARIANTS)
def test_logdet_is_slogdet_of_jacobian(kw: dict) -> None:
    model = small(**kw)
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64) * 2 - 1
    y = torch.tensor([0, 2]) if kw["num_classes"] else None
    z, logdet = model(x, y)
    for i in range(2):
        ctx = None if y is None else y[i:i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, ctx=ctx: model(v.unsqueeze(0), ctx)[0].flatten(), x[i])
        _, expected = torch.linalg.slogdet(jac.reshape(32, 32))
        assert abs(logdet[i].item() - expected.item()) < 1e-6
    x_back = model.inverse(z, y)
    assert torch.allclose(x_back, x, atol=1e-9)


@pytest.mark.parametrize("kw", VARIANTS)
def test_every_block_passes_check_bijector(kw: dict) -> None:
    model = small(**kw)
    h, _ = model.patchify(torch.rand(3, 2, 4, 4, dtype=torch.float64) * 2 - 1)
    y = torch.tensor([0, 1, -1]) if kw["num_classes"] else None
    for block in model.blocks:
        check_bijector(block, h, y if block.conditional else None, jacobian_samples=1)
        h, _ = block(h, context=y if block.conditional else None)


def test_structure() -> None:
    model = TarFlow(in_channels=3, img_size=8, patch_size=2, channels=64, num_blocks=4, layers_per_block=1)
    assert isinstance(model.bijectors[0], Patchify)
    assert isinstance(model.bijectors[1], CausalAffine) and isinstance(model.bijectors[2], Chain)
    assert model.bijectors[2].bijectors[0].kind == "reverse"
    assert model.latent_shape == (16, 12) and model.num_dims == 192
    assert isinstance(model.base, StandardNormal)
    assert isinstance(TarFlow(1, 4, 2, 64, 2, 1, nvp=False).base, EMADiagonalNormal)
    assert all(isinstance(b, ChannelCoupling) for b in TarFlow(1, 4, 2, 64, 2, 1, coupling="channel").blocks)


def test_starts_as_identity() -> None:
    model = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=2, layers_per_block=1)
    x = torch.rand(2, 1, 4, 4)
    z, logdet = model(x)
    assert torch.equal(z, model.patchify(x)[0]) and torch.equal(logdet, torch.zeros(2))


def test_vp_prior_variance_is_used_for_density_and_sampling() -> None:
    model = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=1, layers_per_block=1, nvp=False)
    model.base.update(torch.full((5, 4, 4), 3.0))
    assert torch.allclose(model.base.var, torch.full((4, 4), 1.8))
    z = model.base.sample(4000, generator=torch.Generator().manual_seed(0))
    assert abs(z.var().item() - 1.8) < 0.1
    x = torch.zeros(1, 1, 4, 4)
    expected = -0.5 * 16 * (torch.log(torch.tensor(2 * torch.pi * 1.8))).item()
    assert abs(model.log_prob(x).item() - expected) < 1e-4


@pytest.mark.parametrize("bad, message", [
    (dict(patch_size=3), "patch_size \\(3\\) must divide img_size \\(8\\)"),
    (dict(channels=100), "multiple of head_dim"),
    (dict(coupling="mask"), "coupling must be"),
    (dict(num_blocks=0), "num_blocks must be a positive int"),
])
def test_bad_config(bad: dict, message: str) -> None:
    cfg = dict(in_channels=1, img_size=8, patch_size=2, channels=64, num_blocks=2, layers_per_block=1) | bad
    with pytest.raises(ValueError, match=message):
        TarFlow(**cfg)


def test_one_config_drives_model_training_config_and_reference_loader() -> None:
    import dataclasses

    from flowkit import TarFlowConfig
    from flowkit.presets.ml_tarflow import _REQUIRED
    from flowkit.training.config import TrainConfig

    cfg = TarFlowConfig(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=2, layers_per_block=1,
                        head_dim=16, num_classes=3)
    model = TarFlow.from_config(cfg)
    assert model.config == cfg and dict(model.config) == dataclasses.asdict(cfg)
    assert TarFlow(**model.config).config == cfg  # the mapping view keeps dict-style code working
    model_fields = [f.name for f in dataclasses.fields(TarFlowConfig)]
    assert [f.name for f in dataclasses.fields(TrainConfig)][:len(model_fields)] == model_fields
    assert issubclass(TrainConfig, TarFlowConfig) and TrainConfig().head_dim == 32  # digits defaults kept
    # The reference constructor has defaults for head_dim/expansion and none of flowkit's own fields.
    flowkit_only = {"coupling", "context_features", "map", "spline_bins"}
    assert set(_REQUIRED) == set(model_fields) - {"head_dim", "expansion"} - flowkit_only
