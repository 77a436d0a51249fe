"""Earthformer construction errors, the checkpoint converter and training-mode behaviour."""

from __future__ import annotations

import json

import pytest
import torch

from xearthformer.models import CheckpointError, Earthformer, EarthformerConfig, load_official_checkpoint
from xearthformer.nn import CuboidSelfAttentionLayer

TINY = dict(input_shape=(4, 8, 16, 1), target_shape=(6, 8, 16, 1), base_units=32, enc_depth=(1, 1),
            dec_depth=(1, 1), enc_attn_patterns="axial", dec_self_attn_patterns="axial",
            dec_cross_attn_patterns="cross_1x1", num_global_vectors=0, z_init_method="zeros",
            initial_downsample_scale=(1, 1, 2), padding_type="zeros", ffn_activation="gelu",
            pos_embed_type="t+h+w")


@pytest.fixture(scope="module")
def tiny_model() -> Earthformer:
    torch.manual_seed(0)
    return Earthformer(EarthformerConfig(**TINY)).eval()


@pytest.mark.parametrize("bad", [(2, 4), (2, 4, 0), (2.0, 4, 4), "244", (2, 4, -1)])
def test_bad_cuboid_size_is_a_value_error(bad) -> None:
    with pytest.raises(ValueError, match="cuboid_size must be a tuple of three positive ints"):
        CuboidSelfAttentionLayer(16, 4, cuboid_size=bad)


def test_bad_cuboid_size_in_model_config() -> None:
    with pytest.raises(ValueError, match="tuple of three positive ints"):
        EarthformerConfig(**{**TINY, "enc_attn_patterns": None, "enc_cuboid_size": [(2, 4)],
                             "enc_cuboid_strategy": [("l", "l", "l")], "enc_shift_size": [(0, 0, 0)]})


def test_unknown_pattern_suggests_close_names() -> None:
    with pytest.raises(ValueError, match=r"unknown pattern 'axail'.*'axial'"):
        EarthformerConfig(**{**TINY, "enc_attn_patterns": "axail"})


def test_mismatched_depths_and_patterns() -> None:
    with pytest.raises(ValueError, match="one entry per hierarchy level"):
        EarthformerConfig(**{**TINY, "dec_depth": (1, 1, 1)})
    with pytest.raises(ValueError, match="has 3 entries but the model has 2 levels"):
        EarthformerConfig(**{**TINY, "enc_attn_patterns": ["axial"] * 3})


def test_unknown_kwarg_is_named() -> None:
    with pytest.raises(ValueError, match="unknown Earthformer arguments \\['base_unit'\\]"):
        EarthformerConfig.from_official_kwargs({**TINY, "base_unit": 3})


def test_wrong_input_shape_is_explained(tiny_model) -> None:
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 4, 8, 16, 1\)"):
        tiny_model(torch.zeros(1, 4, 8, 15, 1))


@pytest.mark.parametrize("layout", ["plain", "nested", "lightning"])
def test_converter_accepts_release_layouts(tmp_path, tiny_model, layout) -> None:
    sd = tiny_model.state_dict()
    if layout == "nested":
        obj = {"state_dict": sd, "epoch": 3}
    elif layout == "lightning":
        obj = {"state_dict": {f"torch_nn_module.{k}": v for k, v in sd.items()}}
    else:
        obj = sd
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    fresh = Earthformer(EarthformerConfig(**TINY))
    load_official_checkpoint(fresh, path)
    x = torch.randn(1, 4, 8, 16, 1)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), tiny_model(x))


def test_converter_lists_missing_and_unexpected_keys(tiny_model) -> None:
    sd = dict(tiny_model.state_dict())
    sd.pop("z_proj.weight")
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing keys: z_proj.weight[\s\S]*unexpected keys: extra.weight"):
        load_official_checkpoint(Earthformer(EarthformerConfig(**TINY)), sd)


def test_converter_reports_shape_mismatch(tiny_model) -> None:
    other = Earthformer(EarthformerConfig(**{**TINY, "base_units": 48}))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_official_checkpoint(other, tiny_model.state_dict())


def test_training_mode_dropout_and_gradients(tiny_model) -> None:
    cfg = EarthformerConfig(**{**TINY, "attn_drop": 0.1, "proj_drop": 0.1, "ffn_drop": 0.1})
    model = Earthformer(cfg).train()
    x = torch.randn(2, 4, 8, 16, 1)
    torch.manual_seed(1)
    y1 = model(x)
    torch.manual_seed(2)
    y2 = model(x)
    assert not torch.equal(y1, y2), "dropout should make training forwards differ"
    y1.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))


def test_official_kwargs_json_round_trip(tmp_path) -> None:
    cfg = EarthformerConfig(**TINY)
    path = tmp_path / "kwargs.json"
    path.write_text(json.dumps(cfg.to_official_kwargs()))
    assert EarthformerConfig.from_official_kwargs(json.loads(path.read_text())) == cfg
