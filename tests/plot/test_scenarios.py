"""plot_scenarios: the PreDiff figure (context / truth / one row per kc_sigma)."""

from __future__ import annotations

import numpy as np
import pytest

import xearthformer.plot as xfp

from .conftest import make_enso
from .helpers import colorbar_axes, map_axes, quadmeshes, save_png


def _row_labels(axes):
    return [[t.get_text() for t in row[0].texts] for row in axes]


def test_plot_scenarios_full_figure(radar_sc, radar_obs, tmp_path):
    fig, axes = xfp.plot_scenarios(radar_sc, context=radar_obs, truth=radar_obs)
    save_png(fig, tmp_path)
    assert axes.shape == (5, 3)
    assert _row_labels(axes) == [["context"], ["truth"], [r"$\mu - 1\sigma$"], [r"$\mu$"],
                                 [r"$\mu + 1\sigma$"]]
    assert len(map_axes(fig)) == 15
    assert len(colorbar_axes(fig)) == 1
    # context: the 3 frames up to init (18:00); truth titles carry lead and valid time
    assert [ax.get_title() for ax in axes[0]] == [
        "2019-07-14 17:40", "2019-07-14 17:50", "2019-07-14 18:00"]
    assert axes[1, 0].get_title() == "lead 10 minutes\n2019-07-14 18:10"
    assert axes[2, 0].get_title() == ""
    for ax in map_axes(fig):
        (mesh,) = quadmeshes(ax)
        assert mesh.cmap.name == "sevir_vil"
    truth = quadmeshes(axes[1, 2])[0].get_array()
    np.testing.assert_array_equal(np.ma.filled(truth).reshape(16, 16),  # the data, copied
                                  radar_obs.sel(time="2019-07-14T18:30").values)
    assert fig.get_suptitle() == "VIL (1), init 2019-07-14 18:00"


def test_context_row_shorter_than_leads(radar_sc, radar_obs):
    fig, axes = xfp.plot_scenarios(radar_sc, context=radar_obs, n_context=2)
    assert axes.shape == (4, 3)
    assert axes[0, 2] is None
    assert len(map_axes(fig)) == 11


def test_forecast_without_kc_sigma_and_with_members(tmp_path):
    ens = make_enso()
    fig, axes = xfp.plot_scenarios(ens, leads=[1, 3], member=1)
    save_png(fig, tmp_path)
    assert axes.shape == (1, 2)
    assert _row_labels(axes) == [["forecast"]]
    assert "member 1" in fig.get_suptitle()


def test_truth_missing_times(radar_sc, radar_obs):
    with pytest.raises(xfp.PlotInputError, match="no data at valid times"):
        xfp.plot_scenarios(radar_sc, truth=radar_obs.isel(time=slice(0, 6)))


def test_truth_in_forecast_layout(radar_sc):
    truth = radar_sc.sel(kc_sigma=0.0, drop=True)
    fig, axes = xfp.plot_scenarios(radar_sc, truth=truth)
    assert axes.shape == (4, 3)


def test_scenarios_lead_not_found(radar_sc):
    with pytest.raises(xfp.LeadNotFoundError, match=r"available leads \(minutes\): \[10, 20, 30\]"):
        xfp.plot_scenarios(radar_sc, leads=[15])


@pytest.mark.parametrize(("k", "label"), [(1, r"$\mu + 1\sigma$"), (-2, r"$\mu - 2\sigma$"),
                                          (0.5, r"$\mu + 0.5\sigma$"), (0, r"$\mu$")])
def test_kc_label(k, label):
    assert xfp.kc_label(k) == label
