"""EarthNet2021 Earthformer (``CuboidTransformerAuxModel``): official names and golden outputs.

The golden cases in ``tests/data/earthnet2021`` were made with the official code by
``scripts/make_earthnet_goldens.py`` (seeded weights stored as float16, exactly the float32
weights the references were computed with). Tolerances: ``golden_tolerance`` (the golden
README's 1e-4 and 1e-10 of max(1, absmax), derived in ``xearthformer/_precision.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xearthformer._precision import golden_tolerance
from xearthformer.models import EarthformerAux, EarthformerAuxConfig, load_official_checkpoint
from xearthformer.nn._validation import ConfigError

DATA = Path(__file__).resolve().parents[1] / "data" / "earthnet2021"
CASES = ("earthnet_tiny", "earthnet_tiny_up")
# golden README 4.2, relative to max(1, |ref|); golden_tolerance says what each rests on
TOL = {torch.float32: ("output.pt", golden_tolerance(torch.float32)),
       torch.float64: ("output_fp64.pt", golden_tolerance(torch.float64))}


def _case(case: str):
    info = json.loads((DATA / case / "info.json").read_text())
    state = torch.load(DATA / case / "state_dict_fp16.pt", weights_only=True)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    return info, state, torch.load(DATA / case / "inputs.pt", weights_only=True)


def _scaled_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y - ref).abs().max() / max(1.0, float(ref.abs().max())))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES)
def test_reproduces_the_official_outputs(case, dtype) -> None:
    info, state, inputs = _case(case)
    model = load_official_checkpoint(EarthformerAux.from_official_kwargs(info["kwargs"]), state)
    model = model.to(dtype).eval()
    filename, tol = TOL[dtype]
    ref = torch.load(DATA / case / filename, weights_only=True)
    with torch.no_grad():
        y = model(**{k: v.to(dtype) for k, v in inputs.items()})
    assert y.dtype == dtype and y.shape == ref.shape
    error = _scaled_error(y, ref)
    print(f"{case} {str(dtype)[6:]}: max |y - official| / max(1, absmax) = {error:.1e} (tol {tol:g})")
    assert error <= tol


@pytest.mark.parametrize("case", CASES)
def test_state_dict_and_computed_index_buffers_match_the_official(case) -> None:
    info, state, _ = _case(case)
    own = EarthformerAux.from_official_kwargs(info["kwargs"]).state_dict()
    assert {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in state.items()}
    index = [k for k in state if k.endswith("relative_position_index")]
    assert index and all(torch.equal(own[k], state[k]) for k in index)
    # the released layout: no z_proj, and dec_pos_embed kept although forward never uses it
    assert not any(k.startswith("z_proj") for k in own)
    assert any(k.startswith("dec_pos_embed") for k in own)
    assert any(k.startswith("initial_aux_encoder") for k in own)
    if info["kwargs"]["unet_dec_cross_mode"] == "up":
        assert not any(k.startswith("decoder.down_cross_blocks") for k in own)


def test_full_size_released_config_matches_the_official_manifest() -> None:
    manifest = json.loads((DATA / "manifest_earthnet_official.json").read_text())
    with torch.device("meta"):  # 60.6 M parameters never allocated
        model = EarthformerAux.from_official_kwargs(manifest["constructor_kwargs"])
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == {e["key"]: e["shape"] for e in manifest["state_dict"]}
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"] == 60_618_380
    dtypes = {e["key"]: e["dtype"] for e in manifest["state_dict"]}
    assert {k for k, d in dtypes.items() if d == "int64"} == {
        k for k in got if k.endswith("relative_position_index")}


def test_drivers_change_the_forecast_and_bad_inputs_are_named() -> None:
    info, state, inputs = _case("earthnet_tiny")
    model = load_official_checkpoint(EarthformerAux.from_official_kwargs(info["kwargs"]), state).eval()
    with torch.no_grad():
        base = model(**inputs)
        moved = model(inputs["x"], inputs["aux_enc"], inputs["aux_dec"] + 1.0)
    assert not torch.allclose(base, moved)
    with pytest.raises(ConfigError, match="aux_dec"):
        model(inputs["x"], inputs["aux_enc"], inputs["aux_dec"][..., :6])
    with pytest.raises(ConfigError, match="expected input"):
        model(inputs["x"][:, :2], inputs["aux_enc"], inputs["aux_dec"])
    with pytest.raises(ConfigError, match="unet_dec_cross_mode"):
        EarthformerAuxConfig.from_official_kwargs({**info["kwargs"], "unet_dec_cross_mode": "sideways"})
    with pytest.raises(ConfigError, match="z_init_method"):
        EarthformerAuxConfig.from_official_kwargs({**info["kwargs"], "z_init_method": "zeros"})
