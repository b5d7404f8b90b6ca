r"""A class-conditional density of real tabular data: ``NSF(30, num_classes=2)`` on breast-cancer features.

scikit-learn's bundled Wisconsin breast-cancer data (569 tumours, 30 real features, benign or
malignant; no download) is standardised on the training split, and one neural spline flow models
:math:`p(x \mid y)` for both classes, the label being the flow's context:

.. code-block:: python

    flow = NSF(30, num_classes=2, hidden=(128, 128), dropout=0.2)
    loss = -flow.log_prob(x, context=y).mean()
    flow.eval()                                     # after training: no dropout, exact inverse
    samples = flow.sample(100, context=1)           # 100 benign-looking tumours

It reports the held-out NLL (nats per tumour) against the per-class Gaussians fitted to the same
training data, and the accuracy of the Bayes classifier :math:`\arg\max_y \log p(x \mid y) + \log p(y)`
that the flow gives for free. The data set is small (341 training tumours for 0.3M parameters), so
the MADEs use dropout (``--dropout``, default 0.2) and training keeps the parameters of the best
validation NLL. Dropout pays: held-out NLL 3.23 / -2.29 / 1.57 nats per tumour for seeds 0 / 1 / 2
against 7.00 / 3.17 / 5.21 without it (``--dropout 0``). The plot shows two features of held-out
tumours and of samples, per class.

Run ``python examples/tabular.py`` (a minute or two on a CPU) or with ``--quick``.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from flowkit import NSF, Flow
from flowkit.threads import add_threads_argument, apply_thread_policy

from _plots import Points, plot_points


def load(seed: int = 0) -> tuple[dict[str, tuple[Tensor, Tensor]], list[str]]:
    """Train / validation / test splits (60/20/20, stratified by a seeded shuffle), standardised on train."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x, y = torch.as_tensor(data.data, dtype=torch.float32), torch.as_tensor(data.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n_train, n_val = int(0.6 * len(x)), int(0.2 * len(x))
    mean, std = x[:n_train].mean(0), x[:n_train].std(0)
    x = (x - mean) / std
    cuts = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val), "test": slice(n_train + n_val, None)}
    return {k: (x[s], y[s]) for k, s in cuts.items()}, list(data.feature_names)


def gaussian_log_prob(train: tuple[Tensor, Tensor], x: Tensor, y: Tensor) -> Tensor:
    """``log p(x | y)`` under per-class Gaussians fitted to ``train`` (ridge 1e-3 on the covariance)."""
    out = torch.empty(len(x))
    for c in y.unique():
        xc = train[0][train[1] == c]
        cov = torch.cov(xc.T, correction=0) + 1e-3 * torch.eye(xc.shape[1])
        out[y == c] = torch.distributions.MultivariateNormal(xc.mean(0), cov).log_prob(x[y == c])
    return out


def bayes_accuracy(log_prob: Tensor, prior: Tensor, y: Tensor) -> float:
    """Accuracy of ``argmax_c log p(x | c) + log p(c)`` given ``log_prob`` ``(N, classes)``."""
    return ((log_prob + prior.log()).argmax(1) == y).float().mean().item()


def fit(flow: Flow, splits: dict[str, tuple[Tensor, Tensor]], steps: int, lr: float = 1e-3, seed: int = 0) -> Flow:
    """Adam on mini-batches of 64 with weight decay; returns the flow at its best validation NLL, in eval mode."""
    g = torch.Generator().manual_seed(seed)
    x, y = splits["train"]
    opt = torch.optim.AdamW(flow.parameters(), lr=lr, weight_decay=1e-4)
    best, best_state = float("inf"), copy.deepcopy(flow.state_dict())
    for step in range(steps):
        idx = torch.randint(len(x), (64,), generator=g)
        loss = -flow.log_prob(x[idx], context=y[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 49:
            flow.eval()  # scored as it will be used: without dropout
            with torch.no_grad():
                val = -flow.log_prob(*splits["val"][:1], context=splits["val"][1]).mean().item()
            flow.train()
            if val < best:
                best, best_state = val, copy.deepcopy(flow.state_dict())
    flow.load_state_dict(best_state)
    return flow.eval()


def plot(test: tuple[Tensor, Tensor], samples: dict[int, Tensor], names: list[str], path: Path,
         features: tuple[int, int] = (0, 1)) -> Path:
    """Two features of held-out data (dots) and samples (crosses) per class; returns ``path``."""
    i, j = features
    points = []
    for c, label, colour in ((0, "malignant", (200, 30, 30)), (1, "benign", (30, 90, 200))):
        points += [Points(test[0][test[1] == c][:, [i, j]], colour, f"{label}, held-out", size=12, alpha=1.0),
                   Points(samples[c][:, [i, j]], colour, f"{label}, flow samples", marker="x", size=12, alpha=0.5)]
    return plot_points(points, path, limits=(-3, 4, -3, 4),
                       labels=(f"{names[i]} (standardised)", f"{names[j]} (standardised)"))


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Fit, compare with the per-class Gaussians, plot; returns NLLs and Bayes accuracies."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="training steps of batch 64")
    p.add_argument("--quick", action="store_true", help="a short run, to check that it runs")
    p.add_argument("--out", type=Path, default=Path("runs/examples/tabular"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dropout", type=float, default=0.2, help="dropout on the MADEs' hidden units (default 0.2)")
    add_threads_argument(p)
    args = p.parse_args(argv)
    apply_thread_policy(args.threads, rows=64, width=128)  # batches of 64 rows through 128-wide MADEs
    torch.manual_seed(args.seed)
    splits, names = load(args.seed)
    dims = splits["train"][0].shape[1]
    flow = NSF(dims, num_classes=2, hidden=(128, 128), transforms=2 if args.quick else 3, dropout=args.dropout)
    flow = fit(flow, splits, 300 if args.quick else args.steps, lr=2e-3 if args.quick else 1e-3, seed=args.seed)
    x, y = splits["test"]
    prior = torch.bincount(splits["train"][1], minlength=2).float() / len(splits["train"][1])
    with torch.no_grad():
        flow_lp = torch.stack([flow.log_prob(x, context=torch.full_like(y, c)) for c in (0, 1)], dim=1)
        gauss_lp = torch.stack([gaussian_log_prob(splits["train"], x, torch.full_like(y, c)) for c in (0, 1)], dim=1)
        samples = {c: flow.sample(100, context=c, generator=torch.Generator().manual_seed(c)) for c in (0, 1)}
    result = {"test_nll": -flow_lp.gather(1, y[:, None]).mean().item(),
              "gaussian_nll": -gauss_lp.gather(1, y[:, None]).mean().item(),
              "accuracy": bayes_accuracy(flow_lp, prior, y), "gaussian_accuracy": bayes_accuracy(gauss_lp, prior, y)}
    args.out.mkdir(parents=True, exist_ok=True)
    path = plot(splits["test"], samples, names, args.out / "tabular.png")
    print(f"held-out NLL {result['test_nll']:.2f} nats per tumour (per-class Gaussians {result['gaussian_nll']:.2f}); "
          f"Bayes accuracy {result['accuracy']:.1%} (Gaussians {result['gaussian_accuracy']:.1%}); wrote {path}")
    return result


if __name__ == "__main__":
    main()
