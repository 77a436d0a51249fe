"""Official timestep embedding, TimeEmbedLayer and TimeEmbedResBlock (names and numerics)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from xearthformer._precision import float32_trig_error, golden_tolerance, reduction_error
from xearthformer.models.time_embedding import (
    TimeEmbedLayer,
    TimeEmbedResBlock,
    official_group_count,
    timestep_embedding,
)
from xearthformer.nn._validation import ConfigError


def sub_state_dict(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def unet_case(golden_dir):
    case = golden_dir / "prediff" / "tiny" / "unet_tiny"
    return (
        torch.load(case / "state_dict.pt", weights_only=True),
        json.loads((case / "kwargs.json").read_text()),
        torch.load(case / "inputs.pt", weights_only=True),
        case,
    )


@pytest.mark.golden
@pytest.mark.parametrize("filename", ["outputs.pt", "outputs_fp64.pt"])
def test_timestep_embedding_matches_official(unet_case, filename):
    _, kwargs, inputs, case = unet_case
    ref = torch.load(case / filename, weights_only=True)["timestep_embedding"]
    dim = kwargs["base_units"]
    emb = timestep_embedding(inputs["t"], dim)
    assert emb.dtype == torch.float32  # always float32, as the official code
    # Float32 cos/sin of t * f_i round differently on each CPU: bound each element by its own
    # argument (float32_trig_error: ~1e-3 at t = 903, ~2e-6 for the lowest frequencies).
    freqs = torch.exp(-math.log(10000.0) * torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    args = (inputs["t"][:, None].double() * freqs[None]).repeat(1, 2)  # [cos, sin] columns
    bound = torch.from_numpy(float32_trig_error(args.numpy()))
    assert bool(((emb.double() - ref.double()).abs() <= bound).all())
    # the check has teeth: swapping the [cos, sin] halves breaks it by O(1)
    swapped = torch.cat([emb[:, dim // 2 :], emb[:, : dim // 2]], dim=-1)
    assert not bool(((swapped.double() - ref.double()).abs() <= bound).all())


def test_timestep_embedding_is_cos_then_sin_and_float32():
    t = torch.tensor([0, 3], dtype=torch.int64)
    emb = timestep_embedding(t, 6)
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(3) / 3)
    assert torch.allclose(emb[1, :3], torch.cos(3 * freqs))
    assert torch.allclose(emb[1, 3:], torch.sin(3 * freqs))
    assert timestep_embedding(t.double(), 7).shape == (2, 7)  # odd: a zero column
    assert float(timestep_embedding(t, 7)[:, -1].abs().max()) == 0.0
    assert timestep_embedding(t.double(), 4).dtype == torch.float32
    with pytest.raises(ConfigError):
        timestep_embedding(torch.zeros(2, 1), 4)


def _reference_resblock(state: dict, x, emb, groups_in, groups_out, skip: bool):
    """Independent functional version of the official forward, on 'b c t h w'."""
    h = F.conv3d(
        F.silu(F.group_norm(x, groups_in, state["in_layers.0.weight"], state["in_layers.0.bias"])),
        state["in_layers.2.weight"],
        state["in_layers.2.bias"],
        padding=1,
    )
    if emb is not None:
        h = (
            h
            + F.linear(F.silu(emb), state["emb_layers.1.weight"], state["emb_layers.1.bias"])[
                :, :, None, None, None
            ]
        )
    h = F.group_norm(h, groups_out, state["out_layers.0.weight"], state["out_layers.0.bias"])
    h = F.conv3d(F.silu(h), state["out_layers.3.weight"], state["out_layers.3.bias"], padding=1)
    if skip:
        x = F.conv3d(x, state["skip_connection.weight"], state["skip_connection.bias"])
    return x + h


@pytest.mark.golden
@pytest.mark.parametrize(
    ("prefix", "channels", "out_channels", "emb_channels"),
    [
        ("first_proj.", 5, 64, None),  # 4 latent channels + the indicator: GroupNorm(5, 5)
        ("down_time_embed_blocks.0.", 64, 64, 256),
        ("down_time_embed_blocks.1.", 128, 128, 256),
        ("up_time_embed_blocks.0.", 64, 64, 256),
        ("up_time_embed_blocks.1.", 128, 128, 256),
    ],
)
def test_resblocks_load_unet_tiny_weights_and_follow_official_forward(
    unet_case, prefix, channels, out_channels, emb_channels
):
    state = sub_state_dict(unet_case[0], prefix)
    block = TimeEmbedResBlock(channels, emb_channels, out_channels).eval()
    block.load_state_dict(state, strict=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 6, channels, generator=gen, dtype=torch.float64)  # "b t h w c"
    emb = None if emb_channels is None else torch.randn(2, emb_channels, generator=gen).double()
    block = block.double()
    with torch.no_grad():
        ours = block(x, emb)
    ref = _reference_resblock(
        {k: v.double() for k, v in state.items()},
        x.permute(0, 4, 1, 2, 3),
        emb,
        official_group_count(channels),
        official_group_count(out_channels),
        skip=channels != out_channels,
    ).permute(0, 2, 3, 4, 1)
    # float64 against float64 summed in another order: two 3x3x3 convolutions over at most
    # 128 channels, so reduction_error(27 * 128, float64) per conv, relative to the output scale
    tol = 2 * reduction_error(27 * 128, torch.float64) * max(1.0, float(ref.abs().max()))
    assert float((ours - ref).abs().max()) <= tol


@pytest.mark.golden
def test_alignment_first_proj_and_time_embed_load(golden_dir, unet_case):
    align = torch.load(golden_dir / "prediff/tiny/alignment_tiny/state_dict.pt", weights_only=True)
    TimeEmbedResBlock(4, None, 64).load_state_dict(
        sub_state_dict(align, "first_proj."), strict=True
    )
    for state in (align, unet_case[0]):
        layer = TimeEmbedLayer(64, 256)
        layer.load_state_dict(sub_state_dict(state, "time_embed."), strict=True)


@pytest.mark.golden
def test_resblock_key_names_match_unet_manifest(golden_dir):
    manifest = json.loads((golden_dir / "prediff/tiny/unet_tiny/manifest.json").read_text())
    expected = {
        e["key"]: e["shape"]
        for e in manifest["state_dict"]
        if "time_embed_blocks.0." in e["key"] and e["key"].startswith("down_")
    }
    ours = {
        "down_time_embed_blocks.0." + k: list(v.shape)
        for k, v in TimeEmbedResBlock(64, 256).state_dict().items()
    }
    assert ours == expected


def test_group_rule_cancels_embedding_for_per_channel_groups():
    """With C = 16 the GroupNorm has one group per channel and removes the added embedding."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4, 16, dtype=torch.float64)
    narrow = TimeEmbedResBlock(16, 8).eval().double()
    wide = TimeEmbedResBlock(64, 8).eval().double()
    e1, e2 = torch.randn(2, 8, dtype=torch.float64), torch.randn(2, 8, dtype=torch.float64)
    with torch.no_grad():
        # cancelled up to float64 rounding of the group mean (golden_tolerance(float64))
        assert torch.allclose(narrow(x, e1), narrow(x, e2), rtol=0,
                              atol=golden_tolerance(torch.float64))
        y = torch.randn(2, 3, 4, 4, 64, dtype=torch.float64)
        assert not torch.allclose(wide(y, e1), wide(y, e2), atol=1e-3)


def test_scale_shift_norm_variant_and_errors():
    block = TimeEmbedResBlock(32, 8, use_scale_shift_norm=True)
    assert block.emb_layers[1].out_features == 64
    assert block(torch.zeros(1, 2, 3, 3, 32), torch.zeros(1, 8)).shape == (1, 2, 3, 3, 32)
    with pytest.raises(ConfigError, match="emb must be given"):
        block(torch.zeros(1, 2, 3, 3, 32))
    with pytest.raises(ConfigError, match="c=32"):
        block(torch.zeros(1, 2, 3, 3, 16), torch.zeros(1, 8))
    with pytest.raises(ConfigError):
        TimeEmbedResBlock(0, 8)
    with pytest.raises(ConfigError):
        TimeEmbedResBlock(4, emb_channels=-1)
