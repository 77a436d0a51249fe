"""The ``prediff-sevirlr`` zoo entry: the official PreDiff SEVIR-LR files, loaded and used.

The full-size configuration is checked against the official key/shape manifests (built on the
meta device, nothing allocated). Loading and the ensemble path are checked with the golden
tiny models (official code, seeded weights) saved under the three official file names and an
entry whose configuration is the tiny one; the loaded modules must reproduce the official
outputs within the golden README's float32 tolerance (1e-4 of max(1, absmax)).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xearthformer
from xearthformer._precision import golden_tolerance
from xearthformer import _ensemble
from xearthformer.models import (
    AutoencoderKL,
    CheckpointError,
    CuboidTransformerUNet,
    NoisyCuboidTransformerEncoder,
)
from xearthformer.zoo import WeightsUnavailableError, clear_cache, load_model, registry
from xearthformer.zoo.model_dir import InputContract

NAME = "prediff-sevirlr"
FILES = dict(registry.get_entry(NAME).files)
TINY = {"vae": "vae_tiny", "denoiser": "unet_tiny", "alignment": "alignment_tiny"}
#: the golden README's float32 tolerance, relative to max(1, absmax of the reference)
TOL32 = golden_tolerance("float32")


def _scaled_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y - ref).abs().max() / max(1.0, float(ref.abs().max())))


@pytest.fixture
def tiny_entry(golden_dir, monkeypatch):
    """The entry with the golden tiny configuration: 3 -> 2 frames of 64 x 96 (latent 8 x 12 x 4)."""
    kwargs = {part: json.loads((golden_dir / "prediff/tiny" / case / "kwargs.json").read_text())
              for part, case in TINY.items()}
    read = registry._read_config
    kwargs["schedule"] = read("prediff_sevirlr.json")["schedule"]
    official = registry._sevirlr_contract()

    def contract() -> InputContract:
        return dataclasses.replace(official, in_len=3, out_len=2, grid_shape=(64, 96))

    entry = dataclasses.replace(registry.get_entry(NAME), _contract=contract)
    monkeypatch.setattr(registry, "_read_config",
                        lambda name: kwargs if name == "prediff_sevirlr.json" else read(name))
    monkeypatch.setitem(registry._OFFICIAL, NAME, entry)
    clear_cache()
    yield entry
    clear_cache()


@pytest.fixture
def official_files(golden_dir, tmp_path) -> Path:
    """The tiny golden state_dicts under the official file names, in the official layout."""
    root = tmp_path / "pretrained"
    for part, case in TINY.items():
        sub = root / {"vae": "vae", "denoiser": "earthformerunet", "alignment": "alignment"}[part]
        sub.mkdir(parents=True)
        shutil.copy(golden_dir / "prediff/tiny" / case / "state_dict.pt", sub / FILES[part])
    return root


def _located(root: Path) -> dict[str, Path]:
    return {part: next(root.rglob(name)) for part, name in FILES.items()}


def test_entry_is_listed_with_its_contract() -> None:
    rows = {row["name"]: row for row in xearthformer.list_models()}
    row = rows[NAME]
    assert (row["kind"], row["source"], row["in_len"], row["out_len"]) == ("prediff", "official", 7, 6)
    assert row["step"] == "10 minutes" and row["grid"] == "128 x 128 (y, x)"
    assert row["normalisation"] == "(x - 0) / 255" and row["alignment"] == "mean_future_intensity"
    assert all(name in row["url"] for name in FILES.values())
    card = registry.get_entry(NAME).card()
    info = card.contract.alignment
    # the official alignment network is trained on mean(VIL / 255): the card says so
    assert "VIL / 255" in info["prediction"] and info["target_units"] == "x/255"
    assert card.training["guide_scale"] == 50.0 and card.training["control"] == "mean_shift"


@pytest.mark.parametrize("part, cls, manifest", [
    ("vae", AutoencoderKL, "manifest_vae_official.json"),
    ("denoiser", CuboidTransformerUNet, "manifest_unet_official.json"),
    ("alignment", NoisyCuboidTransformerEncoder, "manifest_alignment_official.json"),
])
def test_full_size_config_matches_the_official_manifests(golden_dir, part, cls, manifest) -> None:
    expected = json.loads((golden_dir / "prediff/official" / manifest).read_text())
    with torch.device("meta"):  # the full-size weights (up to 547 MB) are never allocated
        module = cls.from_official_kwargs(registry.official_kwargs(NAME)[part])
    got = {k: list(v.shape) for k, v in module.state_dict().items()}
    assert got == {e["key"]: e["shape"] for e in expected["state_dict"]}


def test_alignment_target_is_mean_vil_over_255() -> None:
    c = registry.get_entry(NAME).contract()
    for k in (-1.0, 0.0, 2.0):
        expected = (registry.SEVIR_VIL_MEAN + k * registry.SEVIR_VIL_STD) / 255.0
        # the same float64 expression in another order: a few units of roundoff (2**-53)
        assert _ensemble.alignment_target(c, k) == pytest.approx(expected, rel=1e-15)


def test_files_from_a_folder_a_mapping_or_the_cache_reproduce_the_official_outputs(
        tiny_entry, official_files, golden_dir, monkeypatch) -> None:
    by_folder = load_model(NAME, weights=official_files)
    by_mapping = load_model(NAME, weights={k: str(v) for k, v in _located(official_files).items()})
    monkeypatch.setenv("XEARTHFORMER_CACHE", str(official_files))
    monkeypatch.setenv("XEARTHFORMER_OFFLINE", "1")
    by_cache = load_model(NAME)
    assert by_folder is load_model(NAME, weights=official_files)  # cached per process
    for model in (by_folder, by_mapping, by_cache):
        assert set(model.modules) == {"vae", "denoiser", "alignment"} and not model.verified
        assert model.sha256.count(":") == 3 and "alignment:" in model.sha256
    tiny = golden_dir / "prediff/tiny"
    m = by_folder.modules
    with torch.no_grad():
        i, o = (torch.load(tiny / "unet_tiny" / f, weights_only=True) for f in ("inputs.pt", "outputs.pt"))
        assert _scaled_error(m["denoiser"](i["x"], i["t"], i["cond"]), o["eps_pred"]) <= TOL32
        i, o = (torch.load(tiny / "alignment_tiny" / f, weights_only=True) for f in ("inputs.pt", "outputs.pt"))
        assert _scaled_error(m["alignment"](i["zt"], i["t"]), o["pred"]) <= TOL32
        i, o = (torch.load(tiny / "vae_tiny" / f, weights_only=True) for f in ("inputs.pt", "outputs.pt"))
        assert _scaled_error(m["vae"].decode(i["z"]), o["decode_of_z"]) <= TOL32


def _vil(n_times: int = 3) -> xr.DataArray:
    rng = np.random.default_rng(0)
    time = pd.date_range("2019-06-01 12:00", periods=n_times, freq="10min")
    values = rng.uniform(0, 80, size=(n_times, 64, 96)).astype(np.float32)
    return xr.DataArray(values, dims=("time", "y", "x"),
                        coords={"time": time, "y": np.arange(64.0), "x": np.arange(96.0)},
                        name="vil", attrs={"units": "1", "long_name": "VIL"})


def test_ensemble_with_knowledge_control_through_the_official_alignment_network(
        tiny_entry, official_files, monkeypatch) -> None:
    seen = []
    original = _ensemble.alignment_target
    monkeypatch.setattr(_ensemble, "alignment_target",
                        lambda c, k: seen.append(original(c, k)) or seen[-1])
    ens = xearthformer.ensemble(_vil(), model=NAME, weights=official_files, n=2,
                                kc_sigma=[-1.0, 1.0], steps=2, progress=False)
    free = _vil().earthformer.ensemble(model=NAME, weights=official_files, n=2, steps=2,
                                       progress=False)  # the accessor: the same function
    assert dict(ens.sizes) == {"init": 1, "kc_sigma": 2, "member": 2, "lead": 2, "y": 64, "x": 96}
    assert ens["lead"].attrs["units"] == "minutes" and ens["lead"].values.tolist() == [10, 20]
    assert np.isfinite(ens.values).all() and ens.min() >= 0 and ens.max() <= 255
    # the network got the normalised target, the attrs the physical one (float64, a few ulps)
    mu, sigma = registry.SEVIR_VIL_MEAN, registry.SEVIR_VIL_STD
    assert seen == pytest.approx([(mu - sigma) / 255, (mu + sigma) / 255], rel=1e-12)
    assert ens.attrs["kc_target"] == pytest.approx([mu - sigma, mu + sigma], rel=1e-12)
    assert ens.attrs["forecast_model"] == NAME and ens.attrs["checkpoint_sha256"].count(":") == 3
    # same noise in every scenario: the control alone makes them differ
    low, high = (ens.isel(kc_sigma=i).values for i in range(2))
    assert not np.allclose(free.values, low) and not np.allclose(low, high)


def test_a_missing_file_is_named_with_where_to_get_it(tiny_entry, official_files) -> None:
    located = _located(official_files)
    located["denoiser"].unlink()
    with pytest.raises(WeightsUnavailableError) as err:
        load_model(NAME, weights=official_files)
    text = str(err.value)
    assert FILES["denoiser"] in text and FILES["vae"] not in text
    assert "download_pretrained.py" in text and str(official_files) in text
    with pytest.raises(WeightsUnavailableError, match=FILES["denoiser"]):
        load_model(NAME, weights={"vae": located["vae"], "alignment": located["alignment"]})


def test_offline_without_files_names_all_three(tiny_entry, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XEARTHFORMER_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("XEARTHFORMER_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as err:
        load_model(NAME)
    assert all(name in str(err.value) for name in FILES.values())
    assert str(tmp_path / "empty") in str(err.value)


def test_bad_weights_arguments(tiny_entry, official_files) -> None:
    located = _located(official_files)
    with pytest.raises(WeightsUnavailableError, match="one file"):
        load_model(NAME, weights=located["vae"])
    with pytest.raises(WeightsUnavailableError, match="unknown part"):
        load_model(NAME, weights={**located, "unet": located["denoiser"]})
    swapped = {**located, "vae": located["alignment"]}
    with pytest.raises(CheckpointError, match="vae"):
        load_model(NAME, weights=swapped)
    located["alignment"].write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="alignment"):
        load_model(NAME, weights=official_files)


def test_wrong_grid_is_refused(tiny_entry, official_files) -> None:
    with pytest.raises(ValueError, match="64"):
        xearthformer.ensemble(_vil().isel(x=slice(0, 48)), model=NAME, weights=official_files,
                              n=1, steps=1, progress=False)
