"""Keep freed CPU memory in the process for reuse (glibc): spares page faults on every step.

PyTorch on CPU allocates its tensors with the C library's ``malloc``. glibc serves blocks
above its *mmap threshold* (at most 32 MiB) with fresh ``mmap`` calls and unmaps them when
they are freed, and it returns the free top of its heap to the system above a *trim
threshold*. A training step of a large model frees and re-allocates the same big
activations every step, so every step maps them again and the kernel page-faults every
page in, zero-filled: on virtual machines a fault is dear, and on this project's 2-core
machine that was about a fifth of a standalone Earthformer training step
(``benchmarks/bench_cpu_memory.py``).

:func:`keep_freed_memory` tells glibc to serve every block from its heap and to keep freed
memory there. The cost: the process keeps its peak memory (as PyTorch's CUDA caching
allocator does on a GPU) instead of giving it back between steps. It is process-wide and
cannot be undone for blocks already allocated, so it is opt-in; ``xearthformer train``
turns it on for its own process (``--return-freed-memory`` leaves glibc as it is).

Another allocator (jemalloc or tcmalloc through ``LD_PRELOAD``) does the same job.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["available", "keep_freed_memory"]

# mallopt parameters (glibc <malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


def available() -> bool:
    """Whether :func:`keep_freed_memory` can take effect here (Linux with glibc).

    Examples
    --------
    >>> import platform
    >>> available() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    True
    """
    return _mallopt() is not None


def _mallopt():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse instead of returning it.

    Every later allocation comes from the heap (no ``mmap`` per large block) and freed
    memory is not trimmed back to the system (up to 2 GiB of free heap top). Call it once,
    early, in a process that trains or runs many steps on the CPU.

    Returns
    -------
    bool
        True where it took effect (Linux with glibc); False elsewhere (macOS, Windows,
        musl), where it does nothing.

    Examples
    --------
    In a process of its own (it changes the whole process):

    >>> import subprocess, sys
    >>> code = "from xearthformer.cpu_memory import keep_freed_memory; print(keep_freed_memory())"
    >>> run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    >>> run.stdout.strip() == str(available())
    True
    """
    mallopt = _mallopt()
    # mallopt answers 1 on success
    return mallopt is not None and mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _INT_MAX) == 1
