"""Share of a hindcast's time spent outside the model's forward passes (issue 23 §2).

What it measures, in one run:

* **tutorial ENSO**: ``xearthformer.forecast`` of every init of the tutorial ENSO data (720
  months, 24 x 48) with the demo Earthformer (``earthformer-demo-enso``), all 14 leads, numpy
  in, DataArray out.
* **96 x 192, 40 years**: the same on a synthetic 40-year monthly anomaly archive on a
  96 x 192 grid (land mask, monthly climatology), with the demo model's architecture at that
  grid (random weights, saved as a model directory in a temporary folder).

For each: the wall time of the whole call (validation, preprocessing, windowing, the model,
postprocessing, building the xarray result; the model is loaded by a warm-up call first, so
loading is not counted), the time inside ``Earthformer.forward`` (summed over its calls, timed
by wrapping the class's ``forward``), and the share outside the forward passes. Median of
``--reps`` runs. Target: at most 10 percent outside.

Run: ``python benchmarks/bench_overhead.py`` (``--quick``: 10 years of the 96 x 192 archive;
``--profile``: also print the functions that take the most time outside the model).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import io
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

import xearthformer
from xearthformer.models import Earthformer
from xearthformer.zoo import load_model
from xearthformer.zoo.model_dir import ModelCard, save_model_dir

TARGET = 0.10


class ForwardTimer:
    """Sums the wall time of every ``Earthformer.forward`` call while active; a ``profiler``
    (``cProfile.Profile``) is paused inside them, so that it sees only the work outside."""

    def __init__(self, profiler: cProfile.Profile | None = None) -> None:
        self.seconds, self.calls, self.profiler = 0.0, 0, profiler

    @contextlib.contextmanager
    def active(self):
        original = Earthformer.forward

        def timed(module, *args, **kwargs):
            if self.profiler is not None:
                self.profiler.disable()
            start = time.perf_counter()
            try:
                return original(module, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1
                if self.profiler is not None:
                    self.profiler.enable()

        Earthformer.forward = timed
        try:
            yield self
        finally:
            Earthformer.forward = original


def grid_model(directory: Path, ny: int, nx: int) -> tuple[Path, xr.DataArray]:
    """The demo ENSO architecture on an ``ny`` x ``nx`` grid (random weights), saved as a
    model directory, and its land mask as a DataArray."""
    demo = load_model("earthformer-demo-enso").card
    lat = np.linspace(-60.0, 60.0, ny)
    lon = np.linspace(0.0, 360.0, nx, endpoint=False)
    land = (np.sin(np.radians(lat))[:, None] * np.cos(np.radians(2 * lon))[None, :]) > 0.6
    clim = (0.5 * np.cos(2 * np.pi * np.arange(12) / 12)[:, None, None]
            * np.cos(np.radians(lat))[None, :, None] * np.ones((1, 1, nx)))
    contract = dataclasses.replace(demo.contract, grid_shape=(ny, nx),
                                   coords={"lat": lat, "lon": lon}, land_mask=land,
                                   climatology=clim.astype(np.float32))
    kwargs = dict(demo.official_kwargs, input_shape=[contract.in_len, ny, nx, 1],
                  target_shape=[contract.out_len, ny, nx, 1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Earthformer.from_official_kwargs(kwargs)
    card = ModelCard(name=f"bench-enso-{ny}x{nx}", kind="earthformer", official_kwargs=kwargs,
                     contract=contract, demo=True, licence="Apache-2.0",
                     description="the demo ENSO architecture on a larger grid, random weights")
    path = save_model_dir(directory / card.name, card, model.state_dict())
    mask = xr.DataArray(land, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    return path, mask


def archive(years: int, land: xr.DataArray) -> xr.DataArray:
    """Monthly SST anomalies (float32, K): AR(1) noise with NaN over land."""
    rng = np.random.default_rng(years)
    t = pd.date_range("1981-01-01", periods=12 * years, freq="MS")
    ny, nx = land.shape
    data = np.empty((t.size, ny, nx), np.float32)
    state = np.zeros((ny, nx), np.float32)
    for i in range(t.size):
        state = 0.9 * state + 0.3 * rng.standard_normal((ny, nx), dtype=np.float32)
        data[i] = state
    data[:, land.values] = np.nan
    return xr.DataArray(data, dims=("time", "lat", "lon"),
                        coords={"time": t, "lat": land["lat"], "lon": land["lon"]}, name="sst",
                        attrs={"units": "K", "long_name": "sea surface temperature anomaly"})


def hindcast(data: xr.DataArray, model, lead: int) -> xr.DataArray:
    fc = xearthformer.forecast(data, lead=lead, model=model, init=slice(None, None),
                               device="cpu", progress=False)
    return fc.compute()


def measure(name: str, data: xr.DataArray, model, lead: int, reps: int, profile: bool) -> dict:
    hindcast(data.isel(time=slice(0, 40)), model, lead)  # warm-up: loads and caches the model
    totals, inside, calls, inits = [], [], 0, 0
    for _ in range(reps):
        with ForwardTimer().active() as timer:
            start = time.perf_counter()
            fc = hindcast(data, model, lead)
            totals.append(time.perf_counter() - start)
        inside.append(timer.seconds)
        calls, inits = timer.calls, fc.sizes["init"]
    total, fwd = statistics.median(totals), statistics.median(inside)
    share = 1 - fwd / total
    print(f"{name:<22s} | {inits:4d} inits, {calls:3d} forward calls | total {total:7.2f} s | "
          f"forward {fwd:7.2f} s | outside the model {share:6.1%} (target <= {TARGET:.0%}: "
          f"{'PASS' if share <= TARGET else 'FAIL'})", flush=True)
    if profile:
        prof = cProfile.Profile()
        with ForwardTimer(prof).active():
            prof.runcall(hindcast, data, model, lead)
        out = io.StringIO()
        print("outside the model's forward passes, by own time:", file=out)
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
        print("... by cumulative time:", file=out)
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    return {"inits": inits, "calls": calls, "total_s": totals, "forward_s": inside,
            "outside_share": share}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--years", type=int, default=40, help="96 x 192 archive length (40)")
    parser.add_argument("--quick", action="store_true", help="10 years of the 96 x 192 archive")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", choices=["enso", "grid"], help="run one case only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.reps} runs")
    if args.only != "grid":
        sst = xearthformer.tutorial.open_dataset("enso")["sst"]
        measure("tutorial ENSO 24x48", sst, "earthformer-demo-enso", 14, args.reps, args.profile)
    if args.only != "enso":
        years = 10 if args.quick else args.years
        with tempfile.TemporaryDirectory() as tmp:
            path, land = grid_model(Path(tmp), 96, 192)
            model = load_model(path, device="cpu")
            measure(f"96x192, {years} years", archive(years, land), model, 14, args.reps,
                    args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
