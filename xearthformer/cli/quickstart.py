"""``xearthformer quickstart``: the main job of the README.

For now (until the forecasting issue lands) it builds the official ICAR-ENSO Earthformer
configuration with fresh random weights, runs it on random data of the ENSO shape and
prints the shapes, the parameter count and the time per forecast. It downloads nothing.
"""

from __future__ import annotations

import argparse
import time



def run(args: argparse.Namespace) -> int:
    import torch

    from xearthformer.models import Earthformer
    from xearthformer.zoo import official_kwargs

    torch.manual_seed(args.seed)
    model = Earthformer.from_official_kwargs(official_kwargs("earthformer-icar-enso")).eval()
    n_params = sum(p.numel() for p in model.parameters())
    x = torch.randn(args.batch, 12, 24, 48, 1, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        model(x)  # warm-up
        start = time.perf_counter()
        y = model(x)
        seconds = time.perf_counter() - start
    print("xearthformer quickstart (placeholder main job: random weights, random data)")
    print(f"  model      : Earthformer, official ICAR-ENSO configuration, {n_params:,} parameters")
    print(f"  input      : {tuple(x.shape)}  (batch, months in, lat, lon, channel)")
    print(f"  output     : {tuple(y.shape)}  (batch, months out, lat, lon, channel)")
    print(f"  time       : {seconds * 1e3:.1f} ms per forward of batch {args.batch} on {torch.get_num_threads()} threads")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("quickstart", help="run the README's main job")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)
