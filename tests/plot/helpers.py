"""Structure checks shared by the plot tests."""

from __future__ import annotations


def map_axes(fig) -> list:
    """Axes of a figure that are not colorbars."""
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]


def colorbar_axes(fig) -> list:
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def quadmeshes(ax) -> list:
    from matplotlib.collections import QuadMesh

    from xearthformer.plot._figure import MISSING_GID

    return [c for c in ax.collections if isinstance(c, QuadMesh) and c.get_gid() != MISSING_GID]


def coastline_artists(ax) -> list:
    from xearthformer.plot._coastlines import COASTLINE_GID

    return [a for a in ax.get_children() if a.get_gid() == COASTLINE_GID]


def save_png(fig, tmp_path, name: str = "fig.png"):
    path = tmp_path / name
    fig.savefig(path, dpi=40)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path
