"""The missing-data policy (``missing=``) and bad values (``bad_values=``) of forecast/ensemble
(issue 20 items 2 and 3): real archives have gaps that change from month to month; infinite or
absurd values never pass silently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import xearthformer
from xearthformer import _quality as quality
from xearthformer import forecasting as F
from xearthformer.zoo.toy import save_toy_model

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return save_toy_model(tmp_path_factory.mktemp("models") / "toy-enso", "enso")


@pytest.fixture(scope="module")
def sst() -> xr.DataArray:
    return xearthformer.tutorial.open_dataset("enso", n_years=2)["sst"]


def _model_land(toy_dir) -> np.ndarray:
    return np.asarray(xearthformer.load_model(toy_dir).card.contract.land_mask, bool)


def test_time_varying_gaps_are_missing_for_the_whole_context(sst, toy) -> None:
    # sea ice: a high-latitude band missing in some months only, different cells each month
    holey = sst.copy()
    holey[-5, 0, 10:20] = np.nan
    holey[-2, 1, 15:30] = np.nan
    holey[-1, 23, :5] = np.nan
    fc = xearthformer.forecast(holey, lead=2, model=toy)
    gaps = np.zeros(holey.shape[1:], bool)
    gaps[0, 10:20] = gaps[1, 15:30] = gaps[23, :5] = True
    land = _model_land(toy)
    assert fc.isel(init=0).isnull().all("lead").values[gaps].all()  # NaN again in the output
    sea_gaps = gaps & ~land
    assert fc.attrs["missing_cells"] == int(sea_gaps.sum())  # counted (one init)
    assert fc.attrs["missing_policy"].startswith("context")
    # the model sees what it would see were those cells missing at every time (then filled
    # like land): the same forecast, bit for bit
    ref = xearthformer.forecast(sst.where(~xr.DataArray(gaps, dims=("lat", "lon"))), lead=2,
                                model=toy)
    np.testing.assert_array_equal(fc.isnull().values, ref.isnull().values)
    ok = ~gaps & ~land
    np.testing.assert_array_equal(fc.values[..., ok], ref.values[..., ok])
    with pytest.raises(F.MissingDataError, match=r"\d+ missing value\(s\).*missing='context'"):
        xearthformer.forecast(holey, lead=2, model=toy, missing="strict")


def test_mostly_missing_context_raises(sst, toy) -> None:
    sparse = sst.copy()
    sparse[-1, :, :30] = np.nan  # 30 of 48 columns gone in the last month
    with pytest.raises(F.MissingDataError, match=r"mostly missing: \d+% .*sea cells"):
        xearthformer.forecast(sparse, lead=2, model=toy)
    with pytest.raises(ValueError, match="missing='nope' is not known"):
        xearthformer.forecast(sst, lead=2, model=toy, missing="nope")


def test_infinite_value_raises_naming_where(sst, toy) -> None:
    bad = sst.copy()
    bad[-2, 12, 30] = np.inf
    lat, lon = float(sst.lat[12]), float(sst.lon[30])
    with pytest.raises(quality.BadValueError,
                       match=rf"1 infinite value.*step -1, lat={lat:g}, lon={lon:g}.*bad_values="):
        xearthformer.forecast(bad, lead=2, model=toy)
    masked = xearthformer.forecast(bad, lead=2, model=toy, bad_values="mask")
    assert masked.isel(init=0, lead=0, lat=12, lon=30).isnull()  # masked, then missing
    assert masked.attrs["bad_values"] == "mask" and masked.attrs["bad_values_fixed"] == 1
    assert int(masked.isel(init=0, lead=0).isnull().sum()) == int(
        xearthformer.forecast(sst, lead=2, model=toy).isel(init=0, lead=0).isnull().sum()) + 1


def test_far_out_value_raises_or_clips(sst, toy) -> None:
    c = xearthformer.load_model(toy).card.contract
    bad = sst.copy()
    bad[-1, 5, 5] = 1e6  # 1e6 K: a unit or fill-value mistake
    with pytest.raises(quality.BadValueError, match=r"more than 50 times the model's scale.*1e\+06"):
        xearthformer.forecast(bad, lead=2, model=toy)
    clipped = xearthformer.forecast(bad, lead=2, model=toy, bad_values="clip")
    at_limit = sst.copy()
    at_limit[-1, 5, 5] = c.offset + quality.MAX_NORMALISED * abs(c.scale)  # where clip puts it
    ref = xearthformer.forecast(at_limit, lead=2, model=toy)
    np.testing.assert_array_equal(clipped.values, ref.values)
    assert clipped.attrs["bad_values_fixed"] == 1
    # just inside the model's range: no error, no fix
    inside = sst.copy()
    inside[-1, 5, 5] = c.offset + 0.99 * quality.MAX_NORMALISED * abs(c.scale)
    assert "bad_values_fixed" not in xearthformer.forecast(inside, lead=2, model=toy).attrs


def test_a_shifted_field_raises_whatever_the_policy(sst, toy) -> None:
    """Every value within the model's range, but the whole field shifted by 20 scales (as
    absolute temperatures given to an anomaly model are): refused, never masked or clipped."""
    c = xearthformer.load_model(toy).card.contract
    shifted = sst + 2 * quality.MAX_MEAN_SHIFT * abs(c.scale)
    assert float(abs(shifted - c.offset).max()) < quality.MAX_NORMALISED * abs(c.scale)
    for policy in ("raise", "mask", "clip"):
        with pytest.raises(quality.BadValueError, match="whole field is shifted"):
            xearthformer.forecast(shifted, lead=2, model=toy, bad_values=policy)
    # half the limit: accepted
    xearthformer.forecast(sst + 0.5 * quality.MAX_MEAN_SHIFT * abs(c.scale), lead=2, model=toy)


def test_valid_range_of_radar_models(tmp_path) -> None:
    toy = save_toy_model(tmp_path / "toy-storms", "storms")
    vil = xearthformer.tutorial.open_dataset("storms", n_events=1, size=32, n_frames=13)["vil"]
    vil = vil.astype("float32")
    vil[0, -1, 3, 3] = 300.0  # above the 0..255 VIL scale
    with pytest.raises(quality.BadValueError, match=r"outside the model's valid range \(0.0, 255.0\)"):
        xearthformer.forecast(vil, lead=1, model=toy)
    assert xearthformer.forecast(vil, lead=1, model=toy, bad_values="clip").notnull().all()


def test_normalised_context_policies_directly() -> None:
    from xearthformer.zoo.model_dir import InputContract

    c = InputContract(variables=("sst",), in_len=3, out_len=1, step=1, step_units="months",
                      spatial_dims=("lat", "lon"), grid_shape=(2, 2), units="K", scale=2.0)
    x = np.arange(12, dtype=float).reshape(1, 1, 3, 2, 2, 1) / 10.0
    x[0, 0, 1, 0, 1, 0] = np.nan  # one cell missing at one time
    land = np.zeros((2, 2), bool)
    stats: dict = {}
    xn, filled = quality.normalised_context(x, c, land, None, None, stats=stats)
    assert filled[0, 0, :, :, 0].tolist() == [[False, True], [False, False]]
    assert np.all(xn[0, 0, :, 0, 1, 0] == np.float32(c.normalise(c.fill_value)))
    assert stats["missing_cells"] == 1
    np.testing.assert_array_equal(xn[0, 0, :, 1, :, 0], (x[0, 0, :, 1, :, 0] / 2.0).astype("f4"))


def _outcome(fn):
    """``("ok", x, land, stats)`` or ``("raised", type, message)`` of ``fn(stats)``."""
    stats: dict = {}
    try:
        x, land = fn(stats)
    except Exception as err:  # noqa: BLE001 - the outcome is compared, whatever it is
        return ("raised", type(err), str(err))
    return ("ok", x, land, stats)


@pytest.mark.parametrize("case", ["clean", "gaps", "infinite", "far", "outside", "shifted",
                                  "mostly_missing", "sporadic", "all_nan"])
@pytest.mark.parametrize("missing", ["context", "strict"])
@pytest.mark.parametrize("bad_values", ["raise", "mask", "clip"])
def test_series_contexts_are_the_per_context_path(case, missing, bad_values, monkeypatch) -> None:
    """Normalising each step of the series once gives the bits of normalising every context,
    and every refusal, count and message of it (sparse inits, an offset slab, a climatology)."""
    from xearthformer.zoo.model_dir import InputContract

    c = InputContract(variables=("sst",), in_len=4, out_len=1, step=1, step_units="months",
                      spatial_dims=("lat", "lon"), grid_shape=(3, 5), units="K", scale=0.5,
                      offset=0.1, anomaly=True, valid_range=(250.0, 305.0))
    rng = np.random.default_rng(7)
    n_time, offset = 40, 6
    clim = 290.0 + rng.normal(size=(12, 3, 5))
    clim[:, 2, 4] = np.nan  # a land cell of the climatology
    series = clim[np.arange(n_time) % 12] + rng.normal(scale=0.4, size=(n_time, 3, 5))
    series = np.stack([series, series[::-1] + 0.3])[..., None]  # "s time h w c", two samples
    land = np.zeros((3, 5), bool)
    land[2, 4] = True
    if case in ("gaps", "sporadic"):
        series[0, 20, 0, 1] = np.nan  # missing at one time: land for context, refused by strict
    if case == "gaps":
        series[:, :, 1, 2] = np.nan  # missing at every time: land for both policies
    bad = {"infinite": np.inf, "far": clim[25 % 12, 1, 3] - 27.0,  # 54 scales below: far only
           "outside": 310.0}  # above the valid range, 20 K (40 scales) from the climatology
    series[0, 25, 1, 3] = bad.get(case, series[0, 25, 1, 3])
    if case == "shifted":
        series[1, 15:30] += 12 * 0.5
    if case == "mostly_missing":
        series[0, 24, :2] = np.nan  # 10 of the 14 sea cells in the context ending at 26
        series[1, 22, :] = np.nan  # in no context: ignored
    if case == "all_nan":
        series[:] = np.nan
    positions = np.array([12, 13, 20, 26, 31, 39])  # sparse, overlapping contexts
    months = np.arange(n_time) + 2000 * 12
    times = np.arange(n_time).astype("datetime64[M]")
    slab = series[:, offset:]
    kw = dict(missing=missing, bad_values=bad_values, where=None)

    def per_context(stats):
        window = positions[:, None] + np.arange(-c.in_len + 1, 1)
        return quality.normalised_context(slab[:, window - offset], c, land, clim, months[window],
                                          times[positions], stats=stats, **kw)

    def per_step(stats):
        return quality.series_contexts(slab, positions, offset, c, land, clim, months, times,
                                       stats=stats, **kw)

    expected = _outcome(per_context)
    if case == "clean" or (case == "gaps" and missing == "context"):  # no fallback needed
        monkeypatch.setattr(quality, "normalised_context", None)
    got = _outcome(per_step)
    assert got[0] == expected[0], (got[:1], expected[1:])
    if expected[0] == "raised":
        assert got[1:] == expected[1:]
        return
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[1].dtype == np.float32
    np.testing.assert_array_equal(got[2], expected[2])
    assert got[3] == expected[3]
    if case == "clean":
        assert not got[2][..., :4, :].any() and got[2][:, :, 2, 4].all()
