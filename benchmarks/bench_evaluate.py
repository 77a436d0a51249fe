"""Benchmark of ``xearthformer.evaluate`` on synthetic multi-decade monthly archives.

What it measures (and what it does not):

* **Throughput** (inits/s) of a whole evaluation on a ``distributed.LocalCluster`` with 1 and
  with 2 single-threaded worker processes, on the 10-year archive, after a warm-up run (the
  cluster start-up and the workers' first imports are not timed); best of 2 runs. It
  includes everything ``evaluate`` does: reading each chunk's window from netCDF, the
  Nino3.4 climatology pass over the archive, forecasts, metrics, and the reduction. On a
  2-core machine the driver and scheduler share the cores with the workers, and any other
  load on the machine (reported) lowers the 2-worker figure. The forecast function is
  damped persistence with repeated 5-point smoothing in numpy — a stand-in for a model with
  real CPU work per init (its own cost is printed, about 40 ms per init here), not a
  neural network. Target: 2 workers at
  least 1.7x the throughput of 1.
* **Peak memory** (peak RSS of a fresh process, threaded scheduler with 2 threads) of the
  evaluation of a 10-year and a 40-year archive written to a temporary netCDF file and
  opened lazily. Target: the 40-year peak no more than 1.25x the 10-year peak, i.e. memory
  does not grow with the archive (the 40-year archive alone is ~4x the 10-year one).

Run: ``python benchmarks/bench_evaluate.py`` (add ``--quick`` for a smaller grid).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import xarray as xr

LEADS = 12
METRICS = ["mse", "rmse", "enso", "contingency"]
CHUNK = 6  # inits per task
# dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which also freezes glibc's
# mmap threshold at 128 KiB: every large array of every task is then a fresh mmap that is
# page-faulted in and zeroed by the kernel. On this VM that kernel time tripled the time per
# init and did not parallelise. Raising both thresholds keeps freed memory in the worker's
# heap for reuse (its peak memory is unchanged). A deployment setting, not library code.
WORKER_ENV = {"MALLOC_TRIM_THRESHOLD_": 2**28, "MALLOC_MMAP_THRESHOLD_": 2**28}


def make_archive(path: str, years: int, ny: int, nx: int) -> None:
    """Write a synthetic monthly SST-like archive (float32) to netCDF, one year at a time."""
    rng = np.random.default_rng(years)
    t = pd.date_range("1980-01-01", periods=12 * years, freq="MS")
    lat = np.linspace(-60.0, 60.0, ny)
    lon = np.linspace(100.0, 340.0, nx)
    state = np.zeros((ny, nx), np.float32)
    data = np.empty((t.size, ny, nx), np.float32)
    for i in range(t.size):
        state = 0.9 * state + rng.standard_normal((ny, nx), dtype=np.float32)
        data[i] = state + np.float32(np.cos(2 * np.pi * (i % 12) / 12))
    da = xr.DataArray(data, dims=("time", "lat", "lon"),
                      coords={"time": t, "lat": lat, "lon": lon}, name="sst",
                      attrs={"units": "K"})
    da.to_netcdf(path, encoding={"sst": {"chunksizes": (12, ny, nx)}})


def smoothed_persistence(context, inits, leads, passes=16):
    """Damped persistence with ``passes`` 5-point smoothing sweeps per lead (numpy work)."""
    from xearthformer.metrics import persistence_forecast

    fc = persistence_forecast(context, inits, leads)
    values = np.empty(fc.shape, np.float64)
    for i in range(fc.sizes["init"]):
        field = np.asarray(fc.values[i, 0], np.float64)
        for j in range(len(leads)):
            for _ in range(passes):
                inner = field[1:-1, 1:-1]
                field = field.copy()
                field[1:-1, 1:-1] = 0.2 * (inner + field[:-2, 1:-1] + field[2:, 1:-1]
                                           + field[1:-1, :-2] + field[1:-1, 2:])
            field = 0.95 * field
            values[i, j] = field
    return fc.copy(data=values)


def open_archive(path: str) -> xr.DataArray:
    return xr.open_dataset(path, chunks={"time": 12})["sst"]


def child_memory(path: str) -> dict:
    """In a fresh process: peak RSS of one threaded evaluation of the archive at ``path``."""
    from xearthformer.evaluate import evaluate

    archive = open_archive(path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    scores = evaluate(smoothed_persistence, archive, leads=LEADS, metrics=METRICS,
                      thresholds=[0.0, 1.0], num_workers=2, chunk_size=CHUNK)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mb": peak, "before_mb": before, "inits": int(scores.attrs["n_inits"]),
            "seconds": seconds}


def throughput(path: str, workers: int, repeats: int = 2) -> tuple[float, int]:
    """Best-of-``repeats`` inits/s of a whole evaluation on a fresh LocalCluster."""
    from distributed import Client, LocalCluster

    from xearthformer.evaluate import evaluate

    import dask

    archive = open_archive(path)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENV}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        warm = archive.time.values[: 2 * workers + LEADS]
        evaluate(smoothed_persistence, archive.sel(time=warm), leads=LEADS, metrics=METRICS,
                 thresholds=[0.0, 1.0], client=client, chunk_size=1, climatology=0.0)
        seconds = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            scores = evaluate(smoothed_persistence, archive, leads=LEADS, metrics=METRICS,
                              thresholds=[0.0, 1.0], client=client, chunk_size=CHUNK)
            seconds = min(seconds, time.perf_counter() - start)
    n = int(scores.attrs["n_inits"])
    return n / seconds, n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller grid (faster, less telling)")
    parser.add_argument("--only", choices=["throughput", "memory"], help="run one part only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_memory(args.child)))
        return 0
    ny, nx = (120, 240) if args.quick else (240, 480)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for years in (10, 40):
            paths[years] = os.path.join(tmp, f"archive_{years}y.nc")
            make_archive(paths[years], years, ny, nx)
            size = os.path.getsize(paths[years]) / 2**20
            print(f"archive {years:2d} years: {12 * years} months of {ny}x{nx} float32, "
                  f"{size:.0f} MiB on disk (opened lazily, time chunks of 12)")
        load = os.getloadavg()[0]
        if args.only != "memory":
            ok &= report_throughput(paths[10], load)
        if args.only != "throughput":
            ok &= report_memory(paths)
    return 0 if ok else 1


def report_throughput(path: str, load: float) -> bool:
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} before the runs"
          + ("  (other processes are using the CPU: throughput and speedup are understated)"
             if load > 0.5 else ""))
    archive = open_archive(path).isel(time=slice(0, 24)).load()
    inits, leads = archive.time.values[:12], list(range(1, LEADS + 1))
    smoothed_persistence(archive, inits, leads)  # warm-up
    start = time.perf_counter()
    smoothed_persistence(archive, inits, leads)
    cost = (time.perf_counter() - start) / len(inits) * 1e3
    print(f"forecast function alone: {cost:.0f} ms per init ({LEADS} leads, in-process); the "
          "rest of the time per init is evaluate's own work (reading, matching, scores)")
    rates = {}
    for workers in (1, 2):
        rates[workers], n = throughput(path, workers)
        print(f"throughput, {workers} worker(s): {rates[workers]:.1f} inits/s ({n} inits, "
              f"10-year archive, LocalCluster processes)")
    speedup = rates[2] / rates[1]
    passed = speedup >= 1.7
    print(f"speedup 2 vs 1 workers: {speedup:.2f}x (target >= 1.7x): "
          f"{'PASS' if passed else 'FAIL'}")
    return passed


def report_memory(paths: dict[int, str]) -> bool:
    peaks = {}
    for years in (10, 40):
        out = subprocess.run([sys.executable, __file__, "--child", paths[years]],
                             capture_output=True, text=True, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[years] = res["peak_mb"]
        print(f"peak memory, {years:2d} years: {res['peak_mb']:.0f} MiB (peak after imports and "
              f"opening: {res['before_mb']:.0f} MiB; {res['inits']} inits in "
              f"{res['seconds']:.1f} s, threads x2)")
    ratio = peaks[40] / peaks[10]
    passed = ratio <= 1.25
    print(f"peak memory 40y / 10y: {ratio:.2f}x (target <= 1.25x): "
          f"{'PASS' if passed else 'FAIL'}")
    return passed


if __name__ == "__main__":
    sys.exit(main())
