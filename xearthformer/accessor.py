"""The ``.earthformer`` accessor on DataArray and Dataset: one-line methods over public functions.

Importing :mod:`xearthformer` registers it. It holds no state and validates nothing at
construction (xarray turns errors raised there into confusing ones); each method calls the
public function of the same name with the object as its first argument.

Examples
--------
>>> import numpy as np, xarray as xr, xearthformer
>>> da = xr.DataArray(np.zeros((2, 3)), dims=("lat", "lon"))
>>> hasattr(da.earthformer, "plot_forecast")
True
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import xarray as xr

from . import plot as _plot


def _method(function: Callable) -> Callable:
    """An accessor method that passes the wrapped object as ``function``'s first argument."""

    @functools.wraps(function)
    def method(self, *args, **kwargs):
        return function(self._obj, *args, **kwargs)

    return method


class _LazyMethod:
    """An accessor method over a public function that is imported on first use.

    ``import xearthformer`` stays free of torch: the forecasting module (which imports torch)
    loads when the method is called, or when its ``__doc__``/``__wrapped__`` is asked for,
    so ``help(da.earthformer.forecast)`` shows the public function's docstring.
    """

    __slots__ = ("_module", "_name")

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name

    @property
    def __wrapped__(self) -> Callable:
        return getattr(importlib.import_module(self._module), self._name)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self.__wrapped__.__doc__

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return _method(self.__wrapped__).__get__(obj, objtype)


class _EarthformerAccessor:
    __slots__ = ("_obj",)

    def __init__(self, xarray_obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = xarray_obj

    plot_forecast = _method(_plot.plot_forecast)
    plot_ensemble = _method(_plot.plot_ensemble)
    plot_scenarios = _method(_plot.plot_scenarios)
    plot_index_plume = _method(_plot.plot_index_plume)
    plot_skill = _method(_plot.plot_skill)
    plot_map = _method(_plot.plot_map)
    animate = _method(_plot.animate)
    forecast = _LazyMethod("xearthformer.forecasting", "forecast")
    ensemble = _LazyMethod("xearthformer.ensembles", "ensemble")

    def evaluate(self, model_or_forecast_fn, **kwargs):
        """Hindcast skill over this archive: ``xearthformer.evaluate.evaluate(model, archive, ...)``.

        The archive is the object the accessor is on; every keyword goes to
        :func:`xearthformer.evaluate.evaluate` (``leads=``, ``metrics=``, ``init=``, ``client=``,
        ``store=``). Torch is only imported when a model (not a baseline) is evaluated.

        Examples
        --------
        >>> import xearthformer
        >>> sst = xearthformer.tutorial.open_dataset("enso", n_years=4)["sst"]
        >>> scores = sst.earthformer.evaluate("persistence", leads=3, metrics=["rmse"])
        >>> scores["rmse"].dims
        ('lead',)
        """
        from .evaluate import evaluate

        return evaluate(model_or_forecast_fn, self._obj, **kwargs)


@xr.register_dataarray_accessor("earthformer")
class EarthformerDataArrayAccessor(_EarthformerAccessor):
    """``da.earthformer``: forecasting, skill and plotting methods for a DataArray."""

    __slots__ = ()


@xr.register_dataset_accessor("earthformer")
class EarthformerDatasetAccessor(_EarthformerAccessor):
    """``ds.earthformer``: the same methods for a Dataset (plots take a score Dataset)."""

    __slots__ = ()
