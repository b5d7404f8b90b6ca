"""Denoising: one Tweedie step with the flow's exact score."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor

import flowkit
from flowkit import ActNorm, CausalAffine, Flow, Permutation, TarFlow, denoise
from flowkit.testing import randomize_parameters


def small_tarflow(nvp: bool = True, num_classes: int = 0) -> TarFlow:
    torch.manual_seed(0)
    model = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=2, layers_per_block=1,
                    head_dim=16, nvp=nvp, num_classes=num_classes)
    return randomize_parameters(model.double(), std=0.1)


def test_exported() -> None:
    assert flowkit.denoise is denoise and flowkit.sampling.denoise is denoise and "denoise" in flowkit.__all__


def test_identity_flow_shrinks_toward_the_prior_mean() -> None:
    # A fresh TarFlow is the identity: log p(x) = log N(patchify(x); 0, diag var), score -x/var.
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    nvp = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=1, layers_per_block=1,
                  head_dim=16).double()
    torch.testing.assert_close(denoise(nvp, x, 0.3), x * (1 - 0.3**2))
    vp = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=1, layers_per_block=1,
                 head_dim=16, nvp=False).double()
    vp.base.var.copy_(torch.rand(4, 4, dtype=torch.float64) + 0.5)
    tokens = vp.patchify(x)[0]
    expected = vp.patchify.inverse(tokens - 0.3**2 * tokens / vp.base.var)[0]
    torch.testing.assert_close(denoise(vp, x, 0.3), expected)


def test_step_uses_the_exact_score() -> None:
    model, y = small_tarflow(num_classes=3), torch.tensor([0, 2])
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64) * 2 - 1
    sigma, h = 0.2, 1e-6
    out = denoise(model, x, sigma, context=y)
    for index in [(0, 0, 0, 0), (1, 0, 2, 3), (0, 0, 3, 1)]:  # central finite differences of log p
        e = torch.zeros_like(x)
        e[index] = h
        with torch.no_grad():
            fd = (model.log_prob(x + e, y) - model.log_prob(x - e, y))[index[0]] / (2 * h)
        assert abs((out[index] - x[index]) / sigma**2 - fd).item() < 1e-6


@pytest.mark.parametrize("chunk_size", [1, 2, 5])
def test_chunking_does_not_change_the_result(chunk_size: int) -> None:
    model, y = small_tarflow(num_classes=3), torch.tensor([0, 1, 2, -1, 1])
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(denoise(model, x, 0.1, context=y, chunk_size=chunk_size),
                               denoise(model, x, 0.1, context=y), rtol=1e-12, atol=1e-12)


def test_no_gradient_reaches_the_parameters_and_no_grad_or_inference_mode_callers_work() -> None:
    model = small_tarflow()
    frozen = model.transforms[0].net.proj_in.weight
    frozen.requires_grad_(False)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    expected = denoise(model, x, 0.1)
    with torch.no_grad():
        out = denoise(model, x, 0.1, chunk_size=1)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    with torch.inference_mode():
        torch.testing.assert_close(denoise(model, x.clone(), 0.1), expected, rtol=1e-12, atol=1e-12)
    assert not out.requires_grad and not x.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    leaf = x.clone().requires_grad_(True)  # an input that is part of the caller's graph stays so
    denoise(model, leaf, 0.1)
    assert leaf.requires_grad and leaf.grad is None


def test_the_flow_is_not_changed() -> None:
    # In training mode an uninitialised ActNorm would initialise itself from the batch.
    flow = Flow([ActNorm(2)], event_shape=(3, 2)).double().train()
    denoise(flow, torch.randn(4, 3, 2, dtype=torch.float64) * 5 + 3, 0.1)
    assert flow.training and not bool(flow.bijectors[0].initialized)


@pytest.mark.parametrize("kwargs, err, message", [
    (dict(sigma=-0.1), ValueError, r"sigma must be a finite float >= 0, got -0\.1"),
    (dict(sigma=float("nan")), ValueError, "sigma must be a finite float"),
    (dict(sigma=0.1, chunk_size=0), ValueError, "denoise: chunk_size must be a positive int, got 0"),
    (dict(sigma=0.1, context=torch.tensor([0])), ValueError,
     r"context must be a tensor of 2 labels to match x, got \(1,\)"),
    (dict(sigma=0.1, x=torch.zeros(2, 1, 8, 8)), ValueError,
     r"denoise: x must have shape \(B, 1, 4, 4\), got \(2, 1, 8, 8\)"),
])
def test_bad_arguments(kwargs: dict, err: type, message: str) -> None:
    model = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=1, layers_per_block=1,
                    head_dim=16, num_classes=3)
    kwargs = dict(x=torch.zeros(2, 1, 4, 4)) | kwargs
    with pytest.raises(err, match=message):
        denoise(model, **kwargs)


# -- a fitted flow: denoising moves samples toward the modes of the data -----------------------------

MODES = torch.tensor([[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]])


def mixture(n: int, g: torch.Generator, std: float = 0.35) -> Tensor:
    k = torch.randint(len(MODES), (n,), generator=g)
    return (MODES[k] + std * torch.randn(n, 2, generator=g)).unsqueeze(-1)  # event (2, 1): two 1-d tokens


def distance_to_nearest_mode(x: Tensor) -> float:
    return (x.squeeze(-1)[:, None] - MODES[None]).norm(dim=-1).min(1).values.mean().item()


@pytest.fixture
def one_thread() -> Iterator[None]:
    # Ops this small gain nothing from intra-op threads, and on a busy 2-core machine the thread
    # synchronisation alone makes the fit below 10-20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_denoising_a_fitted_mixture_moves_samples_toward_its_modes(one_thread: None) -> None:
    torch.manual_seed(0)
    blocks = [CausalAffine(dim=1, seq_len=2, channels=16, num_layers=1, head_dim=16)]
    for _ in range(2):
        blocks += [Permutation.reverse(), CausalAffine(dim=1, seq_len=2, channels=16, num_layers=1, head_dim=16)]
    flow = Flow(blocks, event_shape=(2, 1))
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(200):
        loss = -flow.log_prob(mixture(256, g)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        samples = flow.sample(1000, generator=torch.Generator().manual_seed(1))
    before = distance_to_nearest_mode(samples)
    after = distance_to_nearest_mode(denoise(flow, samples, sigma=0.3, chunk_size=250))
    assert after < 0.85 * before, (before, after)
