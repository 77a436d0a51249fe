"""Benchmark of ``xearthformer.ensemble`` with the demo PreDiff models: DDPM-1000 vs DDIM-N vs DPM-Solver++.

What it measures, in one run on the same held-out inits (the default tutorial ENSO data,
seed 0, which the demo model never saw):

* **Time** of a 20-member ensemble for one init with the DDIM sampler at ``--ddim-steps``
  (default 50) and with PreDiff's ancestral DDPM sampler over all 1000 steps (median of
  ``--reps`` inits), on the CPU threads given.
* **CRPS** (K, ``xskillscore.crps_ensemble`` over ocean cells, leads and inits) of each
  sampler's ensembles on ``--inits`` inits: DDIM must keep CRPS within 5 percent of DDPM.

* **DPM-Solver++(2M)** (``sampler="dpmpp"``) at the ``--compare`` steps (default 10 and 15) on
  the same inits and members' noise, timed interleaved with DDIM init by init: its CRPS and
  spread-skill ratio (``metrics.spread_skill`` over ocean cells, leads and inits) against
  DDIM's.

Targets (issue 6): 20-member DDIM-50 ensemble for one init in under 60 s on the 2-core CPU;
CRPS(DDIM-50) <= 1.05 CRPS(DDPM-1000). Issue 23: DPM-Solver++ at 10-15 steps with CRPS within
2 percent of DDIM-50's and a spread-skill ratio within 0.1 of it.

Run: ``python benchmarks/bench_ensemble.py`` (``--quick`` for a smoke run: 2 inits, DDPM
replaced by DDIM-200; ``--skip-ddpm`` to compare DDIM and DPM-Solver++ only).
``--model prediff-demo-storms`` runs the same comparison on the storms demo model: its held-out
cases are the events of the tutorial storms data (seed 0, never seen in training), one init each
(the 13th frame), verified on the 12 frames that follow (VIL 0-255, all cells).

``--control`` measures instead what knowledge control costs (issue 25): in one process, on
the same held-out init, ``--reps`` rounds alternating the plain ensemble, ``kc_sigma=K`` and
``kc_sigma=[-2, 0, 2]`` (same model, sampler, steps and members; ``--sampler``/``--steps``,
default the model's), then prints each one's median time, its ratio to the plain ensemble (per
scenario for the list) and the control's target errors in sigma: the ensemble mean's and the
worst member's window mean of the alignment quantity (ENSO: the Nino3.4 anomaly; storms: the
mean VIL) against ``kc_target`` (``mu + k sigma``), and the VAE decoder's calls of the last
round (those with gradient are each followed by a backward pass of the control) with the
seconds inside them. Targets: ratio <= 1.3, mean error <= 0.05 sigma, worst member <= 0.25
sigma. ``--control-method`` picks the control (default: the
model's); ``--exact`` also times the control evaluated exactly at every step (slow).
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
from xearthformer import metrics

MODEL = "prediff-demo-enso"
MODELS = ("prediff-demo-enso", "prediff-demo-storms")


def verifying(ens: xr.DataArray, obs_archive: xr.DataArray) -> xr.DataArray:
    """The observations at the ensemble's valid times (and events, for storms)."""
    obs = obs_archive.sel(time=ens["valid_time"]).drop_vars("time")
    return obs.sel(event=ens["event"]) if "event" in ens.dims else obs


def scored_dims(ens: xr.DataArray) -> list[str]:
    return [d for d in ens.dims if d != "member"]


def crps(ens: xr.DataArray, obs_archive: xr.DataArray) -> float:
    obs = verifying(ens, obs_archive)
    ocean = obs.notnull().all(["init", "lead"])
    score = xs.crps_ensemble(obs.where(ocean, 0.0), ens.where(ocean, 0.0), member_dim="member",
                             dim=scored_dims(ens))
    return float(score) * float(ocean.size) / float(ocean.sum())  # mean over ocean cells only


def toy_table() -> None:
    """The samplers on a Gaussian toy problem whose exact answers are known (no model):
    data ``x0 ~ N(mu, s^2)``, the ideal denoiser in closed form. ODE: max error of the end
    point against the exact probability-flow solution; SDE (eta = 1): the std of 40,000
    samples, which should be ``s = 0.4``. See tests/diffusion/test_dpmpp.py."""
    import math

    from xearthformer.diffusion import DDIMSampler, DPMSolverSampler, NoiseSchedule
    from xearthformer.diffusion.schedule import NoiseScheduleConfig

    schedule = NoiseSchedule(NoiseScheduleConfig(parameterization="x0"))
    abar = schedule.float64["alphas_cumprod"]
    gen = torch.Generator().manual_seed(0)
    mu = torch.rand(2, 4, 4, 2, generator=gen, dtype=torch.float64) * 2 - 1
    s = torch.rand(2, 4, 4, 2, generator=gen, dtype=torch.float64) * 0.45 + 0.05
    z_T = torch.randn(3, 2, 4, 4, 2, generator=gen, dtype=torch.float64)

    def ideal(z, t, cond, mu=mu, s=s):
        a2 = float(abar[int(t[0])])
        return mu + math.sqrt(a2) * s**2 / (a2 * s**2 + 1 - a2) * (z - math.sqrt(a2) * mu)

    def exact():
        a_T, v_T = math.sqrt(float(abar[999])), float(abar[999]) * s**2 + 1 - float(abar[999])
        a_0, v_0 = math.sqrt(float(abar[0])), float(abar[0]) * s**2 + 1 - float(abar[0])
        z0 = a_0 * mu + torch.sqrt(v_0 / v_T) * (z_T - a_T * mu)
        return ideal(z0, torch.tensor([0]), None)

    n_samples, mu1, s1 = 40_000, 0.3, 0.4
    noise = torch.randn(n_samples, 1, 1, 1, 1, generator=torch.Generator().manual_seed(7),
                        dtype=torch.float64)

    def ideal1(z, t, cond):
        return ideal(z, t, cond, mu=mu1, s=s1)

    ref = exact()
    print("Gaussian toy | steps | ODE error: ddim  dpmpp | SDE std (0.4): ddim  dpmpp")
    for n in (10, 15, 20, 50):
        ode = [float((cls(schedule, num_steps=n).sample(ideal, z_T, None) - ref).abs().max())
               for cls in (DDIMSampler, DPMSolverSampler)]
        sde = [float(cls(schedule, num_steps=n, eta=1).sample(
            ideal1, noise, None, generator=torch.Generator().manual_seed(8)).std())
            for cls in (DDIMSampler, DPMSolverSampler)]
        print(f"             | {n:5d} | {ode[0]:.4f}  {ode[1]:.4f}      | "
              f"{sde[0]:.4f}  {sde[1]:.4f}")


def spread_skill_ratio(ens: xr.DataArray, obs_archive: xr.DataArray) -> float:
    obs = verifying(ens, obs_archive)
    return float(metrics.spread_skill(ens, obs, dim=scored_dims(ens))["ratio"])


def held_out_cases(model: str, n_inits: int):
    """``([(data, init), ...], verification archive, the dim the cases stack on)``."""
    if model == "prediff-demo-storms":
        vil = xearthformer.tutorial.open_dataset("storms", n_events=n_inits)["vil"]  # held out: seed 0
        return [(vil.isel(event=[i], time=slice(0, 13)), None) for i in range(n_inits)], vil, "event"
    sst = xearthformer.tutorial.open_dataset("enso")["sst"]  # held out: seed 0
    # inits spread over the record, each with 12 months of context and 14 of verification
    candidates = sst.time.values[11:-14]
    inits = candidates[np.linspace(0, len(candidates) - 1, n_inits).round().astype(int)]
    return [(sst, [init]) for init in inits], sst, "init"


def run_sampler(cases, stack: str, *, sampler: str, steps: int, members: int, seed: int,
                eta: float | None = None):
    times, parts = [], []
    for data, init in cases:
        start = time.perf_counter()
        ens = xearthformer.ensemble(data, n=members, model=MODEL, init=init, sampler=sampler,
                                    steps=steps, seed=seed, progress=False, member_batch=members,
                                    eta=eta)
        times.append(time.perf_counter() - start)
        parts.append(ens)
    return xr.concat(parts, stack), times


def run_interleaved(cases, stack: str, configs, *, members: int, seed: int):
    """``{(sampler, steps): (ensemble, seconds per init)}``, the configs run in turn per init
    so that a change of machine load affects all of them alike."""
    runs = {config: [] for config in configs}
    for case in cases:
        for config in configs:
            runs[config].append(run_sampler([case], stack, sampler=config[0], steps=config[1],
                                            eta=config[2], members=members, seed=seed))
    return {config: (xr.concat([e for e, _ in parts], stack), [t[0] for _, t in parts])
            for config, parts in runs.items()}
def control_errors(ens: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and worst-member error (in sigma) of the window mean of the model's alignment
    quantity (ENSO: the Nino3.4 anomaly; storms: the mean VIL) against ``mu + k sigma``, per
    scenario, over the alignment region of the card (the whole grid without one)."""
    info = xearthformer.load_model(MODEL).card.contract.alignment
    mu, sigma = float(info["mu"]), float(info["sigma"])
    region = {dim: slice(min(b), max(b)) for dim, b in (info.get("region") or {}).items()
              if dim in ens.dims and b is not None}
    spatial = [d for d in ens.dims if d not in ("event", "init", "kc_sigma", "member", "lead")]
    box = ens.sel(region).mean(spatial + ["lead"])  # as trained
    if "kc_sigma" not in box.dims:
        box = box.expand_dims(kc_sigma=[float(ens.attrs["kc_sigma"])])
    err = (box - (mu + box["kc_sigma"] * sigma)) / sigma  # "init kc_sigma member"
    over = [d for d in err.dims if d != "kc_sigma"]
    return abs(err.mean(over)).values, abs(err).max(over).values


class DecoderCalls:
    """Counts the calls of a VAE's ``decode`` (those with gradient: each is followed by a
    backward pass of the control) and the seconds inside them."""

    def __init__(self, vae):
        self.calls = self.with_grad = 0
        self.seconds = 0.0
        decode = vae.decode

        def counted(*args, **kwargs):
            start = time.perf_counter()
            try:
                return decode(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1
                self.with_grad += torch.is_grad_enabled()

        vae.decode = counted  # this benchmark's own model instance only


def run_control(args) -> int:
    """Plain vs knowledge-controlled ensembles, alternated in one process (issue 25)."""
    if MODEL == "prediff-demo-storms":
        data, init = held_out_cases(MODEL, 8)[0][4]  # one held-out event
    else:
        data = xearthformer.tutorial.open_dataset("enso")["sst"]  # held out: seed 0
        candidates = data.time.values[11:-14]
        init = [candidates[len(candidates) // 2]]
    loaded = xearthformer.load_model(MODEL)
    decoder = DecoderCalls(loaded.modules["vae"])
    common = dict(n=args.members, model=loaded, init=init, sampler=args.sampler,
                  steps=args.steps, seed=args.seed, progress=False, member_batch=args.members)
    cases = {"plain": dict(kc_sigma=None), f"kc_sigma={args.kc:g}": dict(kc_sigma=args.kc),
             "kc_sigma=[-2,0,2]": dict(kc_sigma=[-2.0, 0.0, 2.0])}
    if args.control_method:
        for name in cases:
            if name != "plain":
                cases[name]["control"] = args.control_method
    if args.exact:
        cases[f"kc_sigma={args.kc:g} exact"] = dict(kc_sigma=args.kc, control="clean_estimate",
                                                    _exact=True)
    times: dict[str, list[float]] = {name: [] for name in cases}
    decodes: dict[str, tuple[int, int, float]] = {}  # the last round's calls, with grad, seconds
    outputs: dict[str, xr.DataArray] = {}
    from xearthformer import _ensemble  # noqa: PLC0415

    fast = _ensemble.FAST_EXACT_STEPS
    xearthformer.ensemble(data, **{**common, "n": 2, "member_batch": 2})  # warm-up
    for _ in range(args.reps):
        for name, kwargs in cases.items():
            kwargs = dict(kwargs)
            _ensemble.FAST_EXACT_STEPS = None if kwargs.pop("_exact", False) else fast
            before = (decoder.calls, decoder.with_grad, decoder.seconds)
            start = time.perf_counter()
            outputs[name] = xearthformer.ensemble(data, **common, **kwargs)
            times[name].append(time.perf_counter() - start)
            decodes[name] = (decoder.calls - before[0], decoder.with_grad - before[1],
                             decoder.seconds - before[2])
    _ensemble.FAST_EXACT_STEPS = fast
    plain = statistics.median(times["plain"])
    ran = outputs["plain"].attrs
    print(f"torch {torch.__version__}, {args.threads} threads, {args.members} members, "
          f"{ran['sampler']}-{ran['steps']}, 1 init, median of {args.reps} alternated rounds, "
          f"model {MODEL}")
    def decoded(name):
        calls, grads, seconds = decodes[name]
        return f"decoder: {calls} calls ({grads} with gradient), {seconds:.2f} s"

    print(f"{'plain':<22s} | {plain:7.2f} s | {decoded('plain')}")
    for name in cases:
        if name == "plain":
            continue
        ens = outputs[name]
        scenarios = ens.sizes.get("kc_sigma", 1)
        t = statistics.median(times[name])
        ratio = t / plain / scenarios
        mean, worst = control_errors(ens)
        ok = ratio <= 1.3 and mean.max() <= 0.05 and worst.max() <= 0.25
        print(f"{name:<22s} | {t:7.2f} s | ratio {ratio:5.2f}x plain{' per scenario' if scenarios > 1 else ''} "
              f"(target <= 1.3) | control {ens.attrs['kc_control']} | error mean "
              f"{np.array2string(mean, precision=4)} worst member {np.array2string(worst, precision=4)} "
              f"sigma (targets 0.05 / 0.25) | {'PASS' if ok else 'FAIL'} | {decoded(name)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"seconds": times}, fh, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    global MODEL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", type=int, default=6, help="held-out inits for CRPS (6)")
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", default="dpmpp:10,dpmpp:15",
                        help="sampler:steps[:eta] run against DDIM, comma-separated "
                             "(dpmpp:10,dpmpp:15; eta: the model's unless given)")
    parser.add_argument("--skip-ddpm", action="store_true", help="no DDPM-1000 reference")
    parser.add_argument("--quick", action="store_true", help="2 inits, DDIM-200 in place of DDPM")
    parser.add_argument("--toy", action="store_true",
                        help="only the samplers on a Gaussian toy problem (seconds)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--control", action="store_true",
                        help="plain vs knowledge-controlled ensembles (issue 25) instead")
    parser.add_argument("--kc", type=float, default=2.0, help="the single kc_sigma (2)")
    parser.add_argument("--reps", type=int, default=3, help="--control: alternated rounds (3)")
    parser.add_argument("--control-method", choices=["clean_estimate", "mean_shift"],
                        help="--control: the control (default: the model's)")
    parser.add_argument("--exact", action="store_true",
                        help="--control: also the control evaluated exactly at every step")
    parser.add_argument("--sampler", help="--control: the sampler (default: the model's)")
    parser.add_argument("--steps", type=int, help="--control: its steps (default: the model's)")
    parser.add_argument("--model", choices=MODELS, default=MODEL,
                        help="the demo model (prediff-demo-enso)")
    args = parser.parse_args(argv)
    MODEL = args.model
    torch.set_num_threads(args.threads)
    if args.toy:
        toy_table()
        return 0
    n_inits = 2 if args.quick else args.inits

    if args.control:
        return run_control(args)
    cases, truth, stack = held_out_cases(MODEL, n_inits)
    units = "VIL (0-255)" if MODEL == "prediff-demo-storms" else "K"

    compare = [v.strip().split(":") for v in args.compare.split(",") if v.strip()]
    configs = [("ddim", args.ddim_steps, None)] + [
        (c[0], int(c[1]), float(c[2]) if len(c) > 2 else None) for c in compare]
    runs = run_interleaved(cases, stack, configs, members=args.members, seed=args.seed)
    ddim, t_ddim = runs[configs[0]]
    c_ddim, r_ddim = crps(ddim, truth), spread_skill_ratio(ddim, truth)
    med_ddim = statistics.median(t_ddim)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.members} members, "
          f"{n_inits} held-out inits, model {MODEL}")
    print(f"ddim-{args.ddim_steps:<5d} | {med_ddim:7.2f} s per init | CRPS {c_ddim:.4f} {units} | "
          f"spread-skill {r_ddim:.3f} | eta {ddim.attrs['eta']:g} (the model's)")
    figures = {"model": MODEL, "cases": [str(d[stack].values[0] if i is None else i[0])[:10]
                                         for d, i in cases], "ddim_seconds": t_ddim,
               "crps_ddim": c_ddim, "spread_skill_ddim": r_ddim}
    for config in configs[1:]:
        ens, t = runs[config]
        c, r, med = crps(ens, truth), spread_skill_ratio(ens, truth), statistics.median(t)
        ok = c <= 1.02 * c_ddim and abs(r - r_ddim) <= 0.1
        label = f"{config[0]}-{config[1]}" + ("" if config[2] is None else f"-eta{config[2]:g}")
        print(f"{label:<10s} | {med:7.2f} s per init | CRPS {c:.4f} {units} "
              f"({c / c_ddim:.3f}x ddim) | spread-skill {r:.3f} ({r - r_ddim:+.3f}) | "
              f"{med_ddim / med:.1f}x faster | target (CRPS <= 1.02x, |d spread-skill| <= 0.1): "
              f"{'PASS' if ok else 'FAIL'}")
        figures[label] = {"seconds": t, "crps": c, "spread_skill": r}
    if args.skip_ddpm:
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(figures, fh, indent=1)
        return 0
    if args.quick:
        ref_name, ref = "ddim-200", run_sampler(cases, stack, sampler="ddim", steps=200,
                                                members=args.members, seed=args.seed)
    else:
        ref_name, ref = "ddpm-1000", run_sampler(cases, stack, sampler="ddpm", steps=1000,
                                                 members=args.members, seed=args.seed)
    ref_ens, t_ref = ref
    c_ref = crps(ref_ens, truth)
    ratio = c_ddim / c_ref
    med_ref = statistics.median(t_ref)
    print(f"ddim-{args.ddim_steps:<5d} | target < 60 s per init: "
          f"{'PASS' if med_ddim < 60 else 'FAIL'}")
    print(f"{ref_name:<10s} | {med_ref:7.2f} s per init | CRPS {c_ref:.4f} {units} | "
          f"speed-up {med_ref / med_ddim:.1f}x")
    print(f"CRPS ddim / {ref_name} = {ratio:.3f} (target <= 1.05: {'PASS' if ratio <= 1.05 else 'FAIL'})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({**figures, "ref_seconds": t_ref, "crps_ref": c_ref, "ref": ref_name}, fh,
                      indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
