"""Tiny seeded data and model kwargs for the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xearthformer import fit

TINY = dict(
    input_shape=[1, 1, 1, 1], target_shape=[1, 1, 1, 1], base_units=16, num_heads=2,
    enc_depth=[1], dec_depth=[1], num_global_vectors=0, enc_attn_patterns="axial",
    dec_self_attn_patterns="axial", dec_cross_attn_patterns="cross_1x1", z_init_method="zeros",
    padding_type="zeros", pos_embed_type="t+h+w", initial_downsample_scale=[1, 1, 1],
    initial_downsample_conv_layers=1, final_upsample_conv_layers=1, ffn_activation="gelu",
)
#: fit options that keep the tiny runs quick and quiet
FAST = dict(progress=False, batch_size=4)


def interrupted_radar_run(data: xr.DataArray, out: Path) -> None:
    """A 4-step ``fit`` on radar ``data`` killed (KeyboardInterrupt) after its first checkpoint."""

    def boom(step, logs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(dict(TINY), data, in_len=3, out_len=2, steps=4, checkpoint_every=1, out_dir=out,
            callbacks=[boom], **FAST)



def monthly_sst(n: int = 60, seed: int = 0, start: str = "2000-01-01", land: bool = True,
                absolute: bool = False) -> xr.DataArray:
    """Monthly SST (time, lat, lon) over the Nino3.4 box, with one land cell."""
    rng = np.random.default_rng(seed)
    t = pd.date_range(start, periods=n, freq="MS")
    lat = np.array([-7.5, -2.5, 2.5, 7.5])
    lon = 180.0 + 10.0 * np.arange(8)
    x = np.cumsum(rng.normal(scale=0.3, size=(n, 4, 8)), axis=0) * 0.3
    x += rng.normal(scale=0.1, size=x.shape)
    if absolute:
        x += 300.0 + 2.0 * np.sin(2 * np.pi * (t.month.values - 1) / 12)[:, None, None]
    if land:
        x[:, 0, 0] = np.nan
    da = xr.DataArray(x.astype("float32"), dims=("time", "lat", "lon"),
                      coords={"time": t, "lat": lat, "lon": lon}, name="sst",
                      attrs={"units": "K", "long_name": "sea surface temperature anomaly"})
    da["lat"].attrs.update(units="degrees_north", standard_name="latitude")
    da["lon"].attrs.update(units="degrees_east", standard_name="longitude")
    return da


def radar_events(n_events: int = 4, n_time: int = 10, seed: int = 0, prefix: str = "E"
                 ) -> xr.DataArray:
    """uint8 VIL-like data (event, time, y, x) at 5-minute steps."""
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 255, size=(n_events, n_time, 8, 8)).astype(np.uint8)
    return xr.DataArray(
        v, dims=("event", "time", "y", "x"), name="vil", attrs={"units": "1"},
        coords={"event": [f"{prefix}{i}" for i in range(n_events)],
                "time": pd.to_timedelta(5 * np.arange(n_time), unit="min"),
                "y": np.arange(8.0), "x": np.arange(8.0)})
