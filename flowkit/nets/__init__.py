"""Neural networks that parameterise bijectors."""

from .conditioner import TransformerConditioner
from .transformer import MLP, Attention, KVCache, Transformer, TransformerLayer

__all__ = ["Attention", "KVCache", "MLP", "Transformer", "TransformerConditioner", "TransformerLayer"]
