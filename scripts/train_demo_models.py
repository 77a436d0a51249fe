"""Train the embedded demo Earthformers on the package's own tutorial data.

Writes the model directories ``xearthformer/zoo/demo/earthformer-demo-enso/`` and
``xearthformer/zoo/demo/earthformer-demo-storms/`` (see :mod:`xearthformer.zoo.model_dir`).

Data split (the same for both models):

* train: ``tutorial.open_dataset(name, seed=1, <bigger sizes>)``
* validate (model selection): ``seed=2``
* held-out test: the default ``tutorial.open_dataset(name)`` (seed 0), the quick start's data.

Preprocessing, stored in the model's :class:`~xearthformer.zoo.model_dir.InputContract` so that
``forecast`` can invert it:

* ENSO: monthly climatology of the training split (12, H, W) is removed (the tutorial SST are
  already anomalies, so this removes only a residual seasonal mean); land cells (NaN at every
  training time) form ``land_mask`` and are filled with 0 K; z-score with the training split's
  ocean mean and standard deviation.
* storms: ``vil / 255`` (offset 0, scale 255, valid range 0..255), as in SEVIR.

Training is seeded and runs on the CPU with a fixed number of threads (deterministic): AdamW,
linear warm-up then cosine decay, gradient clipping, validation every ``valid_every`` steps,
keeping the weights with the best validation score (C-Nino3.4-M for ENSO, CSI-M for storms).
The held-out scores of the model and of persistence go into ``model.json`` (``training``) and
the training report ``report.md``.

Usage::

    python scripts/train_demo_models.py                 # both models, into the package
    python scripts/train_demo_models.py --only enso
    python scripts/train_demo_models.py --quick --out /tmp/demo   # smoke run, < 60 s
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange

from xearthformer import tutorial
from xearthformer.models import Earthformer
from xearthformer.zoo.model_dir import InputContract, ModelCard, save_model_dir

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "xearthformer" / "zoo" / "demo"
CONFIG_DIR = REPO / "xearthformer" / "zoo" / "configs"
THREADS = 2
SEVIR_THRESHOLDS = (16, 74, 133, 160, 181, 219)
# Nino3.4 box on the ICAR-ENSO grid: 5S-5N, 170W-120W (190E-240E)
NINO34 = {"lat": (-5.0, 5.0), "lon": (190.0, 240.0)}

# --------------------------------------------------------------------------------------------
# Configurations: official-style kwargs shrunk from zoo/configs/*.json, and training settings.
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
        name="earthformer-demo-enso",
        kwargs=enso_kwargs,
        train_data=dict(n_years=300),
        valid_data=dict(n_years=60),
        steps=300, batch_size=16, lr=2e-3, weight_decay=1e-5, warmup=30, clip=1.0,
        valid_every=50, seed=0,
    ),
    "storms": dict(
        name="earthformer-demo-storms",
        kwargs=storms_kwargs,
        train_data=dict(n_events=1000),
        valid_data=dict(n_events=64),
        steps=600, batch_size=8, lr=2e-3, weight_decay=1e-5, warmup=30, clip=1.0,
        valid_every=50, seed=0,
    ),
}

QUICK = dict(
    enso=dict(train_data=dict(n_years=4), valid_data=dict(n_years=3), steps=2, batch_size=2,
              valid_every=2, warmup=1, test_data=dict(n_years=3)),
    storms=dict(train_data=dict(n_events=4, size=32), valid_data=dict(n_events=2, size=32),
                steps=2, batch_size=2, valid_every=2, warmup=1, test_data=dict(n_events=3, size=32)),
)

# --------------------------------------------------------------------------------------------
# Data preparation -> (samples in model units, InputContract)
# --------------------------------------------------------------------------------------------


def _box_slices(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = (lat >= NINO34["lat"][0]) & (lat <= NINO34["lat"][1])
    cols = (lon >= NINO34["lon"][0]) & (lon <= NINO34["lon"][1])
    return rows, cols


def enso_contract(train_sst) -> InputContract:
    """The ENSO contract from the training split: climatology, land mask, z-score."""
    values = train_sst.values.astype(np.float64)  # (time, lat, lon)
    land = np.isnan(values).all(axis=0)
    month = train_sst["time"].dt.month.values
    filled = np.where(land, 0.0, values)
    clim = np.stack([filled[month == m].mean(axis=0) for m in range(1, 13)])
    clim[:, land] = np.nan
    anom = values - clim[month - 1]
    ocean = anom[:, ~land]
    return InputContract(
        variables=("sst",), in_len=12, out_len=14, step=1, step_units="months",
        spatial_dims=("lat", "lon"), grid_shape=values.shape[1:],
        coords={"lat": train_sst["lat"].values, "lon": train_sst["lon"].values},
        units="K", offset=float(ocean.mean()), scale=float(ocean.std()), anomaly=True,
        fill_value=0.0, land_mask=land, climatology=clim.astype(np.float32),
    )


def enso_series(sst, contract: InputContract) -> np.ndarray:
    """Monthly SST (time, lat, lon) -> model units (time, lat, lon), land filled."""
    values = sst.values.astype(np.float64)
    month = sst["time"].dt.month.values
    anom = values - contract.climatology[month - 1]
    anom[:, contract.land_mask] = contract.fill_value
    if np.isnan(anom).any():
        raise ValueError(f"{int(np.isnan(anom).sum())} NaN outside the land mask")
    return contract.normalise(anom).astype(np.float32)


def storms_contract(train_vil) -> InputContract:
    """The storms contract: the SEVIR scaling vil / 255 on the 64 x 64 pixel grid."""
    return InputContract(
        variables=("vil",), in_len=13, out_len=12, step=5, step_units="minutes",
        spatial_dims=("y", "x"), grid_shape=tuple(train_vil.shape[-2:]),
        coords={"y": train_vil["y"].values, "x": train_vil["x"].values},
        units=str(train_vil.attrs.get("units", "1")), offset=0.0, scale=255.0, anomaly=False,
        fill_value=0.0, valid_range=(0.0, 255.0),
    )


class Windows:
    """Training samples: windows of ``in_len + out_len`` steps of a model-unit array.

    ``series`` is ``(time, h, w)`` (one long record, ENSO) or ``(event, time, h, w)``
    (independent events, storms; windows never cross events).
    """

    def __init__(self, series: np.ndarray, in_len: int, out_len: int, augment: bool = False,
                 divide_by: float | None = None):
        self.series = series if series.ndim == 4 else series[None]
        self.in_len, self.out_len, self.augment = in_len, out_len, augment
        self.divide_by = divide_by  # raw uint8 VIL is kept as is and scaled per batch
        n_starts = self.series.shape[1] - in_len - out_len + 1
        if n_starts < 1:
            raise ValueError(f"need at least {in_len + out_len} time steps, got {self.series.shape[1]}")
        self.index = np.array([(e, s) for e in range(self.series.shape[0]) for s in range(n_starts)])

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, rows: np.ndarray,
              rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Context "b t_in h w 1" and target "b t_out h w 1" of the windows ``rows``."""
        length = self.in_len + self.out_len
        seq = np.stack([self.series[e, s:s + length] for e, s in self.index[rows]])
        if self.divide_by is not None:
            seq = seq.astype(np.float32) / np.float32(self.divide_by)
        if self.augment and rng is not None:  # flips and quarter turns: the flow is isotropic
            for i in range(len(seq)):
                k, flip = rng.integers(4), rng.integers(2)
                seq[i] = np.rot90(seq[i], k, axes=(1, 2))
                if flip:
                    seq[i] = seq[i][:, :, ::-1]
        seq = torch.from_numpy(np.ascontiguousarray(seq))
        seq = rearrange(seq, "b t h w -> b t h w 1")
        return seq[:, :self.in_len], seq[:, self.in_len:]


# --------------------------------------------------------------------------------------------
# Scores (numpy; the same formulas as xearthformer.metrics.enso_skill and csi_m)
# --------------------------------------------------------------------------------------------


def nino_correlation(pred_box: np.ndarray, obs_box: np.ndarray) -> np.ndarray:
    """Per-lead correlation of the forward 3-month Nino3.4 means; inputs ``(n, 14)``."""
    p = (pred_box[:, :-2] + pred_box[:, 1:-1] + pred_box[:, 2:]) / 3
    y = (obs_box[:, :-2] + obs_box[:, 1:-1] + obs_box[:, 2:]) / 3
    p, y = p - p.mean(0), y - y.mean(0)
    return (p * y).sum(0) / (np.sqrt((p**2).sum(0) * (y**2).sum(0)) + 1e-6)


def csi_m_counts(pred: np.ndarray, obs: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """Accumulate (hits, misses, false alarms) per SEVIR threshold on the 0-255 scale."""
    counts = np.zeros((len(SEVIR_THRESHOLDS), 3)) if counts is None else counts
    for i, thr in enumerate(SEVIR_THRESHOLDS):
        p, t = pred >= thr, obs >= thr
        counts[i] += [np.sum(p & t), np.sum(~p & t), np.sum(p & ~t)]
    return counts


def csi_m_from_counts(counts: np.ndarray) -> tuple[float, list[float]]:
    csi = counts[:, 0] / np.maximum(counts.sum(1), 1e-12)
    return float(csi.mean()), [float(c) for c in csi]


@torch.no_grad()
def predict(model: Earthformer, x: torch.Tensor, batch_size: int = 32) -> np.ndarray:
    model.eval()
    out = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(out)[..., 0].numpy()


def evaluate_enso(model: Earthformer, contract: InputContract, sst, stride: int = 1) -> dict[str, Any]:
    """C-Nino3.4-M of the model and of persistence on ``sst`` (all windows, or every ``stride``-th)."""
    series = enso_series(sst, contract)
    windows = Windows(series, contract.in_len, contract.out_len)
    rows = np.arange(0, len(windows), stride)
    x, y = windows.batch(rows)
    pred = contract.denormalise(predict(model, x))  # anomalies (residual climatology aside)
    month = sst["time"].dt.month.values
    starts = windows.index[rows, 1]
    target_month = month[starts[:, None] + contract.in_len + np.arange(contract.out_len)]
    pred = pred + contract.climatology[target_month - 1]
    obs = sst.values[starts[:, None] + contract.in_len + np.arange(contract.out_len)]
    last = sst.values[starts + contract.in_len - 1]
    r, c = _box_slices(contract.coords["lat"], contract.coords["lon"])
    box = lambda a: a[..., r, :][..., c].mean(axis=(-2, -1))  # noqa: E731  unweighted, official
    obs_box = box(obs)
    pers_box = np.repeat(box(last)[:, None], contract.out_len, axis=1)
    cor_model, cor_pers = nino_correlation(box(pred), obs_box), nino_correlation(pers_box, obs_box)
    return {
        "metric": "C-Nino3.4-M", "model": float(cor_model.mean()),
        "persistence": float(cor_pers.mean()), "samples": int(len(rows)),
        "model_by_lead": [round(float(v), 4) for v in cor_model],
        "persistence_by_lead": [round(float(v), 4) for v in cor_pers],
    }


def evaluate_storms(model: Earthformer, contract: InputContract, vil) -> dict[str, Any]:
    """CSI-M (pooled counts, SEVIR thresholds) of the model and of persistence on ``vil``."""
    raw = Windows(vil.values, contract.in_len, contract.out_len)  # uint8: exact thresholds
    windows = Windows(vil.values, contract.in_len, contract.out_len, divide_by=contract.scale)
    counts_m = counts_p = None
    for lo in range(0, len(windows), 64):
        rows = np.arange(lo, min(lo + 64, len(windows)))
        x, _ = windows.batch(rows)
        x_raw, y_raw = raw.batch(rows)
        obs = y_raw[..., 0].numpy().astype(np.float32)
        pred = contract.denormalise(predict(model, x))
        pers = np.repeat(x_raw[:, -1:, ..., 0].numpy().astype(np.float32), contract.out_len, axis=1)
        counts_m = csi_m_counts(pred, obs, counts_m)
        counts_p = csi_m_counts(pers, obs, counts_p)
    (m, m_thr), (p, p_thr) = csi_m_from_counts(counts_m), csi_m_from_counts(counts_p)
    return {
        "metric": "CSI-M", "model": m, "persistence": p, "samples": len(windows),
        "thresholds": list(SEVIR_THRESHOLDS),
        "model_by_threshold": [round(v, 4) for v in m_thr],
        "persistence_by_threshold": [round(v, 4) for v in p_thr],
    }


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def lr_at(step: int, steps: int, warmup: int, lr: float) -> float:
    """Linear warm-up then cosine decay to 0 (the official schedule)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def storm_weights(y: torch.Tensor) -> torch.Tensor:
    """Balanced loss weights by VIL intensity (Shi et al. 2017): more weight on strong cells."""
    vil = y * 255.0
    w = torch.ones_like(y)
    for thr, weight in ((16, 2.0), (74, 5.0), (133, 10.0), (181, 20.0)):
        w = torch.where(vil >= thr, torch.full_like(y, weight), w)
    return w


def train(kind: str, model: Earthformer, windows: Windows, contract: InputContract, valid_fn,
          s: dict[str, Any], log) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Seeded AdamW loop; returns the best-validation state_dict and the history."""
    gen = torch.Generator().manual_seed(s["seed"])
    rng = np.random.default_rng(s["seed"])
    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"])
    ocean = None
    if contract.land_mask is not None:
        ocean = torch.from_numpy(~contract.land_mask).float()[None, None, :, :, None]
    history, best, best_state = [], -np.inf, None
    order = torch.randperm(len(windows), generator=gen).numpy()
    pos, t0, running = 0, time.perf_counter(), []
    for step in range(s["steps"]):
        if pos + s["batch_size"] > len(order):
            order, pos = torch.randperm(len(windows), generator=gen).numpy(), 0
        rows = order[pos:pos + s["batch_size"]]
        pos += s["batch_size"]
        x, y = windows.batch(rows, rng)
        model.train()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, s["steps"], s["warmup"], s["lr"])
        pred = model(x)
        if kind == "enso":
            loss = ((pred - y) ** 2 * ocean).sum() / (ocean.sum() * y.shape[0] * y.shape[1])
        else:
            err = pred - y
            w = storm_weights(y)
            loss = (w * (err**2 + err.abs())).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s["clip"])
        opt.step()
        running.append(float(loss.detach()))
        if (step + 1) % s["valid_every"] == 0 or step + 1 == s["steps"]:
            score = valid_fn(model)
            entry = {"step": step + 1, "loss": float(np.mean(running)), "valid": score,
                     "elapsed_s": round(time.perf_counter() - t0, 1)}
            history.append(entry)
            running = []
            log(f"  step {step + 1:5d}  loss {entry['loss']:.4f}  valid {score:.4f}  "
                f"{entry['elapsed_s']:.0f} s")
            if score > best:
                best, best_state = score, copy.deepcopy(model.state_dict())
    return best_state, history


# --------------------------------------------------------------------------------------------
# One model, end to end
# --------------------------------------------------------------------------------------------


def build(kind: str, quick: bool, out_dir: Path, log=print) -> dict[str, Any]:
    s = dict(SETTINGS[kind])
    if quick:
        s.update(QUICK[kind])
    log(f"[{kind}] {s['name']}: loading data")
    test_kw = s.get("test_data", {})
    if kind == "enso":
        train_da = tutorial.open_dataset("enso", seed=1, **s["train_data"]).sst
        valid_da = tutorial.open_dataset("enso", seed=2, **s["valid_data"]).sst
        test_da = tutorial.open_dataset("enso", **test_kw).sst
        contract = enso_contract(train_da)
        windows = Windows(enso_series(train_da, contract), contract.in_len, contract.out_len)
        valid_fn = lambda m: evaluate_enso(m, contract, valid_da, stride=2)["model"]  # noqa: E731
        test_fn = lambda m: evaluate_enso(m, contract, test_da)  # noqa: E731
    else:
        train_da = tutorial.open_dataset("storms", seed=1, **s["train_data"]).vil
        valid_da = tutorial.open_dataset("storms", seed=2, **s["valid_data"]).vil
        test_da = tutorial.open_dataset("storms", **test_kw).vil
        contract = storms_contract(train_da)
        windows = Windows(train_da.values, contract.in_len, contract.out_len, augment=True,
                          divide_by=contract.scale)
        valid_fn = lambda m: evaluate_storms(m, contract, valid_da)["model"]  # noqa: E731
        test_fn = lambda m: evaluate_storms(m, contract, test_da)  # noqa: E731
    kwargs = s["kwargs"]()
    for key in ("input_shape", "target_shape"):  # the data's grid (smaller in --quick runs)
        kwargs[key] = [kwargs[key][0], *contract.grid_shape, 1]
    torch.manual_seed(s["seed"])
    model = Earthformer.from_official_kwargs(kwargs)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"[{kind}] {n_params:,} parameters; {len(windows)} training windows; "
        f"{s['steps']} steps of {s['batch_size']}")
    t0 = time.perf_counter()
    state, history = train(kind, model, windows, contract, valid_fn, s, log)
    train_s = time.perf_counter() - t0
    model.load_state_dict(state)
    held_out = test_fn(model)
    log(f"[{kind}] held-out {held_out['metric']}: model {held_out['model']:.4f}, "
        f"persistence {held_out['persistence']:.4f} (training {train_s / 60:.1f} min)")
    training = {
        "script": "scripts/train_demo_models.py" + (" --quick" if quick else ""),
        "data": {
            "train": {"tutorial": kind, "seed": 1, **s["train_data"]},
            "valid": {"tutorial": kind, "seed": 2, **s["valid_data"]},
            "held_out": {"tutorial": kind, "seed": 0, **test_kw},
        },
        "windows": len(windows),
        "steps": s["steps"], "batch_size": s["batch_size"], "lr": s["lr"],
        "weight_decay": s["weight_decay"], "warmup": s["warmup"], "schedule": "warm-up + cosine",
        "optimizer": "AdamW", "grad_clip": s["clip"], "seed": s["seed"],
        "loss": "MSE over ocean cells" if kind == "enso" else "balanced MSE + MAE (weights 1-20 by VIL)",
        "selection": f"best validation {held_out['metric']} every {s['valid_every']} steps",
        "parameters": n_params,
        "threads": THREADS, "torch": torch.__version__, "platform": platform.platform(),
        "train_seconds": round(train_s, 1),
        "history": history,
        "held_out": {k: held_out[k] for k in ("model", "persistence", "metric")},
        "held_out_detail": held_out,
    }
    card = ModelCard(
        name=s["name"], kind="earthformer", demo=True, official_kwargs=kwargs, contract=contract,
        licence="Apache-2.0",
        paper="Gao et al. 2022, Earthformer: Exploring Space-Time Transformers for Earth System "
              "Forecasting, NeurIPS",
        description="Demo model trained on synthetic data; not for real forecasts",
        training=training,
    )
    path = save_model_dir(out_dir / s["name"], card, state, report=report(card, held_out, train_s),
                          overwrite=True)
    size = sum(f.stat().st_size for f in path.iterdir())
    log(f"[{kind}] wrote {path} ({size / 1e6:.2f} MB)")
    return {"path": str(path), "held_out": held_out, "train_seconds": train_s, "bytes": size}


def report(card: ModelCard, held_out: dict[str, Any], train_s: float) -> str:
    t = card.training
    lines = [
        f"# {card.name}",
        "",
        f"{card.description}. Trained by `{t['script']}` on the tutorial data "
        f"(train seed 1, validation seed 2, held-out seed 0).",
        "",
        f"* parameters: {t['parameters']:,}; {t['steps']} steps of batch {t['batch_size']}, "
        f"AdamW lr {t['lr']}, warm-up {t['warmup']} + cosine; loss: {t['loss']}",
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
        lines += ["| lead | " + " | ".join(str(i + 1) for i in range(len(held_out["model_by_lead"]))) + " |",
                  "|---" * (len(held_out["model_by_lead"]) + 1) + "|",
                  "| model | " + " | ".join(f"{v:.2f}" for v in held_out["model_by_lead"]) + " |",
                  "| persistence | " + " | ".join(f"{v:.2f}" for v in held_out["persistence_by_lead"]) + " |"]
    else:
        lines += ["| threshold | " + " | ".join(str(v) for v in held_out["thresholds"]) + " |",
                  "|---" * (len(held_out["thresholds"]) + 1) + "|",
                  "| model | " + " | ".join(f"{v:.3f}" for v in held_out["model_by_threshold"]) + " |",
                  "| persistence | "
                  + " | ".join(f"{v:.3f}" for v in held_out["persistence_by_threshold"]) + " |"]
    lines += ["", "## Validation during training", "", "| step | loss | validation |", "|---|---|---|"]
    lines += [f"| {h['step']} | {h['loss']:.4f} | {h['valid']:.4f} |" for h in t["history"]]
    return "\n".join(lines) + "\n"


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
