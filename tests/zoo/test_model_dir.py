"""The model directory format: atomic, shareable, checked on load."""

import stat

import numpy as np
import pytest
import torch

from xearthformer.zoo.model_dir import (
    InputContract,
    ModelCard,
    ModelDirError,
    load_model_dir,
    save_model_dir,
)


def card(**contract_kwargs):
    contract = InputContract(variables=("sst",), in_len=2, out_len=3, step=1, step_units="months",
                             spatial_dims=("lat", "lon"), grid_shape=(2, 2),
                             coords={"lat": np.array([0.0, 5.0]), "lon": np.array([0.0, 5.0])},
                             climatology=np.zeros((12, 2, 2)), land_mask=np.eye(2, dtype=bool),
                             **contract_kwargs)
    return ModelCard(name="t", kind="earthformer", official_kwargs={"a": 1}, contract=contract)


def test_round_trip_permissions_and_refusal(tmp_path):
    path = save_model_dir(tmp_path / "m", card(), {"w": torch.arange(3.0)}, report="# r")
    mode = stat.S_IMODE((tmp_path / "m").stat().st_mode)
    assert mode & 0o055 == 0o055, f"model directory mode {oct(mode)} is not readable by others"
    c, w = load_model_dir(path)
    assert c.contract.land_mask.tolist() == [[True, False], [False, True]]
    assert w["w"].tolist() == [0.0, 1.0, 2.0] and (path / "report.md").read_text() == "# r"
    with pytest.raises(ModelDirError, match="already exists"):
        save_model_dir(path, card(), {"w": torch.zeros(1)})
    assert load_model_dir(path)[1]["w"].tolist() == [0.0, 1.0, 2.0]  # untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_corrupt_weights_and_bad_contract(tmp_path):
    path = save_model_dir(tmp_path / "m", card(), {"w": torch.ones(2)})
    (path / "weights.pt").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="does not match the sha256"):
        load_model_dir(path)
    with pytest.raises(ModelDirError, match="scale"):
        card(scale=0.0)
    with pytest.raises(ModelDirError, match="not an xearthformer model directory"):
        load_model_dir(tmp_path)
