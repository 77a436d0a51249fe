"""PreDiff autoencoder: official names (strict load, full manifest) and golden outputs."""

from __future__ import annotations

import json

import pytest
import torch

from xearthformer._precision import golden_tolerance
from xearthformer.models.prediff_vae import (
    AutoencoderKL,
    AutoencoderKLConfig,
    DiagonalGaussianDistribution,
)
from xearthformer.nn._validation import ConfigError

# golden README 4.2 (golden_tolerance says what each rests on); float64 runs take the
# float32-softmax bound instead, see below
FP_TOL = {torch.float32: ("outputs.pt", golden_tolerance(torch.float32)),
          torch.float64: ("outputs_fp64.pt", golden_tolerance(torch.float64))}


def max_scaled_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    scale = max(1.0, float(ref.abs().max()))
    return float((y.to(ref.dtype) - ref).abs().max()) / scale


@pytest.fixture(scope="module")
def vae_case(golden_dir):
    case = golden_dir / "prediff" / "tiny" / "vae_tiny"
    kwargs = json.loads((case / "kwargs.json").read_text())
    state = torch.load(case / "state_dict.pt", weights_only=True)
    inputs = torch.load(case / "inputs.pt", weights_only=True)
    return case, kwargs, state, inputs


@pytest.mark.golden
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_vae_tiny_reproduces_official_outputs(vae_case, dtype, fp64_through_fp32_softmax_tol):
    case, kwargs, state, inputs = vae_case
    vae = AutoencoderKL.from_official_kwargs(kwargs).eval()
    vae.load_state_dict(state, strict=True)
    vae = vae.to(dtype)
    filename, tol = FP_TOL[dtype]
    if dtype == torch.float64:  # every output passes a mid-block attention, float32 softmax as officially
        tol = fp64_through_fp32_softmax_tol
    ref = torch.load(case / filename, weights_only=True)
    with torch.no_grad():
        posterior = vae.encode(inputs["x"].to(dtype))
        outputs = {
            "posterior_mean": posterior.mean,
            "posterior_logvar": posterior.logvar,
            "decode_of_posterior_mean": vae.decode(posterior.mean),
            "decode_of_z": vae.decode(inputs["z"].to(dtype)),
        }
        assert torch.equal(vae(inputs["x"].to(dtype)), outputs["decode_of_posterior_mean"])
    for name, value in outputs.items():
        assert value.shape == ref[name].shape, name
        assert max_scaled_error(value, ref[name]) <= tol, name


@pytest.mark.golden
def test_vae_tiny_state_dict_matches_manifest(golden_dir, vae_case):
    _, kwargs, state, _ = vae_case
    manifest = json.loads((golden_dir / "prediff/tiny/vae_tiny/manifest.json").read_text())
    ours = AutoencoderKL.from_official_kwargs(kwargs).state_dict()
    assert list(ours) == list(state)
    assert {e["key"]: e["shape"] for e in manifest["state_dict"]} == {
        k: list(v.shape) for k, v in ours.items()
    }


@pytest.mark.golden
def test_full_size_vae_matches_official_manifest(golden_dir):
    manifest = json.loads((golden_dir / "prediff/official/manifest_vae_official.json").read_text())
    with torch.device("meta"):  # 338 MB of float32 never allocated
        vae = AutoencoderKL.from_official_kwargs(manifest["constructor_kwargs"])
    state = vae.state_dict()
    expected = [
        (e["key"], tuple(e["shape"]), e["dtype"], e["kind"]) for e in manifest["state_dict"]
    ]
    buffers = {name for name, _ in vae.named_buffers()}
    ours = [
        (
            k,
            tuple(v.shape),
            str(v.dtype).removeprefix("torch."),
            "buffer" if k in buffers else "parameter",
        )
        for k, v in state.items()
    ]
    assert sorted(ours) == sorted(expected)
    assert sum(p.numel() for p in vae.parameters()) == manifest["num_parameters"] == 84_499_393
    assert vae.config == AutoencoderKLConfig()  # the defaults are the official VAE
    assert vae.config.downsampling_factor == 8


def test_official_kwargs_round_trip():
    config = AutoencoderKLConfig(block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4)
    vae = AutoencoderKL(config)
    assert AutoencoderKL.from_official_kwargs(vae.official_kwargs()).config == config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"act_fn": "relu"},
        {"down_block_types": ["DownBlock2D"] * 4},
        {"up_block_types": ["UpDecoderBlock2D"] * 3},
        {"no_such_argument": 1},
        {"norm_num_groups": 5},
        {"latent_channels": 0},
    ],
)
def test_bad_official_kwargs_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        AutoencoderKLConfig.from_official_kwargs(kwargs)
    assert issubclass(ConfigError, ValueError)


def test_bad_input_shapes_raise():
    vae = AutoencoderKL(
        AutoencoderKLConfig(block_out_channels=(4, 4), latent_channels=2, norm_num_groups=2)
    )
    with pytest.raises(ConfigError, match="b c h w"):
        vae.encode(torch.zeros(1, 2, 1, 8, 8))  # a video, not frames
    with pytest.raises(ConfigError, match="multiples of 2"):
        vae.encode(torch.zeros(1, 1, 7, 8))
    with pytest.raises(ConfigError):
        vae.decode(torch.zeros(1, 3, 4, 4))


def test_posterior_clamps_samples_with_generator_and_kl():
    moments = torch.cat([torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 50.0)], dim=1)
    posterior = DiagonalGaussianDistribution(moments)
    assert float(posterior.logvar.max()) == 20.0
    moments[:, 3:] = -100.0
    assert float(DiagonalGaussianDistribution(moments).logvar.min()) == -30.0
    standard = DiagonalGaussianDistribution(torch.zeros(2, 6, 4, 4))
    a = standard.sample(generator=torch.Generator().manual_seed(3))
    b = standard.sample(generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, standard.mode())
    assert torch.equal(standard.kl(), torch.zeros(2))
    with pytest.raises(ConfigError):
        DiagonalGaussianDistribution(torch.zeros(1, 3, 2, 2))


def test_forward_sample_posterior_uses_generator():
    vae = AutoencoderKL(
        AutoencoderKLConfig(block_out_channels=(4, 4), latent_channels=2, norm_num_groups=2)
    ).eval()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        a = vae(x, sample_posterior=True, generator=torch.Generator().manual_seed(0))
        b = vae(x, sample_posterior=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
