"""Genuinely real files, end to end (issue 20 item 4). Sources and licences: tests/data/real/README.md.

* COADS monthly SST climatology (NOAA, from Debian's ``ferret-datasets``; vendored, SST only):
  upper-case ``TIME`` in ``hour since 0000-01-01`` (year 0, read with ``decode_times=False``),
  axes ``COADSY``/``COADSX`` (longitude 21..379), units ``Deg C``, sea-ice and sparse-observation
  gaps that change from month to month: the file of the issue's first three reports.
* HadISST-derived NDJFM SST anomalies and NCEP/NCAR DJF 500 hPa height (yearly), shipped in the
  ``eofs`` PyPI wheel (a test dependency): CF bounds variables, descending latitude, a size-1
  ``pressure`` dim, no units on the anomalies.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
import xarray as xr
from eofs.examples import example_data_path

import xearthformer
from xearthformer import forecasting as F
from xearthformer.evaluate import evaluate
from xearthformer.metrics import GridError, MetricsInputError, monthly_climatology, nino34

matplotlib.use("Agg")
torch.set_num_threads(2)

COADS = Path(__file__).parent / "data" / "real" / "coads_climatology_sst.nc"


@pytest.fixture(scope="module")
def coads() -> xr.Dataset:
    return xr.open_dataset(COADS, decode_times=False)  # year 0: xarray cannot decode it


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig if isinstance(fig, plt.Figure) else plt.gcf())


def test_coads_nino34_finds_TIME(coads) -> None:
    from xearthformer import _reader

    sst = coads["SST"]
    index = nino34(sst)  # observations: TIME is their time dim (issue: taken for a forecast)
    assert index.dims == ("TIME",) and index.sizes["TIME"] == 12
    # a climatology's anomaly against its own climatology is zero (float32 box means)
    np.testing.assert_allclose(index.values, 0.0, atol=1e-5)
    decoded, notes = _reader.decode(sst)
    assert [t.month for t in decoded["TIME"].values] == list(range(1, 13))
    assert "year 0" in notes[0]
    box = decoded.sel(COADSY=slice(-5, 5), COADSX=slice(190, 240))  # independent box mean
    w = np.cos(np.deg2rad(box["COADSY"]))
    ref = box.weighted(w).mean(("COADSY", "COADSX"))
    got = xearthformer.metrics.box_mean(decoded)
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-6)  # float32 sums: ~1e-7 each


def test_coads_forecast_ensemble_evaluate_plot(coads) -> None:
    from xearthformer.plot import plot_map

    sst = coads["SST"]
    clim = monthly_climatology(xearthformer._reader.decode(sst)[0])
    # "Deg C" read, gaps that change from month to month treated per context, back on the
    # file's own 2-degree grid (the "824 missing value(s)" case)
    fc = F.forecast(sst, lead=3, model="earthformer-demo-enso", regrid="linear",
                    regrid_back=True, climatology=clim, device="cpu")
    assert fc.dims == ("init", "lead", "COADSY", "COADSX") and fc.attrs["units"] == "Deg C"
    np.testing.assert_array_equal(fc["COADSX"].values, sst["COADSX"].values)
    assert fc.attrs["missing_cells"] > 0 and "Deg C to K" in fc.attrs["preprocessing"]
    land = sst.isnull().all("TIME")
    assert bool(fc.where(land).isnull().all())
    tropics = fc.sel(COADSY=slice(-20, 20), COADSX=slice(150, 270))
    assert float(tropics.min()) > 15.0 and float(tropics.max()) < 35.0  # SST in degC
    ens = xearthformer.ensemble(coads, n=2, steps=2, lead=2, regrid="linear", climatology=clim,
                                progress=False, device="cpu")  # Dataset: SST by name, any case
    assert ens.sizes["member"] == 2 and bool(np.isfinite(ens.values).any())
    scores = evaluate("persistence", coads, leads=2, metrics=["rmse", "mae"])
    assert scores["rmse"].dims == ("lead",) and bool((scores["rmse"] > 0).all())
    _close(plot_map(fc.isel(init=0, lead=0)))


def test_hadisst_ndjfm_anomalies_from_eofs() -> None:
    from xearthformer.plot import plot_map

    ds = xr.open_dataset(example_data_path("sst_ndjfm_anom.nc"))
    sst = ds["sst"]
    index = nino34(sst, climatology=0)  # already anomalies
    assert index.sizes["time"] == 50 and bool(np.isfinite(index.values).all())
    box = sst.sel(latitude=slice(-5, 5), longitude=slice(190, 240))
    ref = box.weighted(np.cos(np.deg2rad(box["latitude"]))).mean(("latitude", "longitude"))
    np.testing.assert_allclose(index.values, ref.values, rtol=1e-12, atol=1e-12)
    assert float(index.std()) > 0.3  # real ENSO variability, K
    _close(plot_map(sst.isel(time=0)))
    # yearly means: refused with the step named (the model is monthly)
    with pytest.raises(F.TimeStepError, match="step of 12 months.*Resample"):
        F.forecast(ds, lead=2, model="earthformer-demo-enso", regrid="linear", device="cpu")
    with pytest.raises(MetricsInputError, match=r"time step is 36\d(\.\d+)? days.*monthly"):
        evaluate("persistence", ds, leads=1)


def test_ncep_height_from_eofs_is_refused_clearly() -> None:
    from xearthformer.plot import plot_map

    ds = xr.open_dataset(example_data_path("hgt_djf.nc"))
    with pytest.raises(F.MissingVariableError, match=r"lacks the variable\(s\) \['sst'\].*\['z'\]"):
        F.forecast(ds, lead=2, model="earthformer-demo-enso", device="cpu")
    with pytest.raises(GridError, match="outside the grid"):
        nino34(ds["z"])
    _close(plot_map(ds["z"].isel(time=0, pressure=0)))  # latitude 90..20, longitude -80..40
