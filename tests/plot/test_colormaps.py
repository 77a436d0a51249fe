"""Colour maps: SEVIR VIL levels and colours, centred anomaly maps, automatic choice."""

from __future__ import annotations

import numpy as np
import xarray as xr

import xearthformer.plot as xfp
from xearthformer._precision import unit_roundoff
from xearthformer.plot.colormaps import choose_style, is_vil

# the SEVIR `vil` colormap as published (neurips-2020-sevir display.py / Earthformer sevir_cmap.py)
SEVIR_VIL_COLORS = [
    [0, 0, 0], [0.30196078431372547] * 3,
    [0.1568627450980392, 0.7450980392156863, 0.1568627450980392],
    [0.09803921568627451, 0.5882352941176471, 0.09803921568627451],
    [0.0392156862745098, 0.4117647058823529, 0.0392156862745098],
    [0.0392156862745098, 0.29411764705882354, 0.0392156862745098],
    [0.9607843137254902, 0.9607843137254902, 0.0],
    [0.9294117647058824, 0.6745098039215687, 0.0],
    [0.9411764705882353, 0.43137254901960786, 0.0],
    [0.6274509803921569, 0.0, 0.0],
    [0.9058823529411765, 0.0, 1.0],
]
SEVIR_VIL_LEVELS = [0.0, 16.0, 31.0, 59.0, 74.0, 100.0, 133.0, 160.0, 181.0, 219.0, 255.0]


def test_vil_cmap_matches_sevir():
    cmap, norm = xfp.vil_cmap()
    assert list(norm.boundaries) == SEVIR_VIL_LEVELS
    # colours are the table's floats, copied (no arithmetic): equal to the bit
    np.testing.assert_array_equal(cmap.colors, np.array(SEVIR_VIL_COLORS[1:]))
    np.testing.assert_array_equal(cmap.get_bad()[:3], SEVIR_VIL_COLORS[0])
    np.testing.assert_array_equal(cmap.get_over()[:3], SEVIR_VIL_COLORS[-1])
    # a value in each bin gets that bin's colour (a table look-up)
    bins = zip(SEVIR_VIL_LEVELS[:-1], SEVIR_VIL_LEVELS[1:], SEVIR_VIL_COLORS[1:], strict=True)
    for lo, hi, colour in bins:
        np.testing.assert_array_equal(cmap(norm((lo + hi) / 2))[:3], colour)


def test_vil_cmap_scaled_to_unit_range():
    cmap, norm = xfp.vil_cmap(scale=1.0)
    # level / 255 here, level * (scale / 255) there: two float64 roundings against one, 4u
    np.testing.assert_allclose(norm.boundaries, np.array(SEVIR_VIL_LEVELS) / 255,
                               rtol=4 * unit_roundoff("float64"), atol=0)
    np.testing.assert_array_equal(cmap(norm(74.5 / 255))[:3], SEVIR_VIL_COLORS[5])


def test_centred_norm_and_anomaly_cmap():
    norm = xfp.centred_norm(np.array([-3.0, 1.0, np.nan]))
    assert (norm.vmin, norm.vmax) == (-3.0, 3.0)
    assert norm(0.0) == 0.5
    assert xfp.centred_norm(vmax=2).vmax == 2
    assert xfp.anomaly_cmap().get_bad()[3] > 0


def test_choose_style():
    anomaly = xr.DataArray(np.array([[-1.0, 2.0]]), name="sst_anomaly")
    style = choose_style(anomaly)
    assert style.kind == "diverging" and style.norm.vmin == -2.0
    positive = xr.DataArray(np.array([[1.0, 2.0]]), name="precip")
    assert choose_style(positive).kind == "sequential"
    vil = xr.DataArray(np.array([[0.1, 0.9]]), name="vil")
    style = choose_style(vil)
    assert style.kind == "vil" and style.norm.boundaries[-1] == 1.0
    assert choose_style(vil, cmap="magma").kind == "sequential"
    assert is_vil(xr.DataArray([0], attrs={"long_name": "Vertically integrated liquid"}))
    assert not is_vil(xr.DataArray([0], name="civil_twilight"))
