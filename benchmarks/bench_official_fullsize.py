"""The two multi-input official releases at full size, end to end through the public API.

No official weights are available offline, so each model is built at its released size with
seeded random weights, saved in the released layout (plain state_dicts, the official file
names, PreDiff's in the official ``pretrained/{vae,earthformerunet,alignment}/`` folders) and
loaded back through the zoo, strictly:

* ``earthformer-earthnet2021``: ``ds.earthformer.forecast(lead=20)`` on one 128 x 128 cube
  with its seven drivers (meso variables daily on 80 x 80, as in EarthNet2021);
* ``prediff-sevirlr``: ``ensemble(n=1, steps=2, kc_sigma=[-1, 1])`` on 7 VIL frames of
  128 x 128 (two DDIM steps: the cost of the encode, decode and guidance around the steps).

Prints, per case, the seconds of the call (first call: model loading included, and a second
call with the model cached), the output's dims and whether it is finite. Random weights make
the forecasts meaningless: this checks that the full-size path runs and what it costs.

``--case earthnet-official`` instead compares our EarthNet model with the official
``CuboidTransformerAuxModel`` (``make bench-env``) at full size: the same seeded weights, one
cube of random frames and drivers, each forward timed once (alternating, ours first), and the
largest difference of the outputs relative to their absmax.

Run: ``python benchmarks/bench_official_fullsize.py [--case earthnet|sevirlr|earthnet-official]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

import xearthformer
from xearthformer.models import (
    AutoencoderKL,
    CuboidTransformerUNet,
    EarthformerAux,
    NoisyCuboidTransformerEncoder,
)
from xearthformer.zoo import official_kwargs, registry


def _timed(call):
    start = time.perf_counter()
    out = call()
    if hasattr(out, "compute"):
        out = out.compute()
    return out, time.perf_counter() - start


def earthnet(folder: Path) -> None:
    torch.manual_seed(0)
    path = folder / "earthformer_earthnet2021.pt"
    torch.save(EarthformerAux.from_official_kwargs(official_kwargs("earthformer-earthnet2021")).state_dict(),
               path)
    rng = np.random.default_rng(0)
    time_ = pd.date_range("2018-01-01", periods=10, freq="5D")
    day = pd.date_range("2018-01-01", periods=150, freq="D")
    ds = xr.Dataset(coords={"time": time_, "y": np.arange(128) * 20.0, "x": np.arange(128) * 20.0,
                            "time_meso": day, "y_meso": np.arange(80) * 1280.0,
                            "x_meso": np.arange(80) * 1280.0})
    for band in ("blue", "green", "red", "nir"):
        ds[band] = (("time", "y", "x"), rng.uniform(0, 0.5, (10, 128, 128)).astype(np.float32))
    ds["elevation"] = (("y", "x"), rng.uniform(0, 1, (128, 128)))
    ds["meso_elevation"] = (("y_meso", "x_meso"), rng.uniform(0, 1, (80, 80)))
    for name in registry.EARTHNET_AUX_ORDER[1:-1]:
        ds[name] = (("time_meso", "y_meso", "x_meso"), rng.uniform(0, 1, (150, 80, 80)))
    for label in ("first call", "cached model"):
        fc, seconds = _timed(lambda: ds.earthformer.forecast(lead=20, model="earthformer-earthnet2021",
                                                              weights=path, device="cpu"))
        print(f"earthformer-earthnet2021 forecast(lead=20), 1 cube, {label}: {seconds:6.1f} s | "
              f"dims {dict(fc.sizes)} | finite {bool(np.isfinite(fc.to_array()).all())}")


def sevirlr(folder: Path) -> None:
    kwargs = official_kwargs("prediff-sevirlr")
    root = folder / "pretrained"
    files = dict(registry.get_entry("prediff-sevirlr").files)
    for part, cls, sub in (("vae", AutoencoderKL, "vae"), ("denoiser", CuboidTransformerUNet, "earthformerunet"),
                           ("alignment", NoisyCuboidTransformerEncoder, "alignment")):
        torch.manual_seed(0)
        module = cls.from_official_kwargs(kwargs[part])
        (root / sub).mkdir(parents=True)
        torch.save(module.state_dict(), root / sub / files[part])
        del module
    rng = np.random.default_rng(0)
    vil = xr.DataArray(rng.uniform(0, 60, (7, 128, 128)).astype(np.float32), dims=("time", "y", "x"),
                       coords={"time": pd.date_range("2019-06-01 12:00", periods=7, freq="10min"),
                               "y": np.arange(128.0), "x": np.arange(128.0)}, name="vil",
                       attrs={"units": "1"})
    for label in ("first call", "cached model"):
        ens, seconds = _timed(lambda: xearthformer.ensemble(
            vil, model="prediff-sevirlr", weights=root, n=1, steps=2, kc_sigma=[-1.0, 1.0],
            device="cpu", progress=False))
        print(f"prediff-sevirlr ensemble(n=1, steps=2, kc_sigma=[-1, 1]), {label}: {seconds:6.1f} s | "
              f"dims {dict(ens.sizes)} | finite {bool(np.isfinite(ens.values).all())}")


def earthnet_official(reps: int = 1) -> None:
    import importlib

    from _official import official_cuboid_module

    official_cuboid_module()  # registers the bare package
    aux = importlib.import_module("earthformer.cuboid_transformer.cuboid_transformer_unet_dec")
    kwargs = official_kwargs("earthformer-earthnet2021")
    torch.manual_seed(0)
    official = aux.CuboidTransformerAuxModel(**kwargs).eval()
    with torch.no_grad():  # the official init zeroes biases and norms: perturb everything
        gen = torch.Generator().manual_seed(1)
        for p in official.parameters():
            p += 0.05 * torch.randn(p.shape, generator=gen)
    ours = EarthformerAux.from_official_kwargs(kwargs).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand((1, 10, 128, 128, 4), generator=gen)
    aux_enc = torch.randn((1, 10, 80, 80, 7), generator=gen)
    aux_dec = torch.randn((1, 20, 80, 80, 7), generator=gen)
    times = {"ours": [], "official": []}
    outs = {}
    with torch.no_grad():
        for _ in range(reps):
            for name, model in (("ours", ours), ("official", official)):
                start = time.perf_counter()
                outs[name] = model(x, aux_enc, aux_dec)
                times[name].append(time.perf_counter() - start)
    diff = float((outs["ours"] - outs["official"]).abs().max() / outs["official"].abs().max())
    print(f"earthnet full-size forward, batch 1: ours {min(times['ours']):6.1f} s | official "
          f"{min(times['official']):6.1f} s | official/ours {min(times['official']) / min(times['ours']):.2f}x | "
          f"max |ours - official| / absmax {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("earthnet", "sevirlr", "both", "earthnet-official"),
                        default="both")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.case == "earthnet-official":
        earthnet_official()
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.case in ("earthnet", "both"):
            earthnet(Path(tmp))
        if args.case in ("sevirlr", "both"):
            sevirlr(Path(tmp))


if __name__ == "__main__":
    main()
