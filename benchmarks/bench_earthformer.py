"""Earthformer: ours vs the official implementation, same weights, same inputs, same run.

Run ``make bench`` (or ``python benchmarks/bench_earthformer.py`` in an environment made by
``make bench-env``). Each case runs in a fresh process, times the two models alternately
(median of ``--reps``) and prints one line with median seconds, samples/s, achieved GFLOP/s
(FLOPs counted once on the official model with ``torch.utils.flop_counter``), peak memory
of one step (RSS growth sampled every millisecond in a fresh subprocess per model, median of
three), the ratio official/ours, the max abs output difference and the median minor page
faults of a step, and checks the issue's target. ``--scaling`` adds the cost-growth table (24x48 .. 96x192).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _official import official_model  # noqa: E402

from xearthformer.models import Earthformer  # noqa: E402
from xearthformer.zoo import official_kwargs  # noqa: E402

# case name -> (zoo config, grid override, batch, mode, target ratio)
CASES = {
    "enso_fwd_b8": ("earthformer-icar-enso", None, 8, "forward", 1.7),
    "enso_train_b8": ("earthformer-icar-enso", None, 8, "train", 2.0),
    "enso_fwd_96x192_b1": ("earthformer-icar-enso", (96, 192), 1, "forward", 2.5),
    "sevir_fwd_b1": ("earthformer-sevir", None, 1, "forward", 1.3),
}
MEMORY_TARGET = {"enso_train_b8": 0.6}  # ours / official peak memory, at most


def config(name: str, grid: tuple[int, int] | None, patterns: str | None = None) -> dict:
    kw = copy.deepcopy(official_kwargs(name))
    if grid is not None:
        kw["input_shape"][1:3] = list(grid)
        kw["target_shape"][1:3] = list(grid)
    if patterns is not None:
        n = len(kw["enc_depth"])
        kw["enc_attn_patterns"] = [patterns] * n
        kw["dec_self_attn_patterns"] = [patterns] * n
    return kw


def build_pair(kw: dict, seed: int = 0):
    torch.manual_seed(seed)
    official = official_model(copy.deepcopy(kw))
    ours = Earthformer.from_official_kwargs(kw)
    ours.load_state_dict(official.state_dict(), strict=True)
    return official, ours


def make_step(model, x: torch.Tensor, mode: str, dtype: torch.dtype | None = None):
    if mode == "forward":
        model.eval()

        def step():
            with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                return model(x)
        return step
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    target = torch.zeros(x.shape[0], *model_target_shape(model))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        return loss
    return step


def model_target_shape(model) -> tuple:
    shape = getattr(model, "target_shape", None) or model.config.target_shape
    return tuple(shape)


def median_time(step, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def count_flops(model, x: torch.Tensor, mode: str) -> float:
    """FLOPs of one step; torch's counter knows the GPU SDPA kernels, the CPU one is added."""
    from torch.utils.flop_counter import FlopCounterMode

    cpu_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    counter = FlopCounterMode(display=False, custom_mapping={cpu_flash: _cpu_flash_attention_flops})
    if mode == "forward":
        model.eval()
        flags = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():  # the counter's module hooks need grad_fns unless nothing requires grad
            p.requires_grad_(False)
        with counter, torch.no_grad():
            model(x)
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    else:
        model.train()
        with counter:
            model(x).square().mean().backward()
        model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


MEMORY_RUNS = 3


def peak_memory_mb(case: str, impl: str, runs: int = MEMORY_RUNS) -> float:
    """Peak RSS growth of one step (two for training, to include optimizer state), in a fresh process.

    The median of ``runs`` fresh processes: one process's figure moves by about +-4 % between
    runs (where the 1 ms sampler catches the peak, and how much freed memory the C allocator
    still holds), enough to flip the training-memory verdict.
    """
    figures = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, __file__, "--memory-child", case, impl], capture_output=True,
                             text=True, check=True)
        figures.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(figures)


def memory_child(case: str, impl: str) -> None:
    name, grid, batch, mode, _ = CASES[case]
    kw = config(name, grid)
    official, ours = build_pair(kw)
    model = official if impl == "official" else ours
    del official, ours
    x = torch.randn(batch, *kw["input_shape"])
    step = make_step(model, x, mode)
    # ru_maxrss survives exec (it would report the parent's peak), so sample the RSS instead
    rss_before = _current_rss_kb()
    peak = [rss_before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _current_rss_kb())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(2 if mode == "train" else 1):
        step()
    done.set()
    sampler.join()
    print((max(peak[0], _current_rss_kb()) - rss_before) / 1024)


def _current_rss_kb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 1024


def run_case(case: str, reps: int) -> dict:
    name, grid, batch, mode, target = CASES[case]
    kw = config(name, grid)
    official, ours = build_pair(kw)
    x = torch.randn(batch, *kw["input_shape"], generator=torch.Generator().manual_seed(1))
    official.eval(), ours.eval()
    with torch.no_grad():
        diff = (official(x) - ours(x)).abs().max().item() if mode == "forward" else float("nan")
    flops = count_flops(official, x, mode)
    steps = {"official": make_step(official, x, mode), "ours": make_step(ours, x, mode)}
    for step in steps.values():
        step()  # warm-up
    times = {k: [] for k in steps}
    faults = {k: [] for k in steps}
    for _ in range(reps):  # alternate so that machine noise hits both alike
        for k, step in steps.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            times[k].append(median_time(step, 1))
            faults[k].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    med = {k: statistics.median(v) for k, v in times.items()}
    mem = {k: peak_memory_mb(case, k) for k in steps}
    return dict(case=case, batch=batch, mode=mode, flops=flops, seconds=med, memory_mb=mem, diff=diff,
                target=target, page_faults={k: statistics.median(v) for k, v in faults.items()})


def case_in_fresh_process(case: str, reps: int, threads: int, script: str = __file__,
                          extra: Sequence[str] = ()) -> dict:
    """:func:`run_case` in a fresh Python process.

    A case's figures must not depend on the cases run before it: both models' time depends
    on how much fresh memory the kernel has to map for them, which follows the C heap's
    history in the process (in one process, after the training case had grown the heap, the
    official SEVIR forward took 2.9 s against 4.4 s in a fresh one). Within a case the two
    models still share the process and alternate.

    ``script`` (another benchmark with the same ``--case-child`` protocol) runs it instead,
    with ``extra`` arguments.
    """
    out = subprocess.run([sys.executable, script, "--case-child", case, "--reps", str(reps),
                          "--threads", str(threads), *extra], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_case(r: dict) -> str:
    parts = [f"{r['case']:<20}"]
    for impl in ("ours", "official"):
        s = r["seconds"][impl]
        parts.append(f"{impl} {s:7.3f}s {r['batch'] / s:6.2f} samples/s {r['flops'] / s / 1e9:6.1f} GFLOP/s "
                     f"peak {r['memory_mb'][impl]:7.1f} MB")
    ratio = r["seconds"]["official"] / r["seconds"]["ours"]
    verdict = "PASS" if ratio >= r["target"] else "FAIL"
    line = " | ".join(parts) + f" | official/ours {ratio:.2f}x (target >= {r['target']}x {verdict})"
    if r["case"] in MEMORY_TARGET:
        mem_ratio = r["memory_mb"]["ours"] / r["memory_mb"]["official"]
        ok = "PASS" if mem_ratio <= MEMORY_TARGET[r["case"]] else "FAIL"
        line += f" | memory ours/official {mem_ratio:.2f} (target <= {MEMORY_TARGET[r['case']]} {ok})"
    line += f" | max abs diff {r['diff']:.2e}" if r["diff"] == r["diff"] else " | max abs diff n/a (training)"
    faults = r.get("page_faults")
    if faults:  # fresh memory mapped per step: dear on virtual machines, and it follows the heap's history
        line += f" | page faults per step ours {faults['ours']:.0f} official {faults['official']:.0f}"
    return line


def compiled_case(reps: int, compile_ours: bool = False) -> str:
    kw = config("earthformer-icar-enso", None)
    official, ours = build_pair(kw)
    x = torch.randn(8, *kw["input_shape"])
    official.eval(), ours.eval()
    compiled = torch.compile(official)
    ours_compiled = torch.compile(ours) if compile_ours else None
    with torch.no_grad():
        start = time.perf_counter()
        compiled(x)  # compile
        compile_s = {"official": time.perf_counter() - start}
        if ours_compiled is not None:
            start = time.perf_counter()
            diff = (ours_compiled(x) - official(x)).abs().max().item()
            compile_s["ours"] = time.perf_counter() - start
        variants = {"official": compiled, "ours": ours} | ({"ours_compiled": ours_compiled} if compile_ours else {})
        for fn in variants.values():
            fn(x)
        times = {k: [] for k in variants}
        for _ in range(reps):  # alternate so that machine noise hits them alike
            for k, fn in variants.items():
                times[k].append(median_time(lambda: fn(x), 1))
    t_off, t_ours = statistics.median(times["official"]), statistics.median(times["ours"])
    ratio = t_off / t_ours
    line = (f"{'enso_fwd_b8_compiled':<20} ours eager {t_ours:.3f}s | official torch.compile {t_off:.3f}s "
            f"(first call, compiling or from inductor's cache: {compile_s['official']:.0f}s) | "
            f"compiled-official/ours {ratio:.2f}x (target > 1x {'PASS' if ratio > 1 else 'FAIL'})")
    if compile_ours:
        line += (f" | ours torch.compile {statistics.median(times['ours_compiled']):.3f}s (first call "
                 f"{compile_s['ours']:.0f}s, max abs diff to official eager {diff:.2e})")
    return line


def bf16_case(reps: int) -> str:
    kw = config("earthformer-icar-enso", None)
    official, ours = build_pair(kw)
    x = torch.randn(8, *kw["input_shape"])
    ours.eval()
    with torch.no_grad():
        ref = official.eval()(x)
        fp32 = make_step(ours, x, "forward")
        bf16 = make_step(ours, x, "forward", torch.bfloat16)
        fp32(), bf16()
        t32 = statistics.median([median_time(fp32, 1) for _ in range(reps)])
        t16 = statistics.median([median_time(bf16, 1) for _ in range(reps)])
        err = (bf16().float() - ref).abs().max().item() / ref.abs().max().item()
    return (f"{'enso_fwd_b8_bf16':<20} ours fp32 {t32:.3f}s | ours bf16 autocast {t16:.3f}s "
            f"({t32 / t16:.2f}x) | bf16 max abs error relative to absmax {err:.2e}")


def naive_full_attention(grid: tuple[int, int], reps: int) -> tuple[float, float]:
    """Forward time of the same network with every self-attention over the whole (T, H, W) grid.

    Relative position bias is off: over the whole grid it is an (N, N) table per head (27,648
    tokens at 48x96: 3 GB a head), which is what got the first version of this table killed.
    Without it and without masks, ``scaled_dot_product_attention`` takes torch's memory-bounded
    flash kernel, so this baseline is the FLOPs of full attention and not its memory.
    """
    kw = config("earthformer-icar-enso", grid, patterns="full")
    kw["use_relative_pos"] = False
    model = Earthformer.from_official_kwargs(kw).eval()
    x = torch.randn(1, *kw["input_shape"])
    flops = count_flops(model, x, "forward")
    step = make_step(model, x, "forward")
    step()
    return statistics.median([median_time(step, 1) for _ in range(reps)]), flops


def scaling_table(reps: int) -> list[str]:
    """Forward cost at batch 1 as the grid grows; each row also gives time per GFLOP.

    Ours should keep its GFLOP/s as the grid grows (time in proportion to FLOPs); the naive
    full space-time attention has FLOPs that grow with the square of the number of tokens.
    """
    lines = ["| grid | GFLOP | ours (s) | ours GFLOP/s | official (s) | official GFLOP/s "
             "| naive full attention GFLOP | naive (s) | naive GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    rates = []
    for grid in ((24, 48), (48, 96), (96, 192)):
        kw = config("earthformer-icar-enso", grid)
        official, ours = build_pair(kw)
        x = torch.randn(1, *kw["input_shape"])
        flops = count_flops(official, x, "forward")
        steps = {"ours": make_step(ours, x, "forward"), "official": make_step(official, x, "forward")}
        for s in steps.values():
            s()
        t = {k: statistics.median([median_time(s, 1) for _ in range(reps)]) for k, s in steps.items()}
        del official, ours, steps
        naive, naive_flops = naive_full_attention(grid, 1 if grid == (96, 192) else reps)
        g = flops / 1e9
        lines.append(f"| {grid[0]}x{grid[1]} | {g:.2f} | {t['ours']:.3f} | {g / t['ours']:.1f} | "
                     f"{t['official']:.3f} | {g / t['official']:.1f} | {naive_flops / 1e9:.1f} | {naive:.3f} | "
                     f"{naive_flops / 1e9 / naive:.1f} |")
        rates.append(g / t["ours"])
    spread = max(rates) / min(rates)
    lines.append(f"ours GFLOP/s from 24x48 to 96x192 varies by {spread:.2f}x "
                 f"(in proportion to FLOPs if within 1.5x: {'PASS' if spread <= 1.5 else 'FAIL'})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time the official model under torch.compile")
    parser.add_argument("--compile-ours", action="store_true",
                        help="with --compile, also time ours under torch.compile (inductor; minutes to compile)")
    parser.add_argument("--bf16", action="store_true", help="also time our opt-in bf16 autocast path")
    parser.add_argument("--scaling", action="store_true", help="print the cost-growth table")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument("--memory-child", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    parser.add_argument("--case-child", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    if args.case_child:
        print(json.dumps(run_case(args.case_child, args.reps)))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, reps={args.reps}")
    cpu_before = _cpu_times()
    results = []
    for case in args.cases:
        r = case_in_fresh_process(case, args.reps, args.threads)
        results.append(r)
        print(format_case(r), flush=True)
    if args.compile:
        print(compiled_case(args.reps, args.compile_ours), flush=True)
    if args.bf16:
        print(bf16_case(args.reps), flush=True)
    if args.scaling:
        print("\n".join(scaling_table(max(1, args.reps // 2))), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if cpu_before is not None:
        used = [b - a for a, b in zip(cpu_before, _cpu_times())]
        print(f"machine: {100 * used[7] / max(1, sum(used)):.1f}% of the CPU time was stolen by the host "
              f"during the run (/proc/stat); load average {os.getloadavg()[0]:.1f}")
    return 0


def _cpu_times() -> list[int] | None:
    """The aggregate CPU counters of /proc/stat (user, nice, system, idle, iowait, irq, softirq, steal)."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
