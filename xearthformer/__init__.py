"""xearthformer: Earthformer and PreDiff forecasts on labelled xarray data.

Importing the package registers the ``.earthformer`` accessor on
:class:`xarray.DataArray` and :class:`xarray.Dataset`. Heavy parts (torch,
cartopy) are imported lazily, the first time they are used.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

from . import accessor as _accessor  # noqa: F401  (registers ``.earthformer`` on xarray objects)

# public name -> module that defines it (imported on first access)
_LAZY = {
    "models": "xearthformer.models",
    "nn": "xearthformer.nn",
    "metrics": "xearthformer.metrics",
    "plot": "xearthformer.plot",
    "datasets": "xearthformer.datasets",
    "diffusion": "xearthformer.diffusion",
    "zoo": "xearthformer.zoo",
    "tutorial": "xearthformer.tutorial",
    # public functions (their modules import torch, so they load on first use)
    "fit": "xearthformer.train",
    "forecast": "xearthformer.forecasting",
    "ensemble": "xearthformer.ensembles",
    "list_models": "xearthformer.zoo",
    "load_model": "xearthformer.zoo",
    "keep_freed_memory": "xearthformer.cpu_memory",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        if _LAZY[name].endswith("." + name) and not hasattr(module, name):
            return module
        return getattr(module, name)
    raise AttributeError(f"module 'xearthformer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
