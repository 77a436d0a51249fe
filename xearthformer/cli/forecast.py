"""``xearthformer forecast IN.nc --var sst --lead 12 [--model NAME|PATH] [--init ...] -o OUT.nc``.

Reads a netCDF file (or a zarr store), forecasts it with a zoo model, a model directory or a
checkpoint (``--config NAME`` for a ``.pt`` file) and writes the forecast to netCDF (zarr when
OUT ends in ``.zarr``). The output is written to a temporary file beside OUT and renamed into
place, so a failed run leaves nothing partial; bad input exits with code 2 and one line.
With ``--scheduler tcp://...`` or ``--scheduler-file FILE`` the inits run on that dask cluster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ._cluster import add_cluster_options, connect


class OutputPathError(ValueError):
    """The output path cannot be written."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``forecast`` sub-command."""
    parser = subparsers.add_parser(
        "forecast", help="forecast a netCDF/zarr file with a model",
        description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("input", help="netCDF file or .zarr store holding the context")
    parser.add_argument("--var", help="variable to forecast (default: the model's variable)")
    parser.add_argument("--lead", required=True, help="N (the next N steps) or a list 1,3,6")
    parser.add_argument("--model", default="earthformer-demo-enso",
                        help="zoo name, model directory or checkpoint file "
                             "(default earthformer-demo-enso; see `xearthformer models`)")
    parser.add_argument("--config", help="zoo name giving the configuration of a .pt checkpoint")
    parser.add_argument("--weights", help="local checkpoint for a zoo --model (no download)")
    parser.add_argument("--init", help="'last' (default), a time, START:END, or T1,T2,...")
    parser.add_argument("--regrid", choices=["linear", "nearest", "conservative"],
                        help="interpolate a different grid onto the model's")
    parser.add_argument("--regrid-back", action="store_true",
                        help="return the forecast on the input's grid")
    parser.add_argument("--units", help="the data's units, if the attribute is missing/wrong")
    add_policy_arguments(parser)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--batch-size", type=int, default=16, help="inits per model call")
    parser.add_argument("--seed", type=int, help="recorded in the output's attributes")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show a progress bar (default: on a terminal, long runs)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("-o", "--output", required=True, help="output file (.nc or .zarr)")
    add_cluster_options(parser)
    parser.set_defaults(func=run)
    return parser


def parse_init(text: str | None) -> Any:
    """``None``/``"last"`` -> None; ``"A:B"`` -> slice; ``"A,B"`` -> list; else the time string.

    >>> parse_init("1990-01:1999-12"), parse_init("2000-01,2000-06"), parse_init("last")
    (slice('1990-01', '1999-12', None), ['2000-01', '2000-06'], None)
    """
    if text is None or text.strip().lower() in ("", "last"):
        return None
    if ":" in text and "T" not in text:
        start, _, end = text.partition(":")
        return slice(start.strip() or None, end.strip() or None)
    if "," in text:
        return [part.strip() for part in text.split(",") if part.strip()]
    return [text.strip()]


def parse_lead(text: str) -> Any:
    """``"12"`` -> 12; ``"1,3,6"`` -> [1, 3, 6]."""
    try:
        if "," in text:
            return [int(part) for part in text.split(",") if part.strip()]
        return int(text)
    except ValueError:
        raise ValueError(f"--lead {text!r} is not understood; expected N or a list like 1,3,6."
                         ) from None


def check_writable(path: str | os.PathLike) -> Path:
    """Raise :class:`OutputPathError` unless ``path``'s folder exists and is writable."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputPathError(f"cannot write {path}: the folder {folder} does not exist; "
                              "create it or choose another -o path.")
    if not os.access(folder, os.W_OK):
        raise OutputPathError(f"cannot write {path}: the folder {folder} is not writable; "
                              "choose another -o path.")
    if path.is_dir() and not str(path).rstrip("/").endswith(".zarr"):
        raise OutputPathError(f"cannot write {path}: it is a directory; give a file name.")
    return path


def write_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` (DataArray/Dataset) to a temporary sibling of ``path``, then rename it."""
    path = check_writable(path)
    zarr = str(path).rstrip("/").endswith(".zarr")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent or "."))
    target = tmp / path.name
    try:
        data = obj.to_dataset() if hasattr(obj, "to_dataset") and obj.name is not None else obj
        if zarr:
            data.to_zarr(target, mode="w")
        else:
            data.to_netcdf(target)
        if zarr and path.exists():
            shutil.rmtree(path)
        os.replace(target, path)
    except OSError as err:
        raise OutputPathError(f"cannot write {path}: {err.strerror or err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """``--missing`` and ``--bad-values`` (see docs/real-files.md)."""
    parser.add_argument("--missing", choices=["context", "strict"], default="context",
                        help="cells missing at any context time: missing for that context "
                             "(default), or 'strict' (only always-missing cells are filled)")
    parser.add_argument("--bad-values", choices=["raise", "mask", "clip"], default="raise",
                        help="infinite or far-out values: raise (default), mask or clip")


def open_input(path: str, chunks: Any = None) -> Any:
    """Open a netCDF file or zarr store; ``chunks`` (e.g. ``{}``) opens it dask-backed."""
    import xarray as xr

    if not os.path.exists(path):
        raise ValueError(f"input {path!r} not found; expected a netCDF file or a .zarr store.")
    if path.rstrip("/").endswith(".zarr") or os.path.isdir(path):
        return xr.open_zarr(path) if chunks is None else xr.open_zarr(path, chunks=chunks)
    try:
        return xr.open_dataset(path, chunks=chunks)
    except ValueError as err:  # e.g. a climatology in 'hours since 0000-01-01'
        if "decode" not in str(err):
            raise
        # the reader decodes it (cftime)
        return xr.open_dataset(path, chunks=chunks, decode_times=False)


def run(args: argparse.Namespace) -> int:
    check_writable(args.output)
    with connect(args) as client:  # on a cluster: lazy input, one task per batch of inits
        return _run(args, open_input(args.input, chunks=None if client is None else {}))


def _run(args: argparse.Namespace, ds: Any) -> int:
    from xearthformer.forecasting import forecast

    data = ds[args.var] if args.var and args.var in ds.data_vars else ds
    if args.var and args.var not in ds.data_vars:
        raise ValueError(f"variable {args.var!r} is not in {args.input} (it holds "
                         f"{list(ds.data_vars)}); pass --var with one of them.")
    if data is ds and len(ds.data_vars) == 1:
        data = ds[next(iter(ds.data_vars))]
    fc = forecast(data, lead=parse_lead(args.lead), model=args.model, init=parse_init(args.init),
                  regrid=args.regrid, regrid_back=args.regrid_back, units=args.units,
                  device=args.device, batch_size=args.batch_size, seed=args.seed,
                  progress=args.progress, weights=args.weights, config=args.config,
                  missing=args.missing, bad_values=args.bad_values)
    fc = fc.compute()
    ds.close()
    write_atomic(fc, args.output)
    print(f"wrote {args.output}: {dict(fc.sizes)} ({fc.attrs.get('forecast_model', args.model)})")
    return 0
