"""What every ablation script shares: arguments, cached training runs, evaluation and reports.

Each script in this folder tests one claim of the TarFlow paper. It lists its variants
(:class:`Variant`: training-config overrides plus sampling options) and calls :func:`run_ablation`,
which for every seed and variant:

1. trains the variant with :func:`flowkit.training.train`, or reuses an identical finished run
   under ``--runs`` (a run's folder is named by a hash of its config, so the baseline that several
   scripts share trains once, and re-running a script only re-evaluates);
2. measures held-out bits/dim with uniform dequantization (:func:`flowkit.metrics.evaluate_bpd`);
3. draws class-balanced samples, applies the Tweedie denoising step when the model was trained
   with Gaussian noise, and scores them against the held-out images: Fréchet distance (FD) and
   KID on features of a small classifier trained on the same data (:mod:`flowkit.metrics.fid`);
4. saves a sample grid of the first seed;

then writes ``results.json``, ``results.md`` (a table, mean ± std over seeds) and ``results.png``
to ``--out``. Lower is better for every number in the tables.

Scales: the default trains small models on the 8x8 digits for a few minutes on a CPU; ``--quick``
runs a few steps of a tiny model (a smoke test); ``--scale PRESET`` uses a paper-sized preset of
:mod:`flowkit.training.config` (``mnist``, ``imagenet64``, ...) and is meant for a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

import flowkit
from flowkit import TarFlow
from flowkit.data import ImageDataset, load_dataset, save_grid, train_val_split
from flowkit.metrics import FeatureExtractor, InceptionExtractor, evaluate_bpd, sample_quality
from flowkit.threads import add_threads_argument, apply_thread_policy, rows_of
from flowkit.training import train
from flowkit.training.config import PRESETS, TrainConfig, apply_overrides, config_to_toml, load_config
from flowkit.training.loading import load_trained

HERE = Path(__file__).resolve().parent

#: The default scale: a small TarFlow on the 8x8 digits (patch 2, 64 wide, 4 blocks of 2 layers,
#: head size 64 as in the paper) whose one run takes one to three minutes on a shared CPU core.
#: Every field that shapes the model or its training is pinned here rather than inherited from the
#: ``digits`` preset, so the results (and the cached runs) do not move when the preset is retuned.
#: For the same compute, 64 wide beat 128 wide and batches of 32 beat batches of 64 (more steps) in
#: a few trial runs. The EMA decay is low because the trainer's EMA has no warm-up: at 0.999 the
#: averaged weights of a 1200-step run would still hold 30% of the untrained initialisation.
DEFAULT: dict[str, Any] = {
    "patch_size": 2, "channels": 64, "num_blocks": 4, "layers_per_block": 2, "head_dim": 64, "expansion": 4,
    "nvp": True, "coupling": "autoregressive", "noise": "gaussian", "sigma": 0.1, "label_drop": 0.1, "lr": 2e-3,
    "batch_size": 32, "max_steps": 1200, "warmup_steps": 50, "ema_decay": 0.99,
    "eval_every": 0, "sample_every": 0, "log_every": 100}
#: ``--quick``: a few steps of a tiny model, to check that the script runs end to end.
QUICK: dict[str, Any] = {"channels": 32, "head_dim": 32, "layers_per_block": 1, "max_steps": 4, "warmup_steps": 1,
                         "batch_size": 32, "ema_decay": 0.0, "eval_every": 0, "sample_every": 0, "log_every": 2}
#: Samples per variant (FD compares 1000 samples with the held-out images at every scale but ``--quick``).
NUM_SAMPLES = {"quick": 40, "default": 1000}
SCALE_NUM_SAMPLES = 10_000


@dataclass(frozen=True)
class Variant:
    """One arm of an ablation.

    Attributes:
        name: label in tables and plots (unique within a script).
        train: :class:`~flowkit.training.config.TrainConfig` overrides on top of the scale's config;
            variants with equal overrides share one training run.
        sample: keyword arguments of :meth:`flowkit.Flow.sample` (``guidance``, ``guide_what``,
            ``attn_temp``, ``annealed_guidance``).
        denoise: apply the Tweedie step after sampling (only for models trained with Gaussian noise).
        group: the line this variant belongs to in the plot (``""``: one point per variant).
        x: position on the plot's x axis (a number, for sweeps); ``None`` places variants side by side.
    """

    name: str
    train: Mapping[str, Any] = field(default_factory=dict)
    sample: Mapping[str, Any] = field(default_factory=dict)
    denoise: bool = True
    group: str = ""
    x: float | None = None


@dataclass(frozen=True)
class Setup:
    """The resolved command line of a script."""

    script: str
    scale: str
    base: TrainConfig
    seeds: tuple[int, ...]
    out: Path
    runs: Path
    num_samples: int
    retrain: bool
    progress: bool
    inception: Path | None


#: A script's judgement of its results: ``(verdict, sentence)`` with verdict one of ``"agrees"``,
#: ``"disagrees"``, ``"inconclusive"``.
Verdict = tuple[str, str]
Judge = Callable[[dict[str, Any]], list[Verdict]]


# --- command line -----------------------------------------------------------------------------------


def parse_args(script: str, description: str, argv: Sequence[str] | None = None) -> Setup:
    """Parse a script's command line (``--help`` lists the flags) into a :class:`Setup`."""
    p = argparse.ArgumentParser(prog=f"{script}.py", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke run: a tiny model, a few steps, one seed")
    size.add_argument("--scale", metavar="PRESET", choices=[k for k in PRESETS if k != "digits"],
                      help="paper-sized preset for a GPU: " + ", ".join(k for k in PRESETS if k != "digits"))
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default: examples/ablations/results/SCRIPT; with --quick or --scale "
                        "RUNS/results/SCRIPT-quick or -PRESET, outside the source tree)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default: 0 1; --quick: 0)")
    p.add_argument("--runs", type=Path, default=Path("runs/ablations"),
                   help="folder of cached training runs, shared by the scripts (default: runs/ablations)")
    p.add_argument("--num-samples", type=int, default=None, help="samples per variant for FD/KID")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a training-config field for every variant, e.g. --set data_root=/data")
    add_threads_argument(p)
    p.add_argument("--inception", type=Path, default=None,
                   help="local Inception-v3 weights: also report an FID comparable with published ones")
    p.add_argument("--retrain", action="store_true", help="ignore cached runs and train again")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    a = p.parse_args(argv)
    scale = "quick" if a.quick else a.scale or "default"
    if scale == "quick":
        base = apply_overrides(load_config("digits"), QUICK)
    elif scale == "default":
        base = apply_overrides(load_config("digits"), DEFAULT)
    else:
        base = load_config(scale)
    overrides: dict[str, str] = {}
    for item in a.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    try:
        base = apply_overrides(base, overrides)
    except ValueError as e:
        p.error(str(e))
    apply_thread_policy(a.threads, rows=rows_of(base.batch_size, base.img_size, base.patch_size), width=base.channels)
    seeds = tuple(a.seeds) if a.seeds else (0,) if scale == "quick" else (0, 1)
    suffix = "" if scale == "default" else f"-{scale}"
    # Only the default scale's results (read by report.py for docs/ablations.md) live in the source tree.
    results = HERE / "results" if scale == "default" else a.runs / "results"
    num = a.num_samples or NUM_SAMPLES.get(scale, SCALE_NUM_SAMPLES)
    return Setup(script=script, scale=scale, base=base, seeds=seeds, out=a.out or results / (script + suffix),
                 runs=a.runs, num_samples=num, retrain=a.retrain, progress=a.progress, inception=a.inception)


# --- training, cached -------------------------------------------------------------------------------


def run_key(cfg: TrainConfig) -> str:
    """A short hash of everything that determines a training run (the config without its folder)."""
    text = config_to_toml(dataclasses.replace(cfg, out="-"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def train_cached(cfg: TrainConfig, runs: Path, *, retrain: bool = False, progress: bool = True
                 ) -> tuple[TarFlow, TrainConfig, dict[str, Any]]:
    """Train ``cfg`` into ``runs/<hash>``, or load that run when it finished before.

    Returns:
        The model (EMA weights, eval mode), the config, and the trainer's last record plus
        ``train_s``, the wall time of training (of the original run when cached).
    """
    out = runs / run_key(cfg)
    done = out / "done.json"
    if done.is_file() and not retrain:
        record = json.loads(done.read_text())
    else:
        if out.exists():  # an interrupted or outdated run of this config: start it over cleanly
            shutil.rmtree(out)
        t0 = time.perf_counter()
        record = train(dataclasses.replace(cfg, out=str(out)), progress=progress)
        record = {**record, "train_s": time.perf_counter() - t0}
        done.write_text(json.dumps(record, indent=1))
    model, _ = load_trained(out / "checkpoint.pt")
    return model, cfg, record


# --- evaluation -------------------------------------------------------------------------------------


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def held_out(data: ImageDataset, cfg: TrainConfig) -> tuple[ImageDataset, ImageDataset]:
    """The training and held-out images of a run: the trainer's own split (seeded by ``cfg.seed``)."""
    train_set, val_set = train_val_split(data, cfg.val_fraction, seed=cfg.seed)

    def part(subset: Subset[Any]) -> ImageDataset:
        return ImageDataset(data.images[subset.indices], data.labels[subset.indices], data.num_classes)

    return part(train_set), part(val_set)


@torch.no_grad()
def draw_samples(model: TarFlow, n: int, options: Mapping[str, Any], sigma: float | None, seed: int,
                 batch_size: int = 500) -> tuple[Tensor, Tensor | None, float]:
    """``n`` samples, labels cycling through the classes (conditional models), denoised when ``sigma``.

    The sequential inverse can overflow for some latents (a large log-scale early in the sequence
    feeds the next tokens inputs unlike any training image), more so with strong guidance. Such a
    sample is a result, not an error: it is counted, its non-finite pixels are set to the nearest
    end of ``[-1, 1]`` (0 for nan), and it is scored like any other (badly).

    Returns:
        Images ``(n, C, H, W)`` (finite, not clamped), labels ``(n,)`` or ``None``, and the fraction
        of samples that overflowed.
    """
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    y = torch.arange(n, device=device) % model.num_classes if model.num_classes else None
    xs, diverged = [], 0
    for i in range(0, n, batch_size):
        yi = None if y is None else y[i:i + batch_size]
        with flowkit.validating(False):  # the flow's own checks would raise on the first inf
            x = model.sample(min(batch_size, n - i), context=yi, generator=g, **options)
            bad = ~torch.isfinite(x).flatten(1).all(1)
            diverged += int(bad.sum())
            x[bad] = x[bad].nan_to_num(0.0, 1.0, -1.0).clamp(-1, 1)
            if sigma:
                x = flowkit.denoise(model, x, sigma, context=yi).nan_to_num(0.0, 1.0, -1.0)
        xs.append(x)
    return torch.cat(xs), y, diverged / n


def _canonical_sample(options: Mapping[str, Any]) -> dict[str, Any]:
    """Sampling options with the no-op ones dropped, so that equal samplers share an evaluation."""
    opts = dict(options)
    if not opts.get("guidance"):
        opts = {k: v for k, v in opts.items() if k not in ("guidance", "guide_what", "attn_temp", "annealed_guidance")}
    return opts


#: Evaluations already done in this process, keyed by run, sampler, denoising and seed: variants
#: that differ only in options that do nothing (``w = 0`` with or without annealing) share one.
Memo = dict[tuple[str, str, float | None, int], tuple[dict[str, Any], Tensor]]


def evaluate(setup: Setup, variant: Variant, seed: int, data: ImageDataset,
             extractors: Mapping[str, Callable[[Tensor], Tensor]], grids: Path | None, memo: Memo) -> dict[str, Any]:
    """Train (or load) one variant for one seed and measure it; see the module docstring."""
    cfg = apply_overrides(setup.base, {**variant.train, "seed": seed})
    options = _canonical_sample(variant.sample)
    sigma = cfg.sigma if variant.denoise and cfg.noise == "gaussian" else None
    key = (run_key(cfg), json.dumps(options, sort_keys=True), sigma, seed)
    if key not in memo:
        model, cfg, record = train_cached(cfg, setup.runs, retrain=setup.retrain, progress=setup.progress)
        model = model.to(_device())
        _, val = held_out(data, cfg)
        t0 = time.perf_counter()
        g = torch.Generator(device=_device()).manual_seed(seed)
        bpd = evaluate_bpd(model, DataLoader(val, batch_size=256), dequantize="uniform", generator=g)
        x, _, diverged = draw_samples(model, setup.num_samples, options, sigma, seed)
        x = x.cpu()
        result: dict[str, Any] = {"seed": seed, "run": key[0], "val_bpd": bpd, "diverged": diverged}
        for name, extractor in extractors.items():
            q = sample_quality(val.images, x, extractor, generator=torch.Generator().manual_seed(seed))
            result.update({k if name == "classifier" else f"{name}_{k}": v for k, v in q.items()})
        result.update(train_s=record["train_s"], eval_s=time.perf_counter() - t0)
        memo[key] = (result, x)
    result, x = memo[key]
    if grids is not None:
        save_grid(x[:100].clamp(-1, 1), grids / f"{slug(variant.name)}.png", nrow=10, scale=max(1, 32 // cfg.img_size))
    return dict(result)


def reference(setup: Setup, data: ImageDataset, extractors: Mapping[str, Callable[[Tensor], Tensor]]
              ) -> list[dict[str, Any]]:
    """The floor of the sample metrics: real training images scored like samples, one entry per seed.

    A perfect model would score about this (FD is biased upwards by the finite sample sizes).
    """
    rows = []
    for seed in setup.seeds:
        train_set, val = held_out(data, apply_overrides(setup.base, {"seed": seed}))
        pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))[:setup.num_samples]
        row: dict[str, Any] = {"seed": seed}
        for name, extractor in extractors.items():
            q = sample_quality(val.images, train_set.images[pick], extractor,
                               generator=torch.Generator().manual_seed(seed))
            row.update({k if name == "classifier" else f"{name}_{k}": v for k, v in q.items()})
        rows.append(row)
    return rows


# --- summaries and verdicts -------------------------------------------------------------------------

METRICS = ("val_bpd", "fd", "kid", "inception_fd", "diverged")


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample std over seeds (std 0 for one seed) of every metric present."""
    out: dict[str, dict[str, float]] = {}
    for key in (*METRICS, "train_s", "eval_s"):
        values = [float(r[key]) for r in runs if key in r]
        if values:
            out[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    return out


def by_name(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The variants of a results dict keyed by name."""
    return {v["name"]: v for v in results["variants"]}


def per_seed(results: Mapping[str, Any], name: str, metric: str = "fd") -> list[float]:
    """One variant's metric, one value per seed (in seed order)."""
    return [float(r[metric]) for r in by_name(results)[name]["runs"]]


#: Relative differences below these count as ties. Redrawing the 1000 samples of one trained
#: model moves its FD by 2-4% (std, measured on the default baseline with and without guidance);
#: held-out bits/dim move by about 0.1% between dequantization draws.
TIES = {"fd": 0.05, "kid": 0.05, "val_bpd": 0.002}


def direction(better: float, worse: float, tie: float = TIES["fd"]) -> int:
    """Which way one seed went: ``-1`` for the claimed way, ``+1`` for the other, ``0`` for a tie.

    ``-1`` if ``better`` is lower than ``worse`` by more than ``tie`` (relative), ``+1`` if it is higher
    by more than that, ``0`` otherwise.
    """
    gap = (worse - better) / max(abs(better), abs(worse), 1e-12)
    return -1 if gap > tie else 1 if gap < -tie else 0


def verdict(directions: Sequence[int]) -> str:
    """The verdict of the seeds' directions (:func:`direction`): agrees, disagrees or inconclusive.

    ``"agrees"`` if every seed went the claimed way (``-1``), ``"disagrees"`` if every seed went the
    other way, else ``"inconclusive"`` (ties included). With few seeds this is a weak test.
    """
    if all(d < 0 for d in directions):
        return "agrees"
    if all(d > 0 for d in directions):
        return "disagrees"
    return "inconclusive"


def compare(results: Mapping[str, Any], better: str, worse: str, metric: str = "fd") -> str:
    """The :func:`verdict` on the claim that ``better`` scores lower than ``worse`` on ``metric``.

    Seeds are paired: the same training seed gives both the same data split and initialisation.
    """
    a, b = per_seed(results, better, metric), per_seed(results, worse, metric)
    return verdict([direction(x, y, TIES[metric]) for x, y in zip(a, b, strict=True)])


def fmt(stats: Mapping[str, float] | None, digits: int = 2) -> str:
    """``mean ± std`` for a table cell."""
    if not stats:
        return "–"
    if stats["std"] == 0:
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def mean(results: Mapping[str, Any], name: str, metric: str = "fd") -> float:
    """One variant's mean over seeds."""
    return by_name(results)[name]["summary"][metric]["mean"]


# --- reports ----------------------------------------------------------------------------------------


def slug(name: str) -> str:
    """A file-name-safe version of a variant name."""
    keep = "".join(c if c.isalnum() or c in "-." else "_" for c in name.lower())
    return "_".join(filter(None, keep.split("_")))


def markdown_table(results: Mapping[str, Any]) -> str:
    """The results as a markdown table: one row per variant plus the real-data floor."""
    inception = any("inception_fd" in v["summary"] for v in results["variants"])
    diverged = any(v["summary"].get("diverged", {}).get("mean", 0) > 0 for v in results["variants"])
    head = ["variant", "held-out bits/dim", "FD", "KID"] + (["Inception FID"] if inception else []) \
        + (["diverged samples"] if diverged else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in results["variants"]:
        s = v["summary"]
        cells = [v["name"], fmt(s.get("val_bpd"), 3), fmt(s.get("fd")), fmt(s.get("kid"))]
        cells += [fmt(s.get("inception_fd"))] if inception else []
        cells += [_percent(s.get("diverged"))] if diverged else []
        lines.append("| " + " | ".join(cells) + " |")
    r = results["reference"]["summary"]
    cells = ["*real training images (floor)*", "–", fmt(r.get("fd")), fmt(r.get("kid"))]
    cells += [fmt(r.get("inception_fd"))] if inception else []
    cells += ["–"] if diverged else []
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _percent(stats: Mapping[str, float] | None) -> str:
    """The mean fraction of diverged samples as a percentage (``0`` when none diverged)."""
    return "0" if not stats or stats["mean"] == 0 else f"{100 * stats['mean']:.1f}%"


def write_report(results: Mapping[str, Any], out: Path) -> None:
    """``results.json``, ``results.md`` and ``results.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    seeds = ", ".join(map(str, results["seeds"]))
    text = [f"# {results['script']}: {results['claim']}", "",
            f"Paper: {results['paper']}", "",
            f"Scale `{results['scale']}`, seeds {seeds}, {results['num_samples']} samples per variant; "
            f"mean ± std over seeds, lower is better. FD/KID: {results['metric']}.", "",
            markdown_table(results), ""]
    text += [f"- **{verdict}**: {sentence}" for verdict, sentence in results["verdicts"]]
    (out / "results.md").write_text("\n".join(text) + "\n")
    plot(results, out / "results.png")


def plot(results: Mapping[str, Any], path: Path) -> None:
    """Held-out bits/dim, FD and KID per variant, with the seed std as error bars."""
    panels = [("fd", "FD (classifier features)"), ("kid", "KID"), ("val_bpd", "held-out bits/dim")]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _plot_pillow(results, panels, path)
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), layout="constrained")
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for group, points in _series(results, metric).items():
            xs, ys, es = zip(*[(x, m, s) for x, m, s, _ in points], strict=True)
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=group or None,
                        linestyle="-" if _numeric(results) else "none")
        floor = results["reference"]["summary"].get(metric)
        if floor:
            ax.axhline(floor["mean"], color="grey", linestyle="--", linewidth=1, label="real images")
        if not _numeric(results):
            names = [v["name"] for v in results["variants"]]
            ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
            ax.set_xlim(-0.5, len(names) - 0.5)
        else:
            ax.set_xlabel(results["x_label"], fontsize=9)
            if results["x_log"]:
                ax.set_xscale("log")
                ax.minorticks_off()
            ticks = sorted({v["x"] for v in results["variants"]})
            ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.set_title(title, fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    if len(labels) > 1:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5), fontsize=8)
    fig.suptitle(f"{results['script']} ({results['scale']}, seeds {results['seeds']})", fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _numeric(results: Mapping[str, Any]) -> bool:
    return all(v["x"] is not None for v in results["variants"])


def _series(results: Mapping[str, Any], metric: str) -> dict[str, list[tuple[float, float, float, str]]]:
    """``{group: [(x, mean, std, name), ...]}`` for the plot; variants side by side when x is unset."""
    series: dict[str, list[tuple[float, float, float, str]]] = {}
    for i, v in enumerate(results["variants"]):
        s = v["summary"].get(metric)
        if s:
            x = v["x"] if _numeric(results) else i
            series.setdefault(v["group"], []).append((x, s["mean"], s["std"], v["name"]))
    return series


def _lerp(v: float, lo: float, hi: float, a: float, b: float) -> float:
    """Map ``v`` from ``[lo, hi]`` to ``[a, b]`` (the middle when the range is empty)."""
    return (a + b) / 2 if hi <= lo else a + (v - lo) / (hi - lo) * (b - a)


def _plot_pillow(results: Mapping[str, Any], panels: Sequence[tuple[str, str]], path: Path) -> None:
    """A plain fallback plot with Pillow alone, for when matplotlib is missing.

    One panel per metric, points with error bars, the groups' names (in their colours) along the bottom.
    """
    from PIL import Image, ImageDraw

    w, h, pad = 300, 240, 36
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    img = Image.new("RGB", (w * len(panels), h + 24), "white")
    draw = ImageDraw.Draw(img)
    log_x = results["x_log"] and _numeric(results)
    for k, (metric, title) in enumerate(panels):
        series = _series(results, metric)
        points = [p for ps in series.values() for p in ps]
        if not points:
            continue
        left, right, top, bottom = k * w + pad, (k + 1) * w - pad, pad, h - pad
        xs = [math.log(p[0]) if log_x else p[0] for p in points]
        lo, hi = min(p[1] - p[2] for p in points), max(p[1] + p[2] for p in points)
        draw.rectangle([left - 8, top - 8, right + 8, bottom + 8], outline="black")
        draw.text((left, 8), title, fill="black")
        draw.text((k * w + 4, top - 8), f"{hi:.3g}", fill="black")
        draw.text((k * w + 4, bottom), f"{lo:.3g}", fill="black")
        for c, (group, ps) in enumerate(series.items()):
            color = colors[c % len(colors)]
            for x, m, sd, name in ps:
                px = _lerp(math.log(x) if log_x else x, min(xs), max(xs), left, right)
                py, y_hi, y_lo = (_lerp(y, lo, hi, bottom, top) for y in (m, m + sd, m - sd))
                draw.line([px, y_hi, px, y_lo], fill=color)
                draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
                draw.text((px - 10, bottom + 10), name[:12] if not _numeric(results) else f"{x:g}", fill="black")
            if group and k == 0:
                draw.text((4 + 150 * c, h + 6), group[:24], fill=color)
    img.save(path)


# --- the driver -------------------------------------------------------------------------------------


def run_ablation(script: str, doc: str, claim: str, paper: str, variants: Callable[[TrainConfig], Sequence[Variant]],
         judge: Judge, argv: Sequence[str] | None = None, x_label: str = "", x_log: bool = False) -> dict[str, Any]:
    """Run one ablation script end to end; return (and write) its results.

    Args:
        script: the script's name (``vp_vs_nvp``), used for folders and titles.
        doc: the script's docstring, shown by ``--help``.
        claim: the paper's claim in one line.
        paper: the paper's numbers.
        variants: the variants, given the scale's base config.
        judge: turns results into verdicts on the claim.
        argv: command-line arguments (``None``: ``sys.argv[1:]``).
        x_label: the plot's x axis, for sweeps.
        x_log: a logarithmic x axis.
    """
    setup = parse_args(script, doc, argv)
    start = time.perf_counter()
    arms = list(variants(setup.base))
    if len({v.name for v in arms}) != len(arms):
        raise ValueError(f"{script}: variant names must be unique, got {[v.name for v in arms]}")
    data = load_dataset(setup.base.data, setup.base.img_size, setup.base.in_channels, root=setup.base.data_root)
    classifier = FeatureExtractor.for_dataset(setup.base.data, setup.base.img_size, setup.base.in_channels,
                                              root=setup.base.data_root, verbose=True)
    extractors: dict[str, Callable[[Tensor], Tensor]] = {"classifier": classifier}
    if setup.inception is not None:
        extractors["inception"] = InceptionExtractor(setup.inception)
    print(f"{script}: {len(arms)} variants x {len(setup.seeds)} seeds at scale {setup.scale!r}; "
          f"runs cached in {setup.runs}", flush=True)
    rows: dict[str, list[dict[str, Any]]] = {v.name: [] for v in arms}
    memo: Memo = {}
    for seed in setup.seeds:
        for v in arms:
            grids = setup.out / "grids" if seed == setup.seeds[0] else None
            rows[v.name].append(evaluate(setup, v, seed, data, extractors, grids, memo))
            r = rows[v.name][-1]
            print(f"  seed {seed} | {v.name:<36} | bpd {r['val_bpd']:.3f} | FD {r['fd']:7.2f} | "
                  f"KID {r['kid']:7.2f} | train {r['train_s']:.0f} s, eval {r['eval_s']:.0f} s"
                  + (f" | {r['diverged']:.1%} of samples diverged" if r["diverged"] else ""), flush=True)
    ref = reference(setup, data, extractors)
    results: dict[str, Any] = {
        "script": script, "claim": claim, "paper": paper, "scale": setup.scale, "seeds": list(setup.seeds),
        "num_samples": setup.num_samples, "x_label": x_label, "x_log": x_log,
        "metric": (f"features of a {classifier.config.features}-d CNN classifier trained on {setup.base.data!r} "
                   f"(held-out accuracy {classifier.accuracy:.1%}), samples vs the held-out images"),
        "classifier_accuracy": classifier.accuracy,
        "base_config": {f.name: getattr(setup.base, f.name) for f in dataclasses.fields(setup.base)
                        if f.name not in ("out", "seed")},
        "variants": [{"name": v.name, "group": v.group, "x": v.x, "train": dict(v.train), "sample": dict(v.sample),
                      "denoise": v.denoise, "runs": rows[v.name], "summary": summarize(rows[v.name])} for v in arms],
        "reference": {"runs": ref, "summary": summarize(ref)},
        "flowkit": flowkit.__version__, "torch": torch.__version__,
    }
    results["verdicts"] = judge(results)
    results["elapsed_s"] = time.perf_counter() - start
    write_report(results, setup.out)
    print("\n" + markdown_table(results))
    for verdict, sentence in results["verdicts"]:
        print(f"- {verdict}: {sentence}")
    print(f"\nwrote {setup.out} in {results['elapsed_s'] / 60:.1f} min", file=sys.stderr)
    return results


def spread_ratio(values: Sequence[float]) -> float:
    """``max / min`` of positive values: how much a metric moves across a sweep (``inf`` if min <= 0)."""
    lo = min(values)
    return max(values) / lo if lo > 0 else math.inf
