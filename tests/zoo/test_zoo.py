"""The zoo: registry, list_models, load_model (cache, offline, checksums, local checkpoints)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from xearthformer import zoo
from xearthformer._precision import golden_tolerance
from xearthformer.models import CheckpointError
from xearthformer.zoo import registry, weights
from xearthformer.zoo.model_dir import ModelDirError, sha256_of
from xearthformer.zoo.toy import save_toy_model

torch.set_num_threads(2)
ENSO_FILE = "earthformer_icarenso2021.pt"


@pytest.fixture
def clean_env(monkeypatch, tmp_path) -> Path:
    """An empty cache folder, offline, and a fresh model cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XEARTHFORMER_CACHE", str(cache))
    monkeypatch.setenv("XEARTHFORMER_OFFLINE", "1")
    zoo.clear_cache()
    yield cache
    zoo.clear_cache()


@pytest.fixture
def golden_weights(golden_dir) -> Path:
    return golden_dir / "earthformer" / "enso_full" / "state_dict.pt"


def test_registry_entries_and_list_models() -> None:
    rows = {row["name"]: row for row in zoo.list_models()}
    enso, sevir = rows["earthformer-icar-enso"], rows["earthformer-sevir"]
    assert enso["grid"] == "lat -55..60 x lon 95..330 (24 x 48)"
    assert (enso["in_len"], enso["out_len"], enso["step"]) == (12, 14, "1 months")
    assert enso["climatology"] == "none (input must be anomalies)"
    assert enso["licence"] == sevir["licence"] == "Apache-2.0"
    assert enso["url"].endswith(ENSO_FILE) and "unknown" in enso["sha256"]
    assert (sevir["in_len"], sevir["out_len"], sevir["step"]) == (13, 12, "5 minutes")
    c = registry.get_entry("earthformer-icar-enso").contract()
    # the registry's constants, copied; the scale one float64 subtraction, done the same way
    assert c.offset == registry.SST_MIN
    assert c.scale == registry.SST_MAX - registry.SST_MIN
    assert c.anomaly and c.climatology is None
    s = registry.get_entry("earthformer-sevir").contract()
    assert s.grid_shape == (384, 384) and s.scale == 255 and s.valid_range == (0.0, 255.0)
    assert zoo.official_kwargs("earthformer-sevir")["input_shape"] == [13, 384, 384, 1]


def test_demo_models_are_discovered(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(registry, "DEMO_DIR", tmp_path)
    assert not [r for r in zoo.list_models() if r["source"] == "demo"]
    save_toy_model(tmp_path / "earthformer-demo-enso", "enso", name="earthformer-demo-enso")
    rows = {r["name"]: r for r in zoo.list_models()}
    assert rows["earthformer-demo-enso"]["source"] == "demo"
    model = zoo.load_model("earthformer-demo-enso")
    assert model.card.demo and model.verified


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(zoo.UnknownModelError, match="Did you mean 'earthformer-sevir'") as info:
        zoo.load_model("earthformer-sevirr")
    assert isinstance(info.value, ValueError) and "Known models" in str(info.value)


def test_cache_dir_precedence(monkeypatch, tmp_path) -> None:
    import pooch

    monkeypatch.delenv("XEARTHFORMER_CACHE", raising=False)
    assert weights.cache_dir() == Path(pooch.os_cache("xearthformer"))
    monkeypatch.setenv("XEARTHFORMER_CACHE", str(tmp_path / "env"))
    assert weights.cache_dir() == tmp_path / "env"
    assert weights.cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_checkpoint_placed_in_the_cache_loads_offline(clean_env, golden_weights, golden_dir
                                                      ) -> None:
    clean_env.mkdir()
    (clean_env / ENSO_FILE).write_bytes(golden_weights.read_bytes())
    model = zoo.load_model("earthformer-icar-enso")
    assert model.sha256 == sha256_of(golden_weights) and not model.verified
    x = torch.load(golden_dir / "earthformer" / "enso_full" / "input.pt", weights_only=True)
    y = torch.load(golden_dir / "earthformer" / "enso_full" / "output.pt", weights_only=True)
    with torch.no_grad():
        # the official float32 output, on another machine: golden_tolerance of max(1, |y|)
        tol = golden_tolerance(torch.float32)
        torch.testing.assert_close(model.module(x), y, atol=tol, rtol=tol)
    assert zoo.load_model("earthformer-icar-enso") is model  # cached per process


def test_local_checkpoint_by_weights_or_config(clean_env, golden_weights) -> None:
    a = zoo.load_model("earthformer-icar-enso", weights=golden_weights)
    b = zoo.load_model(golden_weights, config="earthformer-icar-enso")
    assert a is b and a.weights_path == str(golden_weights)
    with pytest.raises(zoo.UnknownModelError, match="config=NAME"):
        zoo.load_model(golden_weights)


def test_offline_missing_file_names_it_and_the_folder(clean_env) -> None:
    with pytest.raises(zoo.WeightsUnavailableError) as info:
        zoo.load_model("earthformer-icar-enso")
    message = str(info.value)
    assert ENSO_FILE in message and str(clean_env) in message and "https://" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(zoo.WeightsUnavailableError, match="not found"):
        zoo.load_model("earthformer-icar-enso", weights=clean_env / "nope.pt")


def test_failed_download_names_the_file(clean_env, monkeypatch) -> None:
    monkeypatch.delenv("XEARTHFORMER_OFFLINE")
    entry = dataclasses.replace(registry._OFFICIAL["earthformer-icar-enso"],
                                url="http://127.0.0.1:9/earthformer_icarenso2021.pt")
    monkeypatch.setitem(registry._OFFICIAL, "earthformer-icar-enso", entry)
    with pytest.raises(zoo.WeightsUnavailableError, match=f"could not download.*{ENSO_FILE}"):
        zoo.load_model("earthformer-icar-enso")
    assert not (clean_env / ENSO_FILE).exists()


def test_corrupt_checkpoint_is_refused_and_removed(clean_env, golden_weights, monkeypatch
                                                   ) -> None:
    entry = dataclasses.replace(registry._OFFICIAL["earthformer-icar-enso"],
                                sha256=sha256_of(golden_weights))
    monkeypatch.setitem(registry._OFFICIAL, "earthformer-icar-enso", entry)
    clean_env.mkdir()
    bad = clean_env / ENSO_FILE
    data = bytearray(golden_weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(zoo.ChecksumError, match="sha256.*removed from the cache"):
        zoo.load_model("earthformer-icar-enso")
    assert not bad.exists()
    bad.write_bytes(golden_weights.read_bytes())
    model = zoo.load_model("earthformer-icar-enso")
    assert model.verified


def test_unreadable_or_mismatched_checkpoint(clean_env, tmp_path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not read"):
        zoo.load_model(junk, config="earthformer-icar-enso")
    small = tmp_path / "small.pt"
    torch.save({"z_proj.weight": torch.zeros(2, 2)}, small)
    with pytest.raises(CheckpointError, match="missing keys"):
        zoo.load_model(small, config="earthformer-icar-enso")


def test_model_directory_corrupt_weights(clean_env, tmp_path) -> None:
    path = save_toy_model(tmp_path / "toy", "enso")
    with open(path / "weights.pt", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ModelDirError, match="corrupt"):
        zoo.load_model(path)
    with pytest.raises(ModelDirError, match="not an xearthformer model directory"):
        zoo.load_model(str(tmp_path) + os.sep)


def test_every_load_uses_weights_only(clean_env, golden_weights, tmp_path, monkeypatch) -> None:
    seen = []
    real = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    zoo.load_model("earthformer-icar-enso", weights=golden_weights)
    zoo.load_model(save_toy_model(tmp_path / "toy", "enso"))
    assert seen and all(flag is True for flag in seen)


def test_loaded_model_runs_on_its_contract(tmp_path) -> None:
    model = zoo.load_model(save_toy_model(tmp_path / "toy", "storms", size=16))
    c = model.contract
    with torch.no_grad():
        y = model.module(torch.zeros(1, c.in_len, *c.grid_shape, 1))
    assert tuple(y.shape) == (1, c.out_len, *c.grid_shape, 1)
    assert np.isfinite(y.numpy()).all()
