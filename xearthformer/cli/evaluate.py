"""``xearthformer evaluate ARCHIVE --model NAME --leads 1-12 -o scores.nc``.

Hindcasts every init of an archive (netCDF files or a glob, or a zarr store; opened
lazily) with a model or a baseline (``persistence``, ``climatology``) and writes the
scores by lead to netCDF (or zarr when the output ends in ``.zarr``). With ``--scheduler
tcp://...`` or ``--scheduler-file FILE`` the chunks of inits run on that dask cluster.
"""

from __future__ import annotations

import argparse
import glob
import os
from typing import Any

from ._cluster import add_cluster_options, connect


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``evaluate`` sub-command on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "evaluate", help="score hindcasts over an archive, by lead",
        description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("archive", help="netCDF file or glob (quote it), or a .zarr store")
    parser.add_argument("--model", required=True,
                        help="model name, or 'persistence' / 'climatology'")
    parser.add_argument("--leads", default="1-12", help="e.g. 1-12 or 1,3,6 (default 1-12)")
    parser.add_argument("-o", "--output", required=True, help="scores file (.nc or .zarr)")
    parser.add_argument("--metrics", default="mse,rmse,correlation",
                        help="comma-separated: mse, rmse, mae, correlation, enso, contingency, "
                             "crps, spread_skill (default mse,rmse,correlation)")
    parser.add_argument("--variable", help="variable of the archive (when it holds several)")
    parser.add_argument("--thresholds", help="comma-separated event thresholds (contingency)")
    parser.add_argument("--init", help="init range START:END, e.g. 1990-01:2010-12")
    parser.add_argument("--climatology", type=float,
                        help="constant Nino3.4 climatology (0 for anomaly archives)")
    parser.add_argument("--base-period", help="climatology years START:END, e.g. 1991:2020")
    parser.add_argument("--chunk-size", type=int, default=12, help="inits per task (default 12)")
    parser.add_argument("--store", help="directory for per-chunk results (resumable runs)")
    parser.add_argument("--time-chunk", type=int, default=120,
                        help="time steps per dask chunk when opening the archive (default 120)")
    parser.add_argument("--progress", action="store_true", default=None,
                        help="always show a progress bar (default: on a terminal)")
    add_cluster_options(parser)
    parser.set_defaults(func=run)
    return parser


def _open(path: str, time_chunk: int) -> Any:
    import xarray as xr

    chunks = {"time": time_chunk}
    if path.rstrip("/").endswith(".zarr") or os.path.isdir(path):
        return xr.open_zarr(path, chunks=chunks)
    files = sorted(glob.glob(path))
    if not files:
        raise ValueError(f"no archive found at {path!r}; expected a netCDF file, a glob or a "
                         ".zarr store.")
    return xr.open_mfdataset(files, combine="by_coords", chunks=chunks)


def _pair(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    start, sep, end = text.partition(":")
    if not sep:
        raise ValueError(f"{text!r} is not a range; expected START:END.")
    return start, end


def run(args: argparse.Namespace) -> int:
    """Run ``xearthformer evaluate``; returns the exit code."""
    from xearthformer.evaluate import evaluate  # noqa: PLC0415 (keep --help fast)

    archive = _open(args.archive, args.time_chunk)
    kwargs: dict[str, Any] = {}
    if args.thresholds:
        kwargs["thresholds"] = [float(v) for v in args.thresholds.split(",")]
    if args.climatology is not None:
        kwargs["climatology"] = args.climatology
    init = _pair(args.init)
    with connect(args) as client:
        scores = evaluate(
            args.model, archive, leads=args.leads,
            metrics=[m.strip() for m in args.metrics.split(",") if m.strip()],
            init=slice(*init) if init else None, store=args.store, variable=args.variable,
            base_period=_pair(args.base_period), chunk_size=args.chunk_size,
            progress=args.progress, client=client, **kwargs)
    if args.output.rstrip("/").endswith(".zarr"):
        scores.to_zarr(args.output, mode="w", consolidated=False)
    else:
        scores.to_netcdf(args.output)
    print(f"evaluated {scores.attrs['n_inits']} inits ({scores.attrs['first_init'][:10]} .. "
          f"{scores.attrs['last_init'][:10]}) of {args.model}; scores: "
          f"{', '.join(scores.data_vars)} -> {args.output}")
    return 0
