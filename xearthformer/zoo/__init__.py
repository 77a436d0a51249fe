"""The model zoo: named configurations (and, with the forecasting issue, weights).

>>> from xearthformer.zoo import official_kwargs
>>> official_kwargs("earthformer-icar-enso")["input_shape"]
[12, 24, 48, 1]
"""

from __future__ import annotations

import json
from importlib import resources

_CONFIG_FILES = {
    "earthformer-icar-enso": "earthformer_icarenso2021.json",
    "earthformer-sevir": "earthformer_sevir.json",
}


def official_kwargs(name: str) -> dict:
    """The official ``CuboidTransformerModel`` kwargs of a released model (from its ``_v1`` YAML)."""
    if name not in _CONFIG_FILES:
        raise KeyError(f"unknown model {name!r}; known: {sorted(_CONFIG_FILES)}")
    text = resources.files(__name__).joinpath("configs", _CONFIG_FILES[name]).read_text()
    return json.loads(text)


__all__ = ["official_kwargs"]
