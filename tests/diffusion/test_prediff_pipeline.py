"""PreDiffPipeline with small stand-ins (the real UNet and alignment net plug in the same way)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from xearthformer.diffusion import DDIMSampler, DDPMSampler, NoiseSchedule, PreDiffPipeline
from xearthformer.diffusion.schedule import NoiseScheduleConfig
from xearthformer.models.prediff_vae import AutoencoderKL, AutoencoderKLConfig
from xearthformer.nn._validation import ConfigError


def pooling_vae():
    """Encode = 2x2 average pooling (posterior mode), decode = nearest upsampling."""
    return SimpleNamespace(
        encode=lambda x: SimpleNamespace(mode=lambda: F.avg_pool2d(x, 2)),
        decode=lambda z: F.interpolate(z, scale_factor=2.0),
    )


def recording_denoiser(log):
    def denoiser(z_t, t, cond):
        log.append((z_t.shape, t.clone(), cond))
        return 0.1 * z_t

    return denoiser


def frame_means(z, t):
    return z.mean(dim=(2, 3, 4))[..., None]


@pytest.fixture
def sampler():
    return DDPMSampler(NoiseSchedule(NoiseScheduleConfig(timesteps=20)))


@pytest.fixture
def context():
    return torch.rand(2, 3, 8, 8, 1, generator=torch.Generator().manual_seed(0))


def test_pipeline_encodes_context_loops_and_decodes(sampler, context):
    log = []
    pipe = PreDiffPipeline(pooling_vae(), recording_denoiser(log), sampler)
    forecast, latents = pipe(
        context, num_frames=4, generator=torch.Generator().manual_seed(1), return_latents=True
    )
    assert forecast.shape == (2, 4, 8, 8, 1) and latents.shape == (2, 4, 4, 4, 1)
    assert [int(t[0]) for _, t, _ in log] == list(range(19, -1, -1))
    z_cond = log[0][2]
    expected = F.avg_pool2d(context[:, 1].permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    assert z_cond.shape == (2, 3, 4, 4, 1) and torch.allclose(z_cond[:, 1], expected)
    assert torch.equal(forecast, pipe.decode(latents))


def test_pipeline_is_reproducible_and_shares_initial_noise(sampler, context):
    pipe = PreDiffPipeline(pooling_vae(), recording_denoiser([]), sampler, frame_means)
    a = pipe(context, num_frames=2, generator=torch.Generator().manual_seed(3))
    b = pipe(context, num_frames=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    z_T = torch.randn(2, 2, 4, 4, 1, generator=torch.Generator().manual_seed(4))
    low = pipe(
        context, num_frames=2, z_T=z_T, target=-1.0, generator=torch.Generator().manual_seed(5)
    )
    high = pipe(
        context, num_frames=2, z_T=z_T, target=1.0, generator=torch.Generator().manual_seed(5)
    )
    assert bool((high.mean(dim=(1, 2, 3, 4)) > low.mean(dim=(1, 2, 3, 4))).all())


def test_pipeline_with_a_real_tiny_vae_and_ddim(context):
    vae = AutoencoderKL(
        AutoencoderKLConfig(
            block_out_channels=(4, 8), latent_channels=2, norm_num_groups=2, layers_per_block=1
        )
    ).eval()
    pipe = PreDiffPipeline(vae, lambda z, t, c: torch.zeros_like(z), DDIMSampler(num_steps=5))
    out = pipe(context, num_frames=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 2, 8, 8, 1) and torch.isfinite(out).all()


def test_pipeline_errors(sampler, context):
    pipe = PreDiffPipeline(pooling_vae(), recording_denoiser([]), sampler)
    with pytest.raises(ConfigError, match="alignment"):
        pipe(context, num_frames=2, target=0.5)
    with pytest.raises(ConfigError, match="num_frames"):
        pipe(context, num_frames=0)
    with pytest.raises(ConfigError, match="z_T"):
        pipe(context, num_frames=2, z_T=torch.zeros(2, 3, 4, 4, 1))
    with pytest.raises(ConfigError):
        pipe(context[0], num_frames=2)
    with pytest.raises(ConfigError):
        PreDiffPipeline(pooling_vae(), "not callable", sampler)
    with pytest.raises(ConfigError):
        PreDiffPipeline(pooling_vae(), recording_denoiser([]), object())
