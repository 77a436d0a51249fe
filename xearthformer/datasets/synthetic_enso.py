"""Synthetic ENSO: a seasonally phase-locked recharge oscillator painted on the ICAR-ENSO grid."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import gaussian_filter

from ._icar_grid import LAT, LON, NINO34_LAT, NINO34_LON, land_mask, lat_coord, lon_coord, time_attrs
from .errors import DatasetParameterError

__all__ = ["ENSO_PARAMETERS", "synthetic_enso"]

#: Default constants of the generator (monthly time step; T and h in K).
ENSO_PARAMETERS: dict[str, float] = {
    "epsilon": 0.055,  # mean damping of T (1/month)
    "seasonal_growth": 0.085,  # amplitude a of the seasonal growth-rate cycle (1/month)
    "growth_peak_month": 9.0,  # calendar month m* of the strongest growth
    "gamma": 0.11,  # thermocline feedback: h -> T (1/month)
    "alpha": 0.13,  # recharge/discharge: T -> h (1/month)
    "r": 0.05,  # damping of h (1/month)
    "sigma_t": 0.32,  # noise on T (K/month), westerly wind bursts
    "burst_coupling": 0.15,  # state dependence of the bursts, beta (1/K)
    "sigma_h": 0.145,  # noise on h (K/month)
    "noise_rho": 0.6,  # lag-1 autocorrelation of the spatial red noise
    "noise_std_tropics": 0.22,  # red-noise std at the equator (K)
    "noise_std_poles": 0.5,  # red-noise std at |lat| = 55 (K)
}

_SPIN_UP_MONTHS = 120
_FREEZING = 271.35  # K, freezing point of sea water: floor of the absolute SST


def _patterns(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spatial loadings ``(lat, lon)`` of T (the ENSO mode) and h (the recharge precursor)."""
    phi, lam = np.meshgrid(lat, lon, indexing="ij")
    # ENSO mode: equatorial tongue centred near 120W, reaching the South American coast,
    # with the weak opposite-signed horseshoe of the western and off-equatorial Pacific.
    tongue = np.exp(-((phi / 9.0) ** 2)) * np.exp(-(((lam - 235.0) / 42.0) ** 2))
    tongue += 0.35 * np.exp(-(((phi + 5.0) / 8.0) ** 2)) * np.exp(-(((lam - 278.0) / 10.0) ** 2))
    horseshoe = np.exp(-(((np.abs(phi) - 25.0) / 9.0) ** 2)) * np.exp(-(((lam - 190.0) / 35.0) ** 2))
    horseshoe += np.exp(-((phi / 7.0) ** 2)) * np.exp(-(((lam - 135.0) / 15.0) ** 2))
    p_t = tongue - 0.3 * horseshoe
    box = (phi >= NINO34_LAT[0]) & (phi <= NINO34_LAT[1]) & (lam >= NINO34_LON[0]) & (lam <= NINO34_LON[1])
    p_t = p_t / p_t[box].mean()  # box mean of the loading is 1: the Nino3.4 index follows T
    # Recharge precursor: warm western equatorial Pacific and off-equatorial bands (12.5 N/S).
    p_h = 0.9 * np.exp(-((phi / 6.0) ** 2)) * np.exp(-(((lam - 160.0) / 16.0) ** 2))
    p_h += 0.8 * np.exp(-(((np.abs(phi) - 12.5) / 4.0) ** 2)) * np.exp(-(((lam - 180.0) / 28.0) ** 2))
    return p_t, p_h


def _oscillator(
    rng: np.random.Generator, calendar_month: np.ndarray, p: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate the recharge oscillator over the given calendar months (1..12)."""
    n = calendar_month.size
    xi = rng.standard_normal(n)
    eta = rng.standard_normal(n)
    growth = -p["epsilon"] + p["seasonal_growth"] * np.cos(2 * np.pi * (calendar_month - p["growth_peak_month"]) / 12)
    t = np.zeros(n)
    h = np.zeros(n)
    for k in range(n - 1):
        burst = p["sigma_t"] * max(1.0 + p["burst_coupling"] * t[k], 0.0) * xi[k]
        t[k + 1] = t[k] + growth[k] * t[k] + p["gamma"] * h[k] + burst
        h[k + 1] = h[k] - p["r"] * h[k] - p["alpha"] * t[k] + p["sigma_h"] * eta[k]
    return t, h


def _red_noise(rng: np.random.Generator, n: int, lat: np.ndarray, lon: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """Spatially smooth AR(1) noise ``(time, lat, lon)``, std growing from the tropics poleward."""
    white = gaussian_filter(rng.standard_normal((n, lat.size, lon.size)), sigma=(0, 1.2, 1.8), mode="nearest")
    white /= white.std()
    rho = p["noise_rho"]
    out = np.empty_like(white)
    out[0] = white[0]
    for k in range(1, n):
        out[k] = rho * out[k - 1] + np.sqrt(1 - rho**2) * white[k]
    frac = np.clip(np.abs(lat) / 55.0, 0.0, 1.0) ** 2
    std = p["noise_std_tropics"] + (p["noise_std_poles"] - p["noise_std_tropics"]) * frac
    return out * std[None, :, None]


def _climatology(calendar_month: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Smooth absolute SST climatology (K), ``(time, lat, lon)``: warm pool, cold tongue, seasons."""
    phi, lam = np.meshgrid(lat, lon, indexing="ij")
    tongue = np.exp(-((phi / 5.0) ** 2)) / (1 + np.exp(-(lam - 230.0) / 15.0))
    base = 301.5 - 0.008 * phi**2 - 3.5 * tongue
    angle = 2 * np.pi * calendar_month[:, None, None] / 12
    seasons = 0.06 * np.abs(phi) * np.sign(phi) * np.cos(angle - 2 * np.pi * 8 / 12)
    seasons = seasons + 1.0 * tongue * np.cos(angle - 2 * np.pi * 3.5 / 12)
    return base + seasons


def synthetic_enso(
    *,
    seed: int = 0,
    n_years: int = 60,
    start: str = "1950-01",
    anomalies: bool = True,
    include_latent: bool = False,
    parameters: dict[str, float] | None = None,
) -> xr.Dataset:
    r"""Monthly SST of a synthetic ENSO on the ICAR-ENSO 5-degree grid.

    A stochastically forced, seasonally phase-locked recharge oscillator (Jin 1997)
    drives an eastern-Pacific SST index ``T`` and a recharge (warm-water volume)
    state ``h``, both in K, on a monthly step ``n`` with calendar month ``m_n``:

    .. math::

        T_{n+1} &= T_n + R(m_n)\,T_n + \gamma\,h_n + \sigma_T\,\max(1 + \beta T_n, 0)\,\xi_n \\
        h_{n+1} &= h_n - r\,h_n - \alpha\,T_n + \sigma_h\,\eta_n \\
        R(m) &= -\varepsilon + a \cos\bigl(2\pi (m - m^*)/12\bigr)

    with independent standard normal :math:`\xi_n, \eta_n`. The growth rate ``R``
    is largest in boreal summer, so events grow through autumn and peak in boreal
    winter, and it is most damped in spring (the spring predictability barrier).
    The state-dependent bursts (:math:`\beta > 0`) make warm events stronger than
    cold ones. The field is

    .. math::

        \mathrm{sst}(n, \phi, \lambda) = T_n P_T(\phi, \lambda) + h_n P_h(\phi, \lambda) + N_n(\phi, \lambda)

    where :math:`P_T` is an equatorial tongue centred near 120W with a weak
    opposite-signed horseshoe (scaled so its Nino3.4-box mean is 1), :math:`P_h` a
    precursor pattern in the western equatorial Pacific (160E) and in off-equatorial
    bands at 12.5N/S (180E): it carries the recharge state, which leads Nino3.4 by
    several months. :math:`N_n = \rho N_{n-1} + \sqrt{1-\rho^2}\,s(\phi)\,G * \zeta_n`
    is spatially smooth red noise (:math:`G *` a Gaussian filter of 1.2 x 1.8 grid
    cells, std :math:`s` growing from the tropics poleward). Land points are NaN.
    Ten years of spin-up are discarded. The constants are in
    :data:`ENSO_PARAMETERS`; the oscillation period is 2-7 years, peaking near 4.

    Parameters
    ----------
    seed : int
        Seed of the :func:`numpy.random.default_rng` generator; the same seed gives
        identical data.
    n_years : int
        Length in years (``12 * n_years`` months).
    start : str
        First month (month-start timestamps).
    anomalies : bool
        True (default): SST anomalies, ``standard_name`` ``sea_surface_temperature_anomaly``.
        False: absolute SST (K), the anomalies plus a smooth seasonal climatology
        (warm pool, cold tongue, hemispheric seasons), floored at 271.35 K (sea water freezes).
    include_latent : bool
        Also return the oscillator state as variables ``latent_t`` and ``latent_h``
        (dims ``time``), e.g. to compute the best possible forecast.
    parameters : dict, optional
        Overrides of :data:`ENSO_PARAMETERS`.

    Returns
    -------
    xarray.Dataset
        Variable ``sst`` (float32, K) with dims ``(time, lat, lon)``: 24 latitudes
        -55..60 N, 48 longitudes 95..330 E, ``12 * n_years`` months.

    Examples
    --------
    >>> from xearthformer.datasets import synthetic_enso
    >>> ds = synthetic_enso(n_years=2)
    >>> ds.sst.dims, ds.sst.shape
    (('time', 'lat', 'lon'), (24, 24, 48))
    >>> str(ds.time.values[0])[:10], ds.sst.attrs["units"]
    ('1950-01-01', 'K')
    >>> float(ds.lat[0]), float(ds.lat[-1]), float(ds.lon[0]), float(ds.lon[-1])
    (-55.0, 60.0, 95.0, 330.0)
    >>> bool(ds.sst.isel(time=0).sel(lat=-25, lon=135).isnull())  # Australia is land
    True
    """
    if not isinstance(n_years, (int, np.integer)) or n_years < 1:
        raise DatasetParameterError(f"n_years must be a positive integer, got {n_years!r}")
    params = dict(ENSO_PARAMETERS)
    if parameters:
        unknown = set(parameters) - set(params)
        if unknown:
            raise DatasetParameterError(
                f"unknown ENSO parameters {sorted(unknown)}; expected some of {sorted(params)}"
            )
        params.update(parameters)
    try:
        time = pd.date_range(pd.Timestamp(start), periods=12 * int(n_years), freq="MS")
    except (ValueError, TypeError) as err:
        raise DatasetParameterError(f"start must be a date such as '1950-01', got {start!r}") from err
    if time[0] != pd.Timestamp(start):
        raise DatasetParameterError(f"start must be the first day of a month, got {start!r}")

    rng = np.random.default_rng(seed)
    n = time.size
    months = np.asarray(time.month)
    spin = (months[0] - 1 - np.arange(_SPIN_UP_MONTHS, 0, -1)) % 12 + 1
    t, h = _oscillator(rng, np.concatenate([spin, months]), params)
    t, h = t[_SPIN_UP_MONTHS:], h[_SPIN_UP_MONTHS:]
    p_t, p_h = _patterns(LAT, LON)
    field = t[:, None, None] * p_t + h[:, None, None] * p_h + _red_noise(rng, n, LAT, LON, params)
    if not anomalies:
        field = np.maximum(field + _climatology(months, LAT, LON), _FREEZING)
    field[:, land_mask()] = np.nan

    summary = (
        "T[n+1] = T[n] + R(m) T[n] + gamma h[n] + sigma_T max(1 + beta T[n], 0) xi[n]; "
        "h[n+1] = h[n] - r h[n] - alpha T[n] + sigma_h eta[n]; "
        "R(m) = -epsilon + a cos(2 pi (m - m*) / 12); "
        "sst = T P_T(lat, lon) + h P_h(lat, lon) + N (spatially smooth AR(1) noise); "
        + ", ".join(f"{k}={v:g}" for k, v in params.items())
    )
    attrs: dict[str, Any] = {
        "title": "Synthetic ENSO: seasonally phase-locked recharge oscillator on the ICAR-ENSO grid",
        "source": "xearthformer synthetic",
        "seed": int(seed),
        "equations": summary,
        "Conventions": "CF-1.8",
        "comment": "Generated by xearthformer.datasets.synthetic_enso; not observations. Land is NaN.",
    }
    if anomalies:
        var_attrs = {
            "units": "K",
            "standard_name": "sea_surface_temperature_anomaly",
            "long_name": "sea surface temperature anomaly",
        }
    else:
        var_attrs = {"units": "K", "standard_name": "sea_surface_temperature", "long_name": "sea surface temperature"}
    coords = {
        "time": xr.DataArray(time, dims="time", attrs=time_attrs()),
        "lat": lat_coord(),
        "lon": lon_coord(),
    }
    data_vars: dict[str, Any] = {"sst": (("time", "lat", "lon"), field.astype("float32"), var_attrs)}
    if include_latent:
        data_vars["latent_t"] = ("time", t.astype("float32"), {"units": "K", "long_name": "oscillator state T"})
        data_vars["latent_h"] = (
            "time",
            h.astype("float32"),
            {"units": "K", "long_name": "oscillator recharge state h (K-equivalent)"},
        )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
