"""Whether ``torch.compile`` is tracing the current call.

The CPU fast paths call oneDNN ops directly and pick layouts by hand; under ``torch.compile``
they step aside and the plain torch ops go to the compiler (inductor lowers oneDNN's linear
only for frozen weights, and picks its own layouts).
"""

from __future__ import annotations

try:
    from torch.compiler import is_compiling as compiling
except ImportError:  # torch < 2.3
    from torch._dynamo import is_compiling as compiling

__all__ = ["compiling"]
