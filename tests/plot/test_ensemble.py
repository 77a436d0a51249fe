"""plot_ensemble: members, mean, spread, exceedance probability."""

from __future__ import annotations

import numpy as np
import pytest

import xearthformer.plot as xfp
from xearthformer._precision import reduction_error

from .helpers import coastline_artists, colorbar_axes, map_axes, quadmeshes, save_png


def test_plot_ensemble_structure(enso_ens, tmp_path):
    fig, axes = xfp.plot_ensemble(enso_ens, lead=2, n_members=3, threshold=0.5)
    save_png(fig, tmp_path)
    assert len(axes["members"]) == 3
    assert len(map_axes(fig)) == 3 + 3
    assert len(colorbar_axes(fig)) == 3
    assert [ax.get_title() for ax in axes["members"]] == ["member 0", "member 1", "member 2"]
    assert axes["mean"].get_title() == "ensemble mean (5 members)"
    assert axes["spread"].get_title() == "spread (std over members)"
    assert axes["probability"].get_title() == "P(SST anomaly > 0.5 K)"
    assert fig.get_suptitle() == "SST anomaly (K), init 2021-01, lead 2 months (valid 2021-03)"
    for ax in map_axes(fig):
        assert len(quadmeshes(ax)) == 1
        assert coastline_artists(ax)


def test_plot_ensemble_values(enso_ens):
    fig, axes = xfp.plot_ensemble(enso_ens, lead=1, threshold=0.0)
    one = enso_ens.isel(init=0).sel(lead=1)
    prob = quadmeshes(axes["probability"])[0].get_array()
    expected = (one > 0).mean("member").where(one.notnull().any("member")).values
    # k / n member fractions: one correctly rounded division, exact here and there
    np.testing.assert_array_equal(np.ma.filled(prob, np.nan).reshape(expected.shape), expected)
    spread = quadmeshes(axes["spread"])[0].get_array()
    # a two-pass standard deviation over the members, in float64: 2 gamma_(m+2) relative
    n_members = one.sizes["member"]
    np.testing.assert_allclose(np.ma.filled(spread, np.nan).reshape(expected.shape),
                               one.std("member").values,
                               rtol=2 * reduction_error(n_members + 2, one.dtype))
    assert quadmeshes(axes["probability"])[0].norm.vmax == 1.0


def test_default_threshold_in_title(enso_ens):
    fig, axes = xfp.plot_ensemble(enso_ens)
    assert axes["probability"].get_title().startswith("P(SST anomaly > ")
    assert "lead 1 month" in fig.get_suptitle()


def test_many_members_grid(enso_ens):
    fig, axes = xfp.plot_ensemble(enso_ens, n_members=5)
    assert len(axes["members"]) == 5
    assert len(map_axes(fig)) == 8


def test_plot_ensemble_without_member(enso_fc):
    with pytest.raises(xfp.MissingMemberError, match=r"'member'.*\('init', 'lead', 'lat', 'lon'\)"):
        xfp.plot_ensemble(enso_fc)
    assert issubclass(xfp.MissingMemberError, ValueError)


def test_plot_ensemble_lead_not_found(enso_ens):
    with pytest.raises(xfp.LeadNotFoundError, match=r"lead 9 not in the forecast.*\[1, 2, 3, 4\]"):
        xfp.plot_ensemble(enso_ens, lead=9)
