"""How far the speed targets can go with this machine's matrix kernels: the kernel floor.

Both models spend their time in two kinds of work: *matrix kernels* (oneDNN and BLAS matrix
products, convolutions and their gradients, fused attention) and *everything else*
(element-wise passes, copies, normalisation, softmax, dropout, Python). A faster model can
remove the second kind but not the first: the same sums have to be done, and both models
call the same libraries for them (ours calls oneDNN where the official calls BLAS for
its linears). So for each case of ``bench_earthformer.py`` this script
profiles steps of each model (``torch.profiler``, self CPU time per op), takes the share
of a step's wall time spent in matrix kernels (median of ``--profile-reps`` profiled steps),
times unprofiled steps of both models alternately, and prints

* ``kernels``: that share of the median unprofiled step, ours and the official one's (a
  share is steadier than a time on a noisy machine, where one step can come out 15% slow);
* ``rest``: the step time that is not matrix kernels (median step time minus kernels);
* ``ceiling``: official step time / our kernel time, the ratio ours would reach with *no*
  time outside the matrix kernels;
* what the target needs: the most time outside the kernels it allows, against what ours
  spends there now, or ``unreachable with these kernels`` when the ceiling is below it.

Two biases, in opposite directions. The profiler's own cost falls on the many small ops,
not on the kernels, so the shares come out a little low (ceilings a little high). Fused
kernels count whole: our inference FFN's exact GELU runs inside oneDNN's product, and
SDPA's softmax inside its kernel, where the official code runs them as separate ops; so
where we fuse, our kernel time includes some element-wise work (in the ENSO batch-8
forward, the GELU of 99 FFN blocks: an estimated 0.08 s on this project's CPUs).

Run: ``python benchmarks/bench_kernel_floor.py [--cases ...] [--reps 3] [--profile-reps 3]`` in the environment
of ``make bench-env`` (a few minutes; the training case is the long one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_earthformer import CASES, build_pair, case_in_fresh_process, config, make_step, median_time  # noqa: E402

#: Ops whose self time is matrix arithmetic done by a kernel library (oneDNN, MKL BLAS,
#: the CPU flash attention). ``aten::matmul``/``aten::linear`` are dispatchers; their
#: kernels (``mm``, ``bmm``, ``addmm``) are listed instead.
MATRIX_KERNELS = frozenset({
    "mkldnn::_linear_pointwise", "aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm",
    "aten::baddbmm", "aten::addbmm", "aten::mkldnn_convolution", "aten::convolution_backward",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
})


def kernel_share(step) -> float:
    """The share of one profiled call of ``step``'s wall time spent in matrix kernels."""
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    wall = time.perf_counter() - start
    kernels = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATRIX_KERNELS) / 1e6
    return kernels / wall


def run_case(case: str, reps: int, profile_reps: int = 3) -> dict:
    """Kernel shares and step times of both models for one case, in this process."""
    name, grid, batch, mode, target = CASES[case]
    kw = config(name, grid)
    official, ours = build_pair(kw)
    x = torch.randn(batch, *kw["input_shape"], generator=torch.Generator().manual_seed(1))
    steps = {"official": make_step(official, x, mode), "ours": make_step(ours, x, mode)}
    for step in steps.values():
        step()  # warm-up
    shares: dict[str, list[float]] = {k: [] for k in steps}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(profile_reps):  # alternate so that machine noise hits both alike
        for k, step in steps.items():
            shares[k].append(kernel_share(step))
    for _ in range(reps):
        for k, step in steps.items():
            times[k].append(median_time(step, 1))
    return dict(case=case, target=target, share={k: statistics.median(v) for k, v in shares.items()},
                seconds={k: statistics.median(v) for k, v in times.items()})


def format_case(r: dict) -> str:
    """One line: kernels, rest, ceiling ratio and what the target leaves for the rest."""
    ours, official = r["seconds"]["ours"], r["seconds"]["official"]
    k_ours, k_official = r["share"]["ours"] * ours, r["share"]["official"] * official
    ceiling = official / k_ours
    budget = official / r["target"] - k_ours  # time outside the kernels the target allows
    rest = ours - k_ours
    line = (f"{r['case']:<20} | step ours {ours:6.3f}s official {official:6.3f}s ({official / ours:.2f}x)"
            f" | kernels ours {k_ours:6.3f}s ({r['share']['ours']:.0%}) official {k_official:6.3f}s"
            f" ({r['share']['official']:.0%}) | rest ours {rest:6.3f}s official {official - k_official:6.3f}s"
            f" | ceiling {ceiling:.2f}x (target {r['target']}x)")
    if budget <= 0:
        return line + " | unreachable with these kernels"
    return line + f" | the target allows {budget:.3f}s outside the kernels: cut ours by {max(0.0, 1 - budget / rest):.0%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--profile-reps", type=int, default=3, help="profiled steps per model (the least counts)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case-child", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.case_child:
        print(json.dumps(run_case(args.case_child, args.reps, args.profile_reps)))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, reps={args.reps}; "
          f"matrix kernels: {', '.join(sorted(MATRIX_KERNELS))}")
    for case in args.cases:
        r = case_in_fresh_process(case, args.reps, args.threads, script=__file__,
                                  extra=["--profile-reps", str(args.profile_reps)])
        print(format_case(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
