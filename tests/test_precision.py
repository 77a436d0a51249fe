"""The rounding bounds every tolerance rests on (xearthformer._precision), and the package's own
run-time float comparisons, which use them instead of constants fitted to one machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from xearthformer._precision import (
    coordinate_tolerance,
    float32_trig_error,
    golden_tolerance,
    reduction_error,
    unit_roundoff,
)
from xearthformer.metrics._validate import CoordinateMismatchError, check_matching_coords


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.float32, 2.0 ** -24), ("float64", 2.0 ** -53), (torch.float32, 2.0 ** -24),
     (torch.float64, 2.0 ** -53), (torch.bfloat16, 2.0 ** -8), (np.float16, 2.0 ** -11)],
)
def test_unit_roundoff_is_half_the_machine_epsilon(dtype, expected):
    assert unit_roundoff(dtype) == expected
    finfo = torch.finfo(dtype) if isinstance(dtype, torch.dtype) else np.finfo(np.dtype(dtype))
    assert unit_roundoff(dtype) == float(finfo.eps) / 2


def test_unit_roundoff_refuses_non_floats():
    with pytest.raises(ValueError, match="no unit roundoff known"):
        unit_roundoff(np.int64)


def test_reduction_error_bounds_a_real_float32_sum():
    """gamma_n bounds the error of any float32 summation order (here torch's and a loop's)."""
    x = torch.randn(4096, generator=torch.Generator().manual_seed(0))
    exact = float(x.double().sum())
    bound = reduction_error(x.numel(), torch.float32) * float(x.double().abs().sum())
    naive = torch.zeros((), dtype=torch.float32)
    for value in x:
        naive += value
    assert abs(float(x.sum()) - exact) <= bound
    assert abs(float(naive) - exact) <= bound
    with pytest.raises(ValueError, match="exceed"):
        reduction_error(2 ** 25, "float32")


def test_float32_trig_error_bounds_float32_sin_of_rounded_arguments():
    """Float32 sin of t*exp(c), against float64 of the same real argument, stays in the bound."""
    t = torch.arange(0, 1000, dtype=torch.float64)
    c = -np.log(10000.0) * 5 / 32
    args32 = t.float() * torch.exp(torch.tensor(c, dtype=torch.float32))
    exact = torch.sin(t * np.exp(c))
    bound = torch.from_numpy(float32_trig_error((t * np.exp(c)).numpy()))
    assert bool(((torch.sin(args32).double() - exact).abs() <= bound).all())
    # and it is not vacuous: an argument off by 1e-3 relative breaks it for large t
    assert not bool(((torch.sin(args32 * 1.001).double() - exact).abs() <= bound).all())


def test_golden_tolerance_sits_between_rounding_and_a_float32_slip():
    assert 1e2 * 25 * 64 * unit_roundoff("float64") <= golden_tolerance("float64")
    assert golden_tolerance("float64") * 1e2 <= unit_roundoff("float32")
    assert golden_tolerance("float32") >= 25 * 64 * unit_roundoff("float32")


def _field(lat, lon) -> xr.DataArray:
    return xr.DataArray(np.zeros((lat.size, lon.size)), dims=("lat", "lon"),
                        coords={"lat": lat, "lon": lon})


def test_float32_coordinates_of_a_file_match_float64_ones():
    """A 0.1-degree grid stored as float32 (as many netCDF files do) is the same grid: before,
    a fixed 1e-6 tolerance called 359.9 (float32: 359.899993896) a different longitude."""
    lat = np.round(np.arange(-5.0, 5.01, 0.1), 10)
    lon = np.round(np.arange(359.0, 359.95, 0.1), 10)
    forecast = _field(lat, lon)
    observed = _field(lat.astype(np.float32), lon.astype(np.float32))
    assert np.abs(lon - lon.astype(np.float32)).max() > 1e-6  # the old bound failed here
    check_matching_coords(forecast, observed)
    assert coordinate_tolerance(lon.astype(np.float32), lon) < 1e-3  # a real offset still fails
    with pytest.raises(CoordinateMismatchError):
        check_matching_coords(forecast, _field(lat, lon + 0.01))
