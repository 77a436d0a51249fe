"""Standalone ENSO training steps with and without ``xearthformer.keep_freed_memory``.

Each variant runs in a fresh process (the setting is process-wide), alternating
default / kept for ``--pairs`` pairs: forward + backward + AdamW of the ENSO config at
batch 8, dropout on, float32, 2 threads; ``--warmup`` steps, then ``--steps`` timed ones.
Prints per variant the median step time, the minor page faults per step and the peak
resident memory (VmHWM), then the speed-up of keeping freed memory.

This is the setting of a training script or ``xearthformer train`` (nothing else in the
process). The side-by-side benchmark ``bench_earthformer.py`` does not use it: there the
official model's steps in the same process already keep the heap warm for ours.

Run: ``python benchmarks/bench_cpu_memory.py [--pairs 2]`` (about a minute per process).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {bench_dir!r})
import torch
import xearthformer
from bench_earthformer import config
from xearthformer.models import Earthformer

applied = xearthformer.keep_freed_memory() if {keep!r} else False
torch.set_num_threads({threads})
kw = config("earthformer-icar-enso", None)
torch.manual_seed(0)
model = Earthformer.from_official_kwargs(kw).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
x = torch.randn(8, *kw["input_shape"], generator=torch.Generator().manual_seed(1))
y = torch.randn(8, *kw["target_shape"], generator=torch.Generator().manual_seed(2))
times, faults = [], []
for i in range({warmup} + {steps}):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    if i >= {warmup}:
        times.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"applied": applied, "times": times, "faults": faults, "peak_mb": hwm / 1024}}))
"""


def run_child(keep: bool, args: argparse.Namespace) -> dict:
    code = CHILD.format(bench_dir=str(Path(__file__).resolve().parent), keep=keep, threads=args.threads,
                        warmup=args.warmup, steps=args.steps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    runs = {False: [], True: []}
    for _ in range(args.pairs):
        for keep in (False, True):
            runs[keep].append(run_child(keep, args))
    medians = {}
    for keep, results in runs.items():
        times = [t for r in results for t in r["times"]]
        faults = [f for r in results for f in r["faults"]]
        medians[keep] = statistics.median(times)
        name = "keep_freed_memory" if keep else "default malloc"
        applied = "" if not keep else f" (applied: {all(r['applied'] for r in results)})"
        print(f"enso_train_b8 standalone  {name:<17} median {medians[keep]:.3f}s  min {min(times):.3f}s  "
              f"| {statistics.median(faults):.0f} page faults per step "
              f"| peak RSS {max(r['peak_mb'] for r in results):.0f} MB{applied}")
    print(f"speed-up of keeping freed memory: {medians[False] / medians[True]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
