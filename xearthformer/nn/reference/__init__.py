"""The reference path: each cuboid layer's maths in plain torch + einops, one file per concept.

* :func:`~.self_attention.cuboid_self_attention`: cuboid self-attention with global vectors;
* :func:`~.cross_attention.cuboid_cross_attention`: the decoder's cuboid cross-attention;
* :func:`~.ffn.positionwise_ffn`: the feed-forward block.

Each takes the layer (which owns the parameters, named as in the official checkpoints)
and its inputs. ``xearthformer.nn.set_attention_backend("reference")`` makes the layers
run these; the other backends are checked against them. Nothing here is specific to a
device: no oneDNN, no hand-written autograd, no blocking.

>>> from xearthformer.nn.reference import cuboid_self_attention
>>> cuboid_self_attention.__module__
'xearthformer.nn.reference.self_attention'
"""

from .cross_attention import cuboid_cross_attention
from .ffn import positionwise_ffn
from .self_attention import cuboid_self_attention, masked_softmax, relative_position_bias

__all__ = ["cuboid_cross_attention", "cuboid_self_attention", "masked_softmax", "positionwise_ffn",
           "relative_position_bias"]
