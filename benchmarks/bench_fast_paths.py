"""Each CPU fast path of our Earthformer switched off in turn, same process, same run.

Prints, per case, the median and min time with every fast path on and with one of them off,
alternating the variants so that machine noise hits them alike, the median number of minor
page faults of a step (fresh memory the kernel had to map: dear on virtual machines), and
the max abs difference
of the result (the outputs in inference, the parameter gradients in training; the fast paths
are exact rearrangements of the same sums, so expect 0 or float32 rounding).

Inference cases (ENSO config forward at batch 8 and at 96x192 batch 1, SEVIR config forward
at batch 1), switches
monkeypatched for the run:

* ``one_pass_cut``: short-cuboid attention with q, k, v cut, scaled and key-padded in one pass
  (``execution.cpu.attend_small``, ``execution.cuts.cut_qkv_padded`` etc.);
* ``blocked_ffn``: the FFN over blocks of rows (``execution.ffn.blocked``);
* ``inplace_residual``: residuals added into the attention update (``blocks._residual``);
* ``attention_slabs``: self-attention over slabs of whole cuboids (``execution.cpu.slabs``);
* ``all_cpu_paths``: every CPU fast path at once (the ``"sdpa"`` backend instead of ``"auto"``);
* ``frame_chunks``: the full-resolution initial encoder and final decoder over chunks of
  frames (``earthformer_io.FRAME_CHUNK_BYTES``);
* ``ffn_into_input``: the blocked inference FFN writes its result into its input, the fresh
  residual sum its stack owns (off: into a new tensor);
* ``head_per_chunk``: the final projection applied to each chunk of frames of the final
  decoder (off: to its whole full-resolution output).

Training case (``enso_train_b8``: forward + backward of the ENSO config at batch 8, dropout
on, the same seed before every step; no optimizer step, so the weights stay put):

* ``mm_weight_grad``: weight gradients by BLAS ``mm`` (off: oneDNN, which copies the
  transposed operands);
* ``where_drop``: dropout masks applied by ``torch.where(..., out=t)`` (off: ``masked_fill_``);
* ``blocked_lean_ffn``: the 4x-wide temporaries of the lean FFN made over row blocks (off:
  one block of every row);
* ``blocked_dropout_attention``: attention with dropout over blocks of cuboids (off: one
  block of all of them);
* ``fast_final_proj``: the last projection (64 -> 1 channels) through oneDNN (off: ``F.linear``,
  whose input gradient is a BLAS ``mm`` with one inner column);
* ``all_cpu_paths``: as in inference (lean FFN and projections, dropout attention, oneDNN);
* ``numpy_bits``: dropout bits from numpy's SFC64 (off: torch's ``randint``). The masks then
  differ, so its gradient difference is not 0: it is printed for the record only.

Run: ``python benchmarks/bench_fast_paths.py [--reps 10]`` on an idle machine (a few minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

import xearthformer.nn.attention as attention
import xearthformer.nn.backend as backend
import xearthformer.nn.blocks as blocks
import xearthformer.nn.dropout as dropout
import xearthformer.nn.execution.cpu as cpu_strategies
import xearthformer.nn.execution.ffn as ffn_strategies
import xearthformer.nn.execution.sdpa as sdpa_strategy
import xearthformer.nn.fast_linear as fast_linear
import xearthformer.nn.layers as layers
import xearthformer.nn.lean as lean
import xearthformer.models.earthformer_io as earthformer_io
from xearthformer.models import Earthformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_earthformer import config  # noqa: E402

ENSO, SEVIR = "earthformer-icar-enso", "earthformer-sevir"
CASES = {"enso_fwd_b8": (ENSO, None, 8), "enso_fwd_96x192_b1": (ENSO, (96, 192), 1),
         "sevir_fwd_b1": (SEVIR, None, 1), "enso_train_b8": (ENSO, None, 8)}
TRAINING_CASES = ("enso_train_b8",)


def _never(*args, **kwargs) -> bool:
    return False


def _plain_residual(x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    return x + update


def _onednn_weight_grad(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(grad_out.t(), x.t(), None, "none", [], "")


def _ffn_fresh_output(ffn, x: torch.Tensor, *, overwrite_input: bool = False) -> torch.Tensor:
    return _FFN_FORWARD(ffn, x)


def _head_after_decoder(module, stages, x: torch.Tensor, head=None) -> torch.Tensor:
    y = _RUN_DECODER(module, stages, x)
    return y if head is None else head(y)


def _plain_final_projection(model: Earthformer, h: torch.Tensor) -> torch.Tensor:
    return model.dec_final_proj(h)


def _masked_fill_drop(t: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    return t.masked_fill_(drop, 0.0)


def _torch_slices(n: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    bits = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device,
                         generator=generator)
    return bits.view(torch.int16)[:n]


_FFN_FORWARD, _RUN_DECODER = layers.PositionwiseFFN.forward, earthformer_io._run_decoder
INFERENCE_SWITCHES = {
    "one_pass_cut": [(sdpa_strategy, "small_attention_applies", _never),
                     (cpu_strategies, "small_attention_applies", _never)],
    "blocked_ffn": [(ffn_strategies, "blocked_applies", _never)],
    "inplace_residual": [(blocks, "_residual", _plain_residual)],
    "attention_slabs": [(cpu_strategies, "slabs", _never)],
    "all_cpu_paths": [(backend, "_current", ["sdpa"])],
    "frame_chunks": [(earthformer_io, "FRAME_CHUNK_BYTES", 1 << 62)],
    "ffn_into_input": [(layers.PositionwiseFFN, "forward", _ffn_fresh_output)],
    "head_per_chunk": [(earthformer_io, "_run_decoder", _head_after_decoder)],
}
TRAINING_SWITCHES = {
    "mm_weight_grad": [(fast_linear, "weight_grad", _onednn_weight_grad),
                       (lean, "weight_grad", _onednn_weight_grad)],
    "where_drop": [(attention, "apply_drop_", _masked_fill_drop), (fast_linear, "apply_drop_", _masked_fill_drop),
                   (lean, "apply_drop_", _masked_fill_drop)],
    "blocked_lean_ffn": [(lean, "FFN_BLOCK_ROWS", 1 << 40)],
    "blocked_dropout_attention": [(attention, "DROPOUT_ATTENTION_BLOCK_BYTES", 1 << 60)],
    "numpy_bits": [(dropout, "_random_slices", _torch_slices)],
    "fast_final_proj": [(Earthformer, "final_projection", _plain_final_projection)],
    "all_cpu_paths": [(backend, "_current", ["sdpa"])],
}
SWITCHES = {**INFERENCE_SWITCHES, **TRAINING_SWITCHES}


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


def run_case(case: str, reps: int) -> list[str]:
    name, grid, batch = CASES[case]
    training = case in TRAINING_CASES
    kw = config(name, grid)
    torch.manual_seed(0)
    model = Earthformer.from_official_kwargs(kw).train(training)
    x = torch.randn(batch, *kw["input_shape"], generator=torch.Generator().manual_seed(1))
    switches = TRAINING_SWITCHES if training else INFERENCE_SWITCHES
    if training and not fast_linear.onednn_available():
        switches = {k: v for k, v in switches.items() if k != "mm_weight_grad"}
    step = _training_step(model, x) if training else torch.no_grad()(lambda: model(x))
    variants = [None, *switches]
    outputs, times, faults = {}, {v: [] for v in variants}, {v: [] for v in variants}
    for v in variants:  # warm-up, and the results to compare
        with switched_off(v):
            outputs[v] = step()
    for _ in range(reps):
        for v in variants:
            with switched_off(v):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                step()
                times[v].append(time.perf_counter() - start)
                faults[v].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    base = statistics.median(times[None])
    lines = [f"{case:<20} all fast paths on   median {base:.3f}s  min {min(times[None]):.3f}s  "
             f"| {statistics.median(faults[None]):.0f} page faults"]
    for v in switches:
        med = statistics.median(times[v])
        diff = (outputs[v] - outputs[None]).abs().max().item()
        note = " (other random masks)" if v == "numpy_bits" or (training and v == "all_cpu_paths") else ""
        lines.append(f"{case:<20} {v + ' off':<19} median {med:.3f}s  min {min(times[v]):.3f}s  "
                     f"({med / base:.2f}x the time with it on) | {statistics.median(faults[v]):.0f} page faults "
                     f"| max abs diff {diff:.1e}{note}")
    return lines


def _training_step(model: torch.nn.Module, x: torch.Tensor):
    """Forward + backward from the same seed; returns every parameter gradient, flattened."""
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(2)
        model(x).square().mean().backward()
        return torch.cat([p.grad.flatten() for p in params])
    return step


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
