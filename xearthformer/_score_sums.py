"""The additive partial sums behind :func:`xearthformer.evaluate.evaluate`, and their scores.

Each metric group has a *partial* function (forecast, observations -> a Dataset of sums by
lead, additive over inits, so chunks can be added in any order) and a *final* function (the
summed Dataset -> scores). Counts are integers; correlations come from sums of
``p, y, p*y, p^2, y^2, n``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
import xarray as xr
import xskillscore as xs

from .metrics.categorical import contingency, contingency_scores
from .metrics.enso import forward_mean, icar_lead_weights
from .metrics.indices import nino34

# --- partial sums (additive over inits) and the scores made from them -----------------------


def _others(da: xr.DataArray, keep: Sequence[Hashable] = ("lead",)) -> list[Hashable]:
    return [d for d in da.dims if d not in keep]


def _flat(da: xr.DataArray, first: str, order: Sequence[Hashable]) -> np.ndarray:
    """float64 values with ``first`` as axis 0 and every other dim flattened into axis 1."""
    values = da.transpose(*order).values.astype(np.float64, copy=True)
    return values.reshape(da.sizes[first], -1)


def _zero_nan(f: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Zero both arrays in place where either is NaN; returns the valid mask."""
    invalid = np.isnan(f) | np.isnan(o)
    f[invalid] = 0.0
    o[invalid] = 0.0
    return ~invalid


def _p_error(fc, ob, opts):
    # plain numpy on (before lead, lead, after lead) views, with no transposed copies:
    # xarray's skipna reductions over non-contiguous axes dominated a chunk's time
    ax = fc.dims.index("lead")
    shape = (int(np.prod(fc.shape[:ax])), fc.shape[ax], int(np.prod(fc.shape[ax + 1:])))
    f = np.array(fc.values, dtype=np.float64).reshape(shape)
    o = np.array(ob.transpose(*fc.dims).values, dtype=np.float64).reshape(shape)
    valid = _zero_nan(f, o)
    np.subtract(f, o, out=f)
    lead = {"dims": "lead", "coords": {"lead": fc["lead"].values}}
    return {"n_err": xr.DataArray(valid.sum((0, 2)).astype(np.int64), **lead),
            "sum_sq_err": xr.DataArray(np.einsum("alb,alb->l", f, f), **lead),
            "sum_abs_err": xr.DataArray(np.abs(f, out=f).sum((0, 2)), **lead)}


def _f_error(s, opts):
    n = s["n_err"].where(s["n_err"] > 0)
    return {"mse": s["sum_sq_err"] / n, "rmse": np.sqrt(s["sum_sq_err"] / n),
            "mae": s["sum_abs_err"] / n}


def _moment_sums(p, y, prefix, dims):
    valid = p.notnull() & y.notnull()
    p, y = p.where(valid), y.where(valid)
    return {f"{prefix}n": valid.sum(dims).astype(np.int64), f"{prefix}sp": p.sum(dims),
            f"{prefix}sy": y.sum(dims), f"{prefix}spp": (p * p).sum(dims),
            f"{prefix}syy": (y * y).sum(dims), f"{prefix}spy": (p * y).sum(dims)}


def _correlation(s, prefix, eps=0.0):
    n = s[f"{prefix}n"].where(s[f"{prefix}n"] > 0).astype(float)
    sp, sy = s[f"{prefix}sp"], s[f"{prefix}sy"]
    cov = s[f"{prefix}spy"] - sp * sy / n
    var_p = s[f"{prefix}spp"] - sp * sp / n
    var_y = s[f"{prefix}syy"] - sy * sy / n
    return cov / (np.sqrt((var_p * var_y).clip(0.0)) + eps)


def _p_corr(fc, ob, opts):
    order = ["init", *[d for d in fc.dims if d != "init"]]
    f, o = _flat(fc, "init", order), _flat(ob.transpose(*fc.dims), "init", order)
    valid = _zero_nan(f, o)
    template = fc.transpose(*order).isel(init=0, drop=True).reset_coords(drop=True)

    def wrap(values: np.ndarray) -> xr.DataArray:
        return template.copy(data=values.reshape(template.shape))

    return {"corr_n": wrap(valid.sum(0).astype(np.int64)), "corr_sp": wrap(f.sum(0)),
            "corr_sy": wrap(o.sum(0)), "corr_spp": wrap(np.einsum("ij,ij->j", f, f)),
            "corr_syy": wrap(np.einsum("ij,ij->j", o, o)),
            "corr_spy": wrap(np.einsum("ij,ij->j", f, o))}


def _f_corr(s, opts):
    return {"correlation": _correlation(s, "corr_")}


def _p_enso(fc, ob, opts):
    kw = {"climatology": opts["climatology"], "weights": opts["index_weights"]}
    p = forward_mean(nino34(fc, **kw), opts["running_mean"])
    y = forward_mean(nino34(ob, **kw), opts["running_mean"])
    out = _moment_sums(p.reset_coords(drop=True), y.reset_coords(drop=True), "enso_", ["init"])
    out["enso_sse"] = ((p - y) ** 2).sum("init")
    return out


def _f_enso(s, opts):
    cor = _correlation(s, "enso_", eps=1e-6)
    w = xr.DataArray(icar_lead_weights(cor.sizes["lead"]), dims="lead",
                     coords={"lead": cor["lead"]})
    mse = s["enso_sse"] / s["enso_n"].where(s["enso_n"] > 0)
    return {"nino34_correlation": cor, "C_Nino34_M": cor.mean("lead"),
            "C_Nino34_WM": (w * cor).mean("lead"), "nino34_rmse": np.sqrt(mse),
            "nino_rmse": np.sqrt(mse).mean("lead")}


def _p_contingency(fc, ob, opts):
    counts = contingency(fc, ob, opts["thresholds"], dim=_others(fc))
    out = {k: counts[k] for k in counts.data_vars}
    out["max_data"] = xr.DataArray(np.fmax(float(fc.max()), float(ob.max())))
    return out


def _f_contingency(s, opts):
    counts = xr.Dataset({k: s[k] for k in ("hits", "misses", "false_alarms",
                                           "correct_negatives")})
    scores = contingency_scores(counts)
    return {**{k: counts[k] for k in counts.data_vars}, **scores.data_vars,
            "csi_m": scores["csi"].mean("threshold")}


def _p_crps(fc, ob, opts):
    c = xs.crps_ensemble(ob, fc, member_dim=opts["member_dim"], dim=[])
    return {"crps_n": c.notnull().sum(_others(c)).astype(np.int64),
            "crps_sum": c.sum(_others(c))}


def _f_crps(s, opts):
    return {"crps": s["crps_sum"] / s["crps_n"].where(s["crps_n"] > 0)}


def _p_spread(fc, ob, opts):
    m = opts["member_dim"]
    var = fc.var(m, ddof=1)
    err2 = (fc.mean(m) - ob) ** 2
    valid = var.notnull() & err2.notnull()
    red = _others(err2)
    return {"ss_n": valid.sum(red).astype(np.int64), "ss_var": var.where(valid).sum(red),
            "ss_err2": err2.where(valid).sum(red),
            "ss_members": xr.DataArray(np.int64(fc.sizes[m]))}


def _f_spread(s, opts):
    n = s["ss_n"].where(s["ss_n"] > 0)
    spread, rmse = np.sqrt(s["ss_var"] / n), np.sqrt(s["ss_err2"] / n)
    m = float(s["ss_members"])
    return {"spread": spread, "ensemble_mean_rmse": rmse,
            "spread_skill_ratio": np.sqrt((m + 1) / m) * spread / rmse}


_SPECS: dict[str, tuple[Callable, Callable, bool]] = {  # partial, final, needs members
    "error": (_p_error, _f_error, False),
    "correlation": (_p_corr, _f_corr, False),
    "enso": (_p_enso, _f_enso, False),
    "contingency": (_p_contingency, _f_contingency, False),
    "crps": (_p_crps, _f_crps, True),
    "spread_skill": (_p_spread, _f_spread, True),
}
_GROUP = {"mse": "error", "rmse": "error", "mae": "error", "correlation": "correlation",
          "enso": "enso", "contingency": "contingency", "csi": "contingency",
          "crps": "crps", "spread_skill": "spread_skill"}
