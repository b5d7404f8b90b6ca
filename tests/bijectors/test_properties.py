"""Property tests: every bijector passes check_bijector over random shapes, sizes and seeds (float64)."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from flowkit import ActNorm, CausalAffine, Chain, ChannelCoupling, Patchify, Permutation
from flowkit.testing import check_bijector, randomize_parameters

seeds = st.integers(0, 2**16)


def _labels(batch: int, num_classes: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (batch,), generator=g)
    y[0], y[1] = 0, 1  # at least two distinct labels
    y[-1] = -1 if batch > 2 else y[-1]  # and a dropped label
    return y


def _seq(batch: int, n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@given(p=st.integers(1, 3), c=st.integers(1, 3), hp=st.integers(1, 3), wp=st.integers(1, 3), batch=st.integers(2, 4),
       seed=seeds)
def test_patchify(p: int, c: int, hp: int, wp: int, batch: int, seed: int) -> None:
    x = torch.randn(batch, c, hp * p, wp * p, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    check_bijector(Patchify(p, img_size=(hp * p, wp * p)), x)
    y, _ = Patchify(p)(x)
    expected = torch.nn.functional.unfold(x, p, stride=p).transpose(1, 2)
    assert torch.equal(y, expected)


@given(kind=st.sampled_from(["identity", "reverse", "random", "explicit"]), n=st.integers(1, 7), seed=seeds)
def test_permutation(kind: str, n: int, seed: int) -> None:
    if kind == "random":
        perm = Permutation.random(n, seed=seed)
    elif kind == "explicit":
        perm = Permutation(torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist())
    else:
        perm = getattr(Permutation, kind)()
    check_bijector(perm, _seq(3, n, 2, seed))


def test_permutation_random_is_reproducible() -> None:
    assert torch.equal(Permutation.random(10, seed=3).perm, Permutation.random(10, seed=3).perm)
    assert not torch.equal(Permutation.random(10, seed=3).perm, Permutation.random(10, seed=4).perm)


@given(n=st.integers(2, 5), d=st.integers(1, 3), layers=st.integers(1, 2), classes=st.sampled_from([0, 3]),
       affine=st.booleans(), batch=st.integers(3, 4), seed=seeds)
def test_causal_affine(n: int, d: int, layers: int, classes: int, affine: bool, batch: int, seed: int) -> None:
    torch.manual_seed(seed)
    block = CausalAffine(dim=d, seq_len=n, channels=32, num_layers=layers, head_dim=16, num_classes=classes,
                         affine=affine)
    randomize_parameters(block.double(), std=0.1, seed=seed)
    check_bijector(block, _seq(batch, n, d, seed), _labels(batch, classes, seed) if classes else None)


@given(n=st.integers(1, 4), d=st.integers(2, 5), parity=st.sampled_from([0, 1]), classes=st.sampled_from([0, 2]),
       affine=st.booleans(), seed=seeds)
def test_channel_coupling(n: int, d: int, parity: int, classes: int, affine: bool, seed: int) -> None:
    torch.manual_seed(seed)
    block = ChannelCoupling(dim=d, seq_len=n, channels=32, num_layers=1, head_dim=16, parity=parity,
                            num_classes=classes, affine=affine)
    randomize_parameters(block.double(), std=0.1, seed=seed)
    check_bijector(block, _seq(3, n, d, seed), _labels(3, classes, seed) if classes else None)


@given(d=st.integers(1, 4), n=st.integers(1, 3), seed=seeds)
def test_actnorm(d: int, n: int, seed: int) -> None:
    norm = randomize_parameters(ActNorm(d).double(), std=0.5, seed=seed)
    norm.initialized.fill_(True)
    check_bijector(norm, _seq(3, n, d, seed))


def test_actnorm_initialises_once_from_data() -> None:
    norm = ActNorm(2).double()
    x = 3 + 4 * _seq(64, 5, 2, 0)
    y, _ = norm(x)
    assert torch.allclose(y.reshape(-1, 2).mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-10)
    loc = norm.loc.detach().clone()
    norm(x + 10)
    assert torch.equal(norm.loc.detach(), loc), "re-initialised on the second batch"
    fresh = ActNorm(2).double()
    fresh.load_state_dict(norm.state_dict())
    assert bool(fresh.initialized)


@given(seed=seeds, classes=st.sampled_from([0, 2]))
def test_chain_and_inverse(seed: int, classes: int) -> None:
    torch.manual_seed(seed)
    block = randomize_parameters(CausalAffine(dim=2, seq_len=4, channels=32, num_layers=1, head_dim=16,
                                              num_classes=classes).double(), std=0.1, seed=seed)
    chain = Chain([Permutation.reverse(), block, Permutation.random(4, seed=seed)])
    ctx = _labels(3, classes, seed) if classes else None
    x = _seq(3, 4, 2, seed)
    check_bijector(chain, x, ctx)
    check_bijector(block.inv, block(x, context=ctx)[0], ctx)
