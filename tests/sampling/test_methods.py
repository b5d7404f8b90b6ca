"""Inverse methods: every method agrees with the exact sequential one; options, statistics and errors.

Float64 models with perturbed parameters make every block do something; a tight ``tol`` then
makes the parallel methods exact to ~1e-12, and the default ``"auto"`` must stay within 1e-3 pixel
units in float32.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from torch import Tensor

from flowkit import CausalAffine, Chain, Permutation, TarFlow
from flowkit.sampling.jacobi import METHODS, auto_window, default_tol, resolve_method, solve_autoregressive
from flowkit.testing import check_bijector, randomize_parameters

PARALLEL = [m for m in METHODS if m != "sequential"]
GUIDANCE = [
    pytest.param({}, id="unguided"),
    pytest.param(dict(guidance=1.5), id="cfg"),
    pytest.param(dict(guidance=2.0, guide_what="b", attn_temp=0.7, annealed_guidance=True), id="b-temp-annealed"),
]


def tarflow(dtype: torch.dtype = torch.float64, num_classes: int = 3, nvp: bool = True, std: float = 0.1,
            seed: int = 0) -> TarFlow:
    torch.manual_seed(seed)
    model = TarFlow(in_channels=1, img_size=4, patch_size=1, channels=32, num_blocks=2, layers_per_block=1,
                    head_dim=16, num_classes=num_classes, nvp=nvp)
    return randomize_parameters(model.to(dtype), std=std, seed=seed).eval()


def latents(model: TarFlow, batch: int = 3, seed: int = 1) -> Tensor:
    dtype = next(model.parameters()).dtype
    return torch.randn((batch, *model.latent_shape), generator=torch.Generator().manual_seed(seed), dtype=dtype)


def labels(model: TarFlow, batch: int = 3) -> Tensor | None:
    return torch.arange(batch) % model.num_classes if model.num_classes else None


def test_auto_is_the_default_and_within_1e3_pixels_of_sequential() -> None:
    assert inspect.signature(CausalAffine.inverse).parameters["method"].default == "auto"
    model = tarflow(torch.float32, std=0.05)
    z, y = latents(model, batch=8), labels(model, 8)
    with torch.no_grad():
        default = model.inverse(z, y, guidance=1.0)
        auto = model.inverse(z, y, guidance=1.0, method="auto")
        sequential = model.inverse(z, y, guidance=1.0, method="sequential")
    assert torch.equal(default, auto)
    assert (auto - sequential).abs().max() < 1e-3


def test_auto_rule_sizes_the_window_to_the_cost_of_a_pass() -> None:
    flops = 24 * 128**2  # one 128-wide layer
    assert auto_window(64, 16, flops) == 1  # CPU, batch 16: a wider pass costs more than a step
    assert auto_window(64, 1, flops) == 10 and auto_window(64, 2, flops) == 5
    assert auto_window(64, 16, flops, "cuda") == 63 and auto_window(256, 512, 24 * 768**2, "cuda") == 2
    spec = resolve_method("auto", {"tol": 1e-4}, torch.float32, 64, rows=1, row_flops=flops)
    assert (spec.name, spec.window, spec.commit, spec.tol) == ("auto", 10, "prefix", 1e-4)
    model = tarflow(torch.float32, std=0.02)  # 32 wide: row_flops = 24 * 32^2
    assert model.transforms[0].net.row_flops() == 24 * 32**2
    stats: dict[str, Any] = {}
    with torch.no_grad():
        model.inverse(latents(model, 16), labels(model, 16), stats=stats)  # 16 rows: 2**22 // (16 * 24576) = 10
        model.inverse(latents(model, 16), labels(model, 16), guidance=1.0, stats=stats)  # 32 rows: 5
    assert [b["window"] for b in stats["blocks"]] == [10, 10, 5, 5]


@pytest.mark.parametrize("options", GUIDANCE)
@pytest.mark.parametrize("method", PARALLEL)
def test_every_method_agrees_with_sequential(method: str, options: dict[str, Any]) -> None:
    # std 0.03: Jacobi stops before the last token, so the tolerance decides where (with the default
    # 1e-10 the last pass still moves tokens by ~1e-11, and the error to sequential is ~6e-12).
    model = tarflow(std=0.03)
    z, y = latents(model), labels(model)
    stats: dict[str, Any] = {}
    with torch.no_grad():
        expected = model._inverse(z, y, dict(method="sequential", **options))
        x, logdet = model._inverse(z, y, dict(method=method, tol=1e-12, stats=stats, **options))
    assert all(b["converged"] and b["residual"] <= 1e-12 for b in stats["blocks"]), stats["blocks"]
    assert torch.allclose(x, expected[0], atol=1e-12, rtol=0)  # measured: <= 3.2e-14
    assert torch.allclose(logdet, expected[1], atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", PARALLEL)
def test_unconditional_and_volume_preserving(method: str) -> None:
    model = tarflow(num_classes=0, nvp=False)
    z = latents(model)
    with torch.no_grad():
        expected = model.inverse(z, method="sequential", guidance=1.0, attn_temp=0.5)
        x = model.inverse(z, method=method, tol=1e-12, guidance=1.0, attn_temp=0.5)
    assert torch.allclose(x, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("method, key, sizes", [("gs_jacobi", "segment_size", [1, 2, 5, 15, 100]),
                                                ("sliding_jacobi", "window", [1, 3, 7, 15, 100])])
def test_segment_and_window_sizes(method: str, key: str, sizes: list[int]) -> None:
    model = tarflow()
    block = model.transforms[0]
    z, y = latents(model), labels(model)
    with torch.no_grad():
        expected, _ = block.inverse(z, context=y, method="sequential", guidance=1.0)
        for size in sizes:
            for init in ("zeros", "z"):
                x, _ = block.inverse(z, context=y, method=method, tol=1e-12, init=init, guidance=1.0, **{key: size})
                assert torch.allclose(x, expected, atol=1e-10, rtol=0), (size, init)


def test_iteration_counts_are_reported() -> None:
    model = tarflow()
    z, y = latents(model), labels(model)
    n = model.latent_shape[0]
    with torch.no_grad():
        stats: dict[str, Any] = {}
        model.inverse(z, y, method="sequential", stats=stats)
        assert [b["passes"] for b in stats["blocks"]] == [n - 1, n - 1]
        assert all(b["tokens"] == n - 1 and b["converged"] and b["residual"] == 0 for b in stats["blocks"])
        for method in PARALLEL:
            stats = {}
            model.inverse(z, y, method=method, stats=stats)
            assert len(stats["blocks"]) == 2 and all(b["method"] == method for b in stats["blocks"])
            # a causal system of n - 1 unknown tokens is solved in at most n - 1 passes
            assert all(1 <= b["passes"] <= n - 1 and b["converged"] and b["seq_len"] == n for b in stats["blocks"])
            assert all(b["residual"] < default_tol(torch.float64) for b in stats["blocks"])
        stats = {}
        model.inverse(z, y, method="jacobi", max_iter=1, stats=stats)  # stopped early: inexact, and says so
        assert [(b["passes"], b["converged"]) for b in stats["blocks"]] == [(1, False), (1, False)]
        assert stats["blocks"][0]["residual"] > 1e-3


def test_weakly_coupled_blocks_converge_in_few_passes() -> None:
    model = tarflow(std=0.01)  # close to the identity: tokens barely depend on each other
    stats: dict[str, Any] = {}
    with torch.no_grad():
        model.inverse(latents(model), labels(model), method="jacobi", tol=1e-6, stats=stats)
    assert all(b["passes"] <= 8 for b in stats["blocks"]), stats  # of 15 tokens


def test_jacobi_on_a_linear_recurrence_stops_at_tol() -> None:
    z = torch.randn(2, 40, 1, dtype=torch.float64)

    def update(inputs: Tensor, start: int) -> tuple[Tensor, Tensor]:  # x_i = z_i + x_{i-1} / 4
        return z[:, start + 1:start + 1 + inputs.shape[1]] + inputs / 4, inputs

    exact, _ = solve_autoregressive(z, update, resolve_method("sequential", {}, z.dtype, 40))
    for method in ("jacobi", "gs_jacobi", "sliding_jacobi"):
        stats: dict[str, Any] = {}
        x, _ = solve_autoregressive(z, update, resolve_method(method, {"tol": 1e-8}, z.dtype, 40), stats)
        assert (x - exact).abs().max() < 1e-8
        # the error shrinks 4x per pass: about log(1e8) / log(4) ~ 14 passes per segment, not 39
        assert stats["blocks"][0]["passes"] <= {"jacobi": 16, "gs_jacobi": 4 * 11, "sliding_jacobi": 16}[method]


def test_diverging_guesses_do_not_poison_the_solution() -> None:
    z = torch.randn(2, 12, 1, dtype=torch.float32)

    # x_i = z_i exp(x_{i-1}): blows up from bad guesses
    def update(inputs: Tensor, start: int) -> tuple[Tensor, Tensor]:
        return z[:, start + 1:start + 1 + inputs.shape[1]] * torch.exp(inputs.clamp(max=1e3)), inputs

    exact, _ = solve_autoregressive(z * 0.1, update, resolve_method("sequential", {}, z.dtype, 12))
    for method in ("jacobi", "sliding_jacobi"):
        x, _ = solve_autoregressive(z * 0.1, update, resolve_method(method, {"init": "z"}, z.dtype, 12))
        assert torch.isfinite(x).all() and torch.allclose(x, exact, atol=1e-5)


@pytest.mark.parametrize("affine", [True, False])
def test_check_bijector_compares_all_methods(affine: bool) -> None:
    block = randomize_parameters(CausalAffine(dim=2, seq_len=6, channels=32, num_layers=2, head_dim=16,
                                              num_classes=3, affine=affine).double(), std=0.1)
    assert block.inverse_methods[0] == "sequential" and set(block.inverse_methods) == set(METHODS)
    x, y = torch.randn(3, 6, 2, dtype=torch.float64), torch.tensor([0, 1, -1])
    check_bijector(block, x, y)  # compares every method in inverse_methods[1:] with the first
    chain = Chain([Permutation.reverse(6), block, Permutation.reverse(6)])
    assert chain.inverse_methods == block.inverse_methods  # the reference stays first
    check_bijector(chain, x, y, jacobian_samples=1)


def test_methods_work_with_autograd() -> None:
    model = tarflow()
    z, y = latents(model), labels(model)
    expected = model.inverse(z, y, method="sequential", guidance=1.0)
    for method in ("gs_jacobi", "sliding_jacobi"):
        zg = z.clone().requires_grad_(True)
        size = dict(segment_size=4) if method == "gs_jacobi" else dict(window=5)
        x = model.inverse(zg, y, grad=True, method=method, guidance=1.0, tol=1e-12, **size)
        assert torch.allclose(x, expected, atol=1e-10)
        (grad,) = torch.autograd.grad(x.sum(), zg)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_coupling_flows_accept_a_method_and_reject_solver_options_by_name() -> None:
    torch.manual_seed(0)
    model = TarFlow(in_channels=2, img_size=4, patch_size=2, channels=32, num_blocks=2, layers_per_block=1,
                    head_dim=16, coupling="channel")
    x = model.sample(2, method="jacobi")  # one exact parallel pass: the method is checked, then ignored
    assert x.shape == (2, 2, 4, 4)
    with pytest.raises(ValueError, match="method must be one of"):
        model.sample(2, method="bogus")
    with pytest.raises(TypeError, match="TarFlow.sample takes no sampling option 'tol'"):
        model.sample(2, method="jacobi", tol=1e-6)


@pytest.mark.parametrize("options, error, message", [
    (dict(method="magic"), ValueError,
     r"method must be one of \('sequential', 'jacobi', 'gs_jacobi', 'sliding_jacobi', 'auto'\), got 'magic'"),
    (dict(method=None), ValueError, "method must be one of"),
    (dict(method="sequential", tol=1e-3), TypeError,
     r"method 'sequential' takes no option 'tol' \(its options: none\)"),
    (dict(method="jacobi", window=4), TypeError,
     r"method 'jacobi' takes no option 'window' \(its options: tol, max_iter, init\)"),
    (dict(method="auto", max_iter=3), TypeError, r"method 'auto' takes no option 'max_iter' \(its options: tol\)"),
    (dict(method="jacobi", tol=0.0), ValueError, "tol must be a float > 0, got 0.0"),
    (dict(method="jacobi", tol="small"), TypeError, "sampling option tol must be of type float, got str 'small'"),
    (dict(method="jacobi", max_iter=0), ValueError, "max_iter must be a positive int, got 0"),
    (dict(method="gs_jacobi", segment_size=2.5), TypeError,
     "sampling option segment_size must be of type int, got float 2.5"),
    (dict(method="sliding_jacobi", window=True), TypeError,
     "sampling option window must be of type int, got bool True"),
    (dict(method="sliding_jacobi", window=0), ValueError, "window must be a positive int, got 0"),
    (dict(method="jacobi", init="ones"), ValueError, r"init must be one of \('zeros', 'z'\), got 'ones'"),
    (dict(stats=[]), TypeError, r"sampling option stats must be of type dict, got list \[\]"),
    (dict(windw=4), TypeError, "unknown sampling option 'windw'"),
])
def test_bad_methods_and_options(options: dict[str, Any], error: type[Exception], message: str) -> None:
    model = tarflow(torch.float32)
    with pytest.raises(error, match=message):
        model.sample(2, context=torch.tensor([0, 1]), **options)
    with pytest.raises(error, match="CausalAffine.inverse: " + message):
        model.transforms[0].inverse(latents(model, 2), context=torch.tensor([0, 1]), **options)
