"""Data-quality policies applied while a context is normalised: missing cells and bad values.

:func:`normalised_context` turns physical contexts ``"s n t h w c"`` into the model's normalised
float32 input. On the way it applies the two policies users choose on ``forecast``/``ensemble``:

* ``missing=`` (:data:`MISSING_POLICIES`): which NaN cells become land for a context
  (``"context"``: missing at any time; ``"strict"``: only those missing at every time);
* ``bad_values=`` (:data:`BAD_VALUE_POLICIES`): infinite values, values far outside the model's
  training range (:data:`MAX_NORMALISED` scales) or outside its valid range raise
  :class:`BadValueError`, or are masked or clipped. A whole field shifted by more than
  :data:`MAX_MEAN_SHIFT` scales always raises.

Numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._layout import LayoutError, MissingDataError
from ._preprocess import as_indexer
from .zoo.model_dir import InputContract

__all__ = [
    "BAD_VALUE_POLICIES", "MAX_MEAN_SHIFT", "MAX_NORMALISED", "MISSING_POLICIES", "MOSTLY_MISSING",
    "BadValueError", "check_policies", "normalised_context", "series_contexts",
]


#: Policies for missing cells inside a context (``missing=``), and for bad values (``bad_values=``).
MISSING_POLICIES = ("context", "strict")
BAD_VALUE_POLICIES = ("raise", "mask", "clip")
#: A context with more than this fraction of the model's sea (non-land) cells missing raises.
MOSTLY_MISSING = 0.5
#: Values more than this many of the model's ``scale`` from its ``offset`` are outside anything
#: physical the model could have been trained on. ``scale`` is one number for the whole grid
#: (0.46 K for the demo ENSO model), so 10 of it is only a few local standard deviations where
#: the variability is large: the tutorial data reach 14.5 scales (6.7 K), real SST anomalies
#: about 10 K (20 scales). 50 scales (23 K here) still catches a fill value, a unit mix-up or
#: the issue's 1e6 K.
MAX_NORMALISED = 50.0
#: A context whose mean lies more than this many scales from the model's offset is shifted as a
#: whole (absolute values given to an anomaly model, or wrong units): each value may look
#: plausible, their mean does not. Anomalies of the tutorial data average under 2 scales.
MAX_MEAN_SHIFT = 10.0


class BadValueError(LayoutError):
    """Non-finite values, or values far outside the model's training range or valid range."""


def check_policies(missing: str, bad_values: str) -> None:
    """Raise :class:`ValueError` for an unknown ``missing=`` or ``bad_values=``."""
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing={missing!r} is not known; expected one of {MISSING_POLICIES}.")
    if bad_values not in BAD_VALUE_POLICIES:
        raise ValueError(f"bad_values={bad_values!r} is not known; expected one of "
                         f"{BAD_VALUE_POLICIES}.")


def _places(mask: np.ndarray, times: Sequence[Any], where: Any, n_t: int, k: int = 3) -> str:
    """The first ``k`` places of ``mask`` (``"s n t h w c"``) as text."""
    out = []
    for _, n, t, h, w, _ in list(zip(*np.nonzero(mask)))[:k]:
        init = str(times[n])[:19] if len(times) else n
        if where is not None:
            (yname, yv), (xname, xv) = where
            cell = f"{yname}={float(yv[h]):g}, {xname}={float(xv[w]):g}"
        else:
            cell = f"row {h}, col {w}"
        out.append(f"(init {init}, step {t - n_t + 1}, {cell})")
    return ", ".join(out)


def _limits(contract: InputContract) -> tuple[float, float]:
    """The range of values (anomalies where the model subtracts a climatology) the model takes."""
    return (contract.offset - MAX_NORMALISED * abs(contract.scale),
            contract.offset + MAX_NORMALISED * abs(contract.scale))


def _bad_value_masks(raw: np.ndarray, clim_term: Any, contract: InputContract
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, infinite, far, outside)``: ``x = raw - clim_term`` (where a cell has no climatology
    and its raw value is far, ``x`` holds the raw value, to be named in the message) and the
    masks of the three kinds of bad value."""
    x = raw - clim_term
    lo, hi = _limits(contract)
    with np.errstate(invalid="ignore"):
        far = (x < lo) | (x > hi)  # +-inf included, NaN not
        infinite = np.isinf(x) if far.any() else np.zeros(x.shape, bool)  # the rare case
        far &= ~infinite
        if np.ndim(clim_term) and np.isfinite(clim_term).any():  # no climatology at a cell:
            c_lo, c_hi = np.nanmin(clim_term), np.nanmax(clim_term)  # its range bounds the data
            far |= (np.isnan(x) & np.isfinite(raw)) & ((raw < c_lo + lo) | (raw > c_hi + hi))
            if far.any():
                x = np.where(np.isnan(x) & far, raw, x)  # named in the message by its value
        outside = np.zeros_like(far)
        if contract.valid_range is not None:
            vlo, vhi = contract.valid_range
            outside = np.isfinite(raw) & ((raw < vlo) | (raw > vhi))
    return x, infinite, far, outside


def _bad_values(raw: np.ndarray, clim_term: Any, contract: InputContract, policy: str,
                times: Sequence[Any], where: Any, stats: dict | None) -> np.ndarray:
    """Apply ``bad_values=`` to the physical contexts ``raw``; returns ``raw - clim_term``
    (anomalies where the model subtracts a climatology) with bad values masked or clipped."""
    fix = ("Mask them (da.where(np.isfinite(da) & (abs(da) < LIMIT))) or fix the source; or pass "
           "bad_values='mask' (treated as missing, see missing=) or bad_values='clip'.")
    lo, hi = _limits(contract)
    x, infinite, far, outside = _bad_value_masks(raw, clim_term, contract)
    n_t = x.shape[2]
    problems = []
    if infinite.any():
        problems.append(f"{int(infinite.sum())} infinite value(s), e.g. at "
                        f"{_places(infinite, times, where, n_t)}")
    if far.any():
        problems.append(
            f"{int(far.sum())} value(s) more than {MAX_NORMALISED:g} times the model's scale "
            f"({abs(contract.scale):g} {contract.units}) from its centre ({contract.offset:g}"
            f"{' anomaly' if contract.anomaly else ''}), far outside its training data, e.g. "
            f"{float(x[far].flat[0]):.6g} at {_places(far, times, where, n_t)}")
    with np.errstate(invalid="ignore"):
        good = ~(np.isnan(x) | infinite | far)
        counts = good.sum(axis=(2, 3, 4, 5))
        means = np.where(good, x, 0.0).sum(axis=(2, 3, 4, 5)) / np.maximum(counts, 1)
        shift = np.abs(means - contract.offset) / abs(contract.scale)
    shifted = (counts > 0) & (shift > MAX_MEAN_SHIFT)
    if shifted.any():
        raise BadValueError(
            f"the context's mean is {float(shift[shifted].max()):.3g} times the model's scale "
            f"({abs(contract.scale):g} {contract.units}) from its centre ({contract.offset:g}"
            f"{' anomaly' if contract.anomaly else ''}): the whole field is shifted, far outside "
            "its training data (absolute values given to a model of anomalies, or the wrong "
            "units). Pass anomalies (subtract a climatology) or set units= / the data's units "
            "attribute; bad_values= cannot fix a shifted field.")
    if outside.any():
        problems.append(
            f"{int(outside.sum())} value(s) outside the model's valid range "
            f"{contract.valid_range}, e.g. {float(raw[outside].flat[0]):.6g} at "
            f"{_places(outside, times, where, n_t)}")
    if not problems:
        return x
    if policy == "raise":
        raise BadValueError("the context holds " + "; ".join(problems) + ". " + fix)
    if stats is not None:
        stats["bad_values"] = stats.get("bad_values", 0) + int((infinite | far | outside).sum())
    if policy == "mask":
        return np.where(infinite | far | outside, np.nan, x)
    # clip: to the valid range, then to the model's range (no climatology: stays missing)
    base = np.clip(raw, *contract.valid_range) if contract.valid_range is not None else raw
    return np.clip(base - clim_term, lo, hi)


def normalised_context(windows: np.ndarray, contract: InputContract, land: np.ndarray,
                       clim: np.ndarray | None, months: np.ndarray | None,
                       times: Sequence[Any] = (), *, missing: str = "context",
                       bad_values: str = "raise", where: Any = None,
                       stats: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Physical contexts ``"s n t h w c"`` -> (normalised float32 contexts, land ``"s n h w c"``).

    Land = the model's land mask plus the cells missing under the ``missing=`` policy, all
    filled with the normalised ``fill_value`` (and NaN again in the forecast):

    * ``"context"`` (default): a cell missing at *any* time of a context is missing for that
      whole context (real archives have gaps that change from month to month: sea ice, sparse
      observations). A context with more than :data:`MOSTLY_MISSING` of the model's sea cells
      missing raises :class:`~xearthformer._layout.MissingDataError`.
    * ``"strict"``: only cells missing at *every* context time are filled; any other NaN raises.

    ``bad_values=`` (``"raise"``, ``"mask"``, ``"clip"``): infinite values, values more than
    :data:`MAX_NORMALISED` times the model's scale from its offset, or outside the model's
    ``valid_range`` raise :class:`BadValueError` naming where they are, or are masked (then
    missing) or clipped. ``months`` (``"n t"``, year*12+month-1) selects the climatology to
    subtract; ``where`` (``((y name, values), (x name, values))``) names places in messages;
    ``stats`` (a dict) receives the counts of filled cells and bad values.
    """
    raw = np.asarray(windows, dtype=np.float64)
    clim_term = clim[months % 12][None, ..., None] if clim is not None else 0.0
    x = _bad_values(raw, clim_term, contract, bad_values, times, where, stats)
    missing_mask = np.isnan(x)
    if missing_mask.all():
        raise MissingDataError("the context is entirely NaN; pass data with values (check the "
                               "variable, the time selection and the fill values).")
    sea = ~np.asarray(land, bool)[None, None, :, :, None]
    if missing == "strict":
        land_item = missing_mask.all(axis=2) | ~sea
        sporadic = missing_mask & ~land_item[:, :, None]
        if sporadic.any():
            raise MissingDataError(
                f"{int(sporadic.sum())} missing value(s) inside the context outside land/missing "
                f"cells, e.g. at {_places(sporadic, times, where, x.shape[2])}. With "
                "missing='strict' only cells missing at every context time are treated as land; "
                "fill or interpolate the others (da.interpolate_na('time')), or pass "
                "missing='context'."
            )
    else:
        land_item = missing_mask.any(axis=2) | ~sea
        n_sea = max(int(sea.sum()), 1)
        fraction = (land_item & sea).sum(axis=(2, 3)) / n_sea  # "s n c"
        if (fraction > MOSTLY_MISSING).any():
            s, n, _ = np.unravel_index(int(np.argmax(fraction)), fraction.shape)
            init = str(times[n])[:19] if len(times) else n
            raise MissingDataError(
                f"the context of init {init} is mostly missing: {100 * fraction.max():.0f}% of "
                f"the model's {n_sea} sea cells lack a value at some context time (more than "
                f"{100 * MOSTLY_MISSING:.0f}% is refused). Check the variable, its fill values "
                "and the region; choose inits with data, or fill the gaps first "
                "(da.interpolate_na('time'))."
            )
    if stats is not None:
        stats["missing_cells"] = stats.get("missing_cells", 0) + int((land_item & sea).sum())
    xn = contract.normalise(np.where(missing_mask, 0.0, x))
    xn = np.where(np.broadcast_to(land_item[:, :, None], xn.shape),
                  contract.normalise(np.float64(contract.fill_value)), xn)
    return xn.astype(np.float32), land_item


def series_contexts(values: np.ndarray, positions: np.ndarray, offset: int,
                    contract: InputContract, land: np.ndarray, clim: np.ndarray | None,
                    months: np.ndarray | None, times: Sequence[Any], *, missing: str = "context",
                    bad_values: str = "raise", where: Any = None, stats: dict | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`normalised_context` of the contexts ending at ``positions``, computed once per time
    step of the series instead of once per context (a step is in up to ``in_len`` contexts).

    ``values`` is the physical series ``"s time h w c"`` whose first step is at position
    ``offset`` of the full series; ``positions``, ``months`` (year*12+month-1 per step of the
    full series) and ``times`` refer to the full series. The result is bit-identical to
    :func:`normalised_context` of the windows: the values are checked, anomalies taken and
    normalised step by step, then gathered into contexts and filled. Where anything is refused,
    masked or clipped (rare), the per-context path runs instead and decides, counts and words
    it exactly as before.

    Examples
    --------
    >>> import numpy as np
    >>> from xearthformer.zoo.model_dir import InputContract
    >>> c = InputContract(variables=["t"], in_len=2, out_len=1, step=1, step_units="months",
    ...                   spatial_dims=["y", "x"], grid_shape=[1, 2], units="K", offset=0.0,
    ...                   scale=2.0, anomaly=False, fill_value=0.0)
    >>> series = np.array([1.0, 2.0, 3.0, np.nan, 5.0, 6.0]).reshape(1, 3, 1, 2, 1)
    >>> x, land = series_contexts(series, np.array([1, 2]), 0, c, np.zeros((1, 2), bool),
    ...                           None, None, [])
    >>> x[0, :, :, 0, :, 0].tolist(), land[0, :, 0, :, 0].tolist()  # cell 2 gap: filled with 0
    ([[[0.5, 0.0], [1.5, 0.0]], [[1.5, 0.0], [2.5, 0.0]]], [[False, True], [False, True]])
    """
    values, positions = np.asarray(values), np.asarray(positions)
    window = positions[:, None] + np.arange(-contract.in_len + 1, 1)  # "n t"
    used, local = np.unique(window, return_inverse=True)
    local = local.reshape(window.shape)

    def per_context() -> tuple[np.ndarray, np.ndarray]:
        return normalised_context(values[:, window - offset], contract, land, clim,
                                  None if months is None else months[window],
                                  times[positions] if len(times) else times,
                                  missing=missing, bad_values=bad_values, where=where,
                                  stats=stats)

    if used.size == 0:
        return per_context()
    raw = np.asarray(values[:, as_indexer(used - offset)], dtype=np.float64)  # "s u h w c"
    clim_term = clim[months[used] % 12][None, ..., None] if clim is not None else 0.0
    x, infinite, far, outside = _bad_value_masks(raw, clim_term, contract)
    if infinite.any() or far.any() or outside.any():
        return per_context()
    missing_step = np.isnan(x)
    if missing_step.all():
        return per_context()
    with np.errstate(invalid="ignore"):  # the whole-field shift, from per-step sums
        good = ~missing_step
        counts = good.sum(axis=(2, 3, 4))[:, local].sum(axis=2)  # "s n"
        sums = np.where(good, x, 0.0).sum(axis=(2, 3, 4))[:, local].sum(axis=2)
        shift = np.abs(sums / np.maximum(counts, 1) - contract.offset) / abs(contract.scale)
    if ((counts > 0) & (shift > MAX_MEAN_SHIFT)).any():
        return per_context()
    sea = ~np.asarray(land, bool)[None, None, :, :, None]
    missing_in_context = missing_step[:, local]  # "s n t h w c"
    if missing == "strict":
        land_item = missing_in_context.all(axis=2) | ~sea
        if (missing_in_context.any(axis=2) & ~land_item).any():
            return per_context()
    else:
        land_item = missing_in_context.any(axis=2) | ~sea
        fraction = (land_item & sea).sum(axis=(2, 3)) / max(int(sea.sum()), 1)
        if (fraction > MOSTLY_MISSING).any():
            return per_context()
    if stats is not None:
        stats["missing_cells"] = stats.get("missing_cells", 0) + int((land_item & sea).sum())
    xn = contract.normalise(np.where(missing_step, 0.0, x)).astype(np.float32)[:, local]
    fill = np.float32(contract.normalise(np.float64(contract.fill_value)))
    np.copyto(xn, fill, where=land_item[:, :, None])
    return xn, land_item
