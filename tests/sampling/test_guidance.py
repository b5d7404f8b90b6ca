"""Guided sampling: classifier-free and attention-temperature guidance against a by-hand reference.

The reference below recomputes every token's ``(a, b)`` with full (uncached) passes of
``CausalAffine.params``, one for the conditional and one for the unconditional branch, and applies
the guidance formula of the design notes; the sampler's doubled batch, per-half query scale, KV
cache and weight schedule must reproduce it. Exactness is checked with the exact sequential solver;
the default solver must agree to its tolerance.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
import torch
from torch import Tensor

from flowkit import CausalAffine, Chain, ChannelCoupling, Guidance, TarFlow
from flowkit.nets import KVCache
from flowkit.testing import randomize_parameters

OPTIONS = [
    pytest.param(dict(guidance=1.5, guide_what="ab", attn_temp=1.0, annealed_guidance=False), id="cfg"),
    pytest.param(dict(guidance=2.0, guide_what="b", attn_temp=1.0, annealed_guidance=True), id="b-annealed"),
    pytest.param(dict(guidance=1.0, guide_what="a", attn_temp=0.7, annealed_guidance=False), id="a-temp"),
    pytest.param(dict(guidance=0.5, guide_what="ab", attn_temp=1.3, annealed_guidance=True), id="ab-temp-annealed"),
]


def tarflow(nvp: bool = True, num_classes: int = 3, seed: int = 0) -> TarFlow:
    torch.manual_seed(seed)
    model = TarFlow(in_channels=1, img_size=4, patch_size=1, channels=32, num_blocks=2, layers_per_block=1,
                    head_dim=16, nvp=nvp, num_classes=num_classes)
    return randomize_parameters(model.double(), std=0.1, seed=seed).eval()


def noise(model: TarFlow, batch: int = 3, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *model.latent_shape), generator=g, dtype=torch.float64)


def weight(options: dict[str, Any], token: int, seq_len: int) -> float:
    w = options["guidance"]
    return w * token / (seq_len - 1) if options["annealed_guidance"] else w


def guide(options: dict[str, Any], w: float, a: Tensor, b: Tensor, a_u: Tensor, b_u: Tensor) -> tuple[Tensor, Tensor]:
    if "a" in options["guide_what"]:
        a = a + w * (a - a_u)
    if "b" in options["guide_what"]:
        b = b + w * (b - b_u)
    return a, b


def branches(net: Any, y: Tensor | None, batch: int, attn_temp: float) -> tuple[Any, Any, Tensor]:
    cond = net.embed_context(y, batch) if net.class_embed is not None else None
    uncond = net.embed_context(None, batch) if net.class_embed is not None else None
    return cond, uncond, torch.full((batch, 1, 1, 1), 1.0 / attn_temp, dtype=torch.float64)


@torch.no_grad()
def causal_by_hand(block: CausalAffine, z: Tensor, y: Tensor | None, options: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """Token-by-token inverse with uncached full passes for both branches."""
    batch, n, _ = z.shape
    cond, uncond, q_u = branches(block.net, y, batch, options["attn_temp"])
    x, logdet = z.clone(), torch.zeros(batch, dtype=z.dtype)
    for j in range(1, n):  # (a_j, b_j) depend on x_{<j} only, which are final by now
        a, b = block.params(x, cond)
        a_u, b_u = block.params(x, uncond, q_u)
        a, b = guide(options, weight(options, j, n), a[:, j], b[:, j], a_u[:, j], b_u[:, j])
        x[:, j] = z[:, j] * a.exp() + b
        logdet += a.sum(-1)
    return x, logdet


@torch.no_grad()
def coupling_by_hand(block: ChannelCoupling, z: Tensor, y: Tensor | None, options: dict[str, Any]) -> Tensor:
    batch, n, _ = z.shape
    cond, uncond, q_u = branches(block.net, y, batch, options["attn_temp"])
    kept = z[..., block.cond_slice]
    a, b = block.net(kept, cond, causal=False).chunk(2, -1)
    a_u, b_u = block.net(kept, uncond, causal=False, q_scale=q_u).chunk(2, -1)
    w = torch.tensor([weight(options, j, n) for j in range(n)], dtype=z.dtype).view(n, 1)
    a, b = guide(options, w, a, b, a_u, b_u)  # type: ignore[arg-type]
    x = z.clone()
    x[..., block.trans_slice] = z[..., block.trans_slice] * a.exp() + b
    return x


def tarflow_by_hand(model: TarFlow, z: Tensor, y: Tensor | None, options: dict[str, Any]) -> Tensor:
    h = z
    for block in reversed(model.blocks):
        if isinstance(block, Chain):  # reverse, transform, reverse back
            h = causal_by_hand(block.bijectors[1], h.flip(1), y, options)[0].flip(1)
        else:
            h = causal_by_hand(block, h, y, options)[0]
    return model.patchify.inverse(h)[0]


# -- the guided batch equals separate conditional and unconditional passes ------------------------

def guided_block(conditional: bool) -> CausalAffine:
    torch.manual_seed(0)
    block = CausalAffine(dim=3, seq_len=6, channels=32, num_layers=2, head_dim=16, num_classes=4 if conditional else 0)
    return randomize_parameters(block.double(), std=0.05)


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("conditional", [True, False], ids=["cond", "uncond"])
def test_causal_affine_guidance_equals_separate_passes(options: dict[str, Any], conditional: bool) -> None:
    block = guided_block(conditional)
    z = torch.randn(3, 6, 3, dtype=torch.float64)
    y = torch.tensor([0, 3, -1]) if conditional else None
    with torch.no_grad():
        x, logdet = block.inverse(z, context=y, method="sequential", **options)
    x_ref, logdet_ref = causal_by_hand(block, z, y, options)
    torch.testing.assert_close(x, x_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(logdet, logdet_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", [m for m in CausalAffine.inverse_methods if m != "sequential"])
def test_every_inverse_method_guides_alike(method: str) -> None:
    block, options = guided_block(True), OPTIONS[3].values[0]
    z, y = torch.randn(3, 6, 3, dtype=torch.float64), torch.tensor([1, 2, -1])
    with torch.no_grad():
        x, logdet = block.inverse(z, context=y, method=method, **options)
    x_ref, logdet_ref = causal_by_hand(block, z, y, options)
    torch.testing.assert_close(x, x_ref, rtol=1e-8, atol=1e-8)  # solvers stop at tol = 1e-10 in float64
    torch.testing.assert_close(logdet, logdet_ref, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("options", OPTIONS)
def test_tarflow_guidance_equals_separate_passes(options: dict[str, Any]) -> None:
    model, y = tarflow(), torch.tensor([2, 0, -1])
    z = noise(model)
    with torch.no_grad():
        x = model.inverse(z, context=y, method="sequential", **options)
    torch.testing.assert_close(x, tarflow_by_hand(model, z, y, options), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("options", OPTIONS[:2])
def test_channel_coupling_guidance_equals_separate_passes(options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    block = randomize_parameters(ChannelCoupling(dim=4, seq_len=5, channels=32, num_layers=1, head_dim=16,
                                                 num_classes=3, parity=1).double(), std=0.2)
    z, y = torch.randn(2, 5, 4, dtype=torch.float64), torch.tensor([1, 2])
    with torch.no_grad():
        x, _ = block.inverse(z, context=y, **options)
    torch.testing.assert_close(x, coupling_by_hand(block, z, y, options), rtol=1e-10, atol=1e-10)


# -- what each option does --------------------------------------------------------------------------

def sample(model: TarFlow, y: Tensor | None, **options: Any) -> Tensor:
    """Three samples from fixed noise with the exact solver (so equalities below are exact)."""
    with torch.no_grad():
        return model.sample(3, context=y, generator=torch.Generator().manual_seed(0), method="sequential", **options)


def test_guidance_zero_is_plain_sampling() -> None:
    model, y = tarflow(), torch.tensor([0, 1, 2])
    plain = sample(model, y)
    for options in (dict(guidance=0.0), dict(guidance=0, guide_what="a", attn_temp=0.3, annealed_guidance=True)):
        assert torch.equal(sample(model, y, **options), plain)


def test_guidance_changes_conditional_samples() -> None:
    model, y = tarflow(), torch.tensor([0, 1, 2])
    plain = sample(model, y)
    assert (sample(model, y, guidance=2.0) - plain).abs().max() > 1e-2  # its direction: the test below


@pytest.mark.parametrize("guide_what", ["ab", "a", "b"])
def test_guidance_extrapolates_away_from_the_unconditional_branch(guide_what: str) -> None:
    """The sign and size of guidance, read off samples only (no internals).

    The first generated token is ``x_1 = z_1 exp(a) + b`` with ``(a, b)`` computed from token 0, which
    passes through unchanged: so ``b`` is ``x_1`` at ``z_1 = 0`` and ``a = log(x_1|_{z_1=1} - b)``.
    Guidance with weight ``w`` must give ``a + w (a - a_u)`` and ``b + w (b - b_u)``, with ``(a_u, b_u)``
    read the same way from a dropped label (``-1``), and leave the unguided part as it is.
    """
    block = guided_block(conditional=True)
    z = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    at_zero, at_one = z.clone(), z.clone()
    at_zero[:, 1], at_one[:, 1] = 0.0, 1.0

    def read(y: Tensor, **options: Any) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            b = block.inverse(at_zero, context=y, method="sequential", **options)[0][:, 1]
            return (block.inverse(at_one, context=y, method="sequential", **options)[0][:, 1] - b).log(), b

    y = torch.tensor([0, 3, 2])
    (a, b), (a_u, b_u) = read(y), read(torch.full_like(y, -1))
    assert (a - a_u).abs().min() > 1e-3 and (b - b_u).abs().min() > 1e-3  # the label matters
    for w in (0.5, 2.0):
        a_w, b_w = read(y, guidance=w, guide_what=guide_what)
        torch.testing.assert_close(a_w, a + w * (a - a_u) if "a" in guide_what else a, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(b_w, b + w * (b - b_u) if "b" in guide_what else b, rtol=1e-10, atol=1e-10)


def test_attention_temperature_guides_an_unconditional_model() -> None:
    model = tarflow(num_classes=0)
    plain = sample(model, None)
    assert (sample(model, None, guidance=1.0, attn_temp=0.5) - plain).abs().max() > 1e-3
    # At temperature 1 both branches are the same model: guidance then does nothing.
    torch.testing.assert_close(sample(model, None, guidance=1.0, attn_temp=1.0), plain, rtol=1e-12, atol=1e-12)


def test_annealed_schedule_weights() -> None:
    assert Guidance(2.0, annealed_guidance=True).weights(5).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert Guidance(2.0).weights(4).tolist() == [2.0] * 4
    assert Guidance(3.0, annealed_guidance=True).weights(1).tolist() == [0.0]
    model, y = tarflow(), torch.tensor([0, 1, 2])
    constant, annealed = sample(model, y, guidance=2.0), sample(model, y, guidance=2.0, annealed_guidance=True)
    assert (constant - annealed).abs().max() > 1e-3


def test_guide_what_changes_only_its_part() -> None:
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    doubled_a, doubled_b = torch.cat([a, a - 1]), torch.cat([b, b + 1])
    ga, gb = Guidance(2.0, "a").combine(doubled_a, doubled_b, 2.0)
    assert torch.equal(ga, a + 2.0) and torch.equal(gb, b)
    ga, gb = Guidance(2.0, "b").combine(doubled_a, doubled_b, 2.0)
    assert torch.equal(ga, a) and torch.equal(gb, b - 2.0)
    # A volume-preserving model has a = 0 in both branches: guiding only `a` changes nothing.
    vp, y = tarflow(nvp=False), torch.tensor([0, 1, 2])
    plain = sample(vp, y)
    torch.testing.assert_close(sample(vp, y, guidance=2.0, guide_what="a"), plain, rtol=1e-12, atol=1e-12)
    assert (sample(vp, y, guidance=2.0, guide_what="b") - plain).abs().max() > 1e-3


def test_guided_samples_do_not_depend_on_the_rest_of_the_batch() -> None:
    model, y = tarflow(), torch.tensor([2, 0, 1])
    z = noise(model)
    with torch.no_grad():
        batch = model.inverse(z, context=y, guidance=1.5, attn_temp=0.8, method="sequential")
        alone = model.inverse(z[1:2], context=y[1:2], guidance=1.5, attn_temp=0.8, method="sequential")
    torch.testing.assert_close(alone, batch[1:2], rtol=1e-10, atol=1e-10)


def test_vp_prior_variance_scales_sampling_noise() -> None:
    model = tarflow(nvp=False)
    g = torch.Generator().manual_seed(3)
    model.base.var.copy_(torch.rand(model.latent_shape, generator=g, dtype=torch.float64) * 3 + 0.2)
    eps = torch.randn((3, *model.latent_shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        for temperature in (1.0, 0.5):
            drawn = model.sample(3, temperature=temperature, generator=torch.Generator().manual_seed(0))
            by_hand = model.inverse(eps * model.base.var.sqrt() * temperature)
            torch.testing.assert_close(drawn, by_hand, rtol=1e-12, atol=1e-12)
    fresh = TarFlow(in_channels=1, img_size=4, patch_size=1, channels=32, num_blocks=1, layers_per_block=1,
                    head_dim=16, nvp=False).double()  # the identity map: samples are the scaled noise
    fresh.base.var.fill_(4.0)
    with torch.no_grad():
        x = fresh.sample(2000, generator=torch.Generator().manual_seed(0))
    assert abs(x.std().item() - 2.0) < 0.05


# -- the KV cache lives only inside one call ----------------------------------------------------------

def snapshot(model: torch.nn.Module) -> tuple[dict[str, tuple], dict[str, Tensor]]:
    layout = {name: (sorted(vars(m)), sorted(m._parameters), sorted(m._buffers), sorted(m._modules))
              for name, m in model.named_modules()}
    return layout, {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(before: tuple[dict[str, tuple], dict[str, Tensor]], model: torch.nn.Module) -> None:
    layout, state = snapshot(model)
    assert layout == before[0], "a sampling call left attributes on a module"
    assert state.keys() == before[1].keys() and all(torch.equal(state[k], before[1][k]) for k in state)


@pytest.fixture
def caches(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref]:
    """Weak references to every KV cache created while the test runs."""
    created: list[weakref.ref] = []
    init = KVCache.__init__

    def tracked_init(self: KVCache, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        created.append(weakref.ref(self))

    monkeypatch.setattr(KVCache, "__init__", tracked_init)
    return created


def assert_caches_freed(caches: list[weakref.ref]) -> None:
    assert caches, "sampling created no KVCache: update this test to the cache the sampler uses"
    gc.collect()
    assert all(ref() is None for ref in caches), "a KV cache outlived its sampling call"


@pytest.mark.parametrize("method, grad", [("sequential", False), ("auto", True)])
def test_sampling_leaves_no_state_even_after_an_exception(method: str, grad: bool, caches: list[weakref.ref]) -> None:
    model, y = tarflow(), torch.tensor([0, 1, 2])
    z = noise(model)
    before = snapshot(model)
    with torch.set_grad_enabled(grad):
        expected = model.inverse(z, context=y, guidance=1.0, method=method).detach()
    assert_same(before, model)
    assert_caches_freed(caches)
    caches.clear()

    calls = 0

    def fail_midway(*_: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # mid-way through the last block sampled: its cache holds some tokens
            raise RuntimeError("boom")

    handle = model.transforms[0].net.transformer.layers[0].mlp.register_forward_hook(fail_midway)
    try:
        with torch.set_grad_enabled(grad):
            model.inverse(z, context=y, guidance=1.0, method=method)
    except RuntimeError as e:
        assert "boom" in str(e)
    else:
        pytest.fail("the hook did not raise")
    finally:
        handle.remove()
    assert calls == 2
    assert_same(before, model)
    assert_caches_freed(caches)
    with torch.set_grad_enabled(grad):
        again = model.inverse(z, context=y, guidance=1.0, method=method).detach()
    assert torch.equal(again, expected)
