"""Training loops of the PreDiff networks: they learn, are reproducible, and reject bad input."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from einops import rearrange

from xearthformer._precision import reduction_error
from xearthformer.diffusion import NoiseSchedule
from xearthformer.diffusion.training import (
    TrainingDataError,
    seeded_init,
    standardise_latents,
    train_alignment,
    train_autoencoder,
    train_denoiser,
    window_batches,
)
from xearthformer.models import (
    AutoencoderKL,
    AutoencoderKLConfig,
    CuboidTransformerUNet,
    NoisyCuboidTransformerEncoder,
)

T_IN, T_OUT = 2, 2
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_demo_prediff.py"


def make_vae(seed: int = 0) -> AutoencoderKL:
    with seeded_init(seed):
        return AutoencoderKL(AutoencoderKLConfig(block_out_channels=(4, 8), layers_per_block=1,
                                                 latent_channels=2, norm_num_groups=4))


def make_unet(seed: int = 1) -> CuboidTransformerUNet:
    with seeded_init(seed):
        return CuboidTransformerUNet((T_IN, 4, 4, 2), (T_OUT, 4, 4, 2), base_units=8,
                                     num_heads=2, depth=(1, 1), block_attn_patterns="axial")


def make_alignment(seed: int = 2) -> NoisyCuboidTransformerEncoder:
    with seeded_init(seed):
        return NoisyCuboidTransformerEncoder((T_OUT, 4, 4, 2), base_units=8, num_heads=2,
                                             depth=(1, 1), block_attn_patterns="axial",
                                             out_len=T_OUT)


@pytest.fixture(scope="module")
def windows():
    """16 smooth 8x8 'storms': a bright blob whose amplitude varies between windows."""
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    amp = torch.rand(16, 1, 1, 1, generator=gen)
    cy, cx = 2 + 4 * torch.rand(2, 16, 1, 1, 1, generator=gen)
    blob = amp * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6.0)  # "n t h w"
    video = blob.expand(16, T_IN + T_OUT, 8, 8)[..., None].contiguous()
    return video[:, :T_IN], video[:, T_IN:]


def batches(windows, seed=0, batch_size=4):
    return window_batches(*windows, batch_size=batch_size, seed=seed)


def frame_means(target):
    return target.mean(dim=(2, 3, 4)) * 4.0 - 1.0  # "b t", order one


@pytest.fixture(scope="module")
def trained_vae(windows):
    vae = make_vae()
    train_autoencoder(vae, batches(windows), steps=25, lr=1e-2, seed=0)
    frames = rearrange(windows[1], "n t h w c -> (n t) c h w")
    standardise_latents(vae, frames)
    return vae


def fixed_losses(unet, alignment, vae, windows, schedule):
    """Denoiser and alignment losses on fixed windows, steps and noise (before/after training)."""
    gen = torch.Generator().manual_seed(123)
    context, target = windows

    def encode(x):
        frames = vae.encode(rearrange(x, "b t h w c -> (b t) c h w")).mode()
        return rearrange(frames, "(b t) c h w -> b t h w c", b=x.shape[0])

    with torch.no_grad():
        z_cond, z0 = encode(context), encode(target)
        t = torch.randint(0, schedule.num_timesteps // 2, (z0.shape[0],), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        z_t = schedule.q_sample(z0, t, noise)
        eps_loss = float((unet(z_t, t, z_cond) - noise).square().mean())
        align_loss = float((alignment(z_t, t)[..., 0] - frame_means(target)).square().mean())
    return eps_loss, align_loss


def test_autoencoder_loss_decreases(windows):
    history = train_autoencoder(make_vae(), batches(windows), steps=25, lr=1e-2, seed=0)
    assert history.steps == 25 and len(history.extra["kl"]) == 25
    assert history.mean_loss(last=5) < 0.5 * history.mean_loss(first=5)


def test_denoiser_and_alignment_losses_decrease(windows, trained_vae):
    schedule = NoiseSchedule()
    unet, alignment = make_unet(), make_alignment()
    eps_before, align_before = fixed_losses(unet, alignment, trained_vae, windows, schedule)
    history = train_denoiser(unet, trained_vae, batches(windows), schedule, steps=15, lr=3e-3,
                             seed=0)
    assert history.steps == 15
    assert not any(p.requires_grad for p in trained_vae.parameters())  # the VAE stays frozen
    history = train_alignment(alignment, trained_vae, batches(windows), schedule, frame_means,
                              steps=15, lr=3e-3, seed=0)
    assert history.steps == 15
    eps_after, align_after = fixed_losses(unet, alignment, trained_vae, windows, schedule)
    assert eps_after < 0.8 * eps_before
    assert align_after < 0.8 * align_before


def test_same_seed_same_weights(windows, trained_vae):
    def run(seed):
        unet = make_unet()
        train_denoiser(unet, trained_vae, batches(windows, seed=seed), NoiseSchedule(),
                       steps=3, seed=seed)
        return unet.state_dict()

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_autoencoder_same_seed_same_weights(windows):
    def run():
        vae = make_vae()
        train_autoencoder(vae, batches(windows), steps=3, seed=5, max_frames=6)
        return vae.state_dict()

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_global_rng_untouched(windows, trained_vae):
    state = torch.get_rng_state()
    make_unet()
    train_alignment(make_alignment(), trained_vae, batches(windows), NoiseSchedule(), frame_means,
                    steps=2, seed=0)
    assert torch.equal(state, torch.get_rng_state())


def test_standardise_latents_keeps_reconstruction(windows):
    vae = make_vae().eval()
    frames = rearrange(windows[1], "n t h w c -> (n t) c h w")
    with torch.no_grad():
        before = vae(frames)
    scale = standardise_latents(vae, frames)
    assert scale > 0
    with torch.no_grad():
        # float32 std over the latents (reduction_error of their count, ~1e-5 here for
        # thousands of values) and a scale applied then removed (2 u32 per element, carried
        # through the tiny decoder): torch's float32 defaults of assert_close are of that size
        n = vae.encode(frames).mode().numel()
        assert abs(float(vae.encode(frames).mode().std()) - 1.0) <= reduction_error(n, torch.float32)
        torch.testing.assert_close(vae(frames), before, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("context", "target", "match"),
    [
        (torch.zeros(2, 2, 8, 8), torch.zeros(2, 2, 8, 8), "'b t h w c'"),  # 4-D
        (torch.zeros(2, 2, 8, 8, 1), torch.zeros(2, 2, 4, 4, 1), "same b, h, w, c"),
        (torch.zeros(2, 2, 8, 8, 1), torch.zeros(3, 2, 8, 8, 1), "same b, h, w, c"),
        (torch.zeros(2, 2, 8, 8, 1, dtype=torch.uint8), torch.zeros(2, 2, 8, 8, 1), "float"),
    ],
)
def test_bad_batches_raise(context, target, match):
    with pytest.raises(ValueError, match=match):
        train_autoencoder(make_vae(), [(context, target)], steps=1)


def test_bad_inputs_raise(windows, trained_vae):
    with pytest.raises(TrainingDataError, match="ran out after 1 of 3 steps"):
        train_autoencoder(make_vae(), [windows], steps=3)
    with pytest.raises(TrainingDataError, match="steps must be a positive int"):
        train_denoiser(make_unet(), trained_vae, batches(windows), NoiseSchedule(), steps=0)
    with pytest.raises(TrainingDataError, match="does not broadcast"):
        train_alignment(make_alignment(), trained_vae, batches(windows), NoiseSchedule(),
                        lambda target: torch.zeros(4, 5), steps=1)
    with pytest.raises(TrainingDataError, match="same n"):
        window_batches(torch.zeros(3, 2, 8, 8, 1), torch.zeros(4, 2, 8, 8, 1), batch_size=2)
    with pytest.raises(TrainingDataError, match="batch_size"):
        window_batches(*windows, batch_size=100)


@pytest.mark.slow
def test_demo_script_quick(tmp_path):
    """The demo training script end to end (tiny budget), and its model-directory contract."""
    from xearthformer.diffusion import NoiseScheduleConfig
    from xearthformer.zoo.model_dir import load_model_dir

    spec = importlib.util.spec_from_file_location("train_demo_prediff", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # dataclasses look their module up there
    try:
        spec.loader.exec_module(script)
    finally:
        del sys.modules[spec.name]
    script.main(["--quick", "--out-dir", str(tmp_path), "--threads", "1"])
    for name in ("enso", "storms"):
        card, weights = load_model_dir(tmp_path / f"prediff-demo-{name}")
        assert card.kind == "prediff" and card.demo
        assert set(weights) == {"vae", "denoiser", "alignment"}
        kwargs = card.official_kwargs
        AutoencoderKL.from_official_kwargs(kwargs["vae"]).load_state_dict(weights["vae"])
        CuboidTransformerUNet.from_official_kwargs(kwargs["denoiser"]).load_state_dict(
            weights["denoiser"])
        NoisyCuboidTransformerEncoder.from_official_kwargs(kwargs["alignment"]).load_state_dict(
            weights["alignment"])
        NoiseScheduleConfig(**kwargs["schedule"])
        assert {"quantity", "mu", "sigma"} <= set(card.contract.alignment)
        assert "guide_scale" in card.training
        assert (tmp_path / f"prediff-demo-{name}" / "report.md").read_text().startswith("# ")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks: one thread avoids OpenMP overhead (large on a shared, busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_time_embed_resblock_backward_without_input_grad():
    # torch 2.13's CPU GroupNorm backward crashed on the channels-last 5-D view this block
    # used to pass when the input did not require grad (parameters still do)
    import torch

    from xearthformer.models.time_embedding import TimeEmbedResBlock

    block = TimeEmbedResBlock(8, emb_channels=4, out_channels=8)
    out = block(torch.randn(2, 3, 4, 4, 8), torch.randn(2, 4))
    out.square().mean().backward()
    assert all(p.grad is not None for p in block.parameters() if p.requires_grad)
