"""xearthformer.keep_freed_memory: freed blocks come back without page faults (glibc)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xearthformer.cpu_memory import available

# Allocates, fills and frees a 64 MiB tensor (above glibc's largest mmap threshold, so by
# default it is mapped afresh each time) a few times; prints the minor page faults of the
# repeats.
PROBE = """
import json, resource, sys, torch
import xearthformer
applied = xearthformer.keep_freed_memory() if sys.argv[1] == "keep" else None
torch.empty(16 << 20).fill_(1.0)  # first use: faults either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    torch.empty(16 << 20).fill_(1.0)
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def probe(mode: str) -> dict:
    run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not available(), reason="needs Linux with glibc (mallopt)")
def test_kept_memory_is_reused_without_page_faults():
    default, kept = probe("default"), probe("keep")
    assert kept["applied"] is True
    # 4 x 64 MiB = 65,536 pages mapped afresh by default; kept, the same heap block serves them
    assert default["faults"] > 30_000
    assert kept["faults"] < 2_000


def test_keep_freed_memory_reports_where_it_cannot_apply(monkeypatch):
    import xearthformer.cpu_memory as cpu_memory

    monkeypatch.setattr(cpu_memory.platform, "system", lambda: "Darwin")
    assert cpu_memory.available() is False
    assert cpu_memory.keep_freed_memory() is False
