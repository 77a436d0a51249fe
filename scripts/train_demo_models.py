"""Train the embedded demo Earthformers with ``xearthformer.fit`` on the package's tutorial data.

Writes the model directories ``xearthformer/zoo/demo/earthformer-demo-enso/`` and
``xearthformer/zoo/demo/earthformer-demo-storms/`` (see :mod:`xearthformer.zoo.model_dir`).

Data split (the same for both models):

* train: ``tutorial.open_dataset(name, seed=1, <bigger sizes>)``
* validate (model selection inside ``fit``): ``seed=2``
* held-out test: the default ``tutorial.open_dataset(name)`` (seed 0), the quick start's data.

Training is :func:`xearthformer.fit` itself, seeded, on the CPU with a fixed number of threads
and deterministic algorithms: AdamW, linear warm-up then cosine decay, gradient clipping,
validation against persistence every ``valid_every`` steps, keeping the weights with the best
validation score (C-Nino3.4-M for ENSO, CSI-M for storms). ``fit`` derives the input contract
from the training split (ENSO: the training split's monthly (residual) climatology removed,
land cells masked and filled with 0 K, z-score; storms: ``vil / 255``) and stores it with the
model, so ``forecast(model=...)`` inverts it. The losses: ENSO, MSE over ocean cells
(``loss="mse"`` with the land mask); storms, the intensity-weighted ``loss="balanced"``
(MSE + MAE, Shi et al. 2017) with random flips and quarter turns of each window
(``augment="flip_rotate"``).

After ``fit`` the script scores the selected model and persistence on the held-out data with
the package's metrics (:func:`xearthformer.metrics.enso_skill`, :func:`xearthformer.metrics.csi_m`),
and rewrites the model directory with those scores in ``model.json``
(``training["held_out"] = {"model", "persistence", "metric"}``), the demo flag, licence and
description, and a report (``report.md``) with the held-out scores, then ``fit``'s own report.

Usage::

    python scripts/train_demo_models.py                 # both models, into the package
    python scripts/train_demo_models.py --only enso
    python scripts/train_demo_models.py --quick --out /tmp/demo   # smoke run, < 60 s
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

import xearthformer
from xearthformer import tutorial
from xearthformer.metrics import SEVIR_THRESHOLDS, csi, enso_skill, persistence_forecast
from xearthformer.metrics.baselines import forecast_coords
from xearthformer.models import Earthformer
from xearthformer.zoo.model_dir import InputContract, load_model_dir, save_model_dir

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "xearthformer" / "zoo" / "demo"
CONFIG_DIR = REPO / "xearthformer" / "zoo" / "configs"
THREADS = 2
PAPER = ("Gao et al. 2022, Earthformer: Exploring Space-Time Transformers for Earth System "
         "Forecasting, NeurIPS")
DESCRIPTION = "Demo model trained with xearthformer.fit on synthetic data; not for real forecasts"

# --------------------------------------------------------------------------------------------
# Configurations: official-style kwargs shrunk from zoo/configs/*.json, and fit's settings.
# --------------------------------------------------------------------------------------------


def enso_kwargs() -> dict[str, Any]:
    """The ICAR-ENSO Earthformer shrunk: 4x4 patches, base_units 32, no dropout."""
    kw = json.loads((CONFIG_DIR / "earthformer_icarenso2021.json").read_text())
    kw.update(
        base_units=32,
        initial_downsample_scale=[1, 4, 4],
        initial_downsample_conv_layers=1,
        final_upsample_conv_layers=0,
        attn_drop=0.0,
        proj_drop=0.0,
        ffn_drop=0.0,
    )
    return kw


def storms_kwargs() -> dict[str, Any]:
    """The SEVIR Earthformer shrunk to 64 x 64: two stack-conv stages (x4, x2) to 8 x 8 tokens."""
    kw = json.loads((CONFIG_DIR / "earthformer_sevir.json").read_text())
    kw.update(
        input_shape=[13, 64, 64, 1],
        target_shape=[12, 64, 64, 1],
        base_units=32,
        initial_downsample_stack_conv_num_layers=2,
        initial_downsample_stack_conv_dim_list=[8, 32],
        initial_downsample_stack_conv_downscale_list=[4, 2],
        initial_downsample_stack_conv_num_conv_list=[1, 1],
        num_global_vectors=0,
        use_global_self_attn=False,
        separate_global_qkv=False,
        attn_drop=0.0,
        proj_drop=0.0,
        ffn_drop=0.0,
    )
    return kw


SETTINGS: dict[str, dict[str, Any]] = {
    "enso": dict(
        name="earthformer-demo-enso", kwargs=enso_kwargs, var="sst",
        train_data=dict(n_years=300), valid_data=dict(n_years=60), test_data={},
        fit=dict(in_len=12, out_len=14, steps=300, batch_size=16, lr=2e-3, weight_decay=1e-5,
                 warmup_fraction=0.1, clip_grad_norm=1.0, valid_every=50,
                 max_valid_windows=None, seed=0, loss="mse", augment=None),
    ),
    "storms": dict(
        name="earthformer-demo-storms", kwargs=storms_kwargs, var="vil",
        train_data=dict(n_events=1000), valid_data=dict(n_events=64), test_data={},
        fit=dict(in_len=13, out_len=12, steps=600, batch_size=8, lr=2e-3, weight_decay=1e-5,
                 warmup_fraction=0.05, clip_grad_norm=1.0, valid_every=50,
                 max_valid_windows=None, seed=0, loss="balanced", augment="flip_rotate"),
    ),
}

QUICK = dict(
    enso=dict(train_data=dict(n_years=4), valid_data=dict(n_years=3), test_data=dict(n_years=3),
              fit=dict(steps=2, batch_size=2, valid_every=2)),
    storms=dict(train_data=dict(n_events=4, size=32), valid_data=dict(n_events=2, size=32),
                test_data=dict(n_events=3, size=32), fit=dict(steps=2, batch_size=2,
                                                              valid_every=2)),
)

# --------------------------------------------------------------------------------------------
# Held-out scores with the package's metrics (as tests/zoo/test_demo_models.py does)
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def predict(model: Earthformer, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """x: ``"n t h w"`` in model units -> ``"n t h w"``."""
    model.eval()
    x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[..., None]
    out = [model(x_t[i:i + batch_size]) for i in range(0, len(x_t), batch_size)]
    return torch.cat(out)[..., 0].numpy()


def evaluate_enso(model: Earthformer, c: InputContract, sst: xr.DataArray) -> dict[str, Any]:
    """C-Nino3.4-M of the model and of persistence over every window of ``sst``.

    The input goes through the model's contract as in training (the stored residual
    climatology removed, land filled, normalised); the forecast gets the climatology of the
    valid month back, and land is NaN.
    """
    month = sst["time"].dt.month.values
    anom = sst.values - c.climatology[month - 1]
    anom[:, c.land_mask] = c.fill_value
    if np.isnan(anom).any():
        raise ValueError(f"{int(np.isnan(anom).sum())} NaN outside the land mask")
    x_all = c.normalise(anom)
    starts = np.arange(sst.sizes["time"] - c.in_len - c.out_len + 1)
    context = np.stack([x_all[s:s + c.in_len] for s in starts])
    pred = c.denormalise(predict(model, context))
    leads = np.arange(1, c.out_len + 1)
    pred = pred + c.climatology[month[starts[:, None] + c.in_len - 1 + leads] - 1]
    pred[:, :, c.land_mask] = np.nan
    inits = sst["time"].values[starts + c.in_len - 1]
    fc = xr.DataArray(pred, dims=("init", "lead", "lat", "lon"),
                      coords={**forecast_coords(inits, leads, "months"),
                              "lat": sst["lat"], "lon": sst["lon"]})
    skill = enso_skill(fc, sst, weights=None, climatology=0.0)
    pers = enso_skill(persistence_forecast(sst, inits, leads), sst, weights=None, climatology=0.0)
    return {
        "metric": "C-Nino3.4-M", "model": float(skill["C_Nino34_M"]),
        "persistence": float(pers["C_Nino34_M"]), "samples": int(len(starts)),
        # by lead of the forward 3-month means (the last two leads have no full window)
        "model_by_lead": [round(float(v), 4) for v in skill["correlation"].dropna("lead").values],
        "persistence_by_lead": [round(float(v), 4)
                                for v in pers["correlation"].dropna("lead").values],
    }


def evaluate_storms(model: Earthformer, c: InputContract, vil: xr.DataArray) -> dict[str, Any]:
    """CSI-M (pooled counts, SEVIR thresholds) of the model and of persistence: the first
    ``in_len`` frames of each event as context, the next ``out_len`` as target."""
    values = vil.values.astype(np.float32)
    context, target = values[:, :c.in_len], values[:, c.in_len:c.in_len + c.out_len]
    pred = c.denormalise(predict(model, c.normalise(context)))
    pers = np.repeat(context[:, -1:], c.out_len, axis=1)
    dims = ("event", "lead", "y", "x")
    obs = xr.DataArray(target, dims=dims)
    by_model = csi(xr.DataArray(pred, dims=dims), obs, SEVIR_THRESHOLDS)
    by_pers = csi(xr.DataArray(pers, dims=dims), obs, SEVIR_THRESHOLDS)
    return {
        "metric": "CSI-M", "model": float(by_model.mean("threshold")),
        "persistence": float(by_pers.mean("threshold")), "samples": int(len(values)),
        "thresholds": [float(t) for t in SEVIR_THRESHOLDS],
        "model_by_threshold": [round(float(v), 4) for v in by_model.values],
        "persistence_by_threshold": [round(float(v), 4) for v in by_pers.values],
    }


# --------------------------------------------------------------------------------------------
# One model, end to end
# --------------------------------------------------------------------------------------------


def _settings(kind: str, quick: bool) -> dict[str, Any]:
    s = {**SETTINGS[kind], "fit": dict(SETTINGS[kind]["fit"])}
    if quick:
        for key, value in QUICK[kind].items():
            s[key] = {**s[key], **value} if key == "fit" else value
    return s


def _logger(log, started: float):
    """A fit callback printing one line per validation."""
    losses: list[float] = []

    def callback(step: int, logs: dict[str, Any]) -> None:
        losses.append(float(logs["loss"]))
        valid = [k for k in logs if k.startswith("valid_")]
        if valid:
            log(f"  step {step:5d}  loss {np.mean(losses):.4f}  {valid[0]} "
                f"{logs[valid[0]]:.4f}  {time.perf_counter() - started:.0f} s")
            losses.clear()

    return callback


def build(kind: str, quick: bool, out_dir: Path, log=print) -> dict[str, Any]:
    s = _settings(kind, quick)
    log(f"[{kind}] {s['name']}: loading data")
    train_da = tutorial.open_dataset(kind, seed=1, **s["train_data"])[s["var"]]
    valid_da = tutorial.open_dataset(kind, seed=2, **s["valid_data"])[s["var"]]
    test_da = tutorial.open_dataset(kind, **s["test_data"])[s["var"]]
    path = out_dir / s["name"]
    f = s["fit"]
    log(f"[{kind}] xearthformer.fit: {f['steps']} steps of {f['batch_size']}, loss {f['loss']}, "
        f"augment {f['augment']}")
    t0 = time.perf_counter()
    xearthformer.fit(s["kwargs"](), train_da, valid=valid_da, out_dir=path, name=s["name"],
                     overwrite=True, resume=False, device="cpu", progress=False,
                     callbacks=[_logger(log, t0)], **f)
    train_s = time.perf_counter() - t0
    card, weights = load_model_dir(path)
    model = Earthformer.from_official_kwargs(card.official_kwargs)
    model.load_state_dict(weights, strict=True)
    evaluate = evaluate_enso if kind == "enso" else evaluate_storms
    held_out = evaluate(model, card.contract, test_da)
    log(f"[{kind}] held-out {held_out['metric']}: model {held_out['model']:.4f}, "
        f"persistence {held_out['persistence']:.4f} (training {train_s / 60:.1f} min)")
    training = {
        **card.training,
        "script": "scripts/train_demo_models.py" + (" --quick" if quick else ""),
        "data": {
            "train": {"tutorial": kind, "seed": 1, **s["train_data"]},
            "valid": {"tutorial": kind, "seed": 2, **s["valid_data"]},
            "held_out": {"tutorial": kind, "seed": 0, **s["test_data"]},
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": THREADS, "torch": torch.__version__, "platform": platform.platform(),
        "train_seconds": round(train_s, 1),
        "held_out": {k: held_out[k] for k in ("model", "persistence", "metric")},
        "held_out_detail": held_out,
    }
    card = dataclasses.replace(card, demo=True, licence="Apache-2.0", paper=PAPER,
                               description=DESCRIPTION, training=training)
    fit_report = (path / "report.md").read_text()
    save_model_dir(path, card, weights, report=report(card, held_out, train_s, fit_report),
                   overwrite=True)
    size = sum(p.stat().st_size for p in path.iterdir())
    log(f"[{kind}] wrote {path} ({size / 1e6:.2f} MB)")
    return {"path": str(path), "held_out": held_out, "train_seconds": train_s, "bytes": size}


def report(card, held_out: dict[str, Any], train_s: float, fit_report: str) -> str:
    """Held-out scores against persistence, then fit's own training report."""
    t = card.training
    lines = [
        f"# {card.name}",
        "",
        f"{card.description}. Trained by `{t['script']}` with `xearthformer.fit` on the "
        "tutorial data (train seed 1, validation seed 2, held-out seed 0).",
        "",
        f"* parameters: {t['parameters']:,}; {t['steps_done']} steps of batch {t['batch_size']}, "
        f"AdamW lr {t['lr']}, warm-up {t['warmup_fraction']} + cosine; loss: {t['loss']}; "
        f"augmentation: {t['augment'] or 'none'}; best validation step {t['best_step']}",
        f"* training time: {train_s / 60:.1f} min on {t['threads']} CPU threads (torch {t['torch']})",
        "",
        f"## Held-out scores ({held_out['metric']}, {held_out['samples']} samples)",
        "",
        "| forecast | score |",
        "|---|---|",
        f"| {card.name} | {held_out['model']:.4f} |",
        f"| persistence | {held_out['persistence']:.4f} |",
        "",
    ]
    if "model_by_lead" in held_out:
        cols, fmt = [str(i + 1) for i in range(len(held_out["model_by_lead"]))], "{:.2f}"
        head, rows = "lead", ("model_by_lead", "persistence_by_lead")
    else:
        cols, fmt = [f"{v:g}" for v in held_out["thresholds"]], "{:.3f}"
        head, rows = "threshold", ("model_by_threshold", "persistence_by_threshold")
    lines += [f"| {head} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, key in zip(("model", "persistence"), rows):
        lines.append(f"| {label} | " + " | ".join(fmt.format(v) for v in held_out[key]) + " |")
    body = fit_report.replace("\n## ", "\n### ").replace("# Training report:", "## fit report:", 1)
    return "\n".join(lines) + "\n\n" + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(SETTINGS), help="train one model only")
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run (a few steps on tiny data) into a temporary directory")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the package's zoo/demo, or a temporary one "
                             "with --quick)")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    out = args.out or (Path(tempfile.mkdtemp(prefix="xef-demo-")) if args.quick else DEMO_DIR)
    kinds = [args.only] if args.only else list(SETTINGS)
    results = {k: build(k, args.quick, out, log=lambda m: print(m, flush=True)) for k in kinds}
    summary = {k: {"path": v["path"], "train_min": round(v["train_seconds"] / 60, 1),
                   "MB": round(v["bytes"] / 1e6, 2),
                   "held_out": {x: v["held_out"][x] for x in ("metric", "model", "persistence")}}
               for k, v in results.items()}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
