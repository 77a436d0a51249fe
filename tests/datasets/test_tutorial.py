"""xearthformer.tutorial: names, dispatch, errors."""

from __future__ import annotations

import pytest
import xarray as xr

from xearthformer import tutorial
from xearthformer.datasets import UnknownDatasetError, synthetic_enso, synthetic_storms


def test_available_lists_both():
    names = tutorial.available()
    assert set(names) == {"enso", "storms"}
    assert all(isinstance(d, str) and d for d in names.values())


def test_dispatch_matches_generators():
    xr.testing.assert_identical(tutorial.open_dataset("enso", seed=2, n_years=2), synthetic_enso(seed=2, n_years=2))
    xr.testing.assert_identical(
        tutorial.open_dataset("storms", seed=2, n_events=3), synthetic_storms(seed=2, n_events=3)
    )


def test_unknown_name_lists_available():
    with pytest.raises(UnknownDatasetError, match="available: enso, storms") as info:
        tutorial.open_dataset("sevir")
    assert isinstance(info.value, ValueError)


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError):
        tutorial.open_dataset("enso", n_events=3)
