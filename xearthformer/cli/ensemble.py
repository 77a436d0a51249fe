"""``xearthformer ensemble IN.nc --var sst -n 20 [--kc-sigma=-2,0,2] [--model NAME|PATH] -o OUT.nc``.

A PreDiff ensemble of a netCDF file (or zarr store), optionally knowledge-controlled, written
atomically like ``xearthformer forecast`` (a temporary sibling renamed into place). Bad input
exits with code 2 and one line. With ``--scheduler tcp://...`` or ``--scheduler-file FILE``
the inits run on that dask cluster, one task per init.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._cluster import add_cluster_options, connect
from .forecast import (
    add_policy_arguments,
    check_writable,
    open_input,
    parse_init,
    parse_lead,
    write_atomic,
)


def parse_kc_sigma(text: str | None) -> Any:
    """``None`` -> None; ``"2"`` -> 2.0; ``"-2,0,2"`` -> [-2.0, 0.0, 2.0].

    >>> parse_kc_sigma("-2,0,2"), parse_kc_sigma("1.5"), parse_kc_sigma(None)
    ([-2.0, 0.0, 2.0], 1.5, None)
    """
    if text is None or text.strip().lower() in ("", "none"):
        return None
    try:
        if "," in text:
            return [float(part) for part in text.split(",") if part.strip()]
        return float(text)
    except ValueError:
        raise ValueError(f"--kc-sigma {text!r} is not understood; expected a number or a list "
                         "like -2,0,2.") from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``ensemble`` sub-command."""
    parser = subparsers.add_parser(
        "ensemble", help="PreDiff ensemble (optionally knowledge-controlled) of a netCDF/zarr file",
        description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("input", help="netCDF file or .zarr store holding the context")
    parser.add_argument("--var", help="variable (default: the model's variable)")
    parser.add_argument("-n", "--members", type=int, default=20, help="ensemble members (20)")
    parser.add_argument("--kc-sigma", help="knowledge control: a number or a list, e.g. --kc-sigma=-2,0,2 (with =)")
    parser.add_argument("--lead", help="N or a list 1,3,6 (default: the model's output length)")
    parser.add_argument("--model", default="prediff-demo-enso", help="PreDiff zoo name or directory")
    parser.add_argument("--init", help="'last' (default), a time, START:END, or T1,T2,...")
    parser.add_argument("--steps", type=int,
                        help="denoising steps (default: the model card's; dpmpp 15)")
    parser.add_argument("--sampler", choices=["ddim", "ddpm", "dpmpp"],
                        help="default: the model card's (dpmpp for the demo models; DDPM for the "
                             "official method on an official model)")
    parser.add_argument("--control", choices=["mean_shift", "clean_estimate"],
                        help="knowledge control: mean_shift (PreDiff's knowledge alignment) or "
                             "clean_estimate (this package's method); default: the model's")
    parser.add_argument("--norm", choices=["per_sample", "batch"],
                        help="mean_shift violation norm (default: batch for the official method "
                             "on an official model, else per_sample)")
    parser.add_argument("--member-batch", type=int, default=20, help="members per model call")
    parser.add_argument("--units", help="the data's units, if the attribute is missing/wrong")
    add_policy_arguments(parser)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    parser.add_argument("-o", "--output", required=True, help="output file (.nc or .zarr)")
    add_cluster_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    check_writable(args.output)
    with connect(args) as client:  # on a cluster: lazy input, one task per init
        return _run(args, open_input(args.input, chunks=None if client is None else {}))


def _run(args: argparse.Namespace, ds: Any) -> int:
    from xearthformer.ensembles import ensemble

    if args.var and args.var not in ds.data_vars:
        raise ValueError(f"variable {args.var!r} is not in {args.input} (it holds "
                         f"{list(ds.data_vars)}); pass --var with one of them.")
    data = ds[args.var] if args.var else (ds[next(iter(ds.data_vars))] if len(ds.data_vars) == 1 else ds)
    ens = ensemble(data, n=args.members, kc_sigma=parse_kc_sigma(args.kc_sigma),
                   lead=None if args.lead is None else parse_lead(args.lead), model=args.model,
                   init=parse_init(args.init), steps=args.steps, sampler=args.sampler,
                   control=args.control, norm=args.norm,
                   member_batch=args.member_batch, units=args.units, device=args.device,
                   seed=args.seed, progress=args.progress, missing=args.missing,
                   bad_values=args.bad_values)
    ens = ens.compute()
    ds.close()
    write_atomic(ens, args.output)
    print(f"wrote {args.output}: {dict(ens.sizes)}")
    return 0
