"""Neural networks that parameterise bijectors.

Conditioners for the general structures follow one protocol (see :doc:`/building-blocks`):
``conditioner(x, context) -> params`` with ``params`` of shape ``(*x.shape[:-1], D_out, P)``.
"""

from .conditioner import TransformerConditioner
from .context import ContextEncoder
from .made import MADE, MaskedLinear
from .mlp import MLPConditioner
from .transformer import MLP, Attention, KVCache, Transformer, TransformerLayer

__all__ = ["Attention", "ContextEncoder", "KVCache", "MADE", "MLP", "MLPConditioner", "MaskedLinear", "Transformer",
           "TransformerConditioner", "TransformerLayer"]
