"""The command line's numbers: each ``flowkit sample`` flag changes the samples as it should, and
``flowkit eval`` reports the held-out split's scores.

Checked against independent paths: the samples against ``model.sample`` called with the same options,
guidance against the model's own Bayes posterior of the requested class, eval against
:func:`flowkit.metrics.evaluate_bpd` / :func:`~flowkit.metrics.bayes_accuracy` on a split computed
here. One conditional model is trained for 300 steps (enough for guidance to have a visible effect),
one unconditional model for 20.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from flowkit.cli.main import main
from flowkit.data import load_dataset, train_val_split
from flowkit.metrics import bayes_accuracy, evaluate_bpd
from flowkit.metrics.classification import class_log_probs
from flowkit.training import apply_overrides, load_config, load_trained, train

SMALL = dict(channels=32, num_blocks=2, layers_per_block=1, head_dim=32, batch_size=64, warmup_steps=10, lr=2e-3,
             log_every=50, eval_every=0, sample_every=0)


def _train(out: Path, **kw: Any) -> Path:
    train(apply_overrides(load_config("digits"), {**SMALL, "out": str(out), **kw}), progress=False)
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def conditional(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint of a class-conditional run (300 steps, about 7 s)."""
    return _train(tmp_path_factory.mktemp("cli") / "conditional", max_steps=300)


@pytest.fixture(scope="module")
def unconditional(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint of an unconditional run (20 steps)."""
    return _train(tmp_path_factory.mktemp("cli") / "unconditional", max_steps=20, num_classes=0)


_files = itertools.count()


def sample(checkpoint: Path, tmp_path: Path, *flags: str) -> tuple[Tensor, Tensor]:
    """``flowkit sample CHECKPOINT --no-denoise FLAGS`` into an .npz; returns its (x, y)."""
    out = tmp_path / f"samples_{next(_files)}.npz"
    assert main(["sample", str(checkpoint), "--no-denoise", "--out", str(out), *flags]) == 0
    data = np.load(out)
    return torch.from_numpy(data["x"]), torch.from_numpy(data["y"])


def evaluate(checkpoint: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, Any]:
    """The numbers ``flowkit eval`` reports, as a dict (the one place that knows its output format)."""
    capsys.readouterr()
    assert main(["eval", str(checkpoint), "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def log_posterior(model: Any, x: Tensor, y: Tensor) -> Tensor:
    """The model's own Bayes posterior log p(y | x) under a uniform class prior, per sample."""
    with torch.no_grad():
        return class_log_probs(model, x, model.num_classes).log_softmax(1).gather(1, y[:, None]).squeeze(1)


# ---- sample ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, options", [
    pytest.param(["--guidance", "0"], dict(guidance=0.0), id="unguided"),
    pytest.param(["--guidance", "2.5"], dict(guidance=2.5), id="guidance"),
    pytest.param(["--guidance", "2", "--guide-what", "b", "--attn-temp", "0.7", "--annealed"],
                 dict(guidance=2.0, guide_what="b", attn_temp=0.7, annealed_guidance=True), id="all-guidance-flags"),
    pytest.param(["--guidance", "0", "--temperature", "0.5", "--seed", "7"], dict(temperature=0.5),
                 id="temperature-seed"),
    pytest.param(["--classes", "3,7"], dict(guidance=1.0), id="classes"),  # the run's sample_guidance, 1
])
def test_sample_is_model_sample_with_the_same_options(conditional: Path, tmp_path: Path, flags: list[str],
                                                      options: dict[str, Any]) -> None:
    """Each flag reaches ``model.sample``: the CLI's samples equal the API's with the same options
    (``--seed S`` is ``generator=torch.Generator().manual_seed(S)``)."""
    x, y = sample(conditional, tmp_path, "--num", "6", *flags)
    model, _ = load_trained(conditional)
    seed = int(flags[flags.index("--seed") + 1]) if "--seed" in flags else 0
    expected_y = torch.tensor([3, 7] * 3) if "--classes" in flags else torch.arange(6)
    assert torch.equal(y, expected_y)  # --classes cycles its labels; the default walks through the classes
    with torch.no_grad():
        expected = model.sample(6, context=expected_y, generator=torch.Generator().manual_seed(seed), **options)
    torch.testing.assert_close(x, expected.clamp(-1, 1), atol=1e-5, rtol=0)


def test_guidance_moves_samples_toward_their_class(conditional: Path, tmp_path: Path) -> None:
    """The model's own posterior of the requested class rises with the guidance weight (measured on
    40 samples: mean log p(y|x) about -2.1, -1.4, -1.0 for W = 0, 1, 2; chance is log 0.1 = -2.3)."""
    model, _ = load_trained(conditional)
    posterior = []
    for w in ("0", "1", "2"):
        x, y = sample(conditional, tmp_path, "--num", "40", "--guidance", w)
        posterior.append(log_posterior(model, x, y).mean().item())
    assert posterior[0] < posterior[1] < posterior[2], posterior
    assert posterior[2] > posterior[0] + 0.5, posterior


def test_classes_picks_the_rows(conditional: Path, tmp_path: Path) -> None:
    """``--classes 3,7`` labels the rows 3, 7, 3, ... and each row is drawn as that class: the model's
    Bayes classifier, restricted to {3, 7}, recovers the labels of guided samples."""
    model, _ = load_trained(conditional)
    x, y = sample(conditional, tmp_path, "--num", "20", "--classes", "3,7", "--guidance", "2")
    assert y.tolist() == [3, 7] * 10
    with torch.no_grad():
        scores = class_log_probs(model, x, model.num_classes)[:, [3, 7]]
    picked = torch.tensor([3, 7])[scores.argmax(1)]
    assert (picked == y).float().mean().item() >= 0.8, picked.tolist()
    swapped, _ = sample(conditional, tmp_path, "--num", "20", "--classes", "7,3", "--guidance", "2")
    assert (swapped - x).abs().max() > 0.1  # the labels, not only the printed y, changed the samples


def test_seed_reproduces_and_temperature_zero_is_the_mode(conditional: Path, tmp_path: Path) -> None:
    a, _ = sample(conditional, tmp_path, "--num", "4", "--seed", "3")
    b, _ = sample(conditional, tmp_path, "--num", "4", "--seed", "3")
    c, _ = sample(conditional, tmp_path, "--num", "4", "--seed", "4")
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 0.1
    # Temperature 0: every latent is 0, so a sample depends on its class only, not on the seed.
    cold, y = sample(conditional, tmp_path, "--num", "4", "--classes", "5", "--temperature", "0", "--seed", "1")
    cold2, _ = sample(conditional, tmp_path, "--num", "1", "--classes", "5", "--temperature", "0", "--seed", "2")
    assert y.tolist() == [5] * 4
    torch.testing.assert_close(cold, cold2.expand_as(cold), atol=1e-6, rtol=0)


def test_attention_temperature_changes_unconditional_samples(unconditional: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """For an unconditional model the attention temperature alone makes guidance's second branch: at
    temperature 1 the branches agree, so guidance would change nothing and the CLI refuses it in one
    line; at 0.5 it changes the samples, and equals the library's guided sample."""
    plain, y = sample(unconditional, tmp_path, "--num", "8")
    assert y.numel() == 0  # no labels
    capsys.readouterr()
    out = tmp_path / "refused.npz"
    assert main(["sample", str(unconditional), "--no-denoise", "--out", str(out), "--num", "8",
                 "--guidance", "2", "--attn-temp", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "changes nothing" in err[0] and not out.exists()
    hot = sample(unconditional, tmp_path, "--num", "8", "--guidance", "2", "--attn-temp", "0.5")[0]
    assert (hot - plain).abs().max() > 1e-2


# ---- eval -----------------------------------------------------------------------------------------------

def test_eval_reports_the_held_out_split(conditional: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``flowkit eval`` scores the run's held-out split, computed here from the run's config: its bits/dim
    and Bayes accuracy equal those of :mod:`flowkit.metrics` on that split, not on the training split."""
    model, cfg = load_trained(conditional)
    assert cfg is not None
    train_set, val = train_val_split(load_dataset("digits", 8, 1), cfg.val_fraction, seed=cfg.seed)
    assert len(val) == 180

    def bpd(m: Any, data: Any, seed: int = 0) -> float:
        return evaluate_bpd(m, DataLoader(data, batch_size=256), generator=torch.Generator().manual_seed(seed))

    result = evaluate(conditional, capsys)
    assert result["images"] == len(val)
    assert result["bpd"] == pytest.approx(bpd(model, val), abs=1e-9)
    assert abs(result["bpd"] - bpd(model, train_set)) > 1e-3
    assert result["bayes_acc"] == bayes_accuracy(model, DataLoader(val, batch_size=256), 10)
    # --seed picks the dequantization noise; --no-ema scores the raw weights.
    assert evaluate(conditional, capsys, "--seed", "1")["bpd"] == pytest.approx(bpd(model, val, seed=1), abs=1e-9)
    raw, _ = load_trained(conditional, ema=False)
    no_ema = evaluate(conditional, capsys, "--no-ema")["bpd"]
    assert no_ema == pytest.approx(bpd(raw, val), abs=1e-9) and abs(no_ema - result["bpd"]) > 1e-4
