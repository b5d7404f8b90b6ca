"""Transformer internals: cached steps over segments (rewritten as Jacobi solvers do) equal one
parallel pass, in both KV-cache modes; precomputed embedding biases equal the plain embedding."""

from __future__ import annotations

import pytest
import torch

from flowkit.nets import KVCache, TransformerConditioner
from flowkit.nets.transformer import offset_causal_mask
from flowkit.testing import randomize_parameters


def conditioner(num_classes: int = 3) -> TransformerConditioner:
    torch.manual_seed(0)
    net = TransformerConditioner(in_dim=3, out_dim=6, seq_len=9, channels=32, num_layers=2, head_dim=16,
                                 num_classes=num_classes)
    return randomize_parameters(net.double(), std=0.1)


def test_offset_causal_mask() -> None:
    assert offset_causal_mask(3, 2).int().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert offset_causal_mask(1, 4) is None and offset_causal_mask(4, 0) is None


# Segments as (start, length), in call order: rewrites start inside, at and before earlier ones.
SCHEDULES = [
    pytest.param([(0, 1)] + [(i, 1) for i in range(1, 9)], id="token-by-token"),
    pytest.param([(0, 4), (0, 4), (3, 6), (5, 4)], id="segments-rewritten"),
    pytest.param([(0, 9), (2, 7), (2, 3), (4, 5)], id="sliding-window"),
]


@pytest.mark.parametrize("grad", [False, True], ids=["inplace-cache", "list-cache"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_cached_steps_equal_the_parallel_pass(schedule: list[tuple[int, int]], grad: bool) -> None:
    net = conditioner()
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    cond = net.embed_context(torch.tensor([0, 2]), 2)
    expected = net(x, cond, causal=True)
    with torch.set_grad_enabled(grad):
        cache = net.new_cache(2, torch.float64, x.device)
        assert cache.inplace is not grad
        for start, length in schedule:
            garbage = torch.randn(2, 9, 3, dtype=torch.float64)  # later tokens must not matter
            inp = torch.cat([x[:, :start + length], garbage[:, start + length:]], dim=1)
            out = net.step(inp[:, start:start + length], cond, cache, start)
            assert torch.allclose(out, expected[:, start:start + length], atol=1e-12), (start, length)


@pytest.mark.parametrize("num_classes", [0, 3])
@pytest.mark.parametrize("guided", [False, True])
def test_branch_embeddings_share_the_input_between_branches(num_classes: int, guided: bool) -> None:
    net = conditioner(num_classes)
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    cond = net.embed_context(torch.tensor([0, 1, 2, -1]), 4) if num_classes else None
    branches = net.branch_embeddings(cond, guided=guided)
    assert branches.shape == (2 if guided else 1, 4 if num_classes else 1, 1, 32)
    conds = [cond]
    if guided:
        conds.append(net.embed_context(None, 4) if num_classes else None)
    expected = torch.cat([net.embed(x[:, 2:5], c, start=2) for c in conds])
    assert torch.equal(net.embed(x[:, 2:5], None, start=2, branches=branches), expected)  # same additions, same order
    cache = net.new_cache(branches.shape[0] * 4, torch.float64, x.device)
    net.step(x[:, :2], None, cache, 0, branches=branches)
    stepped = net.step(x[:, 2:5], None, cache, 2, branches=branches)
    full = torch.cat([net(x, c, causal=True) for c in conds])[:, 2:5]
    assert torch.allclose(stepped, full, atol=1e-12)


def test_kv_cache_trims_an_entry_that_straddles_a_rewrite() -> None:
    with torch.enable_grad():
        cache = KVCache(1, 1, 1, 8, 2, torch.float64, torch.device("cpu"))
    kv = torch.arange(24, dtype=torch.float64).view(2, 1, 1, 6, 2)
    cache.update(0, 0, kv)
    out = cache.update(0, 4, -kv[:, :, :, :3])
    assert torch.equal(out, torch.cat([kv[:, :, :, :4], -kv[:, :, :, :3]], dim=3))
