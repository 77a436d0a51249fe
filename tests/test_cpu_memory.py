"""xearthformer.keep_freed_memory: freed blocks come back without page faults (glibc)."""

from __future__ import annotations

import json
import subprocess
import sys

from xearthformer.cpu_memory import available

# Allocates, fills and frees a 64 MiB tensor (above glibc's largest mmap threshold, so by
# default it is mapped afresh each time) ten times; prints the minor page faults of the last
# eight.
PROBE = """
import json, resource, sys, torch
import xearthformer
applied = xearthformer.keep_freed_memory() if sys.argv[1] == "keep" else None
for _ in range(2):  # first uses: fault either way (the heap grows to its working size)
    torch.empty(16 << 20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    torch.empty(16 << 20).fill_(1.0)
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def probe(mode: str) -> dict:
    run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_kept_memory_is_reused_without_page_faults(skip_or_fail):
    if not available():
        skip_or_fail("needs Linux with glibc (mallopt); elsewhere keep_freed_memory does nothing")
    default, kept = probe("default"), probe("keep")
    assert kept["applied"] is True
    # 8 x 64 MiB = 131,072 pages mapped afresh by default; kept, the heap's blocks serve them.
    # Not always all of them: here one repeat in some runs found its block paged out again
    # (16,384 faults; the host reclaims idle memory), so the bound leaves room for two.
    assert default["faults"] > 100_000
    assert kept["faults"] < default["faults"] / 4


def test_keep_freed_memory_reports_where_it_cannot_apply(monkeypatch):
    import xearthformer.cpu_memory as cpu_memory

    monkeypatch.setattr(cpu_memory.platform, "system", lambda: "Darwin")
    assert cpu_memory.available() is False
    assert cpu_memory.keep_freed_memory() is False
