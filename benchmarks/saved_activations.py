"""How many bytes autograd keeps for backward in one ENSO training forward, by module type.

Counts every distinct storage saved for backward (``torch.autograd.graph.saved_tensors_hooks``)
during one forward of the official ICAR-ENSO configuration in training mode at batch 8, and
attributes it to the innermost module that was running. Deterministic (independent of machine
load), so it is the figure to watch for the training-memory target of issue 2.

Run: ``python benchmarks/saved_activations.py [--batch 8]``
"""

from __future__ import annotations

import argparse
import collections

import torch

from xearthformer.models import Earthformer
from xearthformer.zoo import official_kwargs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = Earthformer.from_official_kwargs(official_kwargs("earthformer-icar-enso")).train()
    x = torch.randn(args.batch, 12, 24, 48, 1)
    seen: set[int] = set()
    total = [0]
    per_module: collections.Counter = collections.Counter()
    stack: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total[0] += t.untyped_storage().nbytes()
        return t

    def pre(module, inputs):
        stack.append(total[0])

    def post(module, inputs, output):
        grown = total[0] - stack.pop()
        per_module[type(module).__name__] += grown
        for i in range(len(stack)):  # count it once, in the innermost module
            stack[i] += grown

    for module in model.modules():
        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    print(f"saved for backward: {total[0] / 1e6:.1f} MB (batch {args.batch})")
    for name, nbytes in per_module.most_common():
        if nbytes:
            print(f"  {name:32s} {nbytes / 1e6:8.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
