"""animate: GIF through Pillow, clear errors for other formats."""

from __future__ import annotations

import pytest
from matplotlib import animation
from PIL import Image

import xearthformer.plot as xfp


def test_animate_forecast_gif(enso_ens, tmp_path):
    path = tmp_path / "fc.gif"
    anim = xfp.animate(enso_ens, path, init="2021-02-01", fps=2)
    assert isinstance(anim, animation.FuncAnimation)
    with Image.open(path) as im:
        assert im.format == "GIF"
        assert im.n_frames == 4


def test_animate_observations_gif(radar_obs, tmp_path):
    path = tmp_path / "obs.gif"
    xfp.animate(radar_obs, path)
    with Image.open(path) as im:
        assert im.n_frames == 8


def test_animate_unknown_suffix(radar_obs, tmp_path):
    with pytest.raises(xfp.PlotInputError, match=r"\.gif"):
        xfp.animate(radar_obs, tmp_path / "obs.xyz")


def test_animate_mp4_without_ffmpeg(radar_obs, tmp_path, monkeypatch):
    """Where ffmpeg is missing (made so here, whether or not this machine has it): a clear
    error, and nothing written."""
    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    with pytest.raises(RuntimeError, match="ffmpeg"):
        xfp.animate(radar_obs, tmp_path / "obs.mp4")
    assert not (tmp_path / "obs.mp4").exists()


def test_animate_needs_a_frame_dim(radar_obs, tmp_path):
    with pytest.raises(xfp.PlotInputError, match="no 'step' dim"):
        xfp.animate(radar_obs, tmp_path / "x.gif", dim="step")
