"""Synthetic storms: layout, determinism, intensities, and motion that extrapolation can use."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.ndimage import shift as nd_shift

from xearthformer._precision import coordinate_tolerance
from xearthformer.datasets import DatasetParameterError, synthetic_storms

THRESHOLDS = (16, 74, 133, 160, 181, 219)


@pytest.fixture(scope="module")
def storms() -> xr.Dataset:
    return synthetic_storms(seed=0, n_events=120)


def test_layout(storms):
    vil = storms.vil
    assert vil.dims == ("event", "time", "y", "x")
    assert vil.shape == (120, 25, 64, 64)
    assert vil.dtype == np.uint8
    assert storms.time.dtype.kind == "m"
    assert (np.diff(storms.time.values) == np.timedelta64(5, "m")).all()
    assert storms.time.values[0] == np.timedelta64(0)
    assert storms.valid_time.dims == ("event", "time")
    expected = storms.event_time.values[:, None] + storms.time.values[None, :]
    np.testing.assert_array_equal(storms.valid_time.values, expected)
    assert storms.event.values[0] == "SYN000000" and len(set(storms.event.values)) == 120
    np.testing.assert_allclose(storms.x.values[:2], [2.0, 6.0], rtol=0,
                               atol=coordinate_tolerance(storms.x.values))
    assert storms.x.attrs["units"] == "km" and storms.y.attrs["axis"] == "Y"
    assert storms.attrs["source"] == "xearthformer synthetic" and "Omega" in storms.attrs["equations"]
    assert "vil / 255" in vil.attrs["comment"]


def test_same_seed_identical_other_seed_different():
    a = synthetic_storms(seed=5, n_events=6)
    xr.testing.assert_identical(a, synthetic_storms(seed=5, n_events=6))
    b = synthetic_storms(seed=6, n_events=6)
    assert not np.array_equal(a.vil.values, b.vil.values)


def test_events_do_not_depend_on_n_events():
    """Event i is the same whether 3 or 70 events are drawn (and whatever chunk renders it)."""
    many = synthetic_storms(seed=1, n_events=70)
    few = synthetic_storms(seed=1, n_events=3)
    np.testing.assert_array_equal(many.vil.values[:3], few.vil.values)
    assert not np.array_equal(many.vil.values[0], many.vil.values[1])


def test_size_and_frames_options():
    ds = synthetic_storms(n_events=2, size=32, n_frames=13, pixel_size_km=1.0)
    assert dict(ds.vil.sizes) == {"event": 2, "time": 13, "y": 32, "x": 32}
    np.testing.assert_allclose(ds.x.values[[0, -1]], [0.5, 31.5], rtol=0,
                               atol=coordinate_tolerance(ds.x.values))


def test_intensity_distribution(storms):
    vil = storms.vil.values
    fractions = [float((vil >= t).mean()) for t in THRESHOLDS]
    assert 0.05 < fractions[0] < 0.4
    assert all(f > 1e-4 for f in fractions)  # every SEVIR threshold is reached
    assert all(a > b for a, b in zip(fractions, fractions[1:]))
    assert vil.max() == 255
    per_event = (vil >= 16).mean(axis=(1, 2, 3))
    assert (per_event > 0).mean() > 0.9


def csi_m(pred: np.ndarray, obs: np.ndarray) -> float:
    scores = []
    for t in THRESHOLDS:
        p, o = pred >= t, obs >= t
        hits, misses, false = (p & o).sum(), (~p & o).sum(), (p & ~o).sum()
        scores.append(hits / (hits + misses + false + 1e-4))
    return float(np.mean(scores))


def test_extrapolation_beats_persistence(storms):
    """Shifting the last context frame along the motion seen in the context beats persistence."""
    vil = storms.vil.values.astype("float32")
    context, target = vil[:, :13], vil[:, 13:]
    persistence = np.repeat(context[:, -1:], 12, axis=1)
    extrapolation = np.empty_like(target)
    n = vil.shape[-1]
    for e in range(vil.shape[0]):
        a, b = context[e, 8], context[e, 12]
        cc = np.real(np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))))
        iy, ix = np.unravel_index(np.argmax(cc), cc.shape)
        dy, dx = ((iy + n // 2) % n - n // 2) / 4, ((ix + n // 2) % n - n // 2) / 4
        for k in range(12):
            extrapolation[e, k] = nd_shift(b, (dy * (k + 1), dx * (k + 1)), order=1, mode="constant")
    assert csi_m(extrapolation, target) > csi_m(persistence, target) + 0.08


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_events": 0},
        {"size": 4},
        {"n_frames": 2.0},
        {"pixel_size_km": 0},
        {"start": "nope"},
        {"event_spacing": "soon"},
        {"parameters": {"unknown": 1}},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(DatasetParameterError):
        synthetic_storms(**kwargs)
