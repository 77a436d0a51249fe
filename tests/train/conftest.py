"""Fixtures of the training tests (builders in helpers.py)."""

from __future__ import annotations

import pytest
import torch
import xarray as xr

from .helpers import TINY, monthly_sst, radar_events


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread (fastest on the shared 2-core test machine); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_kwargs() -> dict:
    return dict(TINY)


@pytest.fixture
def sst() -> xr.DataArray:
    return monthly_sst()


@pytest.fixture
def radar() -> xr.DataArray:
    return radar_events()
