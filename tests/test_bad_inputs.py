"""Bad inputs across the public API: each is refused with the right exception type, naming the argument
and what was expected (issue 10). One row per distinct bad input; the CLI has its own module
(tests/cli/test_bad_cli_inputs.py).

Each row is ``(call, exception type, regex)``; ``call`` takes the module's tiny models. A row fails if
the input is accepted, refused with another type, or refused in another object's words.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import flowkit
from flowkit import (
    ActNorm,
    AffineMap,
    CausalAffine,
    Chain,
    ChannelCoupling,
    ContextSpec,
    Coupling,
    Elementwise,
    EMADiagonalNormal,
    FeaturePermutation,
    Flow,
    FlowDistribution,
    Guidance,
    Inverse,
    MaskedAutoregressive,
    Patchify,
    Permutation,
    RealNVP,
    RQSplineMap,
    SplineCoupling,
    StandardNormal,
    TarFlow,
    denoise,
)
from flowkit.data import (
    ImageDataset,
    dequantize,
    drop_labels,
    load_dataset,
    make_grid,
    save_grid,
    to_float,
    to_uint8,
    toy_2d,
    train_val_split,
)
from flowkit.flows import MAF, NSF
from flowkit.metrics import (
    ClassifierConfig,
    FeatureExtractor,
    bayes_accuracy,
    bits_per_dim,
    class_log_probs,
    evaluate_bpd,
    frechet_distance,
    kid,
    sample_quality,
)
from flowkit.nets import (
    MADE,
    MLP,
    Attention,
    ContextEncoder,
    KVCache,
    MaskedLinear,
    MLPConditioner,
    Transformer,
    TransformerConditioner,
)
from flowkit.testing import check_autoregressive, check_bijector, randomize_parameters
from flowkit.training import (
    DistInfo,
    RunFolder,
    TrainConfig,
    apply_overrides,
    build_model,
    config_to_toml,
    init_distributed,
    load_checkpoint,
    load_config,
    load_trained,
    save_checkpoint,
    set_rng_state,
    train,
    validate,
    warmup_cosine,
    wrap_model,
)

NAN, INF = math.nan, math.inf
Call = Callable[[SimpleNamespace], Any]


@pytest.fixture(scope="module")
def m(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Tiny models and inputs, built once: a conditional and an unconditional TarFlow, vector flows."""
    torch.manual_seed(0)
    tiny = dict(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=1, layers_per_block=1, head_dim=16)
    text = tmp_path_factory.mktemp("bad") / "notes.txt"
    text.write_text("not a checkpoint\n")
    return SimpleNamespace(
        cond=TarFlow(**tiny, num_classes=3),
        uncond=TarFlow(**tiny),
        x=torch.zeros(2, 1, 4, 4),
        y=torch.tensor([0, 1]),
        rand=torch.rand(2, 1, 4, 4),
        maf=MAF(3, transforms=1, hidden=(8,)),
        nsf=NSF(3, transforms=1, hidden=(8,), num_classes=2),
        rnvp=RealNVP(4, transforms=2, hidden=(8,), context_features=2),
        block=CausalAffine(dim=4, seq_len=4, channels=32, num_layers=1, head_dim=16),
        made=MADE(3, 2, hidden=(8,)),
        text=text,
        dir=text.parent,
    )


def _pixels(n: int = 2) -> torch.Tensor:
    return torch.zeros(n, 1, 4, 4, dtype=torch.uint8)


# ---- models: tensors passed to log_prob / forward / inverse / sample ----------------------------------
MODEL_INPUTS = [
    (
        "float64 x",
        lambda m: m.cond.log_prob(m.x.double(), m.y),
        TypeError,
        r"TarFlow: x has dtype torch.float64 but the parameters are torch.float32",
    ),
    (
        "float16 x",
        lambda m: m.cond.log_prob(m.x.half(), m.y),
        TypeError,
        r"TarFlow: x has dtype torch.float16 but the parameters are torch.float32",
    ),
    ("uint8 x", lambda m: m.uncond.log_prob(_pixels()), TypeError, r"TarFlow: x must be a floating-point tensor"),
    (
        "x on another device",
        lambda m: m.cond.log_prob(m.x.to("meta"), m.y),
        ValueError,
        r"TarFlow: x is on device meta but the parameters are on cpu",
    ),
    (
        "labels on another device",
        lambda m: m.cond.log_prob(m.x, m.y.to("meta")),
        ValueError,
        r"TarFlow: context is on device meta but the parameters are on cpu",
    ),
    (
        "numpy x",
        lambda m: m.cond.log_prob(m.x.numpy(), m.y),
        TypeError,
        r"TarFlow: x must be a torch.Tensor, got ndarray",
    ),
    ("list x", lambda m: m.uncond.log_prob([[0.0]]), TypeError, r"x must be a torch.Tensor, got list"),
    (
        "0-d x",
        lambda m: m.uncond.log_prob(torch.tensor(1.0)),
        ValueError,
        r"x must have shape \(B, 1, 4, 4\), got \(\)",
    ),
    (
        "x missing channel axis",
        lambda m: m.uncond.log_prob(torch.zeros(2, 4, 4)),
        ValueError,
        r"x must have shape \(B, 1, 4, 4\), got \(2, 4, 4\)",
    ),
    (
        "x of the wrong size",
        lambda m: m.uncond.log_prob(torch.zeros(2, 1, 8, 8)),
        ValueError,
        r"x must have shape \(B, 1, 4, 4\), got \(2, 1, 8, 8\)",
    ),
    ("NaN x", lambda m: m.uncond.log_prob(torch.full((2, 1, 4, 4), NAN)), ValueError, r"x has 32 non-finite value"),
    ("inf x", lambda m: m.uncond.log_prob(torch.full((2, 1, 4, 4), INF)), ValueError, r"x has 32 non-finite value"),
    (
        "numpy labels",
        lambda m: m.cond.log_prob(m.x, m.y.numpy()),
        TypeError,
        r"TarFlow: context must be a tensor of integer class labels, got ndarray",
    ),
    (
        "bool labels",
        lambda m: m.cond.log_prob(m.x, torch.tensor([True, False])),
        TypeError,
        r"labels must be an integer tensor, got dtype torch.bool",
    ),
    (
        "float labels",
        lambda m: m.cond.log_prob(m.x, torch.tensor([0.0, 1.0])),
        TypeError,
        r"labels must be an integer tensor, got dtype torch.float32",
    ),
    (
        "label = num_classes",
        lambda m: m.cond.log_prob(m.x, torch.tensor([0, 3])),
        ValueError,
        r"labels must lie in \[-1, 3\).*got values in \[0, 3\]",
    ),
    ("label < -1", lambda m: m.cond.log_prob(m.x, torch.tensor([-2, 0])), ValueError, r"got values in \[-2, 0\]"),
    (
        "labels for another batch",
        lambda m: m.cond.log_prob(m.x, torch.tensor([0, 1, 2])),
        ValueError,
        r"labels must have shape \(2,\) to match the batch, got \(3,\)",
    ),
    (
        "2-d labels",
        lambda m: m.cond.log_prob(m.x, torch.zeros(2, 1, dtype=torch.long)),
        ValueError,
        r"labels must have shape \(2,\)",
    ),
    (
        "context for an unconditional model",
        lambda m: m.uncond.log_prob(m.x, m.y),
        ValueError,
        r"TarFlow: takes no context \(unconditional\), but a context was given",
    ),
    (
        "inverse z of the wrong shape",
        lambda m: m.uncond.inverse(torch.zeros(2, 3)),
        ValueError,
        r"TarFlow.inverse: z must have shape \(B, 4, 4\), got \(2, 3\)",
    ),
    (
        "inverse float64 z",
        lambda m: m.uncond.inverse(torch.zeros(2, 4, 4, dtype=torch.float64)),
        TypeError,
        r"TarFlow.inverse: z has dtype torch.float64",
    ),
    (
        "inverse NaN z",
        lambda m: m.uncond.inverse(torch.full((2, 4, 4), NAN)),
        ValueError,
        r"TarFlow.inverse: z has 32 non-finite value",
    ),
    ("forward numpy x", lambda m: m.cond(m.x.numpy(), context=m.y), TypeError, r"TarFlow: x must be a torch.Tensor"),
    (
        "MAF x with 4 features",
        lambda m: m.maf.log_prob(torch.zeros(2, 4)),
        ValueError,
        r"MAF: x must have shape \(B, 3\), got \(2, 4\)",
    ),
    (
        "MAF float64 x",
        lambda m: m.maf.log_prob(torch.zeros(2, 3, dtype=torch.float64)),
        TypeError,
        r"MAF: x has dtype torch.float64 but the parameters are torch.float32",
    ),
    (
        "MAF context",
        lambda m: m.maf.log_prob(torch.zeros(2, 3), torch.zeros(2, 1)),
        ValueError,
        r"MAF: takes no context \(unconditional\)",
    ),
    (
        "NSF float labels",
        lambda m: m.nsf.log_prob(torch.zeros(2, 3), torch.tensor([0.0, 1.0])),
        TypeError,
        r"labels must be an integer tensor, got dtype torch.float32",
    ),
    (
        "NSF label out of range",
        lambda m: m.nsf.log_prob(torch.zeros(2, 3), torch.tensor([0, 2])),
        ValueError,
        r"labels must lie in \[-1, 2\)",
    ),
    (
        "RealNVP context of the wrong width",
        lambda m: m.rnvp.log_prob(torch.zeros(2, 4), torch.zeros(2, 3)),
        ValueError,
        r"RealNVP: context must have shape \(2, 2\), got \(2, 3\)",
    ),
    (
        "RealNVP integer context",
        lambda m: m.rnvp.log_prob(torch.zeros(2, 4), torch.zeros(2, 2, dtype=torch.long)),
        TypeError,
        r"RealNVP: context must be a floating tensor \(B, 2\), got dtype torch.int64",
    ),
    (
        "RealNVP NaN context",
        lambda m: m.rnvp.log_prob(torch.zeros(2, 4), torch.full((2, 2), NAN)),
        ValueError,
        r"context has 4 non-finite value",
    ),
    (
        "RealNVP missing context",
        lambda m: m.rnvp.log_prob(torch.zeros(2, 4)),
        ValueError,
        r"RealNVP: a context is required: a floating tensor \(B, 2\), got None",
    ),
    (
        "CausalAffine 2-d x",
        lambda m: m.block(torch.zeros(2, 4)),
        ValueError,
        r"CausalAffine: x must have shape \(B, 4, 4\), got \(2, 4\)",
    ),
    (
        "CausalAffine float64 x",
        lambda m: m.block(torch.zeros(2, 4, 4, dtype=torch.float64)),
        TypeError,
        r"CausalAffine: x has dtype torch.float64",
    ),
    (
        "ActNorm x of the wrong width",
        lambda m: ActNorm(3)(torch.zeros(2, 4)),
        ValueError,
        r"ActNorm\(3\) expects a last event axis of 3, got \(4,\)",
    ),
    (
        "Patchify 3-d x",
        lambda m: Patchify(2)(torch.zeros(2, 4, 4)),
        ValueError,
        r"Patchify: x must have 4 dimensions \(batch \+ 3 event\), got shape \(2, 4, 4\)",
    ),
    (
        "Patchify H not a multiple",
        lambda m: Patchify(3)(torch.zeros(1, 1, 4, 4)),
        ValueError,
        r"H and W must be multiples of 3, got H=4, W=4",
    ),
    (
        "Patchify inverse z of the wrong shape",
        lambda m: Patchify(2, img_size=4, in_channels=1).inverse(torch.zeros(2, 4, 5)),
        ValueError,
        r"Patchify.inverse: z must have shape \(B, 4, 4\), got \(2, 4, 5\)",
    ),
    (
        "Permutation 2-d x",
        lambda m: Permutation.reverse()(torch.zeros(2, 3)),
        ValueError,
        r"Permutation: x must have 3 dimensions \(batch \+ 2 event\), got shape \(2, 3\)",
    ),
    (
        "Permutation sequence of another length",
        lambda m: Permutation.reverse(4)(torch.zeros(1, 5, 2)),
        ValueError,
        r"Permutation of 4 tokens got a sequence of 5",
    ),
    (
        "Inverse numpy x",
        lambda m: Inverse(Permutation.reverse())(np.zeros((1, 2, 2))),
        TypeError,
        r"Inverse: x must be a torch.Tensor, got ndarray",
    ),
    ("Chain list x", lambda m: Chain([Permutation.reverse()])([[0.0]]), TypeError, r"Chain: x must be a torch.Tensor"),
    (
        "FeaturePermutation x of the wrong width",
        lambda m: FeaturePermutation([1, 0])(torch.zeros(2, 3)),
        ValueError,
        r"FeaturePermutation of 2 features got event shape \(3,\)",
    ),
    (
        "Elementwise x of the wrong width",
        lambda m: Elementwise(3, AffineMap())(torch.zeros(2, 4)),
        ValueError,
        r"Elementwise\(3\) expects a last event axis of 3, got \(4,\)",
    ),
]

# ---- sampling ----------------------------------------------------------------------------------------
SAMPLING = [
    (
        "num_samples 0",
        lambda m: m.uncond.sample(0),
        ValueError,
        r"TarFlow.sample: num_samples must be a positive int, got 0",
    ),
    ("num_samples -1", lambda m: m.uncond.sample(-1), ValueError, r"num_samples must be a positive int, got -1"),
    (
        "num_samples True",
        lambda m: m.uncond.sample(True),
        TypeError,
        r"num_samples must be a positive int, got bool True",
    ),
    (
        "num_samples 2.0",
        lambda m: m.uncond.sample(2.0),
        TypeError,
        r"num_samples must be a positive int, got float 2.0",
    ),
    (
        "temperature NaN",
        lambda m: m.uncond.sample(2, temperature=NAN),
        ValueError,
        r"temperature must be a finite float >= 0, got nan",
    ),
    (
        "temperature inf",
        lambda m: m.uncond.sample(2, temperature=INF),
        ValueError,
        r"temperature must be a finite float >= 0, got inf",
    ),
    (
        "temperature -1",
        lambda m: m.uncond.sample(2, temperature=-1.0),
        ValueError,
        r"temperature must be a finite float >= 0, got -1.0",
    ),
    (
        "temperature '1'",
        lambda m: m.uncond.sample(2, temperature="1"),
        TypeError,
        r"temperature must be a finite float >= 0, got str '1'",
    ),
    (
        "guidance '2'",
        lambda m: m.cond.sample(2, context=m.y, guidance="2"),
        TypeError,
        r"sampling option guidance must be of type float, got str '2'",
    ),
    (
        "guidance True",
        lambda m: m.cond.sample(2, context=m.y, guidance=True),
        TypeError,
        r"sampling option guidance must be of type float, got bool True",
    ),
    (
        "guidance -1",
        lambda m: m.cond.sample(2, context=m.y, guidance=-1.0),
        ValueError,
        r"guidance must be a finite float >= 0, got -1.0",
    ),
    (
        "guidance inf",
        lambda m: m.cond.sample(2, context=m.y, guidance=INF),
        ValueError,
        r"guidance must be a finite float >= 0, got inf",
    ),
    (
        "guide_what 'c'",
        lambda m: m.cond.sample(2, context=m.y, guidance=1.0, guide_what="c"),
        ValueError,
        r"guide_what must be 'a', 'b' or 'ab', got 'c'",
    ),
    (
        "attn_temp 0",
        lambda m: m.cond.sample(2, context=m.y, guidance=1.0, attn_temp=0.0),
        ValueError,
        r"attn_temp must be a finite float > 0, got 0.0",
    ),
    (
        "annealed_guidance 1",
        lambda m: m.cond.sample(2, context=m.y, guidance=1.0, annealed_guidance=1),
        TypeError,
        r"annealed_guidance must be of type bool, got int 1",
    ),
    ("method 'magic'", lambda m: m.uncond.sample(2, method="magic"), ValueError, r"method must be one of"),
    ("unknown option", lambda m: m.uncond.sample(2, bogus=1), TypeError, r"unknown sampling option 'bogus'"),
    (
        "generator 0",
        lambda m: m.uncond.sample(2, generator=0),
        TypeError,
        r"TarFlow.sample: generator must be a torch.Generator or None, got int",
    ),
    ("grad 'yes'", lambda m: m.uncond.sample(2, grad="yes"), TypeError, r"grad must be True or False, got str 'yes'"),
    (
        "sample labels for another batch",
        lambda m: m.cond.sample(3, context=m.y),
        ValueError,
        r"TarFlow.sample: labels must have shape \(3,\) to match the batch, got \(2,\)",
    ),
    (
        "int label out of range",
        lambda m: m.cond.sample(2, context=7),
        ValueError,
        r"TarFlow.sample: labels must lie in \[-1, 3\).*got values in \[7, 7\]",
    ),
    (
        "float label",
        lambda m: m.cond.sample(2, context=1.5),
        TypeError,
        r"context must be a tensor of integer class labels, got float",
    ),
    (
        "sample_and_log_prob 0",
        lambda m: m.uncond.sample_and_log_prob(0),
        ValueError,
        r"TarFlow.sample_and_log_prob: num_samples must be a positive int, got 0",
    ),
    ("Guidance(-1)", lambda m: Guidance(-1.0), ValueError, r"guidance must be a finite float >= 0, got -1.0"),
    ("Guidance('1')", lambda m: Guidance("1"), TypeError, r"guidance must be a finite float >= 0, got str '1'"),
    (
        "Guidance guide_what",
        lambda m: Guidance(1.0, guide_what="c"),
        ValueError,
        r"guide_what must be 'a', 'b' or 'ab'",
    ),
    (
        "Guidance attn_temp 0",
        lambda m: Guidance(1.0, attn_temp=0.0),
        ValueError,
        r"attn_temp must be a finite float > 0",
    ),
    (
        "Guidance annealed 'yes'",
        lambda m: Guidance(1.0, annealed_guidance="yes"),
        TypeError,
        r"annealed_guidance must be True or False, got str 'yes'",
    ),
    (
        "denoise of a Linear",
        lambda m: denoise(torch.nn.Linear(1, 1), m.x, 0.1),
        TypeError,
        r"denoise: flow must be a flowkit Flow",
    ),
    (
        "denoise sigma -0.1",
        lambda m: denoise(m.uncond, m.x, -0.1),
        ValueError,
        r"denoise: sigma must be a finite float >= 0, got -0.1",
    ),
    ("denoise sigma NaN", lambda m: denoise(m.uncond, m.x, NAN), ValueError, r"denoise: sigma must be a finite float"),
    (
        "denoise sigma '0.1'",
        lambda m: denoise(m.uncond, m.x, "0.1"),
        TypeError,
        r"denoise: sigma must be a finite float >= 0, got str '0.1'",
    ),
    (
        "denoise chunk_size 0",
        lambda m: denoise(m.uncond, m.x, 0.1, chunk_size=0),
        ValueError,
        r"denoise: chunk_size must be a positive int, got 0",
    ),
    (
        "denoise chunk_size 1.5",
        lambda m: denoise(m.uncond, m.x, 0.1, chunk_size=1.5),
        TypeError,
        r"denoise: chunk_size must be a positive int, got float 1.5",
    ),
    ("denoise numpy x", lambda m: denoise(m.uncond, m.x.numpy(), 0.1), TypeError, r"denoise: x must be a torch.Tensor"),
    (
        "denoise float64 x",
        lambda m: denoise(m.uncond, m.x.double(), 0.1),
        TypeError,
        r"x has dtype torch.float64 but the parameters are torch.float32",
    ),
    (
        "denoise label out of range",
        lambda m: denoise(m.cond, m.x, 0.1, context=torch.tensor([0, 9])),
        ValueError,
        r"labels must lie in \[-1, 3\)",
    ),
    (
        "FlowDistribution of a Linear",
        lambda m: FlowDistribution(torch.nn.Linear(1, 1)),
        TypeError,
        r"FlowDistribution: flow must be a flowkit Flow, got Linear",
    ),
    (
        "FlowDistribution unknown option",
        lambda m: FlowDistribution(m.cond, m.y, bogus=1),
        TypeError,
        r"FlowDistribution: unknown sampling option 'bogus'",
    ),
    (
        "FlowDistribution list context",
        lambda m: FlowDistribution(m.cond, [0, 1]),
        TypeError,
        r"FlowDistribution: context must be a tensor or None, got list",
    ),
]

# ---- constructors ------------------------------------------------------------------------------------
TINY = dict(in_channels=1, img_size=4, patch_size=2, channels=32, num_blocks=1, layers_per_block=1, head_dim=16)
CONSTRUCTORS = [
    (
        "TarFlow nvp='no'",
        lambda m: TarFlow(**TINY, nvp="no"),
        TypeError,
        r"TarFlow: nvp must be True or False, got str 'no'",
    ),
    (
        "TarFlow img_size 0",
        lambda m: TarFlow(**TINY | {"img_size": 0}),
        ValueError,
        r"TarFlow: img_size must be a positive int, got 0",
    ),
    (
        "TarFlow channels 32.0",
        lambda m: TarFlow(**TINY | {"channels": 32.0}),
        TypeError,
        r"TarFlow: channels must be a positive int, got float 32.0",
    ),
    (
        "TarFlow patch_size 3",
        lambda m: TarFlow(**TINY | {"patch_size": 3}),
        ValueError,
        r"TarFlow: patch_size \(3\) must divide img_size \(4\)",
    ),
    (
        "TarFlow coupling 'bogus'",
        lambda m: TarFlow(**TINY, coupling="bogus"),
        ValueError,
        r"TarFlow: coupling must be one of 'autoregressive', 'channel', got 'bogus'",
    ),
    (
        "TarFlow num_classes -1",
        lambda m: TarFlow(**TINY, num_classes=-1),
        ValueError,
        r"TarFlow: num_classes must be an int >= 0, got -1",
    ),
    (
        "TarFlow num_classes True",
        lambda m: TarFlow(**TINY, num_classes=True),
        TypeError,
        r"TarFlow: num_classes must be an int >= 0, got bool True",
    ),
    (
        "TarFlow.from_config of a dict",
        lambda m: TarFlow.from_config({"a": 1}),
        TypeError,
        r"TarFlow.from_config: config must be a TarFlowConfig, got dict",
    ),
    (
        "from_ml_tarflow missing arguments",
        lambda m: TarFlow.from_ml_tarflow({}, img_size=4),
        TypeError,
        r"from_ml_tarflow: missing reference config argument\(s\) \['in_channels'",
    ),
    (
        "from_ml_tarflow of an int",
        lambda m: TarFlow.from_ml_tarflow(3, **TINY, nvp=True, num_classes=0),
        TypeError,
        r"from_ml_tarflow: checkpoint must be a path or a state dict, got int",
    ),
    (
        "from_ml_tarflow of a text file",
        lambda m: TarFlow.from_ml_tarflow(m.text, **TINY, nvp=True, num_classes=0),
        ValueError,
        r"from_ml_tarflow: cannot read '.*notes.txt' as a weights-only torch checkpoint",
    ),
    (
        "CausalAffine dim=True",
        lambda m: CausalAffine(dim=True, seq_len=4, channels=32, num_layers=1),
        TypeError,
        r"CausalAffine: dim must be a positive int, got bool True",
    ),
    (
        "CausalAffine seq_len 0",
        lambda m: CausalAffine(dim=4, seq_len=0, channels=32, num_layers=1),
        ValueError,
        r"CausalAffine: seq_len must be a positive int, got 0",
    ),
    (
        "CausalAffine affine=1",
        lambda m: CausalAffine(dim=2, seq_len=2, channels=32, num_layers=1, affine=1),
        TypeError,
        r"CausalAffine: affine must be True or False, got int 1",
    ),
    (
        "CausalAffine channels not a multiple of head_dim",
        lambda m: CausalAffine(dim=2, seq_len=2, channels=48, num_layers=1, head_dim=32),
        ValueError,
        r"CausalAffine: channels \(48\) must be a multiple of head_dim \(32\)",
    ),
    (
        "ChannelCoupling parity 2",
        lambda m: ChannelCoupling(4, 4, 32, 1, parity=2, head_dim=16),
        ValueError,
        r"ChannelCoupling: parity must be one of 0, 1, got 2",
    ),
    (
        "ChannelCoupling dim 1",
        lambda m: ChannelCoupling(1, 4, 32, 1, head_dim=16),
        ValueError,
        r"ChannelCoupling: dim must be an int >= 2",
    ),
    (
        "Permutation of floats",
        lambda m: Permutation([0.5, 1.5]),
        TypeError,
        r"Permutation: perm must hold ints, got 0.5",
    ),
    (
        "Permutation kind 'bogus'",
        lambda m: Permutation(kind="bogus"),
        ValueError,
        r"Permutation: kind must be one of 'explicit', 'identity', 'reverse', 'random', got 'bogus'",
    ),
    (
        "Permutation.random(-1)",
        lambda m: Permutation.random(-1),
        ValueError,
        r"Permutation.random: seq_len must be an int >= 0, got -1",
    ),
    (
        "Permutation of a string",
        lambda m: Permutation("01"),
        TypeError,
        r"Permutation: perm must be a sequence of ints, got str",
    ),
    (
        "Permutation 2-d tensor",
        lambda m: Permutation(torch.zeros(2, 2, dtype=torch.long)),
        ValueError,
        r"Permutation: perm must be one-dimensional, got shape \(2, 2\)",
    ),
    (
        "Permutation with a repeat",
        lambda m: Permutation([0, 0, 2]),
        ValueError,
        r"permutation of range\(3\), got \[0, 0, 2\]",
    ),
    (
        "FeaturePermutation with a repeat",
        lambda m: FeaturePermutation([0, 0]),
        ValueError,
        r"FeaturePermutation: perm must be a permutation of range\(2\), got \[0, 0\]",
    ),
    (
        "FeaturePermutation of floats",
        lambda m: FeaturePermutation([0.0, 1.0]),
        TypeError,
        r"FeaturePermutation: perm must be a sequence of ints, got \[0.0, 1.0\]",
    ),
    (
        "FeaturePermutation float tensor",
        lambda m: FeaturePermutation(torch.tensor([1.0, 0.0])),
        TypeError,
        r"FeaturePermutation: perm must be a 1-d integer tensor, got dtype torch.float32",
    ),
    ("Patchify patch_size 0", lambda m: Patchify(0), ValueError, r"Patchify: patch_size must be a positive int, got 0"),
    (
        "Patchify patch_size True",
        lambda m: Patchify(True),
        TypeError,
        r"Patchify: patch_size must be a positive int, got bool",
    ),
    (
        "Patchify img_size '4'",
        lambda m: Patchify(2, img_size="4"),
        TypeError,
        r"Patchify: img_size must be an int or a pair \(H, W\), got '4'",
    ),
    (
        "Patchify img_size (4,)",
        lambda m: Patchify(2, img_size=(4,)),
        TypeError,
        r"Patchify: img_size must be an int or a pair \(H, W\), got \(4,\)",
    ),
    (
        "Patchify in_channels 0",
        lambda m: Patchify(2, img_size=4, in_channels=0),
        ValueError,
        r"Patchify: in_channels must be a positive int, got 0",
    ),
    ("ActNorm 0 features", lambda m: ActNorm(0), ValueError, r"ActNorm: num_features must be a positive int, got 0"),
    (
        "ActNorm eps -1",
        lambda m: ActNorm(4, eps=-1.0),
        ValueError,
        r"ActNorm: eps must be a finite float > 0, got -1.0",
    ),
    ("ActNorm eps NaN", lambda m: ActNorm(4, eps=NAN), ValueError, r"ActNorm: eps must be a finite float > 0, got nan"),
    (
        "Chain of one bijector",
        lambda m: Chain(Patchify(2)),
        TypeError,
        r"Chain: bijectors must be a list of flowkit Bijectors, got Patchify",
    ),
    (
        "Chain of a Linear",
        lambda m: Chain([torch.nn.Linear(2, 2)]),
        TypeError,
        r"Chain: bijectors\[0\] must be a flowkit Bijector, got Linear",
    ),
    (
        "Inverse of a Linear",
        lambda m: Inverse(torch.nn.Linear(2, 2)),
        TypeError,
        r"Inverse: bijector must be a flowkit Bijector, got Linear",
    ),
    (
        "Flow of a Linear",
        lambda m: Flow([torch.nn.Linear(2, 2)]),
        TypeError,
        r"Flow: bijectors\[0\] must be a flowkit Bijector, got Linear",
    ),
    ("Flow of no bijectors", lambda m: Flow([]), ValueError, r"Flow needs at least one bijector"),
    (
        "Flow negative event size",
        lambda m: Flow([Patchify(2)], event_shape=(1, 4, -4)),
        ValueError,
        r"Flow: event_shape\[2\] must be a positive int, got -4",
    ),
    (
        "Flow string event size",
        lambda m: Flow([Patchify(2)], event_shape=(1, 4, "4")),
        TypeError,
        r"Flow: event_shape\[2\] must be a positive int",
    ),
    (
        "Flow string event_shape",
        lambda m: Flow([Patchify(2)], event_shape="14"),
        TypeError,
        r"Flow: event_shape must be a tuple of ints, got str",
    ),
    (
        "Flow base 3",
        lambda m: Flow([Patchify(2)], base=3, event_shape=(1, 4, 4)),
        TypeError,
        r"Flow: base must be a distribution module with log_prob and sample",
    ),
    (
        "StandardNormal negative size",
        lambda m: StandardNormal((-1,)),
        ValueError,
        r"StandardNormal: event_shape\[0\] must be a positive int, got -1",
    ),
    (
        "StandardNormal of an int",
        lambda m: StandardNormal(3),
        TypeError,
        r"StandardNormal: event_shape must be a tuple of positive ints, got int",
    ),
    (
        "EMADiagonalNormal rate 2",
        lambda m: EMADiagonalNormal((3,), rate=2.0),
        ValueError,
        r"EMADiagonalNormal: rate must be in \(0, 1\], got 2.0",
    ),
    (
        "EMADiagonalNormal rate NaN",
        lambda m: EMADiagonalNormal((3,), rate=NAN),
        ValueError,
        r"EMADiagonalNormal: rate must be a finite float, got nan",
    ),
    (
        "EMADiagonalNormal rate '0.1'",
        lambda m: EMADiagonalNormal((3,), rate="0.1"),
        TypeError,
        r"EMADiagonalNormal: rate must be a finite float, got str",
    ),
    (
        "ContextSpec kind 'bogus'",
        lambda m: ContextSpec("bogus", 3),
        ValueError,
        r"ContextSpec: kind must be one of 'labels', 'vector', got 'bogus'",
    ),
    (
        "ContextSpec size 0",
        lambda m: ContextSpec("labels", 0),
        ValueError,
        r"ContextSpec: size must be a positive int, got 0",
    ),
    (
        "ContextSpec size True",
        lambda m: ContextSpec("labels", True),
        TypeError,
        r"ContextSpec: size must be a positive int, got bool True",
    ),
    ("MAF features 0", lambda m: MAF(0), ValueError, r"MAF: features must be a positive int, got 0"),
    (
        "MAF transforms -1",
        lambda m: MAF(3, transforms=-1),
        ValueError,
        r"MAF: transforms must be a positive int, got -1",
    ),
    (
        "MAF hidden (-1,)",
        lambda m: MAF(3, hidden=(-1,)),
        ValueError,
        r"MAF: hidden\[0\] must be a positive int, got -1",
    ),
    (
        "MAF hidden 8",
        lambda m: MAF(3, hidden=8),
        TypeError,
        r"MAF: hidden must be a non-empty sequence of positive ints, got 8",
    ),
    (
        "MAF residual 'no'",
        lambda m: MAF(3, residual="no"),
        TypeError,
        r"MAF: residual must be True or False, got str 'no'",
    ),
    ("NSF bins 0", lambda m: NSF(3, bins=0), ValueError, r"RQSplineMap: bins must be an int >= 1, got 0"),
    ("NSF bound -1", lambda m: NSF(3, bound=-1.0), ValueError, r"NSF: bound must be a finite float > 0, got -1.0"),
    ("NSF bound inf", lambda m: NSF(3, bound=INF), ValueError, r"NSF: bound must be a finite float > 0, got inf"),
    (
        "RealNVP 1 feature",
        lambda m: RealNVP(1),
        ValueError,
        r"features must be an int >= 2 \(some kept, some transformed\)",
    ),
    (
        "RealNVP labels and vectors",
        lambda m: RealNVP(4, num_classes=2, context_features=2),
        ValueError,
        r"pass num_classes \(labels\) or context_features \(vectors\), not both",
    ),
    (
        "SplineCoupling features '4'",
        lambda m: SplineCoupling("4"),
        TypeError,
        r"SplineCoupling: features must be a positive int, got str '4'",
    ),
    (
        "SplineCoupling bound NaN",
        lambda m: SplineCoupling(4, bound=NAN),
        ValueError,
        r"SplineCoupling: bound must be a finite float > 0, got nan",
    ),
    (
        "RQSplineMap min_width 1",
        lambda m: RQSplineMap(bins=8, min_width=1.0),
        ValueError,
        r"RQSplineMap: min_width \* bins must lie in \[0, 1\)",
    ),
    (
        "AffineMap bound -1",
        lambda m: AffineMap(bound=-1.0),
        ValueError,
        r"AffineMap: bound must be > 0 or None, got -1.0",
    ),
    (
        "Coupling map Linear",
        lambda m: Coupling(4, torch.nn.Linear(1, 1)),
        TypeError,
        r"Coupling: map must be a flowkit.maps.ElementwiseMap",
    ),
    (
        "Coupling mask too short",
        lambda m: Coupling(4, AffineMap(), mask=[True, False]),
        ValueError,
        r"Coupling: mask must be 4 booleans with at least one True \(kept\) and one False",
    ),
    (
        "Coupling mask all kept",
        lambda m: Coupling(4, AffineMap(), mask=[True] * 4),
        ValueError,
        r"Coupling: mask must be 4 booleans",
    ),
    (
        "Elementwise 0 features",
        lambda m: Elementwise(0, AffineMap()),
        ValueError,
        r"Elementwise: features must be an int >= 1, got 0",
    ),
    (
        "MaskedAutoregressive order with a repeat",
        lambda m: MaskedAutoregressive(3, AffineMap(), order=[0, 0, 1]),
        ValueError,
        r"order must be a permutation of range\(3\), got \[0, 0, 1\]",
    ),
    ("MADE features 0", lambda m: MADE(0, 2), ValueError, r"MADE: features must be an int >= 1, got 0"),
    ("MADE dropout 1", lambda m: MADE(3, 2, dropout=1), ValueError,
     r"MADE: dropout must lie in \[0, 1\) \(at 1 every hidden unit is dropped\), got 1"),
    ("MLPConditioner dropout 2", lambda m: MLPConditioner(2, 2, 2, dropout=2.0), ValueError,
     r"MLPConditioner: dropout must be a probability in \[0, 1\], got 2.0"),
    ("RealNVP dropout None", lambda m: RealNVP(4, dropout=None), TypeError,
     r"RealNVP: dropout must be a probability in \[0, 1\], got NoneType None"),
    ("MADE float order", lambda m: MADE(3, 2, order=[0.5, 1.5, 2.0]), TypeError,
     r"MADE: order must hold ints, got 0.5 \(float\)"),
    ("MADE float tensor order", lambda m: MADE(3, 2, order=torch.tensor([0.0, 1.0, 2.0])), TypeError,
     r"MADE: order must hold integers, got a tensor of dtype torch.float32"),
    ("check_autoregressive float order",
     lambda m: check_autoregressive(MADE(2, 2), torch.zeros(2, 2), order=[0.0, 1.0]), TypeError,
     r"check_autoregressive: order must hold ints, got 0.0 \(float\)"),
    (
        "MLPConditioner in_features 0",
        lambda m: MLPConditioner(0, 2, 2),
        ValueError,
        r"MLPConditioner: in_features must be an int >= 1, got 0",
    ),
    ("MLP channels 0", lambda m: MLP(0), ValueError, r"MLP: channels must be a positive int, got 0"),
    (
        "Attention channels not a multiple",
        lambda m: Attention(48, head_dim=32),
        ValueError,
        r"Attention: channels \(48\) must be a multiple of head_dim \(32\)",
    ),
    (
        "Attention head_dim 0",
        lambda m: Attention(32, head_dim=0),
        ValueError,
        r"Attention: head_dim must be a positive int, got 0",
    ),
    (
        "Transformer num_layers -1",
        lambda m: Transformer(32, -1, head_dim=16),
        ValueError,
        r"Transformer: num_layers must be an int >= 0, got -1",
    ),
    (
        "ContextEncoder num_classes -1",
        lambda m: ContextEncoder(8, num_classes=-1),
        ValueError,
        r"ContextEncoder: num_classes must be an int >= 0, got -1",
    ),
    (
        "ContextEncoder num_classes True",
        lambda m: ContextEncoder(8, num_classes=True),
        TypeError,
        r"ContextEncoder: num_classes must be an int >= 0, got bool True",
    ),
    (
        "ContextEncoder out_features 0",
        lambda m: ContextEncoder(0, num_classes=2),
        ValueError,
        r"ContextEncoder: out_features must be a positive int, got 0",
    ),
    (
        "TransformerConditioner seq_len 0",
        lambda m: TransformerConditioner(2, 2, 0, 32, 1, head_dim=16),
        ValueError,
        r"TransformerConditioner: seq_len must be a positive int, got 0",
    ),
    (
        "KVCache -1 layers",
        lambda m: KVCache(-1, 1, 1, 4, 4, torch.float32, torch.device("cpu")),
        ValueError,
        r"KVCache: num_layers must be a positive int, got -1",
    ),
    (
        "set_validation('no')",
        lambda m: flowkit.set_validation("no"),
        TypeError,
        r"set_validation: enabled must be True or False, got str 'no'",
    ),
    (
        "set_validation(0)",
        lambda m: flowkit.set_validation(0),
        TypeError,
        r"set_validation: enabled must be True or False, got int 0",
    ),
    (
        "validating('no')",
        lambda m: flowkit.validating("no").__enter__(),
        TypeError,
        r"set_validation: enabled must be True or False, got str 'no'",
    ),
]

# ---- testing helpers ---------------------------------------------------------------------------------
TESTING = [
    (
        "check_bijector numpy x",
        lambda m: check_bijector(Permutation.reverse(), np.zeros((2, 3, 1), dtype=np.float32)),
        TypeError,
        r"check_bijector: x must be a torch.Tensor, got ndarray",
    ),
    (
        "check_bijector list x",
        lambda m: check_bijector(Permutation.reverse(), [[0.0]]),
        TypeError,
        r"check_bijector: x must be a torch.Tensor, got list",
    ),
    (
        "check_bijector atol -1",
        lambda m: check_bijector(Permutation.reverse(), torch.zeros(2, 3, 1), atol=-1.0),
        ValueError,
        r"check_bijector: atol must be a finite float >= 0, got -1.0",
    ),
    (
        "check_bijector rtol NaN",
        lambda m: check_bijector(Permutation.reverse(), torch.zeros(2, 3, 1), rtol=NAN),
        ValueError,
        r"check_bijector: rtol must be a finite float >= 0, got nan",
    ),
    (
        "check_bijector jacobian_samples -1",
        lambda m: check_bijector(Permutation.reverse(), torch.zeros(2, 3, 1), jacobian_samples=-1),
        ValueError,
        r"check_bijector: jacobian_samples must be an int >= 0, got -1",
    ),
    (
        "check_bijector jacobian_samples 1.5",
        lambda m: check_bijector(Permutation.reverse(), torch.zeros(2, 3, 1), jacobian_samples=1.5),
        TypeError,
        r"check_bijector: jacobian_samples must be an int >= 0, got float 1.5",
    ),
    (
        "check_bijector of a Linear",
        lambda m: check_bijector(torch.nn.Linear(1, 1), torch.zeros(2, 1)),
        TypeError,
        r"check_bijector: expected a flowkit Bijector, got Linear",
    ),
    (
        "check_bijector inverse_options list",
        lambda m: check_bijector(Permutation.reverse(), torch.zeros(2, 3, 1), inverse_options=[1]),
        TypeError,
        r"check_bijector: inverse_options must be a dict or None, got list",
    ),
    (
        "check_autoregressive samples 0",
        lambda m: check_autoregressive(m.made, torch.zeros(2, 3), samples=0),
        ValueError,
        r"check_autoregressive: samples must be a positive int, got 0",
    ),
    (
        "check_autoregressive of an int",
        lambda m: check_autoregressive(3, torch.zeros(2, 3)),
        TypeError,
        r"check_autoregressive: module must be an nn.Module",
    ),
    (
        "check_autoregressive numpy x",
        lambda m: check_autoregressive(m.made, np.zeros((2, 3))),
        TypeError,
        r"check_autoregressive: x must be a torch.Tensor, got ndarray",
    ),
    (
        "check_autoregressive 3-d x",
        lambda m: check_autoregressive(m.made, torch.zeros(2, 3, 1)),
        ValueError,
        r"check_autoregressive: x must have 2 dimensions",
    ),
]

TOOLKIT_OWNED = [
    pytest.param(
        "randomize_parameters std -1",
        lambda m: randomize_parameters(m.block, std=-1.0),
        ValueError,
        r"randomize_parameters: std must be a finite float >= 0",
        id="randomize_parameters std -1",
    ),
    pytest.param(
        "randomize_parameters of an int",
        lambda m: randomize_parameters(3),
        TypeError,
        r"randomize_parameters: module must be",
        id="randomize_parameters of an int",
    ),
    pytest.param(
        "randomize_parameters seed '0'",
        lambda m: randomize_parameters(m.block, seed="0"),
        TypeError,
        r"randomize_parameters: seed must be",
        id="randomize_parameters seed '0'",
    ),
    pytest.param(
        "MaskedLinear 1-d mask",
        lambda m: MaskedLinear(torch.ones(3)),
        ValueError,
        r"MaskedLinear: mask must be",
        id="MaskedLinear 1-d mask",
    ),
]

# ---- metrics -----------------------------------------------------------------------------------------
METRICS = [
    (
        "bayes_accuracy label = num_classes",
        lambda m: bayes_accuracy(m.cond, [(m.rand, torch.tensor([0, 3]))], 3),
        ValueError,
        r"bayes_accuracy: labels must lie in \[0, 3\), got values in \[0, 3\]",
    ),
    (
        "bayes_accuracy dropped label -1",
        lambda m: bayes_accuracy(m.cond, [(m.rand, torch.tensor([-1, 0]))], 3),
        ValueError,
        r"bayes_accuracy: labels must lie in \[0, 3\), got values in \[-1, 0\]",
    ),
    (
        "bayes_accuracy float labels",
        lambda m: bayes_accuracy(m.cond, [(m.rand, torch.tensor([0.0, 1.0]))], 3),
        TypeError,
        r"bayes_accuracy: labels must be an integer tensor, got dtype torch.float32",
    ),
    (
        "bayes_accuracy labels for another batch",
        lambda m: bayes_accuracy(m.cond, [(m.rand, torch.tensor([0, 1, 2]))], 3),
        ValueError,
        r"bayes_accuracy: labels must have shape \(2,\), got \(3,\)",
    ),
    (
        "bayes_accuracy unlabelled",
        lambda m: bayes_accuracy(m.cond, [m.rand], 3),
        ValueError,
        r"bayes_accuracy: the loader must yield \(x, y\) pairs with labels",
    ),
    (
        "bayes_accuracy num_classes 0",
        lambda m: bayes_accuracy(m.cond, [(m.rand, m.y)], 0),
        ValueError,
        r"bayes_accuracy: num_classes must be a positive int, got 0",
    ),
    (
        "bayes_accuracy num_classes True",
        lambda m: bayes_accuracy(m.cond, [(m.rand, m.y)], True),
        TypeError,
        r"bayes_accuracy: num_classes must be a positive int, got bool True",
    ),
    (
        "bayes_accuracy num_classes not the flow's",
        lambda m: bayes_accuracy(m.cond, [(m.rand, m.y)], 5),
        ValueError,
        r"bayes_accuracy: num_classes=5 but the flow has 3 classes",
    ),
    (
        "bayes_accuracy unconditional flow",
        lambda m: bayes_accuracy(m.uncond, [(m.rand, m.y)], 3),
        ValueError,
        r"bayes_accuracy: the flow is unconditional",
    ),
    (
        "bayes_accuracy of a Linear",
        lambda m: bayes_accuracy(torch.nn.Linear(1, 1), [(m.rand, m.y)], 3),
        TypeError,
        r"bayes_accuracy: flow must be a flowkit Flow",
    ),
    (
        "bayes_accuracy dequantize 'bogus'",
        lambda m: bayes_accuracy(m.cond, [(m.rand, m.y)], 3, dequantize="bogus"),
        ValueError,
        r"bayes_accuracy: dequantize must be 'none' or 'uniform', got 'bogus'",
    ),
    (
        "bayes_accuracy empty loader",
        lambda m: bayes_accuracy(m.cond, [], 3),
        ValueError,
        r"bayes_accuracy: the loader yielded no data",
    ),
    (
        "class_log_probs num_classes 0",
        lambda m: class_log_probs(m.cond, m.x, 0),
        ValueError,
        r"class_log_probs: num_classes must be a positive int, got 0",
    ),
    (
        "class_log_probs numpy x",
        lambda m: class_log_probs(m.cond, m.x.numpy(), 3),
        TypeError,
        r"class_log_probs: x must be a torch.Tensor, got ndarray",
    ),
    (
        "class_log_probs x of the wrong size",
        lambda m: class_log_probs(m.cond, torch.zeros(2, 1, 5, 5), 3),
        ValueError,
        r"class_log_probs: x must have shape \(B, 1, 4, 4\), got \(2, 1, 5, 5\)",
    ),
    (
        "bits_per_dim num_dims 0",
        lambda m: bits_per_dim(torch.zeros(2), 0),
        ValueError,
        r"bits_per_dim: num_dims must be a positive int, got 0",
    ),
    (
        "bits_per_dim num_dims '16'",
        lambda m: bits_per_dim(torch.zeros(2), "16"),
        TypeError,
        r"bits_per_dim: num_dims must be a positive int, got str '16'",
    ),
    (
        "evaluate_bpd dequantize 'bogus'",
        lambda m: evaluate_bpd(m.uncond, [m.x], dequantize="bogus"),
        ValueError,
        r"evaluate_bpd: dequantize must be 'uniform' or 'none', got 'bogus'",
    ),
    (
        "evaluate_bpd empty loader",
        lambda m: evaluate_bpd(m.uncond, []),
        ValueError,
        r"evaluate_bpd: the loader yielded no data",
    ),
    (
        "evaluate_bpd of an int",
        lambda m: evaluate_bpd(3, [m.x]),
        TypeError,
        r"evaluate_bpd: flow must be a flowkit Flow",
    ),
    (
        "evaluate_bpd data off the 8-bit grid",
        lambda m: evaluate_bpd(m.uncond, [torch.full((2, 1, 4, 4), 0.5)]),
        ValueError,
        r"evaluate_bpd: uniform dequantization needs 8-bit images",
    ),
    (
        "evaluate_bpd loader of strings",
        lambda m: evaluate_bpd(m.uncond, ["abc"]),
        TypeError,
        r"evaluate_bpd: the loader must yield \(x, y\) pairs or tensors x, got str",
    ),
    (
        "evaluate_bpd list labels",
        lambda m: evaluate_bpd(m.cond, [(m.x, [0, 1])]),
        TypeError,
        r"evaluate_bpd: labels must be a tensor, got list",
    ),
    (
        "frechet_distance feature sizes differ",
        lambda m: frechet_distance(torch.zeros(4, 3), torch.zeros(4, 2)),
        ValueError,
        r"frechet_distance: feature sizes differ: 3 and 2",
    ),
    (
        "frechet_distance numpy",
        lambda m: frechet_distance(np.zeros((4, 3)), torch.zeros(4, 3)),
        TypeError,
        r"frechet_distance: feats_a must be a tensor of features \(N, F\), got ndarray",
    ),
    (
        "frechet_distance 1-d",
        lambda m: frechet_distance(torch.zeros(4), torch.zeros(4)),
        ValueError,
        r"frechet_distance: feats_a must be features shaped \(N, F\), got shape \(4,\)",
    ),
    (
        "frechet_distance one row",
        lambda m: frechet_distance(torch.zeros(1, 3), torch.zeros(1, 3)),
        ValueError,
        r"frechet_distance: feats_a needs at least 2 rows, got 1",
    ),
    (
        "frechet_distance NaN",
        lambda m: frechet_distance(torch.full((4, 3), NAN), torch.zeros(4, 3)),
        ValueError,
        r"frechet_distance: feats_a has non-finite values",
    ),
    (
        "kid subsets 0",
        lambda m: kid(torch.randn(4, 3), torch.randn(4, 3), subsets=0),
        ValueError,
        r"kid: subsets must be a positive int, got 0",
    ),
    (
        "kid subset_size -1",
        lambda m: kid(torch.randn(4, 3), torch.randn(4, 3), subset_size=-1),
        ValueError,
        r"kid: subset_size must be an int >= 2, got -1",
    ),
    (
        "kid feature sizes differ",
        lambda m: kid(torch.randn(4, 3), torch.randn(4, 2)),
        ValueError,
        r"kid: feature sizes differ: 3 and 2",
    ),
    (
        "ClassifierConfig steps 0",
        lambda m: ClassifierConfig(steps=0),
        ValueError,
        r"ClassifierConfig: steps must be a positive int, got 0",
    ),
    (
        "ClassifierConfig lr -1",
        lambda m: ClassifierConfig(lr=-1.0),
        ValueError,
        r"ClassifierConfig: lr must be a finite float > 0, got -1.0",
    ),
    (
        "ClassifierConfig val_fraction 2",
        lambda m: ClassifierConfig(val_fraction=2.0),
        ValueError,
        r"ClassifierConfig: val_fraction must be a probability in \[0, 1\], got 2.0",
    ),
    (
        "ClassifierConfig val_fraction 0",
        lambda m: ClassifierConfig(val_fraction=0.0),
        ValueError,
        r"ClassifierConfig: val_fraction must lie in \(0, 1\)",
    ),
    (
        "ClassifierConfig width True",
        lambda m: ClassifierConfig(width=True),
        TypeError,
        r"ClassifierConfig: width must be a positive int, got bool True",
    ),
    (
        "FeatureExtractor num_classes 0",
        lambda m: FeatureExtractor(1, 8, 0),
        ValueError,
        r"FeatureExtractor: num_classes must be a positive int, got 0",
    ),
    (
        "FeatureExtractor config dict",
        lambda m: FeatureExtractor(1, 8, 3, config={}),
        TypeError,
        r"FeatureExtractor: config must be a ClassifierConfig, got dict",
    ),
    (
        "sample_quality extractor 3",
        lambda m: sample_quality(torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 8, 8), 3),
        TypeError,
        r"sample_quality: extractor must be a callable",
    ),
    (
        "sample_quality shapes differ",
        lambda m: sample_quality(torch.zeros(4, 1, 8, 8), torch.zeros(4, 3, 8, 8), lambda t: t.flatten(1)),
        ValueError,
        r"sample_quality: real images \(1, 8, 8\) and fake images \(3, 8, 8\) differ in shape",
    ),
    (
        "sample_quality quantize 'yes'",
        lambda m: sample_quality(
            torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 8, 8), lambda t: t.flatten(1), quantize="yes"
        ),
        TypeError,
        r"sample_quality: quantize must be True or False, got str 'yes'",
    ),
]

# ---- data --------------------------------------------------------------------------------------------
DATA = [
    (
        "ImageDataset float labels",
        lambda m: ImageDataset(_pixels(), torch.tensor([0.0, 1.0])),
        ValueError,
        r"labels must be integers shaped \(2,\) to match the images, got torch.float32",
    ),
    (
        "ImageDataset negative labels",
        lambda m: ImageDataset(_pixels(), torch.tensor([-1, 1])),
        ValueError,
        r"labels must lie in \[0, 2\), got values in \[-1, 1\]",
    ),
    (
        "ImageDataset labels for another batch",
        lambda m: ImageDataset(_pixels(), torch.tensor([0, 1, 2])),
        ValueError,
        r"labels must be integers shaped \(2,\) to match the images, got torch.int64 \(3,\)",
    ),
    (
        "ImageDataset float images",
        lambda m: ImageDataset(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])),
        ValueError,
        r"images must be a uint8 tensor shaped \(N, C, H, W\), got torch.float32",
    ),
    (
        "ImageDataset 3-d images",
        lambda m: ImageDataset(torch.zeros(2, 4, 4, dtype=torch.uint8)),
        ValueError,
        r"images must be a uint8 tensor shaped \(N, C, H, W\), got torch.uint8 \(2, 4, 4\)",
    ),
    (
        "ImageDataset numpy images",
        lambda m: ImageDataset(np.zeros((2, 1, 4, 4), dtype=np.uint8)),
        ValueError,
        r"images must be a uint8 tensor shaped \(N, C, H, W\)",
    ),
    (
        "ImageDataset label beyond num_classes",
        lambda m: ImageDataset(_pixels(), torch.tensor([0, 3]), num_classes=2),
        ValueError,
        r"labels must lie in \[0, 2\), got values in \[0, 3\]",
    ),
    (
        "load_dataset unknown name",
        lambda m: load_dataset("bogus_name"),
        FileNotFoundError,
        r"data 'bogus_name' not found; expected 'digits'",
    ),
    (
        "load_dataset img_size 0",
        lambda m: load_dataset("digits", img_size=0),
        ValueError,
        r"img_size must be a positive integer or None, got 0",
    ),
    (
        "load_dataset img_size '8'",
        lambda m: load_dataset("digits", img_size="8"),
        ValueError,
        r"img_size must be a positive integer or None, got '8'",
    ),
    (
        "load_dataset channels 2",
        lambda m: load_dataset("digits", channels=2),
        ValueError,
        r"channels must be 1 \(grayscale\), 3 \(RGB\) or None, got 2",
    ),
    (
        "make_grid nrow 0",
        lambda m: make_grid(torch.zeros(4, 1, 4, 4), 0),
        ValueError,
        r"make_grid: nrow must be a positive int, got 0",
    ),
    (
        "make_grid nrow 2.0",
        lambda m: make_grid(torch.zeros(4, 1, 4, 4), 2.0),
        TypeError,
        r"make_grid: nrow must be a positive int, got float 2.0",
    ),
    (
        "make_grid padding -1",
        lambda m: make_grid(torch.zeros(4, 1, 4, 4), 2, padding=-1),
        ValueError,
        r"make_grid: padding must be an int >= 0, got -1",
    ),
    (
        "make_grid 3-d images",
        lambda m: make_grid(torch.zeros(4, 4, 4), 2),
        ValueError,
        r"make_grid: images must have shape \(B, C, H, W\), got \(4, 4, 4\)",
    ),
    (
        "make_grid uint8 images",
        lambda m: make_grid(_pixels(4), 2),
        TypeError,
        r"make_grid: images must be a float tensor \(B, C, H, W\) on \[-1, 1\].*got dtype torch.uint8",
    ),
    (
        "save_grid scale 0",
        lambda m: save_grid(torch.zeros(4, 1, 4, 4), m.dir / "g.png", 2, scale=0),
        ValueError,
        r"save_grid: scale must be a positive int, got 0",
    ),
    (
        "save_grid uint8 images",
        lambda m: save_grid(_pixels(4), m.dir / "g.png", 2),
        TypeError,
        r"save_grid: images must be a float tensor",
    ),
    (
        "train_val_split val_fraction 1.5",
        lambda m: train_val_split(list(range(10)), 1.5),
        ValueError,
        r"train_val_split: val_fraction must be a probability in \[0, 1\], got 1.5",
    ),
    (
        "train_val_split val_fraction 1",
        lambda m: train_val_split(list(range(10)), 1.0),
        ValueError,
        r"train_val_split: val_fraction must be in \[0, 1\), got 1.0",
    ),
    (
        "train_val_split val_fraction NaN",
        lambda m: train_val_split(list(range(10)), NAN),
        ValueError,
        r"train_val_split: val_fraction must be a probability in \[0, 1\], got nan",
    ),
    (
        "train_val_split seed 'a'",
        lambda m: train_val_split(list(range(10)), 0.1, seed="a"),
        TypeError,
        r"train_val_split: seed must be an int >= 0, got str 'a'",
    ),
    (
        "dequantize uint8 images",
        lambda m: dequantize(_pixels(), "uniform"),
        TypeError,
        r"dequantize expects floating-point images on \[-1, 1\], got dtype torch.uint8",
    ),
    (
        "drop_labels p 2",
        lambda m: drop_labels(torch.tensor([0, 1]), 2.0),
        ValueError,
        r"label drop probability must be in \[0, 1\], got 2.0",
    ),
    (
        "drop_labels float labels",
        lambda m: drop_labels(torch.tensor([0.0, 1.0]), 0.5),
        TypeError,
        r"drop_labels expects integer labels, got dtype torch.float32",
    ),
    (
        "to_float float images",
        lambda m: to_float(torch.zeros(2)),
        TypeError,
        r"to_float expects a torch.uint8 tensor, got torch.float32",
    ),
    (
        "to_uint8 integer tensor",
        lambda m: to_uint8(torch.zeros(2, dtype=torch.long)),
        TypeError,
        r"to_uint8 expects a floating-point tensor, got torch.int64",
    ),
    ("to_uint8 NaN", lambda m: to_uint8(torch.tensor([0.0, NAN])), ValueError, r"to_uint8: x has 1 NaN value\(s\)"),
    (
        "toy_2d unknown name",
        lambda m: toy_2d("bogus", 10),
        ValueError,
        r"toy_2d: name must be one of moons, 8gaussians, checkerboard",
    ),
    ("toy_2d n 0", lambda m: toy_2d("moons", 0), ValueError, r"toy_2d: n must be a positive int, got 0"),
    ("toy_2d n 10.0", lambda m: toy_2d("moons", 10.0), TypeError, r"toy_2d: n must be a positive int, got float 10.0"),
    (
        "toy_2d seed True",
        lambda m: toy_2d("moons", 10, seed=True),
        TypeError,
        r"toy_2d: seed must be an int >= 0, got bool True",
    ),
]

# ---- training ----------------------------------------------------------------------------------------
TRAINING = [
    (
        "warmup_cosine peak -1",
        lambda m: warmup_cosine(-1.0, 0.0, 10, 100),
        ValueError,
        r"warmup_cosine: peak must be a finite float > 0, got -1.0",
    ),
    (
        "warmup_cosine total 0",
        lambda m: warmup_cosine(1.0, 0.0, 0, 0),
        ValueError,
        r"warmup_cosine: total must be a positive int, got 0",
    ),
    (
        "warmup_cosine warmup -1",
        lambda m: warmup_cosine(1.0, 0.0, -1, 10),
        ValueError,
        r"warmup_cosine: warmup must be an int >= 0, got -1",
    ),
    (
        "warmup_cosine floor above peak",
        lambda m: warmup_cosine(1.0, 2.0, 1, 10),
        ValueError,
        r"warmup_cosine: floor must be <= peak, got floor=2.0, peak=1.0",
    ),
    (
        "validate img_size -1",
        lambda m: validate(TrainConfig(img_size=-1)),
        ValueError,
        r"img_size must be >= 1, got -1",
    ),
    (
        "validate lr 'a'",
        lambda m: validate(TrainConfig(lr="a")),
        ValueError,
        r"config key 'lr' expects a number, got 'a'",
    ),
    (
        "validate batch_size True",
        lambda m: validate(TrainConfig(batch_size=True)),
        ValueError,
        r"config key 'batch_size' expects an integer, got True",
    ),
    (
        "validate in_channels 2",
        lambda m: validate(TrainConfig(in_channels=2)),
        ValueError,
        r"in_channels must be 1 \(grayscale\) or 3 \(RGB\), got 2",
    ),
    ("validate of a dict", lambda m: validate({}), TypeError, r"validate: cfg must be a TrainConfig"),
    (
        "load_config unknown preset",
        lambda m: load_config("bogus"),
        ValueError,
        r"unknown config 'bogus'; expected a preset \(digits",
    ),
    ("load_config text file", lambda m: load_config(m.text), ValueError, r"notes.txt: not valid TOML"),
    (
        "apply_overrides unknown key",
        lambda m: apply_overrides(TrainConfig(), {"bogus": 1}),
        ValueError,
        r"unknown config key 'bogus'; valid keys: in_channels",
    ),
    (
        "apply_overrides batch_size 'x'",
        lambda m: apply_overrides(TrainConfig(), {"batch_size": "x"}),
        ValueError,
        r"config key 'batch_size' expects an integer, got 'x'",
    ),
    (
        "apply_overrides of a list",
        lambda m: apply_overrides(TrainConfig(), [("a", 1)]),
        TypeError,
        r"apply_overrides: overrides must be a mapping of field names to values, got list",
    ),
    (
        "apply_overrides to a dict",
        lambda m: apply_overrides({}, {}),
        TypeError,
        r"apply_overrides: cfg must be a TrainConfig",
    ),
    (
        "build_model num_classes -1",
        lambda m: build_model(TrainConfig(), -1),
        ValueError,
        r"TarFlow: num_classes must be an int >= 0, got -1",
    ),
    ("build_model of a dict", lambda m: build_model({}, 0), TypeError, r"build_model: cfg must be a TrainConfig"),
    ("config_to_toml of a dict", lambda m: config_to_toml({}), TypeError, r"config_to_toml: cfg must be a TrainConfig"),
    (
        "load_checkpoint text file",
        lambda m: load_checkpoint(m.text),
        ValueError,
        r"checkpoint '.*notes.txt' is truncated or not a torch checkpoint",
    ),
    ("load_checkpoint folder", lambda m: load_checkpoint(m.dir), ValueError, r"checkpoint '.*' is not a file"),
    (
        "load_trained text file",
        lambda m: load_trained(m.text),
        ValueError,
        r"checkpoint '.*notes.txt' is truncated or not a torch checkpoint",
    ),
    (
        "load_trained reference text file",
        lambda m: load_trained(m.text, ml_tarflow={}),
        ValueError,
        r"from_ml_tarflow: cannot read '.*notes.txt' as a weights-only torch checkpoint",
    ),
    (
        "save_checkpoint of a list",
        lambda m: save_checkpoint(m.dir / "c.pt", [1]),
        TypeError,
        r"a checkpoint state must be a dict, got list",
    ),
    (
        "set_rng_state missing keys",
        lambda m: set_rng_state({"bogus": 1}),
        ValueError,
        r"malformed random-generator state",
    ),
    ("set_rng_state of an int", lambda m: set_rng_state(3), ValueError, r"malformed random-generator state"),
    (
        "init_distributed device 'bogus'",
        lambda m: init_distributed("bogus"),
        ValueError,
        r"init_distributed: device must be auto, cpu, cuda, cuda:N or mps, got 'bogus'",
    ),
    (
        "init_distributed device 'meta'",
        lambda m: init_distributed("meta"),
        ValueError,
        r"init_distributed: device must be auto, cpu, cuda, cuda:N or mps, got 'meta'",
    ),
    (
        "wrap_model of an int",
        lambda m: wrap_model(3, DistInfo()),
        TypeError,
        r"wrap_model: model must be an nn.Module, got int",
    ),
    ("wrap_model info 3", lambda m: wrap_model(m.uncond, 3), TypeError, r"wrap_model: info must be a DistInfo"),
    (
        "wrap_model fsdp 'no'",
        lambda m: wrap_model(m.uncond, DistInfo(), fsdp="no"),
        TypeError,
        r"wrap_model: fsdp must be True or False, got str 'no'",
    ),
    ("DistInfo rank -1", lambda m: DistInfo(rank=-1), ValueError, r"DistInfo: rank must be an int >= 0, got -1"),
    (
        "DistInfo rank = world_size",
        lambda m: DistInfo(rank=2, world_size=2),
        ValueError,
        r"DistInfo: rank must be in \[0, world_size=2\), got 2",
    ),
    (
        "DistInfo device 'cpu'",
        lambda m: DistInfo(device="cpu"),
        TypeError,
        r"DistInfo: device must be a torch.device, got str",
    ),
    (
        "RunFolder resume 'yes'",
        lambda m: RunFolder(m.dir / "rf", resume="yes"),
        TypeError,
        r"RunFolder: resume must be True or False, got str 'yes'",
    ),
    (
        "RunFolder out 3",
        lambda m: RunFolder(3),
        TypeError,
        r"RunFolder: out must be a path \(str or os.PathLike\), got int",
    ),
    (
        "RunFolder resume and overwrite",
        lambda m: RunFolder(m.dir / "rf", resume=True, overwrite=True),
        ValueError,
        r"resume and overwrite exclude each other",
    ),
    ("train of a dict", lambda m: train({}), TypeError, r"train: cfg must be a TrainConfig"),
    (
        "train resume 'no'",
        lambda m: train(TrainConfig(), resume="no"),
        TypeError,
        r"train: resume must be True or False, got str 'no'",
    ),
]

ROWS: list[Any] = [
    pytest.param(*row[1:], id=row[0])
    for row in MODEL_INPUTS + SAMPLING + CONSTRUCTORS + TESTING + METRICS + DATA + TRAINING
] + [pytest.param(*p.values[1:], marks=p.marks, id=p.id) for p in TOOLKIT_OWNED]


@pytest.mark.parametrize("call, error, message", ROWS)
def test_bad_input_is_refused_in_its_own_words(
    m: SimpleNamespace, call: Call, error: type[Exception], message: str
) -> None:
    with flowkit.validating(True), pytest.raises(error, match=message) as caught:
        call(m)
    assert type(caught.value) is error  # not a subclass standing in (e.g. a FileNotFoundError for an OSError)


def test_the_rows_are_distinct() -> None:
    """Each row is a different bad input: no id twice (the count reported for issue 10 relies on it)."""
    ids = [p.id for p in ROWS]
    assert len(ids) == len(set(ids)) >= 150


def test_validation_switch_is_restored_after_a_refused_value(m: SimpleNamespace) -> None:
    """``set_validation(0)`` is refused without switching the value checks off (0 is not False)."""
    with pytest.raises(TypeError):
        flowkit.set_validation(0)
    assert flowkit._validation.validation_enabled()
    with pytest.raises(ValueError, match="labels must lie"):
        m.nsf.log_prob(torch.zeros(2, 3), torch.tensor([0, 2]))
