"""The CPU kernels behind the Earthformer fast paths, each against the direct way, same run.

Prints one line per comparison (median of ``--reps`` calls, milliseconds, and the ratio):

* short-cuboid attention (:func:`xearthformer.nn.attention.small_attention`) vs SDPA, for
  12, 14, 16 and 24 keys (ENSO's cuboids);
* nearest upsampling + 3x3 conv: interpolate-then-conv vs the per-phase convolutions
  (:func:`xearthformer.nn.upsample_conv.nearest_upsample_conv2d`) at SEVIR's sizes;
* linear products: oneDNN vs BLAS ``mm`` for the two weight gradients of the FFN (``mm`` is
  what :func:`~xearthformer.nn.fast_linear.weight_grad` uses) and BLAS vs oneDNN for an input gradient;
* the dropout mask (:func:`xearthformer.nn.dropout.random_drop_mask`) vs ``torch.rand < p``, its
  random bits (torch's ``randint`` vs numpy's SFC64) and applying it (``masked_fill_`` vs
  :func:`~xearthformer.nn.dropout.apply_drop_`);
* two readings of the machine: a 2048^3 matrix product (GFLOP/s), and filling an 85 MB tensor
  that is freshly allocated vs one that already exists (the price of fresh memory: page
  faults, dear on some virtual machines; the CPU-inference FFN blocking avoids it).

Run: ``python benchmarks/bench_kernels.py`` on an idle machine (about a minute).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from xearthformer.nn.attention import small_attention
from xearthformer.nn.dropout import apply_drop_, random_drop_mask
from xearthformer.nn.fast_linear import onednn_available, weight_grad
from xearthformer.nn.upsample_conv import nearest_upsample_conv2d


def median_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def line(name: str, direct: float, fast: float) -> str:
    return f"{name:<44} direct {direct:8.1f} ms | fast path {fast:8.1f} ms | {direct / fast:5.2f}x"


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32")
    tokens, heads, d = 55296, 4, 16
    for keys in (12, 14, 16, 24):
        q, k, v = (torch.randn(tokens // keys, heads, keys, d) for _ in range(3))
        bias = torch.randn(1, heads, keys, keys)
        sdpa = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias), args.reps)
        ours = median_ms(lambda: small_attention(q, k, v, attn_mask=bias, scale=d ** -0.5), args.reps)
        print(line(f"attention, {keys} keys (SDPA vs small_attention)", sdpa, ours))
    for n, c, h, s in ((12, 64, 128, 3), (12, 128, 64, 2)):
        x = torch.randn(n, h, h, c).permute(0, 3, 1, 2)
        conv = torch.nn.Conv2d(c, c, 3, padding=1)
        direct = median_ms(lambda: conv(F.interpolate(x, scale_factor=s, mode="nearest")), args.reps)
        fast = median_ms(lambda: nearest_upsample_conv2d(x, conv.weight, conv.bias, (s, s)), args.reps)
        print(line(f"upsample x{s} + conv, {c} ch, {h}->{h * s}", direct, fast))
    if onednn_available():
        rows = 55296
        g, act = torch.randn(rows, 64), torch.randn(rows, 256)
        w = torch.randn(256, 64)
        lp = torch.ops.mkldnn._linear_pointwise
        for grad, inp in ((g, act), (act, g)):  # ffn_2's and ffn_1's weight gradients
            name = f"weight gradient {grad.shape[1]}x{inp.shape[1]} (oneDNN vs mm)"
            print(line(name, median_ms(lambda: lp(grad.t(), inp.t(), None, "none", [], ""), args.reps),
                       median_ms(lambda: weight_grad(grad, inp), args.reps)))
        wt = w.t().contiguous()
        print(line("input gradient 55296x256 @ 256x64 (mm vs oneDNN)", median_ms(lambda: act.mm(w), args.reps),
                   median_ms(lambda: lp(act, wt, None, "none", [], ""), args.reps)))
    a = torch.randn(2048, 2048)
    gemm = median_ms(lambda: a @ a, args.reps)
    print(f"{'matrix product 2048^3 (machine reading)':<44} {2 * 2048 ** 3 / gemm / 1e6:8.1f} GFLOP/s")
    rows = (110592, 192)  # the 96x192 qkv projection's output: 85 MB
    existing = torch.empty(rows)
    print(line("fill 85 MB: fresh allocation vs existing", median_ms(lambda: torch.empty(rows).fill_(1.0), args.reps),
               median_ms(lambda: existing.fill_(1.0), args.reps)))
    shape = torch.Size([55296, 256])
    print(line("dropout mask p=0.1, 14 M elements", median_ms(lambda: torch.rand(shape) < 0.1, args.reps),
               median_ms(lambda: random_drop_mask(shape, 0.1, device=torch.device("cpu")), args.reps)))
    words = shape.numel() // 4
    print(line("dropout bits, 3.5 M words (torch randint vs numpy SFC64)",
               median_ms(lambda: torch.randint(-(2**63), 2**63 - 1, (words,), dtype=torch.int64), args.reps),
               median_ms(lambda: np.random.SFC64(0).random_raw(words), args.reps)))
    hidden, drop = torch.randn(shape), random_drop_mask(shape, 0.1, device=torch.device("cpu"))
    print(line("apply a dropout mask in place (masked_fill_ vs apply_drop_)",
               median_ms(lambda: hidden.masked_fill_(drop, 0.0), args.reps),
               median_ms(lambda: apply_drop_(hidden, drop), args.reps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
