"""Each CPU-inference fast path of our Earthformer switched off in turn, same process, same run.

Prints, per case (ENSO config at batch 8, and at 96x192 batch 1), the median and min forward
time with every fast path on and with one of them off, alternating the variants so that
machine noise hits them alike, and the max abs output difference (the fast paths are exact
rearrangements of the same sums: expect 0).

Switches (monkeypatched for the run):

* ``one_pass_cut``: q, k, v cut, scaled and key-padded in one pass (``cut_qkv_padded`` etc.);
* ``blocked_ffn``: the FFN over blocks of rows (``PositionwiseFFN._blocked_inference``);
* ``inplace_residual``: residuals added into the attention update (``blocks._residual``).

Run: ``python benchmarks/bench_fast_paths.py [--reps 10]`` on an idle machine (a few minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

import xearthformer.nn.blocks as blocks
import xearthformer.nn.cross_attention as cross_attention
import xearthformer.nn.layers as layers
import xearthformer.nn.self_attention as self_attention
from xearthformer.models import Earthformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_earthformer import config  # noqa: E402

CASES = {"enso_fwd_b8": (None, 8), "enso_fwd_96x192_b1": ((96, 192), 1)}


def _never(*args, **kwargs) -> bool:
    return False


def _plain_residual(x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    return x + update


SWITCHES = {
    "one_pass_cut": [(self_attention, "small_attention_applies", _never),
                     (cross_attention, "small_attention_applies", _never)],
    "blocked_ffn": [(layers.PositionwiseFFN, "_blocked_inference", _never)],
    "inplace_residual": [(blocks, "_residual", _plain_residual)],
}


@contextlib.contextmanager
def switched_off(name: str | None):
    saved = []
    for owner, attr, replacement in SWITCHES.get(name, []):
        saved.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, replacement)
    try:
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


@torch.no_grad()
def run_case(case: str, reps: int) -> list[str]:
    grid, batch = CASES[case]
    kw = config("earthformer-icar-enso", grid)
    torch.manual_seed(0)
    model = Earthformer.from_official_kwargs(kw).eval()
    x = torch.randn(batch, *kw["input_shape"], generator=torch.Generator().manual_seed(1))
    variants = [None, *SWITCHES]
    outputs, times = {}, {v: [] for v in variants}
    for v in variants:  # warm-up, and the outputs to compare
        with switched_off(v):
            outputs[v] = model(x)
    for _ in range(reps):
        for v in variants:
            with switched_off(v):
                start = time.perf_counter()
                model(x)
                times[v].append(time.perf_counter() - start)
    base = statistics.median(times[None])
    lines = [f"{case:<20} all fast paths on   median {base:.3f}s  min {min(times[None]):.3f}s"]
    for v in SWITCHES:
        med = statistics.median(times[v])
        diff = (outputs[v] - outputs[None]).abs().max().item()
        lines.append(f"{case:<20} {v + ' off':<19} median {med:.3f}s  min {min(times[v]):.3f}s  "
                     f"({med / base:.2f}x the time with it on) | max abs diff {diff:.1e}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, reps={args.reps}")
    for case in args.cases:
        print("\n".join(run_case(case, args.reps)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
