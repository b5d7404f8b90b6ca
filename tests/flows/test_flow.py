"""Flow: composition, shape checks, densities, sampling, distribution adapter."""

from __future__ import annotations

import copy

import pytest
import torch

from flowkit import ActNorm, CausalAffine, Flow, Patchify, Permutation, TarFlow
from flowkit.testing import randomize_parameters


def test_design_example_builds_and_checks_shapes() -> None:
    flow = Flow([Patchify(4), CausalAffine(dim=16, seq_len=64, channels=128, num_layers=2),
                 Permutation.reverse(), CausalAffine(dim=16, seq_len=64, channels=128, num_layers=2)],
                event_shape=(1, 32, 32))
    assert flow.latent_shape == (64, 16)
    x = torch.randn(2, 1, 32, 32)
    z, logdet = flow(x)
    assert z.shape == (2, 64, 16) and logdet.shape == (2,)


def test_mismatch_names_both_sides() -> None:
    with pytest.raises(ValueError, match=r"bijector 1 \(CausalAffine\) expects event shape \(64, 12\), "
                                         r"but bijector 0 \(Patchify\) produces \(64, 16\)"):
        Flow([Patchify(4), CausalAffine(dim=12, seq_len=64, channels=64, num_layers=1)], event_shape=(1, 32, 32))
    with pytest.raises(ValueError, match=r"bijector 2 \(CausalAffine\) expects event shape \(8, 4\), "
                                         r"but bijector 1 \(Permutation\) produces \(16, 4\)"):
        Flow([CausalAffine(dim=4, seq_len=16, channels=64, num_layers=1), Permutation.reverse(),
              CausalAffine(dim=4, seq_len=8, channels=64, num_layers=1)])


def test_log_prob_is_base_plus_logdet_and_sample_and_log_prob_agree() -> None:
    torch.manual_seed(0)
    flow = Flow([ActNorm(3), CausalAffine(dim=3, seq_len=5, channels=64, num_layers=1)], event_shape=(5, 3))
    randomize_parameters(flow.double(), std=0.02)
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    z, logdet = flow(x)
    assert torch.allclose(flow.log_prob(x), flow.base.log_prob(z) + logdet)
    xs, lp = flow.sample_and_log_prob(6, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(lp, flow.log_prob(xs), atol=1e-9)


def test_sampling_is_reproducible_and_temperature_scales() -> None:
    model = TarFlow(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=2, layers_per_block=1)
    a = model.sample(3, generator=torch.Generator().manual_seed(0))
    b = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    cold = model.sample(3, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(cold, a * 0.5)  # the fresh model is the identity


def test_distribution_adapter() -> None:
    torch.manual_seed(0)
    model = randomize_parameters(TarFlow(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=2,
                                         layers_per_block=1, num_classes=3), std=0.05)
    dist = model.as_distribution(context=torch.tensor([0, 2]))
    assert isinstance(dist, torch.distributions.Distribution)
    x = dist.sample((5,))
    assert x.shape == (5, 2, 1, 4, 4) and dist.log_prob(x).shape == (5, 2)
    x_r = dist.rsample((1,))
    x_r.sum().backward()
    assert model.transforms[0].net.proj_out.weight.grad is not None


def test_distribution_adapter_with_context_vectors() -> None:
    """A vector context (B, C) gives batch shape (B,), not (B, C); log_prob pairs sample i with context i."""
    from flowkit import MAF

    torch.manual_seed(0)
    flow = randomize_parameters(MAF(2, context_features=3, hidden=(8,), transforms=2).double(), std=0.3)
    c = torch.randn(4, 3, dtype=torch.float64)
    dist = flow.as_distribution(context=c)
    assert dist.batch_shape == (4,) and dist.event_shape == (2,)
    x = dist.sample((5,))
    assert x.shape == (5, 4, 2)
    expected = torch.stack([flow.log_prob(x[:, i], context=c[i].expand(5, 3)) for i in range(4)], dim=1)
    torch.testing.assert_close(dist.log_prob(x), expected)


def test_state_dict_and_deepcopy_keep_log_prob(tmp_path) -> None:
    torch.manual_seed(0)
    model = randomize_parameters(TarFlow(in_channels=1, img_size=4, patch_size=2, channels=64, num_blocks=2,
                                         layers_per_block=1, nvp=False), std=0.05)
    model.base.update(torch.rand(8, 4, 4) * 3)
    x = torch.rand(3, 1, 4, 4)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    fresh = TarFlow.from_config(model.config)
    fresh.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert torch.equal(fresh.log_prob(x), model.log_prob(x))
    assert torch.equal(copy.deepcopy(model).log_prob(x), model.log_prob(x))


def _saved_bytes(fn: object) -> int:
    """Bytes of the tensors autograd saves for the backward pass while ``fn`` runs (the memory a
    recorded graph holds on to)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()  # type: ignore[operator]
    return total


def test_sampling_records_no_graph_unless_asked() -> None:
    torch.manual_seed(0)
    model = randomize_parameters(TarFlow(in_channels=1, img_size=8, patch_size=2, channels=32, num_blocks=2,
                                         layers_per_block=1, head_dim=16, num_classes=3), std=0.05)
    y = torch.tensor([0, 1, 2, 0])
    forward = _saved_bytes(lambda: model.log_prob(torch.rand(4, 1, 8, 8), y))
    assert forward > 0
    for call in (lambda: model.sample(4, y), lambda: model.sample_and_log_prob(4, y),
                 lambda: model.inverse(torch.randn(4, 16, 4), y, guidance=1.0)):
        assert _saved_bytes(call) == 0
    x = model.sample(4, y)
    assert not x.requires_grad
    # Opting in records the graph through every token of every block: many times a forward pass.
    graph = _saved_bytes(lambda: model.sample(4, y, grad=True, method="sequential"))
    assert graph > 3 * forward
    assert model.sample(4, y, grad=True).requires_grad
