"""Synthetic storms: radar-like VIL sequences of convective cells advected by a smooth flow."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ._sevir_layout import event_coords, vil_attrs, xy_coords
from .errors import DatasetParameterError

__all__ = ["STORM_PARAMETERS", "synthetic_storms"]

#: Default constants of the generator; lengths in pixels, times in frames (5 minutes).
STORM_PARAMETERS: dict[str, float] = {
    "speed_min": 0.3,  # flow speed range (pixel/frame), direction uniform
    "speed_max": 1.5,
    "rotation_max": 0.008,  # |Omega| of the weak solid-body rotation (rad/frame)
    "cell_slots": 24,  # potential cells per event (each active with probability p_cell)
    "p_cell": 0.45,
    "amplitude_min": 60.0,  # peak core VIL: min + (max - min) * Beta(2, 3)
    "amplitude_max": 250.0,
    "sigma_min": 1.5,  # core radius (pixel, for size 64; scales with size / 64)
    "sigma_max": 4.0,
    "lifetime_min": 6.0,  # tau of the Gaussian life cycle (frames)
    "lifetime_max": 20.0,
    "anvil_scale": 2.5,  # stratiform shield: radius x anvil_scale, amplitude x anvil_fraction
    "anvil_fraction": 0.22,
    "background_blobs": 3,  # weak, broad, steady precipitation areas
    "background_max": 12.0,
}
_SUBSTEPS = 4
_CHUNK_EVENTS = 64


def _draw_event(rng: np.random.Generator, p: dict[str, float], size: int, n_frames: int) -> dict[str, Any]:
    """All random draws of one event, in a fixed order."""
    c, b = int(p["cell_slots"]), int(p["background_blobs"])
    scale = size / 64.0
    speed = rng.uniform(p["speed_min"], p["speed_max"]) * scale
    angle = rng.uniform(0, 2 * np.pi)
    omega = rng.uniform(-p["rotation_max"], p["rotation_max"])
    active = rng.random(c) < p["p_cell"]
    x0 = rng.uniform(-0.25 * size, 1.25 * size, c + b)
    y0 = rng.uniform(-0.25 * size, 1.25 * size, c + b)
    amp = p["amplitude_min"] + (p["amplitude_max"] - p["amplitude_min"]) * rng.beta(2.0, 3.0, c)
    sx = rng.uniform(p["sigma_min"], p["sigma_max"], c) * scale
    sy = sx * rng.uniform(0.6, 1.4, c)
    t_peak = rng.uniform(-10.0, n_frames + 10.0, c)
    tau = rng.uniform(p["lifetime_min"], p["lifetime_max"], c)
    bg_amp = rng.uniform(0.3, 1.0, b) * p["background_max"]
    bg_sigma = rng.uniform(10.0, 20.0, b) * scale
    return {
        "u": speed * np.cos(angle), "v": speed * np.sin(angle), "omega": omega,
        "amp": np.where(active, amp, 0.0), "sx": sx, "sy": sy, "t_peak": t_peak, "tau": tau,
        "x0": x0, "y0": y0, "bg_amp": bg_amp, "bg_sigma": bg_sigma,
    }


def _draw(seed: int, n_events: int, p: dict[str, float], size: int, n_frames: int) -> dict[str, np.ndarray]:
    """Draws of every event, stacked. Event ``i`` has its own stream (``SeedSequence(seed).spawn``),
    so it is the same whatever ``n_events`` is."""
    streams = np.random.SeedSequence(seed).spawn(n_events)
    events = [_draw_event(np.random.default_rng(s), p, size, n_frames) for s in streams]
    return {k: np.stack([np.asarray(ev[k], dtype="float64") for ev in events]) for k in events[0]}


def _tracks(d: dict[str, np.ndarray], size: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(event, frame, blob)`` of every blob, advected by u - Omega (y - yc), v + Omega (x - xc)."""
    centre = (size - 1) / 2.0
    x, y = d["x0"].copy(), d["y0"].copy()
    u, v, om = d["u"][:, None], d["v"][:, None], d["omega"][:, None]
    xs, ys = [x], [y]
    h = 1.0 / _SUBSTEPS
    for _ in range(n_frames - 1):
        for _ in range(_SUBSTEPS):  # midpoint rule
            xm = x + 0.5 * h * (u - om * (y - centre))
            ym = y + 0.5 * h * (v + om * (x - centre))
            x, y = x + h * (u - om * (ym - centre)), y + h * (v + om * (xm - centre))
        xs.append(x)
        ys.append(y)
    return np.stack(xs, axis=1), np.stack(ys, axis=1)


def _render(d: dict[str, np.ndarray], size: int, n_frames: int, p: dict[str, float]) -> np.ndarray:
    """VIL ``(event, time, y, x)`` as float32, from separable Gaussian blobs (a batched matmul)."""
    xs, ys = _tracks(d, size, n_frames)
    c = d["amp"].shape[1]
    t = np.arange(n_frames, dtype="float64")[None, :, None]
    life = np.exp(-(((t - d["t_peak"][:, None, :]) / d["tau"][:, None, :]) ** 2))  # (e, t, c)
    amp = d["amp"][:, None, :] * life
    grow = 0.6 + 0.4 * life  # cells widen as they mature and shrink as they decay
    sx, sy = d["sx"][:, None, :] * grow, d["sy"][:, None, :] * grow
    k = p["anvil_scale"]
    frames = (amp.shape[0], n_frames, d["bg_amp"].shape[1])
    bg_amp = np.broadcast_to(d["bg_amp"][:, None, :], frames)  # steady in time
    bg_sigma = np.broadcast_to(d["bg_sigma"][:, None, :], frames)
    # blobs: cores, then their stratiform shields, then the background areas
    amps = np.concatenate([amp, p["anvil_fraction"] * amp, bg_amp], axis=2)
    sxs = np.concatenate([sx, k * sx, bg_sigma], axis=2)
    sys_ = np.concatenate([sy, k * sy, bg_sigma], axis=2)
    cx = np.concatenate([xs[..., :c], xs[..., :c], xs[..., c:]], axis=2)
    cy = np.concatenate([ys[..., :c], ys[..., :c], ys[..., c:]], axis=2)
    grid = np.arange(size, dtype="float64")
    gx = np.exp(-0.5 * ((grid - cx[..., None]) / sxs[..., None]) ** 2).astype("float32")  # (e, t, blob, x)
    gy = np.exp(-0.5 * ((grid - cy[..., None]) / sys_[..., None]) ** 2).astype("float32")  # (e, t, blob, y)
    gy *= amps[..., None].astype("float32")
    return np.matmul(np.swapaxes(gy, -1, -2), gx)  # (e, t, y, x)


def synthetic_storms(
    *,
    seed: int = 0,
    n_events: int = 300,
    size: int = 64,
    n_frames: int = 25,
    pixel_size_km: float = 4.0,
    start: str = "2020-05-01",
    event_spacing: str = "6h",
    parameters: dict[str, float] | None = None,
) -> xr.Dataset:
    r"""Radar-like VIL sequences of growing, decaying cells that move with a smooth flow.

    Each event is independent. Its flow is a constant drift plus a weak solid-body
    rotation about the domain centre :math:`(x_c, y_c)`,

    .. math::

        \dot x = u_0 - \Omega\,(y - y_c), \qquad \dot y = v_0 + \Omega\,(x - x_c),

    with speed :math:`|(u_0, v_0)|` uniform in 0.3-1.5 pixel per frame (x ``size/64``),
    direction uniform and :math:`|\Omega| \le 0.008` rad per frame. Cells start
    uniformly over the domain and a margin of a quarter of its width around it (so
    cells drift in across the upwind edge) and are carried by the flow (midpoint rule,
    4 sub-steps per frame). Cell ``i`` has a Gaussian life cycle and an axis-aligned
    elliptical core plus a wider, weaker stratiform shield:

    .. math::

        L_i(t) &= \exp\bigl(-((t - t_i)/\tau_i)^2\bigr), \qquad
        s_i(t) = s_i\,(0.6 + 0.4\,L_i(t)) \\
        \mathrm{VIL}(t, y, x) &= \mathrm{clip}_{[0, 255]} \Bigl[\sum_i A_i L_i(t)
        \bigl(g(x, y; x_i(t), y_i(t), s_i(t)) + 0.22\,g(\cdot\,; 2.5\,s_i(t))\bigr)
        + B(t, x, y)\Bigr]

    where :math:`g` is an unnormalised Gaussian, peak intensities
    :math:`A_i = 60 + 190\,\mathrm{Beta}(2, 3)`, radii :math:`s_i` 1.5-4 pixels
    (x ``size/64``), peak times :math:`t_i` anywhere from 10 frames before to 10
    after the event, :math:`\tau_i` 6-20 frames, and on average 11 cells per event
    (24 slots, each active with probability 0.45). :math:`B` is three weak broad
    (radius 10-20 pixels, peak at most 12) blobs carried by the same flow. The
    constants are in :data:`STORM_PARAMETERS`. Since the flow is smooth and
    steady, advecting the last frames beats persistence.

    Parameters
    ----------
    seed : int
        Seed; event ``i`` draws from the ``i``-th stream spawned by
        ``numpy.random.SeedSequence(seed)``, so the first events do not change
        when ``n_events`` grows.
    n_events : int
        Number of independent events.
    size : int
        Frame height and width in pixels.
    n_frames : int
        Frames per event, 5 minutes apart (25 = 13 context + 12 target, the SEVIR setting).
    pixel_size_km : float
        Pixel spacing; sets the ``x``/``y`` coordinates (km).
    start, event_spacing : str
        ``event_time`` of the first event and the spacing between events.
    parameters : dict, optional
        Overrides of :data:`STORM_PARAMETERS`.

    Returns
    -------
    xarray.Dataset
        Variable ``vil`` (uint8, 0-255 SEVIR digital levels; models use ``vil / 255``)
        with dims ``(event, time, y, x)``. ``time`` is the offset of each frame from
        the event's first frame (timedelta, 5-minute steps); ``event_time(event)`` is
        the first frame's timestamp and ``valid_time(event, time)`` their sum, so
        windows are taken along ``time`` within an event and batched over ``event``.

    Examples
    --------
    >>> from xearthformer.datasets import synthetic_storms
    >>> ds = synthetic_storms(n_events=4)
    >>> ds.vil.dims, ds.vil.shape, ds.vil.dtype
    (('event', 'time', 'y', 'x'), (4, 25, 64, 64), dtype('uint8'))
    >>> ds.time.values[:3].astype("timedelta64[m]").tolist()
    [datetime.timedelta(0), datetime.timedelta(seconds=300), datetime.timedelta(seconds=600)]
    >>> str(ds.valid_time.values[1, -1])[:16]
    '2020-05-01T08:00'
    """
    for name, value, low in (("n_events", n_events, 1), ("size", size, 8), ("n_frames", n_frames, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise DatasetParameterError(f"{name} must be an integer >= {low}, got {value!r}")
    if not pixel_size_km > 0:
        raise DatasetParameterError(f"pixel_size_km must be positive, got {pixel_size_km!r}")
    params = dict(STORM_PARAMETERS)
    if parameters:
        unknown = set(parameters) - set(params)
        if unknown:
            raise DatasetParameterError(
                f"unknown storm parameters {sorted(unknown)}; expected some of {sorted(params)}"
            )
        params.update(parameters)
    try:
        first = pd.Timestamp(start)
        spacing = pd.Timedelta(event_spacing)
    except (ValueError, TypeError) as err:
        raise DatasetParameterError(
            "start must be a date and event_spacing a duration (e.g. '2020-05-01', '6h'), "
            f"got {start!r}, {event_spacing!r}"
        ) from err

    draws = _draw(int(seed), int(n_events), params, int(size), int(n_frames))
    vil = np.empty((n_events, n_frames, size, size), dtype="uint8")
    for lo in range(0, n_events, _CHUNK_EVENTS):
        part = {k: v[lo : lo + _CHUNK_EVENTS] for k, v in draws.items()}
        field = _render(part, int(size), int(n_frames), params)
        vil[lo : lo + _CHUNK_EVENTS] = np.rint(np.clip(field, 0.0, 255.0)).astype("uint8")

    ids = np.array([f"SYN{i:06d}" for i in range(n_events)])
    event_time = pd.DatetimeIndex([first + i * spacing for i in range(n_events)])
    offsets = pd.to_timedelta(np.arange(n_frames) * 5, unit="min")
    coords = {**event_coords(ids, event_time, offsets), **xy_coords(int(size), float(pixel_size_km))}
    attrs: dict[str, Any] = {
        "title": "Synthetic storms: radar-like VIL of convective cells advected by a smooth flow",
        "source": "xearthformer synthetic",
        "seed": int(seed),
        "equations": (
            "dx/dt = u0 - Omega (y - yc), dy/dt = v0 + Omega (x - xc); "
            "VIL = clip(sum_i A_i L_i(t) [g(s_i(t)) + anvil_fraction g(anvil_scale s_i(t))] + B, 0, 255); "
            "L_i(t) = exp(-((t - t_i)/tau_i)^2), s_i(t) = s_i (0.6 + 0.4 L_i(t)); "
            + ", ".join(f"{k}={v:g}" for k, v in params.items())
        ),
        "Conventions": "CF-1.8",
        "comment": "Generated by xearthformer.datasets.synthetic_storms; not observations.",
    }
    return xr.Dataset({"vil": (("event", "time", "y", "x"), vil, vil_attrs())}, coords=coords, attrs=attrs)
