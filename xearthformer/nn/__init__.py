"""Pure-torch building blocks of cuboid attention (torch + einops only, never xarray).

>>> from xearthformer.nn import CuboidSelfAttentionLayer, SELF_PATTERNS
>>> "axial" in SELF_PATTERNS
True
"""

from ._validation import ConfigError
from .backend import BACKENDS, attention_backend, get_attention_backend, set_attention_backend
from .blocks import StackCuboidCrossAttentionBlock, StackCuboidSelfAttentionBlock
from .cross_attention import CuboidCrossAttentionLayer
from .dropout import FastDropout
from .layers import PatchMerging3D, PositionwiseFFN, PosEmbed, RMSNorm, Upsample3DLayer
from .patterns import CROSS_PATTERNS, SELF_PATTERNS, resolve_cross_pattern, resolve_self_pattern
from .self_attention import CuboidSelfAttentionLayer

__all__ = [
    "BACKENDS",
    "CROSS_PATTERNS",
    "SELF_PATTERNS",
    "ConfigError",
    "CuboidCrossAttentionLayer",
    "CuboidSelfAttentionLayer",
    "FastDropout",
    "PatchMerging3D",
    "PosEmbed",
    "PositionwiseFFN",
    "RMSNorm",
    "StackCuboidCrossAttentionBlock",
    "StackCuboidSelfAttentionBlock",
    "Upsample3DLayer",
    "attention_backend",
    "get_attention_backend",
    "resolve_cross_pattern",
    "resolve_self_pattern",
    "set_attention_backend",
]
