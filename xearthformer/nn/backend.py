"""Which execution strategy the attention and feed-forward layers use.

Every cuboid layer owns its parameters and its maths contract; *how* it is computed is
chosen per call by :mod:`xearthformer.nn.execution` from one setting:

``"reference"``
    The reference path, :mod:`xearthformer.nn.reference`: plain torch + einops written
    like the paper (scores, bias, masks and softmax spelled out). Slowest; the one to read.
``"sdpa"``
    The same maths on :func:`torch.nn.functional.scaled_dot_product_attention` (fused
    kernels on GPUs and CPUs), with none of the CPU-specific fast paths.
``"auto"`` (default)
    ``"sdpa"`` plus, per layer and where their conditions hold, the CPU fast paths
    (oneDNN linears, short-cuboid attention, slabs, folded zero padding, lean training
    FFN and projections, dropout attention). See :mod:`xearthformer.nn.execution`.

All three compute the official Earthformer semantics and are checked against the same
golden vectors. The setting is process-wide, like torch's own backend flags; it is read
when a layer runs, never at import, and nothing changes it but these functions.

Examples
--------
>>> get_attention_backend()
'auto'
>>> with attention_backend("reference"):
...     get_attention_backend()
'reference'
>>> get_attention_backend()
'auto'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from ._validation import ConfigError

__all__ = ["BACKENDS", "attention_backend", "fast_paths_enabled", "get_attention_backend",
           "set_attention_backend"]

Backend = Literal["reference", "sdpa", "auto"]
BACKENDS: tuple[str, ...] = ("reference", "sdpa", "auto")

_current: list[str] = ["auto"]  # one mutable cell: read by the layers at call time


def _checked(name: str) -> str:
    if name not in BACKENDS:
        raise ConfigError(f"unknown attention backend {name!r}: choose one of {', '.join(map(repr, BACKENDS))}")
    return name


def set_attention_backend(name: Backend) -> None:
    """Make every cuboid attention and FFN layer use ``name`` from now on.

    Parameters
    ----------
    name
        ``"reference"``, ``"sdpa"`` or ``"auto"`` (the default).

    Examples
    --------
    >>> set_attention_backend("sdpa")
    >>> get_attention_backend()
    'sdpa'
    >>> set_attention_backend("auto")
    """
    _current[0] = _checked(name)


def get_attention_backend() -> str:
    """The backend in force: ``"reference"``, ``"sdpa"`` or ``"auto"``."""
    return _current[0]


@contextmanager
def attention_backend(name: Backend) -> Iterator[None]:
    """Use ``name`` inside the ``with`` block, then restore the previous backend.

    Examples
    --------
    >>> import torch
    >>> from xearthformer.nn import CuboidSelfAttentionLayer
    >>> layer = CuboidSelfAttentionLayer(8, 2, cuboid_size=(2, 2, 2)).eval()
    >>> x = torch.randn(1, 2, 4, 4, 8)
    >>> with torch.no_grad(), attention_backend("reference"):
    ...     y = layer(x)
    >>> with torch.no_grad():
    ...     torch.allclose(y, layer(x), atol=1e-5)
    True
    """
    previous = _current[0]
    _current[0] = _checked(name)
    try:
        yield
    finally:
        _current[0] = previous


def fast_paths_enabled() -> bool:
    """Whether the CPU fast paths may be taken (backend ``"auto"``); each also checks its own
    condition (device, dtype, autograd, sizes)."""
    return _current[0] == "auto"
