"""Contingency scores by threshold (CSI, POD, FAR, bias, HSS), pooled CSI and FSS.

Events are ``value >= threshold`` for forecast and observation alike (the SEVIR
convention). Counts are integer sums, so counts of pieces of a data set add up
exactly to the counts of the whole; scores are computed from the summed counts.
Positions where the forecast or the observation is NaN are left out of all four
counts (the official SEVIR code counts them as non-events, which changes only the
correct negatives, hence HSS, not CSI, POD or FAR).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr

from ._validate import (
    MetricsInputError,
    as_list,
    check_matching_coords,
    check_threshold_scale,
    reduce_dims,
)

__all__ = [
    "SEVIR_THRESHOLDS", "contingency", "contingency_scores", "csi", "pod", "far", "bias",
    "hss", "csi_m", "pooled_csi", "fss",
]

#: The SEVIR VIL thresholds on the 0-255 scale (Earthformer, PreDiff).
SEVIR_THRESHOLDS: tuple[float, ...] = (16.0, 74.0, 133.0, 160.0, 181.0, 219.0)

Dims = str | Sequence[Hashable] | None


def _prepare(forecast: xr.DataArray, observed: xr.DataArray, thresholds, skip=()):
    if not isinstance(forecast, xr.DataArray) or not isinstance(observed, xr.DataArray):
        raise MetricsInputError(
            "forecast and observed must be xarray.DataArray objects, got "
            f"{type(forecast).__name__} and {type(observed).__name__}."
        )
    check_matching_coords(forecast, observed, skip=skip)
    thr = [float(t) for t in as_list(thresholds)]
    if not thr:
        raise MetricsInputError("no thresholds given; pass one value or a sequence of values.")
    check_threshold_scale(thr, forecast, observed, stacklevel=4)
    f, o = xr.broadcast(*xr.align(forecast, observed, join="override"))
    return f, o, thr


def _threshold_coord(thr: list[float]) -> dict:
    return {"threshold": ("threshold", np.asarray(thr), {"long_name": "event threshold (>=)"})}


def contingency(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    thresholds: float | Sequence[float] = SEVIR_THRESHOLDS,
    *,
    dim: Dims = None,
) -> xr.Dataset:
    """Hits, misses, false alarms and correct negatives of ``value >= threshold``.

    Parameters
    ----------
    forecast, observed : xarray.DataArray
        Forecast first, observation second, with matching coordinates.
    thresholds : float or sequence of float
        Event thresholds; they form the ``threshold`` dimension. The SEVIR default is
        on the 0-255 VIL scale (a threshold above the data maximum warns).
    dim : str or sequence of str, optional
        Dimensions to sum over; None (default) pools everything, the SEVIR convention.

    Returns
    -------
    xarray.Dataset
        int64 ``hits``, ``misses``, ``false_alarms``, ``correct_negatives`` by threshold.

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([0.0, 20.0, 80.0, 10.0], dims="x")
    >>> o = xr.DataArray([0.0, 30.0, 10.0, 90.0], dims="x")
    >>> c = contingency(f, o, [16, 74])
    >>> c["hits"].values, c["misses"].values, c["false_alarms"].values
    (array([1, 0]), array([1, 1]), array([1, 1]))
    """
    f, o, thr = _prepare(forecast, observed, thresholds)
    dims = reduce_dims(f, dim)
    valid = f.notnull() & o.notnull()
    n = valid.sum(dims).astype(np.int64)
    parts: dict[str, list[xr.DataArray]] = {k: [] for k in ("hits", "misses", "false_alarms")}
    for t in thr:
        fe, oe = (f >= t) & valid, (o >= t) & valid
        hits = (fe & oe).sum(dims).astype(np.int64)
        parts["hits"].append(hits)
        parts["misses"].append(oe.sum(dims).astype(np.int64) - hits)
        parts["false_alarms"].append(fe.sum(dims).astype(np.int64) - hits)
    out = xr.Dataset({k: xr.concat(v, "threshold") for k, v in parts.items()})
    out["correct_negatives"] = n - out["hits"] - out["misses"] - out["false_alarms"]
    out = out.assign_coords(_threshold_coord(thr)).transpose("threshold", ...)
    out.attrs = {"event": "value >= threshold", "summed_over": " ".join(map(str, dims))}
    return out


def _ratio(num: xr.DataArray, den: xr.DataArray, eps: float) -> xr.DataArray:
    num, den = num.astype(float), den.astype(float) + eps
    return num / den.where(den != 0)


def contingency_scores(counts: xr.Dataset, *, eps: float = 0.0) -> xr.Dataset:
    """CSI, POD, FAR, frequency bias and HSS from summed contingency counts.

    ``eps`` is added to each denominator (``1e-4`` reproduces the SEVIR code);
    with ``eps=0`` a zero denominator gives NaN.

    Examples
    --------
    >>> import xarray as xr
    >>> c = xr.Dataset({"hits": 2, "misses": 1, "false_alarms": 1, "correct_negatives": 6})
    >>> s = contingency_scores(c)
    >>> float(s["csi"]), float(s["pod"]), float(s["far"]), float(s["bias"])
    (0.5, 0.6666666666666666, 0.3333333333333333, 1.0)
    """
    h, m, f, c = (counts[k].astype(float) for k in
                  ("hits", "misses", "false_alarms", "correct_negatives"))
    hss_den = (h + m) * (m + c) + (h + f) * (f + c)
    return xr.Dataset({
        "csi": _ratio(h, h + m + f, eps).assign_attrs(long_name="critical success index"),
        "pod": _ratio(h, h + m, eps).assign_attrs(long_name="probability of detection"),
        "far": _ratio(f, h + f, eps).assign_attrs(long_name="false alarm ratio"),
        "bias": _ratio(h + f, h + m, eps).assign_attrs(long_name="frequency bias"),
        "hss": _ratio(2 * (h * c - m * f), hss_den, eps).assign_attrs(
            long_name="Heidke skill score"),
    })


def _score(name: str):
    def score(
        forecast: xr.DataArray,
        observed: xr.DataArray,
        thresholds: float | Sequence[float] = SEVIR_THRESHOLDS,
        *,
        dim: Dims = None,
        eps: float = 0.0,
    ) -> xr.DataArray:
        counts = contingency(forecast, observed, thresholds, dim=dim)
        return contingency_scores(counts, eps=eps)[name].rename(name)

    return score


_DOC = """{title} by threshold, from counts summed over ``dim``.

    Same signature as :func:`contingency` (forecast first); ``eps`` is added to the
    denominator (``1e-4`` reproduces the SEVIR code). xskillscore's name for it is
    ``Contingency.{xs}()``.

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([0.0, 20.0, 80.0, 10.0], dims="x")
    >>> o = xr.DataArray([0.0, 30.0, 10.0, 90.0], dims="x")
    >>> {name}(f, o, [16]).values
    array([{value}])
"""

csi = _score("csi")
pod = _score("pod")
far = _score("far")
bias = _score("bias")
hss = _score("hss")
for _f, _n, _title, _xs, _value in (
    (csi, "csi", "Critical success index H / (H + M + F)", "threat_score", "0.33333333"),
    (pod, "pod", "Probability of detection H / (H + M)", "hit_rate", "0.5"),
    (far, "far", "False alarm ratio F / (H + F)", "false_alarm_ratio", "0.5"),
    (bias, "bias", "Frequency bias (H + F) / (H + M)", "bias_score", "1."),
    (hss, "hss", "Heidke skill score", "heidke_score", "0."),
):
    _f.__name__ = _f.__qualname__ = _n
    _f.__module__ = __name__
    _f.__doc__ = _DOC.format(title=_title, xs=_xs, name=_n, value=_value)


def csi_m(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    thresholds: float | Sequence[float] = SEVIR_THRESHOLDS,
    *,
    dim: Dims = None,
    eps: float = 0.0,
) -> xr.DataArray:
    """CSI-M: the plain mean over thresholds of CSI (pooled counts by default).

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([0.0, 20.0, 80.0, 10.0], dims="x")
    >>> o = xr.DataArray([0.0, 30.0, 10.0, 90.0], dims="x")
    >>> float(csi_m(f, o, [16, 74]))
    0.16666666666666666
    """
    out = csi(forecast, observed, thresholds, dim=dim, eps=eps).mean("threshold")
    return out.rename("csi_m").assign_attrs(long_name="CSI averaged over thresholds")


def _spatial_dims(obj: xr.DataArray, spatial_dims: Sequence[Hashable] | None) -> list[Hashable]:
    if spatial_dims is not None:
        dims = list(spatial_dims)
    else:
        for pair in (("lat", "lon"), ("latitude", "longitude"), ("y", "x"), ("height", "width")):
            if all(d in obj.dims for d in pair):
                return list(pair)
        dims = list(obj.dims[-2:])
    if len(dims) != 2 or any(d not in obj.dims for d in dims):
        raise MetricsInputError(
            f"spatial_dims={dims} must name two dimensions of the data {list(obj.dims)}."
        )
    return dims


def pooled_csi(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    thresholds: float | Sequence[float] = SEVIR_THRESHOLDS,
    *,
    pool: int | Sequence[int] = 4,
    dim: Dims = None,
    spatial_dims: Sequence[Hashable] | None = None,
    eps: float = 0.0,
) -> xr.DataArray:
    """CSI after max-pooling each frame with kernel = stride = ``pool`` (PreDiff's
    ``sevir_pool{k}``; edges that do not fill a window are trimmed).

    ``pool`` may be a sequence (e.g. ``[4, 16]``), which gives a ``pool`` dimension.
    ``spatial_dims`` default to lat/lon, y/x or the last two dims.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> o = xr.DataArray(np.zeros((4, 4)), dims=("y", "x"))
    >>> f = o.copy()
    >>> o[0, 0] = 100.0
    >>> f[1, 1] = 100.0  # one pixel off: a miss and a false alarm, a hit once pooled
    >>> csi(f, o, [74]).values, pooled_csi(f, o, [74], pool=2).values
    (array([0.]), array([1.]))
    """
    space = _spatial_dims(forecast, spatial_dims)
    pools = [int(p) for p in as_list(pool)]
    out = []
    for k in pools:
        if k < 1:
            raise MetricsInputError(f"pool sizes must be >= 1, got {k}.")
        window = {d: k for d in space}
        fp = forecast.coarsen(window, boundary="trim").max()
        op = observed.coarsen(window, boundary="trim").max()
        out.append(csi(fp, op, thresholds, dim=dim, eps=eps))
    res = out[0] if np.ndim(pool) == 0 else xr.concat(out, xr.DataArray(pools, dims="pool"))
    return res.rename("pooled_csi").assign_attrs(pool=str(pool))


def _box_sum(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Sum over a centred window of ``n`` points along ``axis`` (zero outside)."""
    before = n // 2
    pad = [(0, 0)] * a.ndim
    pad[axis] = (before + 1, n - 1 - before)
    c = np.cumsum(np.pad(a, pad), axis=axis)
    length = a.shape[axis]
    return np.take(c, np.arange(n, n + length), axis=axis) - np.take(c, np.arange(length),
                                                                        axis=axis)


def _fractions(events: np.ndarray, n: int) -> np.ndarray:
    return _box_sum(_box_sum(events.astype(np.float64), n, -2), n, -1) / float(n * n)


def fss_sums(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    thresholds: float | Sequence[float],
    *,
    window: int | Sequence[int],
    dim: Dims = None,
    spatial_dims: Sequence[Hashable] | None = None,
) -> xr.Dataset:
    """Additive sums behind :func:`fss`: ``sum (Pf - Po)^2``, ``sum Pf^2``, ``sum Po^2``."""
    f, o, thr = _prepare(forecast, observed, thresholds)
    space = _spatial_dims(f, spatial_dims)
    others = [d for d in reduce_dims(f, dim, keep=space) if d not in space]
    sums = []
    for n in [int(w) for w in as_list(window)]:
        if n < 1:
            raise MetricsInputError(f"window sizes must be >= 1, got {n}.")
        per_t = []
        for t in thr:
            kw = dict(input_core_dims=[space], output_core_dims=[space], dask="parallelized",
                      output_dtypes=[np.float64], kwargs={"n": n})
            pf = xr.apply_ufunc(_fractions, (f >= t).chunk({d: -1 for d in space})
                                if hasattr(f.data, "dask") else (f >= t), **kw)
            po = xr.apply_ufunc(_fractions, (o >= t).chunk({d: -1 for d in space})
                                if hasattr(o.data, "dask") else (o >= t), **kw)
            red = others + space
            per_t.append(xr.Dataset({"sum_sq_diff": ((pf - po) ** 2).sum(red),
                                     "sum_pf2": (pf**2).sum(red), "sum_po2": (po**2).sum(red)}))
        sums.append(xr.concat(per_t, "threshold"))
    out = xr.concat(sums, "window").assign_coords(_threshold_coord(thr))
    return out.assign_coords(window=[int(w) for w in as_list(window)])


def fss(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    thresholds: float | Sequence[float],
    *,
    window: int | Sequence[int],
    dim: Dims = None,
    spatial_dims: Sequence[Hashable] | None = None,
) -> xr.DataArray:
    """Fractions skill score (Roberts and Lean 2008) by threshold and window size.

    Event fractions are box means over ``window`` x ``window`` points (zero outside the
    domain); ``FSS = 1 - sum (Pf - Po)^2 / (sum Pf^2 + sum Po^2)``, the sums pooled over
    the spatial dims and ``dim`` (default: every other dim). NaN counts as no event.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> o = xr.DataArray(np.zeros((5, 5)), dims=("y", "x"))
    >>> f = o.copy()
    >>> o[2, 2] = 1.0
    >>> f[2, 3] = 1.0
    >>> fss(f, o, 0.5, window=[1, 3]).values.round(3).tolist()
    [[0.0], [0.667]]
    """
    s = fss_sums(forecast, observed, thresholds, window=window, dim=dim, spatial_dims=spatial_dims)
    den = s["sum_pf2"] + s["sum_po2"]
    out = 1.0 - s["sum_sq_diff"] / den.where(den > 0)
    if np.ndim(window) == 0:
        out = out.squeeze("window", drop=True)
    return out.rename("fss").assign_attrs(long_name="fractions skill score")
