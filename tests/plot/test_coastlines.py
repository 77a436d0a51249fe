"""Coastlines render with no network: shipped outline, or cartopy's Natural Earth on disk."""

from __future__ import annotations

import socket
from importlib import resources

import cartopy
import cartopy.crs as ccrs
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection

import xearthformer.plot as xfp
from xearthformer.plot import _coastlines

from .helpers import coastline_artists, save_png


def test_shipped_file_is_small_and_records_its_source():
    ref = resources.files("xearthformer.plot").joinpath("data", "coastline_110m.npz")
    size = ref.stat().st_size if hasattr(ref, "stat") else len(ref.read_bytes())
    assert 5_000 < size < 60_000
    lines, meta = xfp.shipped_coastline()
    assert "Natural Earth" in meta["source"] and "world-atlas@2.0.2" in meta["source"]
    assert "4.1.0" in meta["version"] and "public domain" in meta["licence"]
    assert len(lines) > 100
    allpts = np.concatenate(lines)
    assert allpts[:, 0].min() >= -180 and allpts[:, 0].max() <= 180
    assert allpts[:, 1].min() >= -90 and allpts[:, 1].max() <= 84
    # no line jumps across the antimeridian (it would be drawn across the whole map)
    assert max(np.abs(np.diff(line[:, 0])).max() for line in lines) < 180


def test_sockets_are_disabled_in_these_tests():
    with pytest.raises(RuntimeError, match="network"):
        socket.create_connection(("example.com", 80))


@pytest.mark.parametrize(
    "projection", [ccrs.PlateCarree(), ccrs.PlateCarree(central_longitude=200),
                   ccrs.Robinson(central_longitude=180)], ids=["pc", "pc200", "robinson"]
)
def test_offline_map_saves_with_coastline_lines(enso_fc, tmp_path, shipped_coastlines_only,
                                                 projection):
    mesh = xfp.plot_map(enso_fc.isel(init=0, lead=0), projection=projection)
    save_png(mesh.figure, tmp_path)
    artists = coastline_artists(mesh.axes)
    assert len(artists) == 1
    assert isinstance(artists[0], LineCollection)
    assert len(artists[0].get_segments()) > 100


def test_natural_earth_path_none_when_absent(monkeypatch, tmp_path):
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", tmp_path / "pre")
    monkeypatch.setitem(cartopy.config, "data_dir", tmp_path / "data")
    assert xfp.natural_earth_coastline_path() is None
    fig, ax = plt.subplots(subplot_kw={"projection": ccrs.PlateCarree()})
    with pytest.raises(FileNotFoundError, match="not on disk"):
        xfp.add_coastlines(ax, source="natural_earth")
    assert isinstance(xfp.add_coastlines(ax), LineCollection)
    assert not list((tmp_path).glob("**/*.zip"))  # nothing was fetched


def _write_tiny_coastline(path):
    import shapefile

    path.parent.mkdir(parents=True)
    with shapefile.Writer(str(path.with_suffix("")), shapeType=shapefile.POLYLINE) as w:
        w.field("name", "C")
        w.line([[[-10.0, 40.0], [0.0, 50.0], [10.0, 45.0]]])
        w.record("test")


def test_natural_earth_used_when_on_disk(monkeypatch, tmp_path):
    target = tmp_path / "shapefiles" / "natural_earth" / "physical" / "ne_110m_coastline.shp"
    _write_tiny_coastline(target)
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", tmp_path)
    assert xfp.natural_earth_coastline_path() == target
    fig, ax = plt.subplots(subplot_kw={"projection": ccrs.Robinson()})
    artist = xfp.add_coastlines(ax)
    assert artist.get_gid() == _coastlines.COASTLINE_GID
    assert not isinstance(artist, LineCollection)  # cartopy's FeatureArtist
    ax.set_global()
    save_png(fig, tmp_path)
    # the shipped outline can still be forced
    assert isinstance(xfp.add_coastlines(ax, source="shipped"), LineCollection)


def test_plain_axes_coastlines_follow_0_360(tmp_path):
    fig, ax = plt.subplots()
    artist = xfp.add_coastlines(ax, lon_min=0.0)
    segs = artist.get_segments()
    lon = np.concatenate([s[:, 0] for s in segs])
    assert lon.min() >= 0 and lon.max() < 360
    assert max(np.abs(np.diff(s[:, 0])).max() for s in segs if len(s) > 1) < 180
    save_png(fig, tmp_path)
