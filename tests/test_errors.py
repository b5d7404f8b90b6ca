"""Bad input gets a ValueError/TypeError that says what was expected and what came."""

from __future__ import annotations

import pytest
import torch

from flowkit import CausalAffine, Flow, Patchify, Permutation, TarFlow, denoise
from flowkit.testing import check_bijector


@pytest.fixture(scope="module")
def cond() -> TarFlow:
    return TarFlow(in_channels=3, img_size=8, patch_size=2, channels=64, num_blocks=2, layers_per_block=1,
                   num_classes=10)


@pytest.mark.parametrize("x, err, message", [
    (torch.zeros(2, 3, 8), ValueError, r"x must have shape \(B, 3, 8, 8\), got \(2, 3, 8\)"),
    (torch.zeros(2, 1, 8, 8), ValueError, r"x must have shape \(B, 3, 8, 8\), got \(2, 1, 8, 8\)"),
    (torch.zeros(2, 3, 16, 16), ValueError, r"got \(2, 3, 16, 16\)"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.long), TypeError, "floating-point tensor, got dtype torch.int64"),
    (torch.full((2, 3, 8, 8), float("nan")), ValueError, "384 non-finite value"),
    ([[0.0]], TypeError, "must be a torch.Tensor, got list"),
])
def test_bad_images(cond: TarFlow, x: object, err: type, message: str) -> None:
    with pytest.raises(err, match=message):
        cond.log_prob(x)  # type: ignore[arg-type]


@pytest.mark.parametrize("y, err, message", [
    (torch.tensor([0, 10]), ValueError, r"labels must lie in \[-1, 10\).*got values in \[0, 10\]"),
    (torch.tensor([-2, 0]), ValueError, r"got values in \[-2, 0\]"),
    (torch.tensor([0.0, 1.0]), TypeError, "integer tensor, got dtype torch.float32"),
    (torch.tensor([0, 1, 2]), ValueError, r"labels must have shape \(2,\) to match the batch, got \(3,\)"),
    (3, TypeError, "tensor of integer class labels, got int"),
])
def test_bad_labels(cond: TarFlow, y: object, err: type, message: str) -> None:
    with pytest.raises(err, match=message):
        cond.log_prob(torch.zeros(2, 3, 8, 8), y)  # type: ignore[arg-type]


def test_context_for_unconditional() -> None:
    model = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=1, layers_per_block=1)
    with pytest.raises(ValueError, match="unconditional.*context was given"):
        model.log_prob(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]))
    block = CausalAffine(dim=4, seq_len=4, channels=64, num_layers=1)
    with pytest.raises(ValueError, match=r"CausalAffine: takes no context \(unconditional\), but a context was given"):
        block(torch.zeros(2, 4, 4), context=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"Patchify: takes no context \(unconditional\)"):
        Patchify(2)(torch.zeros(1, 1, 4, 4), context=torch.tensor([0]))


def test_bad_bijector_arguments() -> None:
    with pytest.raises(ValueError, match=r"H and W must be multiples of 3, got H=4, W=4"):
        Patchify(3)(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"permutation of range\(3\), got \[0, 0, 2\]"):
        Permutation([0, 0, 2])
    with pytest.raises(ValueError, match="Permutation of 4 tokens got a sequence of 5"):
        Permutation.reverse(4)(torch.zeros(1, 5, 2))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 4, 4\)"):
        CausalAffine(dim=4, seq_len=4, channels=64, num_layers=1).inverse(torch.zeros(1, 4, 3))


@pytest.mark.parametrize("opts, message", [
    (dict(guidance=-1.0), "guidance must be a finite float >= 0"),
    (dict(guidance=1.0, guide_what="c"), "guide_what must be 'a', 'b' or 'ab'"),
    (dict(guidance=1.0, attn_temp=0.0), "attn_temp must be a finite float > 0"),
    (dict(method="magic"), "method must be one of"),
    (dict(guidance=float("inf")), "guidance must be a finite float >= 0, got inf"),
    (dict(guidance=1.0, attn_temp=float("inf")), "attn_temp must be a finite float > 0, got inf"),
    (dict(temperature=float("inf")), "TarFlow.sample: temperature must be a finite float >= 0, got inf"),
])
def test_bad_sampling_options(cond: TarFlow, opts: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cond.sample(2, context=torch.tensor([0, 1]), **opts)


def _reference_state(**changes: object) -> tuple[dict, dict]:
    from flowkit.presets.ml_tarflow import reference_shapes

    cfg = dict(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=1, layers_per_block=1,
               head_dim=16, nvp=True, num_classes=0)
    sd = {k: torch.zeros(s) for k, s in reference_shapes(**cfg).items()}
    sd["var"], sd["blocks.0.attn_mask"] = torch.ones(4, 4), torch.ones(4, 4).tril()
    sd.update(changes)
    return sd, cfg


@pytest.mark.parametrize("call, err, message", [
    (lambda: check_bijector(Permutation.reverse(), [[0.0]]),
     TypeError, "check_bijector: x must be a torch.Tensor, got list"),
    (lambda: check_bijector(Permutation.reverse(), torch.zeros(2, 3, 1), atol=-1.0),
     ValueError, "check_bijector: atol must be a finite float >= 0, got -1.0"),
    (lambda: check_bijector(Permutation.reverse(), torch.zeros(2, 3, 1), jacobian_samples=-1),
     ValueError, "check_bijector: jacobian_samples must be an int >= 0, got -1"),
    (lambda: denoise(torch.nn.Linear(1, 1), torch.zeros(1, 1), 0.1), TypeError,
     "denoise: flow must be a flowkit Flow"),
    (lambda: TarFlow.from_ml_tarflow(_reference_state()[0], **(_reference_state()[1] | {"img_size": "abc"})),
     TypeError, "from_ml_tarflow: img_size must be a positive int, got str 'abc'"),
    (lambda: TarFlow.from_ml_tarflow(
        _reference_state(**{"blocks.0.proj_in.weight": torch.full((32, 4), float("nan"))})[0], **_reference_state()[1]),
     ValueError, r"'blocks.0.proj_in.weight' has 128 non-finite value\(s\)"),
    (lambda: TarFlow.from_ml_tarflow(
        _reference_state(**{"blocks.0.proj_in.bias": torch.zeros(32, dtype=torch.long)})[0], **_reference_state()[1]),
     TypeError, "'blocks.0.proj_in.bias' must be a floating-point tensor, got dtype torch.int64"),
    (lambda: Flow([Patchify(2)], event_shape=(1, 4, "4")), TypeError, r"Flow: event_shape\[2\] must be a positive int"),
    (lambda: CausalAffine(dim=2, seq_len=2, channels=48, num_layers=1, head_dim=32), ValueError,
     r"CausalAffine: channels \(48\) must be a multiple of head_dim \(32\)"),
    (lambda: CausalAffine(dim=2, seq_len=2, channels=32, num_layers=1, affine=1), TypeError,
     "CausalAffine: affine must be True or False, got int 1"),
])
def test_bad_api_arguments(call: object, err: type, message: str) -> None:
    with pytest.raises(err, match=message):
        call()  # type: ignore[operator]
