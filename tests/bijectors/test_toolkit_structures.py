"""The general structures (autoregressive, coupling) with any map and any conditioner: the bijector
contract, causality, label and vector context, and the conditioner protocol (float64)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from flowkit import Chain, Coupling, FeaturePermutation, MaskedAutoregressive
from flowkit.maps import AffineMap, RQSplineMap, ShiftMap
from flowkit.nets import MADE, MLPConditioner
from flowkit.testing import check_autoregressive, check_bijector, randomize_parameters

seeds = st.integers(0, 2**16)
MAPS = {"affine": AffineMap, "shift": ShiftMap, "spline": lambda: RQSplineMap(bins=4, bound=2.0)}
maps = st.sampled_from(sorted(MAPS))


def _x(*shape: int, seed: int) -> Tensor:
    return 1.5 * torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _labels(batch: int, num_classes: int) -> Tensor:
    y = torch.arange(batch) % num_classes
    y[-1] = -1  # a dropped label
    return y


# The three context kinds every conditional structure takes: none, labels (B,) of 3 classes, vectors (B, 2).
contexts = st.sampled_from(["none", "labels", "vector"])
CONTEXT_ARGS = {"none": {}, "labels": {"num_classes": 3}, "vector": {"context_features": 2}}


def _context(kind: str, batch: int, seed: int) -> Tensor | None:
    return {"none": None, "labels": _labels(batch, 3), "vector": _x(batch, 2, seed=seed + 1)}[kind]


@given(d=st.integers(1, 4), name=maps, kind=contexts, reverse=st.booleans(), residual=st.booleans(), seed=seeds)
def test_masked_autoregressive(d: int, name: str, kind: str, reverse: bool, residual: bool, seed: int) -> None:
    order = torch.arange(d).flip(0) if reverse else None
    layer = MaskedAutoregressive(d, MAPS[name](), hidden=(8, 8), order=order, residual=residual, **CONTEXT_ARGS[kind])
    randomize_parameters(layer.double(), std=0.3, seed=seed)
    x, ctx = _x(4, d, seed=seed), _context(kind, 4, seed)
    check_bijector(layer, x, ctx)
    check_autoregressive(layer, x, ctx)
    check_autoregressive(layer.conditioner, x, ctx)
    assert layer.causal == (not reverse or d == 1)


@given(d=st.integers(2, 5), n=st.sampled_from([0, 3]), name=maps, kind=contexts, seed=seeds)
def test_coupling_on_vectors_and_tokens(d: int, n: int, name: str, kind: str, seed: int) -> None:
    mask = torch.rand(d, generator=torch.Generator().manual_seed(seed)) < 0.5
    mask[0], mask[-1] = True, False  # at least one kept and one transformed feature
    layer = randomize_parameters(Coupling(d, MAPS[name](), mask=mask, hidden=(8,), **CONTEXT_ARGS[kind]).double(),
                                 std=0.3, seed=seed)
    x, ctx = (_x(3, n, d, seed=seed) if n else _x(3, d, seed=seed)), _context(kind, 3, seed)
    y, _ = layer(x, context=ctx)
    assert torch.equal(y[..., mask], x[..., mask]), "kept features changed"
    check_bijector(layer, x, ctx)


@given(d=st.integers(1, 4), seed=seeds)
def test_feature_permutation(d: int, seed: int) -> None:
    perm = FeaturePermutation.random(d, seed=seed)
    check_bijector(perm, _x(3, d, seed=seed))
    x = _x(2, d, seed=seed)
    assert torch.equal(perm(x)[0], x[:, perm.perm])


def test_stack_with_permutations_passes_check_bijector() -> None:
    torch.manual_seed(0)
    chain = Chain([MaskedAutoregressive(3, RQSplineMap(bins=3), hidden=(8,)), FeaturePermutation.reverse(3),
                   Coupling(3, AffineMap(), hidden=(8,))])
    check_bijector(randomize_parameters(chain.double(), std=0.3), _x(4, 3, seed=0))


@pytest.mark.parametrize("structure", ["autoregressive", "coupling"])
def test_vector_context(structure: str) -> None:
    """Float context vectors (B, C): the output follows the context, the inverse is exact, and a
    missing or malformed context is rejected."""
    torch.manual_seed(0)
    cls = MaskedAutoregressive if structure == "autoregressive" else Coupling
    layer = randomize_parameters(cls(3, RQSplineMap(bins=4), hidden=(8,), context_features=2).double(), std=0.3)
    assert layer.conditional and layer.context_kind == "vector"
    x, c = _x(4, 3, seed=1), _x(4, 2, seed=2)
    z, ld = layer(x, context=c)
    x_back, ld_inv = layer.inverse(z, context=c)
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(ld + ld_inv, torch.zeros(4, dtype=torch.float64))
    assert not torch.allclose(layer(x, context=c + 1)[0], z), "the output ignores the context"
    # Batch independence: each sample's context is its own.
    torch.testing.assert_close(layer(x[:1], context=c[:1])[0], z[:1])
    for bad, error in ((None, ValueError), (c[:, :1], ValueError), (c[:3], ValueError),
                       (torch.tensor([0, 1, 0, 1]), TypeError), (c.float(), TypeError)):
        with pytest.raises(error, match="context"):
            layer(x, context=bad)
    check_bijector(layer, x, c)


class TwoPassConditioner(nn.Module):
    """A user conditioner following the protocol: params of feature d from x[:, :d] via cumulative sums."""

    def __init__(self, features: int, num_params: int, leak: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(0.3 * torch.randn(features, num_params, dtype=torch.float64))
        self.features, self.leak = features, leak

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        before = torch.cumsum(x, dim=-1) - x  # sum of the features before d: causal
        if self.leak:
            before = before + 0.1 * x.flip(-1)  # reads later features: breaks causality
        return torch.tanh(before).unsqueeze(-1) * self.weight


def test_user_conditioner_protocol() -> None:
    layer = MaskedAutoregressive(4, AffineMap(), conditioner=TwoPassConditioner(4, 2))
    x = _x(3, 4, seed=0)
    check_bijector(layer, x)
    check_autoregressive(layer.conditioner, x)
    coupling = Coupling(4, ShiftMap(), conditioner=MLPConditioner(2, 2, 1, hidden=(8,)).double())
    check_bijector(randomize_parameters(coupling, std=0.3), x)


def test_a_conditioner_that_breaks_causality_is_caught() -> None:
    leaky = MaskedAutoregressive(4, AffineMap(), conditioner=TwoPassConditioner(4, 2, leak=True))
    x = _x(3, 4, seed=0)
    with pytest.raises(AssertionError, match="depend"):
        check_autoregressive(leaky.conditioner, x)
    with pytest.raises(AssertionError, match="depends on input feature"):
        check_autoregressive(leaky, x)
    with pytest.raises(AssertionError, match="round trip|causality"):
        check_bijector(leaky, x)


def test_made_orders_and_degrees() -> None:
    """MADE's masks give exactly the allowed connections: each output reads every earlier input."""
    made = randomize_parameters(MADE(4, 3, hidden=(12, 12), order=[3, 1, 0, 2]).double(), std=0.5)
    x = _x(2, 4, seed=0)
    jac = torch.autograd.functional.jacobian(lambda v: made(v.unsqueeze(0)).squeeze(0), x[0])  # (D, P, D)
    depends = jac.abs().amax(1) > 0
    rank = torch.argsort(torch.tensor([3, 1, 0, 2]))
    torch.testing.assert_close(depends, rank.unsqueeze(1) > rank.unsqueeze(0))


def test_conditioner_output_shape_is_checked() -> None:
    layer = MaskedAutoregressive(3, RQSplineMap(bins=4), conditioner=MADE(3, 2))
    with pytest.raises(ValueError, match=r"must return parameters of shape \(2, 3, 11\).*got \(2, 3, 2\)"):
        layer(torch.randn(2, 3))


@pytest.mark.parametrize("make, match", [
    (lambda: MaskedAutoregressive(0, AffineMap()), "features"),
    (lambda: MaskedAutoregressive(2, "affine"), "map"),  # type: ignore[arg-type]
    (lambda: MaskedAutoregressive(2, AffineMap(), num_classes=2, context_features=3), "not both"),
    (lambda: MaskedAutoregressive(2, AffineMap(), conditioner=MADE(2, 2), order=[1, 0]), "order"),
    (lambda: Coupling(1, AffineMap()), "features"),
    (lambda: Coupling(3, AffineMap(), mask=[True, True, True]), "mask"),
    (lambda: FeaturePermutation([0, 0]), "perm"),
    (lambda: MADE(3, 2, hidden=(8, 16), residual=True), "residual"),
])
def test_bad_arguments(make, match: str) -> None:  # noqa: ANN001
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_unconditional_rejects_a_context_and_shapes_are_checked() -> None:
    layer = MaskedAutoregressive(3, AffineMap())
    with pytest.raises(ValueError, match="unconditional"):
        layer(torch.randn(2, 3), context=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        layer(torch.randn(2, 4))
    with pytest.raises(ValueError, match="last event axis of 3"):
        Coupling(3, AffineMap())(torch.randn(2, 4))
