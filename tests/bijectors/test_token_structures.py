"""The token structures with pluggable maps and conditioners: TokenAutoregressive / CausalTransformerFlow
(spline and affine maps, label and vector contexts, a user conditioner) and ChannelCoupling with a
spline map; guidance on a spline's raw parameters, checked through the forward pass (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from flowkit import CausalAffine, CausalTransformerFlow, ChannelCoupling, TokenAutoregressive
from flowkit.maps import AffineMap, RQSplineMap, ShiftMap
from flowkit.testing import check_bijector, randomize_parameters

N, D = 5, 3


def _x(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


CONTEXTS = {"none": ({}, None), "labels": ({"num_classes": 3}, torch.tensor([0, 2, -1])),
            "vector": ({"context_features": 2}, _x(3, 2, seed=7))}
MAPS = {"affine": AffineMap, "shift": ShiftMap, "spline": lambda: RQSplineMap(bins=4, bound=2.0)}


@pytest.mark.parametrize("kind", sorted(CONTEXTS))
@pytest.mark.parametrize("name", sorted(MAPS))
def test_causal_transformer_flow_passes_check_bijector(name: str, kind: str) -> None:
    kwargs, ctx = CONTEXTS[kind]
    torch.manual_seed(0)
    block = CausalTransformerFlow(D, N, 64, 1, map=MAPS[name](), **kwargs).double()
    randomize_parameters(block, std=0.05)
    check_bijector(block, _x(3, N, D), ctx, atol=1e-7)
    assert block.volume_preserving == (name == "shift") and block.conditional == (kind != "none")


def test_causal_affine_is_the_affine_special_case() -> None:
    """Same weights, same numbers: CausalAffine is CausalTransformerFlow with AffineMap / ShiftMap."""
    for affine, map in ((True, AffineMap()), (False, ShiftMap())):
        torch.manual_seed(0)
        a = randomize_parameters(CausalAffine(D, N, 64, 1, num_classes=3, affine=affine).double(), std=0.05)
        b = CausalTransformerFlow(D, N, 64, 1, map=map, num_classes=3).double()
        b.load_state_dict(a.state_dict())
        x, y = _x(3, N, D), torch.tensor([0, 1, 2])
        assert all(torch.equal(u, v) for u, v in zip(a(x, context=y), b(x, context=y), strict=True))


class RunningMean(nn.Module):
    """A user token conditioner: row i from the mean of tokens <= i (causal), optionally leaking token i+1."""

    def __init__(self, num_params: int, leak: bool = False) -> None:
        super().__init__()
        self.out = nn.Linear(D, D * num_params, dtype=torch.float64)
        self.num_params, self.leak = num_params, leak

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        h = x.cumsum(1) / torch.arange(1, x.shape[1] + 1, dtype=x.dtype).view(1, -1, 1)
        if self.leak:
            h = h + 0.5 * torch.roll(x, -1, dims=1)  # reads the next token: breaks causality
        if context is not None:
            h = h + context[:, :1].unsqueeze(1)
        return torch.tanh(self.out(h)).unflatten(-1, (D, self.num_params))


def test_user_conditioner_follows_the_token_protocol() -> None:
    torch.manual_seed(0)
    spline = RQSplineMap(bins=4, bound=2.0)
    block = TokenAutoregressive(D, N, spline, RunningMean(spline.num_params), context_features=2)
    check_bijector(block, _x(3, N, D), _x(3, 2, seed=3), atol=1e-7)


def test_a_user_conditioner_that_breaks_causality_is_caught() -> None:
    torch.manual_seed(0)
    block = TokenAutoregressive(D, N, AffineMap(), RunningMean(2, leak=True))
    with pytest.raises(AssertionError, match="round trip|causality"):
        check_bijector(block, _x(3, N, D))


def test_user_conditioner_output_shape_and_guidance_are_checked() -> None:
    block = TokenAutoregressive(D, N, AffineMap(), RunningMean(3))  # 3 parameters for a 2-parameter map
    with pytest.raises(ValueError, match=r"must return parameters of shape \(2, 5, 3, 2\)"):
        block(_x(2, N, D))
    block = TokenAutoregressive(D, N, AffineMap(), RunningMean(2))
    with pytest.raises(ValueError, match="guidance needs a TransformerConditioner"):
        block.inverse(_x(2, N, D), guidance=1.0)


def test_bad_construction_arguments() -> None:
    with pytest.raises(TypeError, match="map must be a flowkit.maps.ElementwiseMap"):
        CausalTransformerFlow(D, N, 64, 1, map="spline")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        CausalTransformerFlow(D, N, 64, 1, num_classes=2, context_features=2)
    with pytest.raises(TypeError, match="conditioner must be an nn.Module"):
        TokenAutoregressive(D, N, AffineMap(), lambda x, c: x)  # type: ignore[arg-type]


@pytest.mark.parametrize("guide_what", ["ab", "a"])
def test_spline_guidance_extrapolates_the_raw_parameters(guide_what: str) -> None:
    """A guided sample x solves z = tau(x; theta_c + w (theta_c - theta_u)), with both parameter sets
    recomputed here on x by full forward passes (conditional labels; mean embedding and attention
    temperature for the unconditional branch); a spline guides all its parameters whatever guide_what."""
    torch.manual_seed(0)
    block = randomize_parameters(CausalTransformerFlow(D, N, 64, 1, map=RQSplineMap(bins=4, bound=2.0),
                                                       num_classes=3).double(), std=0.05)
    z, y, w, temp = _x(3, N, D, seed=1), torch.tensor([0, 1, 2]), 1.5, 0.7
    with torch.no_grad():
        x, _ = block.inverse(z, context=y, guidance=w, guide_what=guide_what, attn_temp=temp, method="sequential")
        assert not torch.allclose(x, block.inverse(z, context=y, method="sequential")[0])
        net = block.net
        p_c = net(x, net.embed_context(y, 3), causal=True)
        q = torch.full((3, 1, 1, 1), 1.0 / temp, dtype=torch.float64)
        p_u = net(x, net.embed_context(None, 3), causal=True, q_scale=q)
        p = (p_c + w * (p_c - p_u)).unflatten(-1, (block.map.num_params, D)).transpose(-1, -2)
        p = torch.cat([torch.zeros_like(p[:, :1]), p[:, :-1]], dim=1)
        z_back, _ = block.map(x, p)
    torch.testing.assert_close(z_back, z)


def test_guidance_with_a_context_vector_uses_no_context_term_for_the_unconditional_branch() -> None:
    torch.manual_seed(0)
    block = randomize_parameters(CausalAffine(D, N, 64, 1, context_features=2).double(), std=0.05)
    z, c, w = _x(2, N, D, seed=1), _x(2, 2, seed=2), 0.5  # a mild weight keeps the check well conditioned
    with torch.no_grad():
        x, _ = block.inverse(z, context=c, guidance=w, method="sequential")
        zero = torch.zeros(2, 2, dtype=torch.float64)
        a_c, b_c = block.params(x, block.net.embed_context(c, 2))
        a_u, b_u = block.params(x, block.net.embed_context(zero, 2))
        z_back = (x - (b_c + w * (b_c - b_u))) * torch.exp(-(a_c + w * (a_c - a_u)))
    torch.testing.assert_close(z_back, z)


@pytest.mark.parametrize("kind", ["labels", "vector"])
def test_channel_coupling_with_a_spline_map(kind: str) -> None:
    kwargs, ctx = CONTEXTS[kind]
    torch.manual_seed(0)
    block = ChannelCoupling(4, N, 64, 1, parity=1, map=RQSplineMap(bins=4, bound=2.0), **kwargs).double()
    randomize_parameters(block, std=0.05)
    x = _x(3, N, 4)
    z, _ = block(x, context=ctx)
    assert torch.equal(z[..., 2:], x[..., 2:]), "parity 1 keeps the second half"
    check_bijector(block, x, ctx, atol=1e-7)
    guided = block.inverse(z, context=ctx, guidance=1.0)[0]
    assert torch.isfinite(guided).all() and not torch.allclose(guided, x)
