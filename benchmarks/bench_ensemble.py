"""Benchmark of ``xearthformer.ensemble`` with the demo PreDiff ENSO model: DDPM-1000 vs DDIM-N.

What it measures, in one run on the same held-out inits (the default tutorial ENSO data,
seed 0, which the demo model never saw):

* **Time** of a 20-member ensemble for one init with the DDIM sampler at ``--ddim-steps``
  (default 50) and with PreDiff's ancestral DDPM sampler over all 1000 steps (median of
  ``--reps`` inits), on the CPU threads given.
* **CRPS** (K, ``xskillscore.crps_ensemble`` over ocean cells, leads and inits) of each
  sampler's ensembles on ``--inits`` inits: DDIM must keep CRPS within 5 percent of DDPM.

Targets (issue 6): 20-member DDIM-50 ensemble for one init in under 60 s on the 2-core CPU;
CRPS(DDIM-50) <= 1.05 CRPS(DDPM-1000).

Run: ``python benchmarks/bench_ensemble.py`` (``--quick`` for a smoke run: 2 inits, DDPM
replaced by DDIM-200).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
import xarray as xr
import xskillscore as xs

import xearthformer

MODEL = "prediff-demo-enso"


def crps(ens: xr.DataArray, obs_archive: xr.DataArray) -> float:
    obs = obs_archive.sel(time=ens["valid_time"]).drop_vars("time")
    ocean = obs.notnull().all(["init", "lead"])
    score = xs.crps_ensemble(obs.where(ocean, 0.0), ens.where(ocean, 0.0), member_dim="member",
                             dim=["init", "lead", "lat", "lon"])
    return float(score) * float(ocean.size) / float(ocean.sum())  # mean over ocean cells only


def run_sampler(sst: xr.DataArray, inits, *, sampler: str, steps: int, members: int, seed: int):
    times, parts = [], []
    for init in inits:
        start = time.perf_counter()
        ens = xearthformer.ensemble(sst, n=members, model=MODEL, init=[init], sampler=sampler,
                                    steps=steps, seed=seed, progress=False, member_batch=members)
        times.append(time.perf_counter() - start)
        parts.append(ens)
    return xr.concat(parts, "init"), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", type=int, default=6, help="held-out inits for CRPS (6)")
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 inits, DDIM-200 in place of DDPM")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    n_inits = 2 if args.quick else args.inits

    sst = xearthformer.tutorial.open_dataset("enso")["sst"]  # held out: seed 0
    # inits spread over the record, each with 12 months of context and 14 of verification
    candidates = sst.time.values[11:-14]
    inits = candidates[np.linspace(0, len(candidates) - 1, n_inits).round().astype(int)]

    ddim, t_ddim = run_sampler(sst, inits, sampler="ddim", steps=args.ddim_steps,
                               members=args.members, seed=args.seed)
    if args.quick:
        ref_name, ref = "ddim-200", run_sampler(sst, inits, sampler="ddim", steps=200,
                                                members=args.members, seed=args.seed)
    else:
        ref_name, ref = "ddpm-1000", run_sampler(sst, inits, sampler="ddpm", steps=1000,
                                                 members=args.members, seed=args.seed)
    ref_ens, t_ref = ref
    c_ddim, c_ref = crps(ddim, sst), crps(ref_ens, sst)
    ratio = c_ddim / c_ref
    med_ddim, med_ref = statistics.median(t_ddim), statistics.median(t_ref)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.members} members, "
          f"{n_inits} held-out inits, model {MODEL}")
    print(f"ddim-{args.ddim_steps:<5d} | {med_ddim:7.2f} s per init (target < 60 s: "
          f"{'PASS' if med_ddim < 60 else 'FAIL'}) | CRPS {c_ddim:.4f} K")
    print(f"{ref_name:<10s} | {med_ref:7.2f} s per init | CRPS {c_ref:.4f} K | "
          f"speed-up {med_ref / med_ddim:.1f}x")
    print(f"CRPS ddim / {ref_name} = {ratio:.3f} (target <= 1.05: {'PASS' if ratio <= 1.05 else 'FAIL'})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"ddim_seconds": t_ddim, "ref_seconds": t_ref, "crps_ddim": c_ddim,
                       "crps_ref": c_ref, "ref": ref_name}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
