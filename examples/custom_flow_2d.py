r"""A flow built by hand from flowkit bijectors over 2-D vectors, fitted to "two moons", with a density plot.

The flow maps a point :math:`x \in \mathbb R^2` (a batch is ``(B, 2)``) to a latent :math:`z` with

1. :class:`~flowkit.ActNorm` ``(2)``: a per-feature affine map set from the first batch, so the
   blocks below see standardised data;
2. ``num_blocks`` times:

   - a spline :class:`~flowkit.MaskedAutoregressive` layer: a rational-quadratic spline
     (:class:`~flowkit.RQSplineMap`) of each feature, its knots predicted by a masked MLP
     (:class:`~flowkit.nets.MADE`) from the features before it: :math:`x_0` alone, then
     :math:`x_1 \mid x_0`;
   - :class:`~flowkit.FeaturePermutation` ``.reverse(2)``: swap the two features, so the next
     layer transforms them the other way round;
   - an affine :class:`~flowkit.Coupling` whose conditioner is :class:`CouplingNet`, a network
     written here: it keeps the first feature and moves and scales the second by
     :math:`z_1 = (x_1 - b(x_0))\, e^{-a(x_0)}`.

Any ``nn.Module`` can be a conditioner if it follows the protocol of docs/building-blocks.md:
called as ``conditioner(x, context)``, it returns the map's parameters of shape
``(*x.shape[:-1], D_out, map.num_params)``; for a coupling, ``x`` holds the kept features and
``D_out`` is the number of transformed ones (here ``(B, 1) -> (B, 1, 2)``: a log-scale and a shift).
Training maximises the exact log-likelihood

.. math:: \log p(x) = \log \mathcal N(f(x); 0, I) + \textstyle\sum_t \log |\det \partial f_t / \partial x_{t-1}| .

Run ``python examples/custom_flow_2d.py`` (about a minute on a CPU) or with ``--quick``; it writes
``density.png`` (learned density, and data against samples) to ``--out``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from flowkit import ActNorm, AffineMap, Bijector, Coupling, FeaturePermutation, Flow, MaskedAutoregressive, RQSplineMap
from flowkit.data import toy_2d
from flowkit.nets import MADE
from flowkit.threads import add_threads_argument, apply_thread_policy

from _plots import Points, plot_density

#: The plot window around the moons ``(x_min, x_max, y_min, y_max)``.
LIMITS = (-1.5, 2.5, -1.0, 1.5)


class CouplingNet(nn.Module):
    r"""A hand-written coupling conditioner: an MLP from the kept features to the map's parameters.

    It follows the conditioner protocol: ``forward(x, context)`` takes the kept features ``x``
    ``(B, kept)`` and returns ``(B, changed, num_params)``. Its last layer starts at zero, so a fresh
    coupling with an :class:`~flowkit.AffineMap` (parameters log-scale and shift) is the identity.

    Args:
        kept: how many features the coupling keeps (the input width).
        changed: how many it transforms.
        num_params: the map's parameters per feature (``AffineMap.num_params`` is 2).
        hidden: the width of the two hidden layers.

    Examples:
        >>> net = CouplingNet(kept=1, changed=1, num_params=2)
        >>> tuple(net(torch.randn(5, 1), None).shape)
        (5, 1, 2)
    """

    def __init__(self, kept: int, changed: int, num_params: int, hidden: int = 64) -> None:
        super().__init__()
        out = nn.Linear(hidden, changed * num_params)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(nn.Linear(kept, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), out)
        self.changed, self.num_params = changed, num_params

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        """Parameters ``(B, changed, num_params)`` for the kept features ``x`` ``(B, kept)``.

        ``context`` is what the flow was given (here always ``None``: this flow is unconditional).
        """
        return self.net(x).unflatten(-1, (self.changed, self.num_params))


def build_flow(num_blocks: int = 2, hidden: int = 64, bins: int = 8) -> Flow:
    """ActNorm, then ``num_blocks`` x (spline autoregressive layer, feature swap, affine coupling).

    Args:
        num_blocks: how many (autoregressive, swap, coupling) groups.
        hidden: the width of the hidden layers of every conditioner.
        bins: the spline's bins.

    Examples:
        >>> flow = build_flow()
        >>> sum(p.numel() for p in flow.parameters()), tuple(flow.log_prob(torch.randn(3, 2)).shape)
        (23524, (3,))
    """
    layers: list[Bijector] = [ActNorm(2)]
    for _ in range(num_blocks):
        spline, affine = RQSplineMap(bins=bins, bound=4.0), AffineMap()
        layers += [MaskedAutoregressive(2, spline, conditioner=MADE(2, spline.num_params, hidden=(hidden, hidden))),
                   FeaturePermutation.reverse(2),
                   Coupling(2, affine, conditioner=CouplingNet(1, 1, affine.num_params, hidden), mask=[True, False])]
    return Flow(layers, event_shape=(2,))


def fit(flow: Flow, data: Tensor, steps: int, batch_size: int = 256, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Maximum likelihood with Adam and a cosine schedule; returns the loss (nats per point) per step."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    flow.train()
    for _ in range(steps):
        loss = -flow.log_prob(data[torch.randint(len(data), (batch_size,), generator=g)]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Fit the flow and write the plot; returns the last training NLL and the held-out log-likelihood (nats)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="training steps of batch 256")
    p.add_argument("--quick", action="store_true", help="a short run (seconds), to check that it runs")
    p.add_argument("--out", type=Path, default=Path("runs/examples/custom_flow_2d"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    add_threads_argument(p)
    args = p.parse_args(argv)
    apply_thread_policy(args.threads, rows=256, width=64)  # batches of 256 points through 64-wide MLPs
    steps = 200 if args.quick else args.steps
    torch.manual_seed(args.seed)  # the conditioners' initial weights
    data, held_out = toy_2d("moons", 20_000, seed=args.seed), toy_2d("moons", 5000, seed=args.seed + 1)
    flow = build_flow()
    losses = fit(flow, data, steps, seed=args.seed)
    flow.eval()
    with torch.no_grad():
        test = flow.log_prob(held_out).mean().item()
        samples = flow.sample(2000, generator=torch.Generator().manual_seed(args.seed))
    args.out.mkdir(parents=True, exist_ok=True)
    path = plot_density(flow.log_prob, [Points(held_out, (0, 0, 0), "data"), Points(samples, (220, 30, 30), "samples")],
                        args.out / "density.png", limits=LIMITS)
    print(f"trained {steps} steps: train NLL {losses[-1]:.3f} nats, held-out log-likelihood {test:.3f} nats "
          f"per point; wrote {path}")
    return {"train_nll": losses[-1], "test_log_prob": test}


if __name__ == "__main__":
    main()
