"""``xearthformer train CONFIG_OR_MODEL DATA.nc --var sst --in-len 12 --out-len 14 -o runs/x``.

Trains an Earthformer with :func:`xearthformer.fit` on a netCDF file (or a glob, or a zarr
store; opened lazily) and writes a model directory. CONFIG_OR_MODEL is a zoo name, a model
directory (fine-tuned from its weights) or a JSON file of official Earthformer kwargs.
Run it under ``torchrun`` to train on several processes.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``train`` sub-command on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "train", help="train or fine-tune an Earthformer on a netCDF/zarr data set",
        description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("model", metavar="CONFIG_OR_MODEL",
                        help="zoo name, model directory, or JSON file of official kwargs")
    parser.add_argument("data", metavar="DATA", help="training data: netCDF file, glob or .zarr")
    parser.add_argument("--var", help="variable to train on (when the file holds several)")
    parser.add_argument("--in-len", type=int, required=True, help="context length in steps")
    parser.add_argument("--out-len", type=int, required=True, help="forecast length in steps")
    parser.add_argument("-o", "--output", required=True, help="model directory to write")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimizer steps")
    length.add_argument("--epochs", type=float, help="passes over the training windows")
    parser.add_argument("--batch-size", type=int, default=8, help="global batch (default 8)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--warmup-fraction", type=float, default=0.2)
    parser.add_argument("--clip-grad-norm", type=float, default=1.0)
    parser.add_argument("--valid", help="validation data: netCDF file, glob or .zarr")
    parser.add_argument("--valid-every", type=int, help="validate every N steps")
    parser.add_argument("--patience", type=int, help="early stopping after N bad validations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--num-workers", type=int, default=0, help="data loader workers")
    parser.add_argument("--time-chunk", type=int, default=120,
                        help="time steps per dask chunk when opening the data (default 120)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-resume", action="store_true",
                        help="ignore a checkpoint of an interrupted run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--return-freed-memory", action="store_true",
                        help="let the C allocator return freed memory to the system between steps "
                             "(default: keep it for reuse, xearthformer.keep_freed_memory)")
    parser.set_defaults(func=run)
    return parser


def _open(path: str, time_chunk: int) -> Any:
    from .evaluate import _open as open_archive  # same rules as `xearthformer evaluate`

    return open_archive(path, time_chunk)


def run(args: argparse.Namespace) -> int:
    """Run ``xearthformer train``; returns the exit code."""
    from xearthformer.cpu_memory import keep_freed_memory  # noqa: PLC0415
    from xearthformer.train import fit  # noqa: PLC0415 (keep --help fast)

    if not args.return_freed_memory:
        keep_freed_memory()
    if args.steps is None and args.epochs is None:
        raise ValueError("give the training length with --steps N or --epochs E.")
    train = _open(args.data, args.time_chunk)
    valid = _open(args.valid, args.time_chunk) if args.valid else None
    path = fit(
        args.model, train, valid=valid, var=args.var, in_len=args.in_len,
        out_len=args.out_len, steps=args.steps, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        warmup_fraction=args.warmup_fraction, clip_grad_norm=args.clip_grad_norm or None,
        valid_every=args.valid_every, early_stopping_patience=args.patience,
        out_dir=args.output, overwrite=args.overwrite, resume=not args.no_resume,
        seed=args.seed, device=args.device, precision=args.precision,
        num_workers=args.num_workers, progress=False if args.no_progress else None)
    print(f"trained {args.model} on {args.data} -> {path}")
    return 0
