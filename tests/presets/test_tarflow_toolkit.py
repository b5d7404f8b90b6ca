"""TarFlow with continuous context vectors and with spline maps (map="spline"), down to the CLI flag."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flowkit import CausalAffine, CausalTransformerFlow, TarFlow
from flowkit.cli.main import main
from flowkit.maps import RQSplineMap
from flowkit.testing import check_bijector, randomize_parameters
from flowkit.training.loading import load_trained

SMALL = dict(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=2, layers_per_block=1)


def test_a_class_embedding_fed_as_a_vector_gives_the_label_path_log_prob() -> None:
    """One-hot vectors through a projection set to the embedding table reproduce the label model."""
    torch.manual_seed(0)
    labels = randomize_parameters(TarFlow(**SMALL, num_classes=3).double(), std=0.05)
    vectors = TarFlow(**SMALL, context_features=3).double()
    state = labels.state_dict()
    for key in [k for k in state if k.endswith("net.class_embed")]:
        state[key.replace("class_embed", "context_proj.weight")] = state.pop(key).T.contiguous()
    vectors.load_state_dict(state)
    x, y = torch.rand(4, 1, 4, 4, dtype=torch.float64) * 2 - 1, torch.tensor([0, 1, 2, 1])
    one_hot = torch.nn.functional.one_hot(y, 3).double()
    torch.testing.assert_close(vectors.log_prob(x, context=one_hot), labels.log_prob(x, context=y), rtol=0, atol=1e-12)
    assert not torch.allclose(vectors.log_prob(x, context=one_hot.roll(1, 0)), labels.log_prob(x, context=y))
    with pytest.raises(ValueError, match=r"context must have shape \(4, 3\)"):
        vectors.log_prob(x, context=one_hot[:, :2])
    with pytest.raises(ValueError, match="context is required"):
        vectors.log_prob(x)


def test_vector_context_tarflow_blocks_pass_check_bijector() -> None:
    torch.manual_seed(0)
    model = randomize_parameters(TarFlow(**SMALL, context_features=2).double(), std=0.05)
    assert isinstance(model.transforms[0], CausalAffine) and model.context_spec.kind == "vector"
    tokens = torch.randn(3, 4, 4, dtype=torch.float64)
    c = torch.randn(3, 2, dtype=torch.float64)
    for block in model.blocks:
        check_bijector(block, tokens, c, atol=1e-7)
    x = model.sample(3, context=c, generator=torch.Generator().manual_seed(0))
    x_jacobi = model.sample(3, context=c, method="jacobi", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x_jacobi, x, rtol=1e-6, atol=1e-6)
    assert torch.isfinite(model.log_prob(x, context=c)).all()


@pytest.mark.parametrize("coupling", ["autoregressive", "channel"])
def test_spline_tarflow(coupling: str) -> None:
    torch.manual_seed(0)
    model = randomize_parameters(TarFlow(**SMALL, num_classes=3, map="spline", spline_bins=5,
                                         coupling=coupling).double(), std=0.05)
    block = model.transforms[0]
    assert isinstance(block.map, RQSplineMap) and block.map.num_params == 14 and not block.volume_preserving
    # The spline TarFlow keeps 0.2.0's unbounded logits, so that its checkpoints keep their density.
    assert all(b.map.logit_bound is None for b in model.transforms)
    if coupling == "autoregressive":
        assert isinstance(block, CausalTransformerFlow) and not isinstance(block, CausalAffine)
    y = torch.tensor([0, 1, -1])
    check_bijector(model.blocks[1], torch.randn(3, 4, 4, dtype=torch.float64), y, atol=1e-7)
    z = torch.randn(3, 4, 4, dtype=torch.float64)  # a latent: 4 tokens of 4 features
    x = model.inverse(z, context=y, method="sequential")
    torch.testing.assert_close(model(x, context=y)[0], z)
    assert torch.isfinite(model.log_prob(x, context=y)).all()


def test_bad_map_arguments() -> None:
    with pytest.raises(ValueError, match="map must be one of"):
        TarFlow(**SMALL, map="cubic")
    with pytest.raises(ValueError, match="needs nvp=True"):
        TarFlow(**SMALL, map="spline", nvp=False)
    with pytest.raises(ValueError, match="not both"):
        TarFlow(**SMALL, num_classes=2, context_features=2)


def test_train_flag_map_spline(tmp_path: Path) -> None:
    """`flowkit train --map spline` (a flag generated from the config) trains and saves a spline TarFlow."""
    out = tmp_path / "run"
    argv = ["train", "--no-progress", f"--out={out}", "--map=spline", "--spline-bins=4", "--max-steps=2",
            "--channels=32", "--head-dim=32", "--num-blocks=2", "--layers-per-block=1", "--batch-size=16",
            "--eval-every=2", "--sample-every=0", "--log-every=1", "--noise=uniform", "--denoise=false"]
    assert main(argv) == 0
    model, cfg = load_trained(out / "checkpoint.pt")
    assert cfg is not None and cfg.map == "spline" and cfg.spline_bins == 4
    assert isinstance(model.transforms[0].map, RQSplineMap)
