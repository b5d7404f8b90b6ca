"""check_bijector must fail, naming the property, on deliberately wrong bijectors."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from flowkit import Bijector, ContextSpec
from flowkit.testing import check_bijector


class Scale(Bijector):
    """y = 2x with a configurable bug."""

    def __init__(self, bug: str = "") -> None:
        super().__init__()
        self.bug = bug
        self.weight = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = x * self.weight
        if self.bug == "mix":
            y = y + x.mean(0, keepdim=True) * 0.1
        if self.bug == "anticausal":
            y = y + x.flip(1) * 0.1
        ld = torch.log(self.weight.abs()) * x[0].numel() * torch.ones(x.shape[0], dtype=x.dtype)
        if self.bug == "logdet_sign":
            ld = -ld
        if self.bug == "logdet_mean":
            ld = ld / x[0].numel()
        return y, ld

    def inverse(self, y: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = y / self.weight
        if self.bug == "inverse":
            x = x + 1e-3
        if self.bug == "mix":
            x = (y - x.mean(0, keepdim=True) * 0.1 / self.weight * 0) / self.weight
        ld = -torch.log(self.weight.abs()) * y[0].numel() * torch.ones(y.shape[0], dtype=y.dtype)
        if self.bug == "logdet_mean":
            ld = ld / y[0].numel()
        return x, ld


def data(seed: int = 0) -> Tensor:
    """A seeded (3, 4, 2) float64 batch, so no result depends on the order the tests run in."""
    return torch.randn(3, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_correct_bijector_passes() -> None:
    check_bijector(Scale(), data())


@pytest.mark.parametrize(
    "bug, prop",
    [("inverse", "round trip"), ("logdet_sign", "log-dets cancel"), ("logdet_mean", "slogdet"),
     ("mix", "round trip")],
)
def test_wrong_bijector_fails(bug: str, prop: str) -> None:
    with pytest.raises(AssertionError, match=prop):
        check_bijector(Scale(bug), data())


def test_false_causal_claim_fails() -> None:
    class AntiCausal(Scale):
        """Tokens before the last also read the last one: exact, correct log-det, not causal."""

        causal = True

        def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
            y, ld = super().forward(x)
            return torch.cat([y[:, :-1] + 0.1 * x[:, -1:], y[:, -1:]], dim=1), ld

        def inverse(self, y: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
            last = y[:, -1:] / self.weight
            x, ld = super().inverse(torch.cat([y[:, :-1] - 0.1 * last, y[:, -1:]], dim=1))
            return x, ld

    with pytest.raises(AssertionError, match="causality failed: output token 0 depends on later input token 3"):
        check_bijector(AntiCausal(), data())


def test_false_volume_preserving_claim_fails() -> None:
    b = Scale()
    b.volume_preserving = True
    with pytest.raises(AssertionError, match="volume_preserving"):
        check_bijector(b, data())


def test_batch_mixing_fails() -> None:
    class Mix(Scale):
        def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
            y, ld = super().forward(x)
            return y + x.sum(0, keepdim=True) * 0, ld + x.sum() * 1e-3 - x.sum() * 1e-3 + (x.shape[0] - 3) * 0.1

    with pytest.raises(AssertionError, match="batch independence"):
        check_bijector(Mix(), data())


def test_missing_gradient_fails() -> None:
    b = Scale()
    b.unused = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    with pytest.raises(AssertionError, match="gradients"):
        check_bijector(b, data())


def test_hidden_state_fails() -> None:
    class Leaky(Scale):
        def inverse(self, y: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
            self.cache = y
            return super().inverse(y)

    with pytest.raises(AssertionError, match="hidden state"):
        check_bijector(Leaky(), data())


class ContextShift(Bijector):
    """z = x - W c: a bijector conditioned on float context vectors (B, 2); its log-det is 0."""

    volume_preserving = True

    def __init__(self, declare: bool = True, ignore: bool = False) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.7, -1.0]], dtype=torch.float64))
        self.ignore = ignore
        if declare:
            self.context_spec = ContextSpec.vector(2)
        else:
            self.conditional = True  # conditional, but no spec: the base class only checks the batch axis

    def _shift(self, context: Tensor | None) -> Tensor:
        assert context is not None
        return (context * (0 if self.ignore else 1)) @ self.weight

    def forward(self, x: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x - self._shift(context), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, *, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z + self._shift(context), z.new_zeros(z.shape[0])


def vectors() -> Tensor:
    return torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def test_vector_context_bijector_passes() -> None:
    check_bijector(ContextShift(), torch.randn(3, 3, dtype=torch.float64), vectors())


def test_vector_context_that_is_ignored_fails() -> None:
    with pytest.raises(AssertionError, match="does not react to the context"):
        check_bijector(ContextShift(ignore=True), torch.randn(3, 3, dtype=torch.float64), vectors())


def test_vector_context_without_a_spec_fails_the_malformed_context_check() -> None:
    """Without a declared ContextSpec nothing rejects an integer vector before the maths: check_bijector
    reports the deep error it ends in."""
    with pytest.raises(AssertionError, match="an integer context vector raised RuntimeError instead of ValueError"):
        check_bijector(ContextShift(declare=False), torch.randn(3, 3, dtype=torch.float64), vectors())


def test_identical_context_vectors_are_refused() -> None:
    with pytest.raises(AssertionError, match="two distinct context vectors"):
        check_bijector(ContextShift(), torch.randn(3, 3, dtype=torch.float64), vectors()[:1].expand(3, 2))


def test_active_dropout_is_refused_and_eval_mode_passes() -> None:
    """In training mode a dropout layer is a random map: refused by name; in eval mode the same layer passes."""
    from flowkit import MaskedAutoregressive
    from flowkit.maps import AffineMap
    from flowkit.testing import randomize_parameters

    torch.manual_seed(0)
    layer = randomize_parameters(MaskedAutoregressive(3, AffineMap(), hidden=(16,), dropout=0.3).double(), std=0.3)
    with pytest.raises(ValueError, match=r"training mode with active dropout \(conditioner.dropout\).*\.eval\(\)"):
        check_bijector(layer, torch.randn(4, 3, dtype=torch.float64))
    check_bijector(layer.eval(), torch.randn(4, 3, dtype=torch.float64))
