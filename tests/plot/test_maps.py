"""plot_map and plot_forecast: structure, projections, conventions, bad input."""

from __future__ import annotations

import cartopy.crs as ccrs
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from cartopy.mpl.geoaxes import GeoAxes

import xearthformer.plot as xfp
from xearthformer.plot._figure import lon_centre

from .conftest import make_enso
from .helpers import coastline_artists, colorbar_axes, map_axes, quadmeshes, save_png


def test_plot_forecast_structure(enso_fc, tmp_path):
    fig, axes = xfp.plot_forecast(enso_fc, leads=[1, 2, 4])
    save_png(fig, tmp_path)
    assert len(axes) == 3
    assert len(map_axes(fig)) == 3
    assert len(colorbar_axes(fig)) == 1
    assert colorbar_axes(fig)[0].get_xlabel() == "SST anomaly (K)"
    assert [ax.get_title() for ax in axes] == [
        "lead 1 month\nvalid 2021-02",
        "lead 2 months\nvalid 2021-03",
        "lead 4 months\nvalid 2021-05",
    ]
    assert fig.get_suptitle() == "SST anomaly (K), init 2021-01"
    for ax in axes:
        assert isinstance(ax, GeoAxes)
        assert len(quadmeshes(ax)) == 1
        assert coastline_artists(ax)
    # shared colour scale, centred at zero for anomalies
    norms = {(m.norm.vmin, m.norm.vmax) for ax in axes for m in quadmeshes(ax)}
    assert len(norms) == 1
    (vmin, vmax), = norms
    assert vmin == -vmax


def test_plot_forecast_default_projection_centred_on_data(enso_fc):
    fig, axes = xfp.plot_forecast(enso_fc, leads=[1])
    assert isinstance(axes[0].projection, ccrs.PlateCarree)
    assert axes[0].projection.proj4_params["pm"] == -160.0  # an integer-valued float, exact


def test_plot_forecast_robinson_and_init_selection(enso_fc, tmp_path):
    fig, axes = xfp.plot_forecast(enso_fc, leads=[3], init="2021-02-01",
                                  projection=ccrs.Robinson(central_longitude=200))
    save_png(fig, tmp_path)
    assert isinstance(axes[0].projection, ccrs.Robinson)
    assert axes[0].get_title() == "lead 3 months\nvalid 2021-05"
    assert "init 2021-02" in fig.get_suptitle()


def test_plot_forecast_ensemble_mean_and_member(enso_ens):
    fig, axes = xfp.plot_forecast(enso_ens, leads=[1])
    assert fig.get_suptitle().endswith("ensemble mean")
    fig, axes = xfp.plot_forecast(enso_ens, leads=[1], member=2)
    assert fig.get_suptitle().endswith("member 2")


def test_valid_time_computed_when_absent():
    fc = make_enso(n_member=None, valid_time=False)
    fig, axes = xfp.plot_forecast(fc, leads=[2])
    assert axes[0].get_title() == "lead 2 months\nvalid 2021-03"


def test_plot_forecast_wraps_rows_and_uses_given_figure(enso_fc):
    fig = plt.figure(layout="constrained")
    out, axes = xfp.plot_forecast(enso_fc, ncols=2, fig=fig)
    assert out is fig
    assert len(axes) == 4 and len(map_axes(fig)) == 4


def test_plot_forecast_dask_input(enso_fc):
    fig, axes = xfp.plot_forecast(enso_fc.chunk({"init": 1}), leads=[1, 2])
    assert len(axes) == 2


def test_lead_not_in_forecast_lists_available(enso_fc):
    with pytest.raises(xfp.LeadNotFoundError, match=r"available leads \(months\): \[1, 2, 3, 4\]"):
        xfp.plot_forecast(enso_fc, leads=[1, 7])
    assert issubclass(xfp.LeadNotFoundError, ValueError)


def test_init_not_in_forecast(enso_fc):
    with pytest.raises(xfp.InitNotFoundError, match="available inits"):
        xfp.plot_forecast(enso_fc, init="1999-01-01")
    with pytest.raises(xfp.InitNotFoundError, match="matches 2 inits"):
        xfp.plot_forecast(enso_fc, init="2021")
    fig, axes = xfp.plot_forecast(enso_fc, init="2021-02", leads=[1])
    assert "init 2021-02" in fig.get_suptitle()


def test_field_without_lat_lon_names_the_dims():
    da = xr.DataArray(np.zeros((2, 3, 4)), dims=("time", "row_i", "col_j"), name="t2m")
    with pytest.raises(xfp.MissingSpatialDimsError, match=r"\('time', 'row_i', 'col_j'\)"):
        xfp.plot_map(da)
    assert issubclass(xfp.MissingSpatialDimsError, ValueError)


def test_kc_sigma_left_over_is_a_clear_error(radar_sc):
    with pytest.raises(xfp.ExtraDimsError, match="kc_sigma.*plot_scenarios"):
        xfp.plot_forecast(radar_sc)


def test_lat_lon_found_by_cf_attrs(enso_fc, tmp_path):
    da = enso_fc.isel(init=0, lead=0).rename(lat="yy", lon="xx")
    mesh = xfp.plot_map(da)
    assert isinstance(mesh.axes, GeoAxes)
    save_png(mesh.figure, tmp_path)


def test_plot_map_radar_grid_is_plain_axes_with_vil(radar_sc, tmp_path):
    frame = radar_sc.isel(init=0, kc_sigma=1, lead=0)
    mesh = xfp.plot_map(frame, title="VIL")
    save_png(mesh.figure, tmp_path)
    ax = mesh.axes
    assert not isinstance(ax, GeoAxes)
    assert not coastline_artists(ax)
    assert mesh.cmap.name == "sevir_vil"
    assert list(mesh.norm.boundaries) == list(xfp.VIL_LEVELS)
    assert ax.yaxis_inverted()  # image orientation: row 0 on top
    assert len(colorbar_axes(mesh.figure)) == 1


def test_plot_map_2d_lat_lon_on_y_x_grid(tmp_path):
    y, x = np.arange(6), np.arange(8)
    lat = 30 + 0.5 * y[:, None] + 0 * x[None, :]
    lon = -100 + 0.5 * x[None, :] + 0.1 * y[:, None]
    da = xr.DataArray(np.random.default_rng(0).uniform(size=(6, 8)), dims=("y", "x"),
                      coords={"lat": (("y", "x"), lat), "lon": (("y", "x"), lon)}, name="p")
    mesh = xfp.plot_map(da)
    assert isinstance(mesh.axes, GeoAxes)
    assert coastline_artists(mesh.axes)
    save_png(mesh.figure, tmp_path)


def test_plot_map_on_plain_axes_with_lat_lon(enso_fc, tmp_path):
    fig, ax = plt.subplots()
    mesh = xfp.plot_map(enso_fc.isel(init=0, lead=0), ax=ax, colorbar=False)
    assert mesh.axes is ax
    assert ax.get_xlabel() == "longitude"
    segs = coastline_artists(ax)[0].get_segments()
    assert np.concatenate(segs)[:, 0].max() > 180  # wrapped to the data's 0..360
    save_png(fig, tmp_path)


@pytest.mark.parametrize(
    ("lon", "centre"),
    [(np.arange(120, 290, 10.0), -160.0), (np.arange(-180, 180, 2.0), 0.0),
     (np.arange(0, 360, 2.0), -180.0), (np.arange(-30, 31, 5.0), 0.0)],
)
def test_lon_centre(lon, centre):
    assert lon_centre(lon) == centre  # integer-valued degrees: exact in float64
