"""``xearthformer quickstart``: the README's main job, offline.

Forecasts the tutorial ENSO data (``tutorial.open_dataset("enso")``, the held-out seed of the
demo model) 12 months ahead from its last month with the embedded demo model
``earthformer-demo-enso``, writes ``forecast.nc`` and prints the forecast's Nino3.4 index by
lead next to persistence (the last observed month's index, held).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_MODEL = "earthformer-demo-enso"


class DemoModelMissingError(ValueError):
    """The embedded demo model is not installed."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("quickstart", help="run the README's main job (offline)",
                                   description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("-o", "--output", default="forecast.nc",
                        help="where to write the forecast (default ./forecast.nc)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"zoo name or model directory (default {DEFAULT_MODEL})")
    parser.add_argument("--lead", type=int, default=12, help="months ahead (default 12)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.set_defaults(func=run)
    return parser


def summary(fc: Any, sst: Any) -> str:
    """Lines comparing the forecast's Nino3.4 with persistence, by lead."""
    from xearthformer.metrics import nino34, persistence_forecast

    leads = [int(v) for v in fc["lead"].values]
    persistence = persistence_forecast(sst, fc["init"].values, leads)
    idx_fc = nino34(fc, climatology=sst).isel(init=-1)
    idx_p = nino34(persistence, climatology=sst).isel(init=-1)
    init = str(fc["init"].values[-1])[:7]
    lines = [f"Nino3.4 index (K) from init {init}: forecast vs persistence",
             "  lead  valid    forecast  persistence"]
    for j, lead in enumerate(leads):
        valid = str(fc["valid_time"].values[-1, j])[:7]
        lines.append(f"  {lead:4d}  {valid}  {float(idx_fc[j]):+8.2f}  {float(idx_p[j]):+11.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import xearthformer
    from xearthformer.cli.forecast import check_writable, write_atomic
    from xearthformer.zoo import UnknownModelError, load_model

    check_writable(args.output)
    try:
        model = load_model(args.model, device="cpu")
    except UnknownModelError as err:
        if args.model != DEFAULT_MODEL:
            raise
        raise DemoModelMissingError(
            f"demo model not found: {DEFAULT_MODEL} is not installed in xearthformer/zoo/demo/ "
            "(it is trained by the repository's script); pass --model NAME|PATH to use another."
        ) from err
    sst = xearthformer.tutorial.open_dataset("enso")["sst"]
    fc = xearthformer.forecast(sst, lead=args.lead, model=model, device=args.device)
    write_atomic(fc, args.output)
    card = model.card
    print(f"xearthformer quickstart: {card.name} ({'demo model, ' if card.demo else ''}"
          f"{card.kind}) on tutorial.open_dataset('enso')")
    print(f"  wrote {args.output}: sst forecast {dict(fc.sizes)}")
    print(f"  rollout: {fc.attrs['rollout']}")
    print(summary(fc, sst))
    training = card.training if isinstance(card.training, dict) else {}
    held = training.get("held_out")  # demo models: scored on data never used in training
    if held:
        print(f"  held-out skill recorded with the model: {held['metric']} "
              f"{held['model']:.3f} (persistence {held['persistence']:.3f})")
    elif training.get("scores"):
        print(f"  validation skill recorded with the model: {training['scores']}")
    sys.stdout.flush()
    return 0
