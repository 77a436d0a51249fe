"""Write one example image per public plotting function to ``docs/images/``.

Synthetic, seeded data in the layout of DESIGN.md section 3 (no model, no
download, no network): an ENSO-like SST anomaly forecast on a Pacific lat/lon
grid, and a radar VIL nowcast on a y/x grid. Run from the repository root::

    MPLBACKEND=Agg python scripts/make_plot_gallery.py [--out docs/images]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import cartopy.crs as ccrs  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

import xearthformer.plot as xfp  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def _month_valid_time(init: pd.DatetimeIndex, leads: np.ndarray) -> np.ndarray:
    return np.array([[t + pd.DateOffset(months=int(m)) for m in leads] for t in init],
                    dtype="datetime64[ns]")


def enso_ensemble(n_members: int = 12, n_leads: int = 12) -> xr.DataArray:
    """SST anomaly ensemble (init, member, lead, lat, lon): a warm tongue that grows with lead."""
    rng = np.random.default_rng(0)
    init = pd.to_datetime(["2023-05-01"])
    lead = np.arange(1, n_leads + 1)
    lat = np.arange(-29.0, 30.0, 2.0)
    lon = np.arange(101.0, 300.0, 2.0)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    tongue = np.exp(-(((lo - 240.0) / 45.0) ** 2) - (la / 9.0) ** 2)
    amp = 0.8 + 1.6 * (1 - np.exp(-lead / 5.0))
    data = np.empty((1, n_members, n_leads, lat.size, lon.size))
    for m in range(n_members):
        member_amp = amp * (1.0 + 0.25 * rng.normal())
        noise = rng.normal(size=(n_leads, lat.size, lon.size))
        for _ in range(3):  # smooth the noise a little
            noise = (noise + np.roll(noise, 1, -1) + np.roll(noise, 1, -2)) / 3
        growth = np.sqrt(lead)[:, None, None] / 2
        data[0, m] = member_amp[:, None, None] * tongue + 0.35 * noise * growth
    # land (west of ~285E in the Americas, the Maritime continent) as NaN, as a real SST field has
    land = ((lo > 282) & (la > 8)) | ((lo > 288) & (la < 0)) | ((lo < 120) & (np.abs(la) < 8))
    data[..., land] = np.nan
    da = xr.DataArray(
        data,
        dims=("init", "member", "lead", "lat", "lon"),
        coords={
            "init": ("init", init, {"standard_name": "forecast_reference_time"}),
            "member": ("member", np.arange(n_members), {"standard_name": "realization"}),
            "lead": ("lead", lead, {"units": "months", "standard_name": "forecast_period"}),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        name="sst_anomaly",
        attrs={"long_name": "SST anomaly", "units": "K"},
    )
    return da.assign_coords(valid_time=(("init", "lead"), _month_valid_time(init, lead)))


def vil_frames(n: int, rng: np.random.Generator, size: int = 64, intensity: float = 1.0,
               shift: float = 0.0) -> np.ndarray:
    """Moving storm cells on a y/x grid, VIL on the 0-255 scale."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    centres = rng.uniform(12, size - 12, size=(4, 2))
    widths = rng.uniform(4, 9, size=4)
    peaks = rng.uniform(90, 230, size=4)
    frames = np.zeros((n, size, size))
    for t in range(n):
        for (cy, cx), w, p in zip(centres, widths, peaks, strict=True):
            cx_t, cy_t = cx + 1.2 * (t + shift), cy + 0.5 * (t + shift)
            frames[t] += p * intensity * np.exp(-((yy - cy_t) ** 2 + (xx - cx_t) ** 2) / (2 * w**2))
    return np.clip(frames, 0, 255)


def vil_scenarios() -> tuple[xr.DataArray, xr.DataArray]:
    """(observations with time, forecast with kc_sigma) for the PreDiff figure."""
    t0 = np.datetime64("2019-07-14T18:00", "ns")
    step = np.timedelta64(10, "m")
    n_ctx, n_lead = 7, 6
    times = t0 + step * np.arange(-n_ctx + 1, n_lead + 1)
    frames = vil_frames(n_ctx + n_lead, np.random.default_rng(1))
    obs = xr.DataArray(frames, dims=("time", "y", "x"),
                       coords={"time": times}, name="vil",
                       attrs={"long_name": "VIL", "units": "digital level 0-255"})
    kc = np.array([-1.0, 0.0, 1.0, 2.0])
    lead = np.arange(1, n_lead + 1) * 10
    fc = np.stack([vil_frames(n_lead, np.random.default_rng(1), intensity=0.75 + 0.2 * k,
                              shift=n_ctx) for k in kc])
    sc = xr.DataArray(
        fc[None], dims=("init", "kc_sigma", "lead", "y", "x"),
        coords={"init": [t0], "kc_sigma": kc, "lead": ("lead", lead, {"units": "minutes"}),
                "valid_time": (("init", "lead"), (t0 + lead.astype("timedelta64[m]"))[None])},
        name="vil", attrs=dict(obs.attrs),
    )
    return obs, sc


def nino34(ens: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Index forecast (box mean 5S-5N, 190-240E) and a made-up observed series."""
    box = ens.sel(lat=slice(-5, 5), lon=slice(190, 240)).mean(("lat", "lon"))
    box.attrs = {"long_name": "Nino3.4 index", "units": "K"}
    box.name = "nino34"
    rng = np.random.default_rng(2)
    time = pd.date_range("2021-01-01", "2023-12-01", freq="MS")
    knots = pd.to_datetime(["2021-01-01", "2022-01-01", "2022-12-01", "2023-05-01", "2023-12-01"])
    values = [-0.9, -1.0, -0.7, 0.5, 1.7]
    x = (time - time[0]).days.values
    xk = (knots - time[0]).days.values
    obs = xr.DataArray(np.interp(x, xk, values) + 0.1 * rng.normal(size=time.size),
                       dims="time", coords={"time": time}, name="nino34",
                       attrs={"long_name": "Nino3.4 index (observed)", "units": "K"})
    return box, obs


def csi_scores() -> xr.DataArray:
    lead = np.arange(1, 13) * 5
    thresholds = np.array([16, 74, 133, 160, 181, 219])
    models = ["earthformer", "persistence"]
    decay = {"earthformer": 45.0, "persistence": 22.0}
    data = np.array([[(0.75 - thr / 400.0) * np.exp(-lead / (decay[m] * (1.2 - thr / 300)))
                      for thr in thresholds] for m in models])
    return xr.DataArray(data, dims=("model", "threshold", "lead"),
                        coords={"model": models, "threshold": thresholds,
                                "lead": ("lead", lead, {"units": "minutes"})},
                        name="csi", attrs={"long_name": "CSI"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    dpi = 90

    ens = enso_ensemble()
    fc = ens.mean("member", keep_attrs=True)
    fig, _ = xfp.plot_forecast(fc, leads=[1, 4, 8, 12], ncols=2)
    fig.savefig(out / "plot_forecast.png", dpi=dpi)
    fig, _ = xfp.plot_forecast(fc, leads=[3, 9],
                               projection=ccrs.Robinson(central_longitude=200))
    fig.savefig(out / "plot_forecast_robinson.png", dpi=dpi)

    mesh = xfp.plot_map(fc.isel(init=0).sel(lead=6),
                        projection=ccrs.Robinson(central_longitude=200),
                        title="SST anomaly, lead 6 months")
    mesh.axes.set_global()
    mesh.figure.savefig(out / "plot_map.png", dpi=dpi)

    fig, _ = xfp.plot_ensemble(ens, lead=6, n_members=4, threshold=1.0)
    fig.savefig(out / "plot_ensemble.png", dpi=dpi)

    obs, sc = vil_scenarios()
    fig, _ = xfp.plot_scenarios(sc, context=obs, truth=obs)
    fig.savefig(out / "plot_scenarios.png", dpi=dpi)

    index_fc, index_obs = nino34(ens)
    index_fc = index_fc.assign_coords(init=pd.to_datetime(["2023-05-01"]))
    fig, _ = xfp.plot_index_plume(index_fc, obs=index_obs)
    fig.savefig(out / "plot_index_plume.png", dpi=dpi)

    fig, _ = xfp.plot_skill(csi_scores(), title="CSI by VIL threshold")
    fig.savefig(out / "plot_skill.png", dpi=dpi)

    fig, ax = plt.subplots(figsize=(7.5, 0.9), layout="constrained")
    cmap, norm = xfp.vil_cmap()
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=ax,
                 orientation="horizontal", label="SEVIR VIL (digital level 0-255)", extend="max",
                 ticks=norm.boundaries)
    fig.savefig(out / "vil_cmap.png", dpi=dpi)

    xfp.animate(obs, out / "animate.gif", fps=3, dpi=60)
    plt.close("all")
    for p in sorted(out.iterdir()):
        print(f"{p.stat().st_size / 1024:7.1f} KB  {p}")


if __name__ == "__main__":
    main()
