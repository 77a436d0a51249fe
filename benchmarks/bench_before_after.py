"""``bench_earthformer.py`` for two source trees of xearthformer, alternately, in the same run.

For a change that must cost no speed (a refactor), run the benchmark's cases with the old
tree and the new one on the import path, one fresh process per case and tree, alternating
which tree goes first from round to round, so that the load of a shared machine hits both
alike. Each child also times the official model in the same process, so the per-case
``official/ours`` ratio is a second, load-normalised figure. Prints, per case, the median
over the rounds of ours (old, new), their ratio new/old, the median of the per-round ratios
(old and new of the same round are neighbours in time, so this paired figure cancels the
machine's drift from round to round: quote it on a shared machine) and official/ours for each
tree.

``--ours-only`` times our model alone in each child (no official model, no memory or FLOP
count): a quicker run on a loaded machine, whose figure is the ratio new/old.

``--check-equal`` first checks that both trees give the same outputs: the ENSO model's
forward at batch 2 and its parameter gradients of one training step (dropout on, same seed),
max abs difference (0 expected for a pure rearrangement of the code).

Run (the base tree is e.g. a ``git worktree add ../base main``)::

    python benchmarks/bench_before_after.py --base ../base --cases enso_fwd_b8 enso_train_b8 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEW = HERE.parent


def _env(tree: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    return env


def run_child(tree: Path, case: str, reps: int, threads: int, ours_only: bool = False) -> dict:
    if ours_only:
        command = [__file__, "--timing-child", case]
    else:
        command = [str(tree / "benchmarks" / "bench_earthformer.py"), "--case-child", case]
    out = subprocess.run([sys.executable, *command, "--reps", str(reps), "--threads", str(threads)],
                         capture_output=True, text=True, check=True, env=_env(tree))
    return json.loads(out.stdout.strip().splitlines()[-1])


def timing_child(case: str, reps: int, threads: int) -> None:
    """Print ``{"seconds": {"ours": median}}`` for ``case`` of ``bench_earthformer.py`` (ours only)."""
    import statistics as stats

    import torch

    sys.path.insert(0, str(Path(os.environ["PYTHONPATH"]) / "benchmarks"))
    from bench_earthformer import CASES, config, make_step, median_time

    from xearthformer.models import Earthformer

    torch.set_num_threads(threads)
    name, grid, batch, mode, _ = CASES[case]
    kw = config(name, grid)
    torch.manual_seed(0)
    model = Earthformer.from_official_kwargs(kw)
    x = torch.randn(batch, *kw["input_shape"], generator=torch.Generator().manual_seed(1))
    step = make_step(model, x, mode)
    step()  # warm-up
    print(json.dumps({"seconds": {"ours": stats.median(median_time(step, 1) for _ in range(reps))}}))


def equality_child(path: str) -> None:
    """Save the ENSO forward (batch 2) and one training step's gradients to ``path``."""
    import torch

    import xearthformer
    from xearthformer.models import Earthformer
    from xearthformer.zoo import official_kwargs

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = Earthformer.from_official_kwargs(official_kwargs("earthformer-icar-enso"))
    x = torch.randn(2, *model.config.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model.eval()(x)
    torch.manual_seed(2)
    model.train()
    model(x).square().mean().backward()
    grads = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    torch.save({"out": out, "grads": grads, "file": xearthformer.__file__}, path)


def dispatch_overhead(batch: int = 1) -> str:
    """Time spent choosing strategies in one ENSO forward (this tree), against the forward.

    The strategies run the same kernels as before the split (``--check-equal``), so what a
    refactor adds is the choosing: each layer call asks :mod:`xearthformer.nn.execution`.
    """
    import time

    import torch

    import xearthformer.nn.cross_attention as cross
    import xearthformer.nn.layers as layers
    import xearthformer.nn.self_attention as self_attn
    from xearthformer.models import Earthformer
    from xearthformer.zoo import official_kwargs

    spent = [0.0, 0]

    def timed(select):
        def wrapper(*args):
            start = time.perf_counter()
            out = select(*args)
            spent[0] += time.perf_counter() - start
            spent[1] += 1
            return out
        return wrapper

    for module, name in ((self_attn, "select_self_attention"), (cross, "select_cross_attention"),
                         (layers, "select_ffn")):
        setattr(module, name, timed(getattr(module, name)))
    torch.manual_seed(0)
    model = Earthformer.from_official_kwargs(official_kwargs("earthformer-icar-enso")).eval()
    x = torch.randn(batch, *model.config.input_shape)
    with torch.no_grad():
        model(x)  # warm-up
        spent[:] = [0.0, 0]
        start = time.perf_counter()
        model(x)
        total = time.perf_counter() - start
    return (f"dispatch: {spent[1]} strategy choices in one ENSO forward at batch {batch}, {1e6 * spent[0]:.0f} us "
            f"in all ({100 * spent[0] / total:.3f}% of the {total:.3f} s forward)")


def check_equal(base: Path) -> str:
    import torch

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for tree in (base, NEW):
            path = os.path.join(tmp, f"{len(results)}.pt")
            subprocess.run([sys.executable, __file__, "--equality-child", path], check=True, env=_env(tree))
            results.append(torch.load(path, weights_only=True))
    old, new = results
    assert old["file"] != new["file"], "both children imported the same tree"
    out_diff = (old["out"] - new["out"]).abs().max().item()
    grad_diff = max((old["grads"][k] - g).abs().max().item() for k, g in new["grads"].items())
    same_keys = set(old["grads"]) == set(new["grads"])
    return (f"equality: ENSO forward max abs diff {out_diff:.3e}; training-step gradients max abs diff "
            f"{grad_diff:.3e} over {len(new['grads'])} tensors (same set: {same_keys})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="the old source tree (repository root)")
    parser.add_argument("--cases", nargs="*", default=["enso_fwd_b8", "enso_train_b8"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check-equal", action="store_true")
    parser.add_argument("--ours-only", action="store_true", help="time our model alone (quicker)")
    parser.add_argument("--dispatch-overhead", action="store_true",
                        help="print the time the new tree spends choosing strategies in an ENSO forward, and exit")
    parser.add_argument("--equality-child", help=argparse.SUPPRESS)
    parser.add_argument("--timing-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.equality_child:
        equality_child(args.equality_child)
        return 0
    if args.timing_child:
        timing_child(args.timing_child, args.reps, args.threads)
        return 0
    if args.dispatch_overhead:
        print(dispatch_overhead(), flush=True)
        return 0
    if args.base is None or not (args.base / "xearthformer").is_dir():
        parser.error("--base must be the root of another xearthformer source tree (e.g. a git worktree)")
    base = args.base.resolve()
    print(f"old tree {base}, new tree {NEW}; {args.rounds} rounds x reps={args.reps}, {args.threads} threads",
          flush=True)
    if args.check_equal:
        print(check_equal(base), flush=True)
    for case in args.cases:
        ours = {"old": [], "new": []}
        ratio = {"old": [], "new": []}
        for r in range(args.rounds):
            order = (("old", base), ("new", NEW)) if r % 2 == 0 else (("new", NEW), ("old", base))
            for name, tree in order:
                s = run_child(tree, case, args.reps, args.threads, args.ours_only)["seconds"]
                ours[name].append(s["ours"])
                ratio[name].append(s["official"] / s["ours"] if "official" in s else float("nan"))
        med = {k: statistics.median(v) for k, v in ours.items()}
        paired = [n / o for n, o in zip(ours["new"], ours["old"])]
        line = (f"{case:<20} ours old {med['old']:.3f}s new {med['new']:.3f}s | new/old {med['new'] / med['old']:.3f}, "
                f"median of paired rounds {statistics.median(paired):.3f} "
                f"(per round {', '.join(f'{r:.3f}' for r in paired)})")
        if not args.ours_only:
            line += (f" | official/ours old {statistics.median(ratio['old']):.2f}x "
                     f"new {statistics.median(ratio['new']):.2f}x")
        print(line, flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
