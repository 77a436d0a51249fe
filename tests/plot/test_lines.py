"""plot_index_plume and plot_skill."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import PolyCollection

import xearthformer.plot as xfp
from xearthformer._precision import sum_error

from .helpers import save_png


def test_plume_structure(nino_fc, nino_obs, tmp_path):
    fig, ax = xfp.plot_index_plume(nino_fc, obs=nino_obs)
    save_png(fig, tmp_path)
    labels = [line.get_label() for line in ax.lines]
    assert labels.count("members") == 1
    assert sum(line.get_linewidth() < 1 for line in ax.lines) >= 8  # thin member lines
    assert "ensemble mean (8)" in labels and "observed" in labels
    mean = next(line for line in ax.lines if line.get_label().startswith("ensemble mean"))
    # the same float64 mean over 8 members here and in the plot; another order could move it
    # by sum_error
    members = nino_fc.isel(init=0).values
    np.testing.assert_allclose(mean.get_ydata(), nino_fc.isel(init=0).mean("member").values,
                               rtol=0, atol=float(sum_error(members, axis=0, mean=True).max()))
    assert any(isinstance(c, PolyCollection) for c in ax.collections)  # 5-95 band
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "5%-95% range" in legend
    assert "El Niño (> 0.5)" in legend and "La Niña (< -0.5)" in legend
    assert ax.get_title() == "Nino3.4 index forecast, init 2023-05"
    assert ax.get_ylabel() == "Nino3.4 index (K)"
    # observations: 12 months before init up to the last valid time (2023-09 in the fixture)
    obs_line = next(line for line in ax.lines if line.get_label() == "observed")
    assert len(obs_line.get_xdata()) == 12 + 5


def test_plume_deterministic_without_thresholds(nino_fc):
    fc = nino_fc.mean("member", keep_attrs=True)
    fig, ax = xfp.plot_index_plume(fc, thresholds=None)
    assert [line.get_label() for line in ax.lines if not line.get_label().startswith("_")] == [
        "forecast", "init"]
    assert not ax.patches


def test_plume_rejects_extra_dims(nino_fc):
    sc = nino_fc.expand_dims(kc_sigma=[0.0, 1.0])
    with pytest.raises(xfp.ExtraDimsError, match="kc_sigma"):
        xfp.plot_index_plume(sc)


@pytest.fixture
def csi():
    lead = np.arange(1, 7) * 10
    thr = np.array([16, 74, 133])
    data = np.random.default_rng(0).uniform(size=(2, 3, 6))
    return xr.DataArray(data, dims=("model", "threshold", "lead"),
                        coords={"model": ["earthformer", "persistence"], "threshold": thr,
                                "lead": ("lead", lead, {"units": "minutes"})},
                        name="csi", attrs={"long_name": "CSI"})


def test_skill_models_and_thresholds(csi, tmp_path):
    fig, ax = xfp.plot_skill(csi)
    save_png(fig, tmp_path)
    assert len(ax.lines) == 6
    labels = [line.get_label() for line in ax.lines]
    assert "earthformer, threshold 74" in labels and "persistence, threshold 133" in labels
    styles = {line.get_label(): line.get_linestyle() for line in ax.lines}
    assert styles["earthformer, threshold 16"] != styles["persistence, threshold 16"]
    assert ax.get_xlabel() == "lead (minutes)"
    assert ax.get_title() == "CSI"
    assert ax.get_legend() is not None


def test_skill_thresholds_only(csi):
    fig, ax = xfp.plot_skill(csi.sel(model="earthformer", drop=True))
    assert [line.get_label() for line in ax.lines] == [
        "threshold 16", "threshold 74", "threshold 133"]


def test_skill_dataset_one_line_per_model(csi, tmp_path):
    ds = csi.sel(threshold=74, drop=True).to_dataset("model")
    fig, ax = xfp.plot_skill(ds, title="CSI-74")
    save_png(fig, tmp_path)
    assert [line.get_label() for line in ax.lines] == ["earthformer", "persistence"]
    assert ax.get_title() == "CSI-74"


def test_skill_extra_dims_error(csi):
    scores = csi.expand_dims(init=3)
    with pytest.raises(xfp.ExtraDimsError, match=r"\('init',\).*mean\('init'\)"):
        xfp.plot_skill(scores)
