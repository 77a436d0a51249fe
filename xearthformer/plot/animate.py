"""Animations of a forecast (over lead) or of observations (over time), as GIF or MP4."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._validate import (
    PlotInputError,
    check_leads,
    check_no_extra_dims,
    format_time,
    lead_label,
    reduce_member,
    select_init,
    spatial_dims,
    valid_time,
)
from .colormaps import choose_style
from .maps import plot_map

__all__ = ["animate"]

_FFMPEG_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm"}


def _writer(path: Path, fps: float, writer: Any) -> Any:
    from matplotlib import animation

    if writer is not None:
        return writer
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    if suffix in _FFMPEG_SUFFIXES:
        if not animation.writers.is_available("ffmpeg"):
            raise RuntimeError(
                f"writing {suffix} needs the ffmpeg program on PATH (or "
                "matplotlib.rcParams['animation.ffmpeg_path']), e.g. `conda install ffmpeg` "
                "or `apt install ffmpeg`; or save a .gif, which only needs Pillow"
            )
        return animation.FFMpegWriter(fps=fps)
    raise PlotInputError(
        f"cannot tell the animation format from {str(path)!r}: use a .gif (Pillow) or "
        f".mp4 (ffmpeg) path, or pass writer="
    )


def animate(
    fc_or_obs: xr.DataArray,
    path: str | os.PathLike[str],
    *,
    dim: str | None = None,
    init: Any = None,
    member: Any = None,
    fps: float = 3.0,
    dpi: int = 80,
    writer: Any = None,
    projection: Any = None,
    transform: Any = None,
    cmap: Any = None,
    norm: Any = None,
    vmin: float | None = None,
    vmax: float | None = None,
    robust: bool = False,
    coastlines: bool = True,
    **kwargs: Any,
) -> Any:
    """Animate a forecast over its leads, or observations over time, into a GIF or MP4.

    Parameters
    ----------
    fc_or_obs : xarray.DataArray
        A forecast ``(init, [member,] lead, lat, lon)`` (frames = leads of one
        init; the ensemble mean unless ``member`` is given) or a field with a
        ``time`` dim (frames = times). ``y``/``x`` grids work too.
    path : str or path-like
        Output file: ``.gif`` (matplotlib's Pillow writer) or ``.mp4``
        (matplotlib's ffmpeg writer; needs ffmpeg on PATH).
    dim : str, optional
        The frame dim; default ``lead`` if present, else ``time``.
    init, member
        Forecast selection, as in :func:`plot_forecast`.
    fps : float
        Frames per second.
    dpi : int
        Resolution of the frames.
    writer : matplotlib.animation.AbstractMovieWriter, optional
        Overrides the writer chosen from the suffix.
    projection, transform, cmap, norm, vmin, vmax, robust, coastlines, **kwargs
        As in :func:`plot_map`; one colour scale covers every frame.

    Returns
    -------
    matplotlib.animation.FuncAnimation
        Already saved to ``path``; its figure is closed (call ``to_jshtml()``
        to show it in a notebook).

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np, xarray as xr
    >>> import xearthformer.plot as xfp
    >>> obs = xr.DataArray(
    ...     np.random.default_rng(0).uniform(0, 255, size=(3, 16, 16)), dims=("time", "y", "x"),
    ...     coords={"time": np.arange("2019-07-01T12:00", "2019-07-01T12:30", 10,
    ...                               dtype="datetime64[m]").astype("datetime64[ns]")},
    ...     name="vil")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     anim = xfp.animate(obs, os.path.join(tmp, "vil.gif"))
    ...     os.path.getsize(os.path.join(tmp, "vil.gif")) > 0
    True
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    da = fc_or_obs
    sd = spatial_dims(da)
    path = Path(path)
    frame_dim = dim or ("lead" if "lead" in da.dims else "time")
    is_forecast = frame_dim == "lead"
    if is_forecast:
        check_leads(da, None)
        da = select_init(da, init)
        da, _ = reduce_member(da, member)
    if frame_dim not in da.dims:
        raise PlotInputError(
            f"no {frame_dim!r} dim to animate over; dims found: {tuple(fc_or_obs.dims)}"
        )
    check_no_extra_dims(da, (frame_dim, sd.y, sd.x), "animate")
    mp4_writer = _writer(path, fps, writer)  # fail before drawing when the format is unknown

    style = choose_style(da, cmap=cmap, norm=norm, vmin=vmin, vmax=vmax, robust=robust)
    units = str(da["lead"].attrs.get("units", "")) if "lead" in da.coords else ""

    def title(i: int) -> str:
        value = da[frame_dim].values[i] if frame_dim in da.coords else i
        if is_forecast:
            init_text = format_time(da["init"].values, units) if "init" in da.coords else "?"
            return (f"init {init_text}, {lead_label(value, fc_or_obs)}, "
                    f"valid {format_time(valid_time(da, value), units)}")
        return f"{frame_dim} {format_time(value)}"

    frames = da.transpose(frame_dim, sd.y, sd.x)
    mesh = plot_map(frames.isel({frame_dim: 0}), projection=projection, transform=transform,
                    cmap=style.cmap, norm=style.norm, coastlines=coastlines, title=title(0),
                    **kwargs)
    ax, fig = mesh.axes, mesh.figure

    def update(i: int) -> list[Any]:
        mesh.set_array(np.ma.masked_invalid(frames.isel({frame_dim: i}).values))
        ax.set_title(title(i))
        return [mesh]

    anim = animation.FuncAnimation(fig, update, frames=frames.sizes[frame_dim],
                                   interval=1000.0 / fps, blit=False)
    anim.save(str(path), writer=mp4_writer, dpi=dpi)
    plt.close(fig)
    return anim
