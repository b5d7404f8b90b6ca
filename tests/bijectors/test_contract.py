"""The base class owns the bijector contract: checks once per top-level call, one host sync at most."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor

import flowkit
from flowkit import Bijector, CausalAffine, Chain, ContextSpec, Flow, Inverse, Patchify, Permutation, TarFlow
from flowkit.testing import check_bijector, randomize_parameters


@pytest.fixture
def value_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every read of a tensor value by Python (each one a host synchronisation on a GPU)."""
    reads: list[str] = []
    for name in ("__bool__", "item", "tolist", "__int__", "__float__"):
        original = getattr(torch.Tensor, name)

        def spy(self: Tensor, *args: object, _name: str = name, _original: object = original) -> object:
            reads.append(_name)
            return _original(self, *args)  # type: ignore[operator]

        monkeypatch.setattr(torch.Tensor, name, spy)
    yield reads


def conditional_tarflow() -> TarFlow:
    torch.manual_seed(0)
    return randomize_parameters(TarFlow(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=4,
                                        layers_per_block=1, head_dim=16, num_classes=3), std=0.05)


def test_log_prob_reads_values_once_and_never_with_checks_off(value_reads: list[str]) -> None:
    model = conditional_tarflow()
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, -1])
    model.log_prob(x, y)
    assert len(value_reads) == 1  # finiteness of x and the label range, in one reduction
    value_reads.clear()
    with flowkit.validating(False):
        model.log_prob(x, y)
    assert value_reads == []


def test_a_block_called_alone_is_checked_and_inside_a_flow_is_not(value_reads: list[str]) -> None:
    model = conditional_tarflow()
    block = model.transforms[1]
    h = torch.randn(2, 4, 4)
    block(h, context=torch.tensor([0, 1]))
    assert len(value_reads) == 1
    with pytest.raises(ValueError, match=r"CausalAffine: labels must lie in \[-1, 3\)"):
        block(h, context=torch.tensor([0, 3]))


def test_dtype_and_device_are_named() -> None:
    model = conditional_tarflow()
    with pytest.raises(TypeError, match=r"TarFlow: x has dtype torch.float64 but the parameters are torch.float32"):
        model.log_prob(torch.zeros(2, 1, 4, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"CausalAffine: x has dtype torch.float16"):
        model.transforms[0](torch.zeros(2, 4, 4, dtype=torch.float16))
    with pytest.raises(ValueError, match=r"TarFlow: x is on device meta but the parameters are on cpu"):
        model.log_prob(torch.zeros(2, 1, 4, 4, device="meta"))
    with pytest.raises(ValueError, match=r"TarFlow: context is on device meta"):
        model.log_prob(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long, device="meta"))


def test_sampling_options_are_rejected_by_name() -> None:
    with pytest.raises(TypeError, match=r"Patchify.inverse takes no sampling option 'guidance' \(it takes: none\)"):
        Patchify(2).inverse(torch.zeros(1, 4, 4), guidance=1.0)
    with pytest.raises(TypeError, match=r"Inverse.inverse takes no sampling option 'method'"):
        Inverse(CausalAffine(dim=2, seq_len=3, channels=32, num_layers=1, head_dim=16)).inverse(
            torch.zeros(1, 3, 2), method="bogus")
    with pytest.raises(ValueError, match=r"Inverse: method must be one of \('sequential'"):
        Inverse(CausalAffine(dim=2, seq_len=3, channels=32, num_layers=1, head_dim=16))(
            torch.zeros(1, 3, 2), method="bogus")
    with pytest.raises(TypeError, match=r"TarFlow.sample: unknown sampling option 'guidence'"):
        conditional_tarflow().sample(2, guidence=1.0)
    with pytest.raises(TypeError, match=r"sampling option guidance must be of type float, got str '1'"):
        conditional_tarflow().sample(2, guidance="1")


def test_structure_flows_through_inverse_and_chain() -> None:
    block = CausalAffine(dim=2, seq_len=3, channels=32, num_layers=1, head_dim=16, num_classes=4, affine=False)
    inv = Inverse(block)
    assert (inv.conditional, inv.causal, inv.volume_preserving) == (True, True, True)
    assert inv.context_spec == ContextSpec.labels(4) and inv.event_shape == (3, 2)
    assert inv.sampling_options == frozenset() and inv.inverse_methods == ()
    chain = Chain([Permutation.reverse(3), block])
    assert chain.conditional and chain.context_spec == ContextSpec.labels(4) and not chain.causal
    assert chain.sampling_options == block.sampling_options and chain.takes_sampling_options
    assert not Chain([Permutation.reverse(3)]).takes_sampling_options


class Scale(Bijector):
    """A user's conditional bijector on a float context vector: ``z = x * exp(w . c)`` per sample."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((features,), 0.1))
        self.context_spec = ContextSpec.vector(features)
        self.event_ndim = 1

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        assert context is not None
        s = context @ self.weight
        return x * s.exp().unsqueeze(1), s * x.shape[1]

    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        assert context is not None
        s = context @ self.weight
        return z * (-s).exp().unsqueeze(1), -s * z.shape[1]


def test_a_float_context_vector_is_declared_and_checked() -> None:
    b = Scale(3).double()
    c = torch.randn(4, 3, dtype=torch.float64)
    check_bijector(b, torch.randn(4, 2, dtype=torch.float64), c)
    with pytest.raises(ValueError, match=r"Scale: a context is required: a floating tensor \(B, 3\), got None"):
        b(torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"Scale: context must have shape \(4, 3\), got \(4, 2\)"):
        b(torch.zeros(4, 2, dtype=torch.float64), context=c[:, :2])
    bad = c.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="Scale: context has 1 non-finite value"):
        b(torch.zeros(4, 2, dtype=torch.float64), context=bad)
    with pytest.raises(ValueError, match=r"Scale: x must have 2 dimensions \(batch \+ 1 event\)"):
        b(torch.zeros(4, 2, 1, dtype=torch.float64), context=c)


def test_generated_overflow_is_reported_and_the_batch_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = randomize_parameters(Flow([CausalAffine(dim=2, seq_len=3, channels=32, num_layers=1, head_dim=16)],
                                      event_shape=(3, 2)), std=0.1)
    z = torch.randn(3, 3, 2)
    z[1, 2, 0] = float("inf")  # one sample overflows; generation must keep the others
    monkeypatch.setattr(model.base, "sample", lambda n, **kw: z)
    with pytest.warns(RuntimeWarning, match=r"Flow.sample: 1 of 3 generated samples hold non-finite values "
                                            r"\(samples \[1\]\)"):
        x = model.sample(3)
    assert torch.isfinite(x[0]).all() and torch.isfinite(x[2]).all() and not torch.isfinite(x[1]).all()
    assert torch.allclose(x[0], model.inverse(z[:1])[0], atol=1e-6)
    with pytest.raises(ValueError, match="Flow.inverse: z has 1 non-finite value"):
        model.inverse(z)  # latents passed in by the caller are checked


@pytest.mark.parametrize("build, error, message", [
    (lambda: CausalAffine(dim=True, seq_len=2, channels=32, num_layers=1), TypeError,
     "CausalAffine: dim must be a positive int, got bool True"),
    (lambda: TarFlow(1, 4, 2, 32, 1, 1, nvp="no"), TypeError, "TarFlow: nvp must be True or False, got str 'no'"),
    (lambda: TarFlow(1, 4, 2, True, 1, 1), TypeError, "TarFlow: channels must be a positive int, got bool True"),
    (lambda: Permutation([0.5, 1.5]), TypeError, r"Permutation: perm must hold ints, got 0.5 \(float\)"),
    (lambda: Permutation(kind="bogus"), ValueError, "Permutation: kind must be one of 'explicit', 'identity', "
                                                    "'reverse', 'random', got 'bogus'"),
    (lambda: Permutation.random(-1), ValueError, "Permutation.random: seq_len must be an int >= 0, got -1"),
    (lambda: Flow([Permutation.reverse()], event_shape=(-1, 2)), ValueError,
     r"Flow: event_shape\[0\] must be a positive int, got -1"),
    (lambda: Patchify(2, img_size=(4, 0)), ValueError, r"Patchify: img_size\[1\] must be a positive int, got 0"),
    (lambda: flowkit.ActNorm(2, eps=0.0), ValueError, "ActNorm: eps must be a finite float > 0"),
])
def test_constructor_arguments(build: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build()  # type: ignore[operator]


def test_a_chain_gives_each_part_the_options_it_takes() -> None:
    from flowkit import ChannelCoupling

    torch.manual_seed(0)
    chain = randomize_parameters(Chain([CausalAffine(dim=2, seq_len=3, channels=32, num_layers=1, head_dim=16),
                                        ChannelCoupling(dim=2, seq_len=3, channels=32, num_layers=1, head_dim=16)]))
    stats: dict = {}
    z = torch.randn(2, 3, 2)
    x, _ = chain.inverse(z, method="jacobi", tol=1e-7, stats=stats)  # tol and stats reach the CausalAffine only
    assert [record["method"] for record in stats["blocks"]] == ["jacobi"]
    torch.testing.assert_close(x, chain.inverse(z, method="sequential")[0], atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="ChannelCoupling.inverse takes no sampling option 'tol'"):
        chain[1].inverse(z, tol=1e-7)
