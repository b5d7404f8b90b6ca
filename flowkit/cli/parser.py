"""The ``flowkit`` argument parser: the commands, their flags and help text taken from the config's docs."""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from typing import Any, Literal, get_args, get_origin

__all__ = ["build_parser"]

_DESCRIPTION = """\
Normalizing flows from the command line. Start with `flowkit train` (no arguments): it trains a small
class-conditional TarFlow on the bundled 8x8 digits in a few minutes on a CPU and writes runs/digits/.
Then `flowkit sample runs/digits/checkpoint.pt` draws images from it and `flowkit eval
runs/digits/checkpoint.pt` reports held-out bits/dim and Bayes accuracy. `flowkit COMMAND --help`
lists each command's options."""

# Which help group each TrainConfig field is listed in; a field not named here goes to "model" when a
# base class of TrainConfig (the model's own config, TarFlowConfig) declares it, else to "run".
_GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("data", "data_root", "val_fraction", "noise", "sigma", "label_drop"),
    "optimisation": ("batch_size", "lr", "min_lr", "warmup_steps", "weight_decay", "betas", "max_steps", "epochs",
                     "ema_decay", "grad_clip", "precision", "compile"),
    "sampling": ("sample_every", "sample_guidance", "denoise"),
}
_GROUP_TITLES = {
    "model": "model (defaults: the digits preset; --config changes them)",
    "data": "data",
    "optimisation": "optimisation",
    "run": "run",
    "sampling": "sampling",
}


def _help_text(doc: str, default: Any) -> str:
    """One help line from a docstring entry: reST markup removed, ``%`` escaped, the default appended."""
    text = re.sub(r"``(.*?)``", r"\1", doc).replace(":func:", "").replace(":class:", "")
    text = re.sub(r"`~?(?:[\w.]+\.)?([\w]+)`", r"\1", text)
    if isinstance(default, tuple):
        shown = ",".join(map(str, default))
    elif default is None:
        shown = "none"
    else:
        shown = str(default).lower() if isinstance(default, bool) else str(default)
    return f"{text} [default: {shown}]".replace("%", "%%")


def _metavar(tp: Any) -> str | None:
    if get_origin(tp) is Literal:
        return "{" + ",".join(get_args(tp)) + "}"
    if get_origin(tp) is tuple:
        return "B1,B2"
    inner = [a for a in get_args(tp) if a is not type(None)]
    base = inner[0] if inner else tp
    return {int: "N", float: "X", str: "TEXT", bool: "BOOL"}.get(base)


def _groups(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    return {key: parser.add_argument_group(title) for key, title in _GROUP_TITLES.items()}


def _config_flags(groups: dict[str, argparse._ArgumentGroup]) -> None:
    """Add one ``--field-name VALUE`` per :class:`~flowkit.training.TrainConfig` field to its help group.

    The help is the field's docstring entry with its default; values are coerced and validated by
    :func:`~flowkit.training.apply_overrides`; booleans also work as bare flags.
    """
    from ..training import TrainConfig
    from ..training.config import attribute_docs

    docs = attribute_docs(TrainConfig)
    defaults = TrainConfig()
    hints = typing.get_type_hints(TrainConfig)
    where = {name: group for group, names in _GROUPS.items() for name in names}
    inherited = {name for base in TrainConfig.__mro__[1:] for name in vars(base).get("__annotations__", {})}
    for f in dataclasses.fields(TrainConfig):
        group = groups[where.get(f.name, "model" if f.name in inherited else "run")]
        flag = "--" + f.name.replace("_", "-")
        text = _help_text(docs.get(f.name, f.name.replace("_", " ")), getattr(defaults, f.name))
        tp = hints[f.name]
        if tp is bool:
            group.add_argument(flag, dest=f"cfg_{f.name}", nargs="?", const="true", metavar="BOOL", help=text)
        else:
            metavar = "{auto,cpu,cuda,cuda:N,mps}" if f.name == "device" else _metavar(tp)
            group.add_argument(flag, dest=f"cfg_{f.name}", metavar=metavar, help=text)


def build_parser() -> argparse.ArgumentParser:
    """The ``flowkit`` argument parser."""
    from ..threads import add_threads_argument

    parser = argparse.ArgumentParser(prog="flowkit", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands (run `flowkit train` first)")

    train = sub.add_parser("train", help="train a TarFlow and write a run folder (default: class-conditional, "
                                         "on the bundled 8x8 digits, a few minutes on a CPU)",
                           description="Train a TarFlow. Without options: the digits preset, into runs/digits/. "
                                       "Every option below overrides one config field.")
    tg = _groups(train)
    tg["run"].add_argument("--config", default=None, metavar="NAME|FILE",
                           help="a preset (digits, mnist, imagenet64, imagenet128, afhq256) or a TOML file "
                                "[default: digits]")
    tg["run"].add_argument("--resume", action="store_true",
                           help="continue the run in --out from its checkpoint [default: off]")
    tg["run"].add_argument("--overwrite", action="store_true",
                           help="replace the run that --out holds (its files are kept until the new run's first "
                                "checkpoint) [default: off: a folder holding a run is refused]")
    tg["run"].add_argument("--no-progress", action="store_true", help="no progress bar [default: show it]")
    tg["run"].add_argument("--json", action="store_true",
                           help="print the final metrics as one JSON line instead of the summary [default: off]")
    add_threads_argument(tg["run"])
    _config_flags(tg)

    def model_source(p: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
        p.add_argument("checkpoint", help="checkpoint.pt of a flowkit run, or a reference ml-tarflow checkpoint")
        g = {"model": p.add_argument_group("model"), "run": p.add_argument_group("run")}
        g["model"].add_argument("--ml-tarflow", default=None, nargs="?", const="", metavar="K=V,...",
                                help="the checkpoint is a reference ml-tarflow one with these constructor arguments, "
                                     "e.g. in_channels=3,img_size=256,patch_size=8,channels=768,num_blocks=8,"
                                     "layers_per_block=8,nvp=true,num_classes=3 (none needed for a file that "
                                     "stores its config) [default: a flowkit checkpoint]")
        g["model"].add_argument("--no-ema", action="store_true",
                                help="use the raw weights instead of the EMA [default: the EMA weights]")
        g["run"].add_argument("--device", default="auto", metavar="{auto,cpu,cuda,cuda:N,mps}",
                              help="where to run [default: auto = a CUDA GPU if available, else the CPU]")
        g["run"].add_argument("--seed", type=int, default=0, metavar="N", help="random seed [default: 0]")
        add_threads_argument(g["run"])
        return g

    sample = sub.add_parser("sample", help="draw samples from a checkpoint into a PNG grid or .npz",
                            description="Draw samples from a trained model into a PNG grid or an .npz file.")
    sg = model_source(sample)
    sg["run"].add_argument("--num", type=int, default=16, metavar="N", help="number of samples [default: 16]")
    sg["run"].add_argument("--out", default=None, metavar="FILE",
                           help="output .png (grid) or .npz (arrays) [default: a new samples_N.png next to the "
                                "checkpoint; an existing file is never replaced without --overwrite]")
    sg["run"].add_argument("--overwrite", action="store_true", help="replace --out if it exists [default: off]")
    sg["run"].add_argument("--nrow", type=int, default=None, metavar="N",
                           help="images per grid row [default: samples per class, or sqrt(--num)]")
    smp = sample.add_argument_group("sampling")
    smp.add_argument("--classes", default=None, metavar="I,J,...",
                     help="comma-separated class labels, cycled over the samples [default: all classes in turn]")
    smp.add_argument("--guidance", type=float, default=None, metavar="W",
                     help="classifier-free guidance weight w, 0 = off [default: the run's sample_guidance for a "
                          "class-conditional model, else 0]")
    smp.add_argument("--guide-what", default="ab", choices=["a", "b", "ab"],
                     help="guide the scales (a), the shifts (b) or both [default: ab]")
    smp.add_argument("--attn-temp", type=float, default=1.0, metavar="T",
                     help="attention temperature of the guidance's unconditional pass; the only effect of "
                          "guidance on an unconditional model [default: 1.0]")
    smp.add_argument("--annealed", action="store_true",
                     help="guidance weight rising linearly over the tokens [default: constant]")
    smp.add_argument("--temperature", type=float, default=1.0, metavar="T",
                     help="prior temperature (std of the latent) [default: 1.0]")
    smp.add_argument("--method", default=None, metavar="NAME",
                     help="inverse method: sequential, jacobi, gs_jacobi or sliding_jacobi [default: auto]")
    smp.add_argument("--denoise", dest="denoise", action="store_true", default=None,
                     help="one Tweedie denoising step [default: when the run trained with Gaussian noise]")
    smp.add_argument("--no-denoise", dest="denoise", action="store_false", help="no denoising step")
    smp.add_argument("--sigma", type=float, default=None, metavar="S",
                     help="noise std on [-1, 1] for denoising [default: the run's sigma]")

    ev = sub.add_parser("eval", help="held-out bits/dim (uniform dequantization) and Bayes accuracy",
                        description="Held-out bits per dimension and, for a class-conditional model, Bayes "
                                    "accuracy (argmax_y log p(x|y)).")
    eg = model_source(ev)
    dg = ev.add_argument_group("data")
    dg.add_argument("--data", default=None, metavar="SPEC",
                    help="data spec (digits, mnist-idx:FOLDER, a folder, a .npz) [default: the run's held-out split]")
    dg.add_argument("--data-root", default=None, metavar="DIR",
                    help="folder of downloaded torchvision data [default: the run's]")
    eg["run"].add_argument("--batch-size", type=int, default=256, metavar="N",
                           help="images per evaluation batch [default: 256]")
    eg["run"].add_argument("--json", action="store_true",
                           help="print the result as one JSON line instead of the summary [default: off]")
    return parser
