"""Tiny randomly initialised models, saved as model directories: for examples and tests.

They forecast nothing useful (random weights); they have the input contracts of the demo
models, so every path of :func:`xearthformer.forecast` runs in a second without training or
downloads.

Examples
--------
>>> import tempfile
>>> from xearthformer.zoo.toy import save_toy_model
>>> from xearthformer.zoo import load_model
>>> path = save_toy_model(tempfile.mkdtemp() + "/toy-enso", "enso")
>>> load_model(path).card.contract.out_len
6
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from .model_dir import InputContract, ModelCard, save_model_dir

__all__ = ["toy_kwargs", "toy_contract", "save_toy_model"]


def toy_kwargs(t_in: int, t_out: int, h: int, w: int, c: int = 1) -> dict:
    """Official Earthformer kwargs of a tiny model (32 units, axial attention, 2 levels)."""
    return dict(input_shape=[t_in, h, w, c], target_shape=[t_out, h, w, c], base_units=32,
                enc_depth=[1, 1], dec_depth=[1, 1], enc_attn_patterns="axial",
                dec_self_attn_patterns="axial", dec_cross_attn_patterns="cross_1x1",
                num_global_vectors=0, z_init_method="zeros", initial_downsample_scale=[1, 1, 2],
                padding_type="zeros", ffn_activation="gelu", pos_embed_type="t+h+w")


def toy_contract(kind: Literal["enso", "storms"], *, size: int = 32,
                 climatology: float | None = 0.0) -> InputContract:
    """The toy models' contracts: ICAR-ENSO grid, 12 -> 6 months of anomalies (land masked;
    climatology ``climatology + 0.01 cos(2 pi month / 12)`` K, none if ``None``); or ``size`` x
    ``size`` VIL (0-255), 7 -> 6 five-minute frames."""
    if kind == "enso":
        from ..datasets._icar_grid import LAT, LON, land_mask  # noqa: PLC0415

        clim = None if climatology is None else (
            climatology + 0.01 * np.cos(np.arange(12) / 12 * 2 * np.pi)[:, None, None]
            * np.ones((12, LAT.size, LON.size)))
        return InputContract(
            variables=("sst",), in_len=12, out_len=6, step=1, step_units="months",
            spatial_dims=("lat", "lon"), grid_shape=(LAT.size, LON.size),
            coords={"lat": LAT, "lon": LON}, units="K", offset=0.0, scale=1.0, anomaly=True,
            fill_value=0.0, land_mask=land_mask(), climatology=clim)
    if kind == "storms":
        return InputContract(
            variables=("vil",), in_len=7, out_len=6, step=5, step_units="minutes",
            spatial_dims=("y", "x"), grid_shape=(size, size), units="1", offset=0.0,
            scale=255.0, valid_range=(0.0, 255.0), fill_value=0.0)
    raise ValueError(f"kind={kind!r}; expected 'enso' or 'storms'.")


def save_toy_model(path: str | os.PathLike, kind: Literal["enso", "storms"] = "enso", *,
                   seed: int = 0, size: int = 32, name: str | None = None,
                   climatology: float | None = 0.0, overwrite: bool = False) -> Path:
    """Build a tiny random Earthformer with :func:`toy_contract` and save its model directory."""
    import torch  # noqa: PLC0415

    from ..models import Earthformer  # noqa: PLC0415

    contract = toy_contract(kind, size=size, climatology=climatology)
    h, w = contract.grid_shape
    kwargs = toy_kwargs(contract.in_len, contract.out_len, h, w, len(contract.variables))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Earthformer.from_official_kwargs(kwargs)
    card = ModelCard(name=name or f"toy-{kind}", kind="earthformer", official_kwargs=kwargs,
                     contract=contract, demo=True, licence="Apache-2.0",
                     description=f"tiny random Earthformer ({kind} contract) for tests")
    return save_model_dir(path, card, model.state_dict(), overwrite=overwrite)
