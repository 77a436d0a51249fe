"""DDPM (official reverse step) and DDIM samplers."""

from __future__ import annotations

import json

import pytest
import torch

from xearthformer._precision import golden_tolerance, unit_roundoff
from xearthformer.diffusion import DDIMSampler, DDPMSampler, KnowledgeControl, NoiseSchedule
from xearthformer.diffusion.schedule import NoiseScheduleConfig
from xearthformer.nn._validation import ConfigError

STEP_OUTPUTS = ("z0_pred", "model_mean", "posterior_variance", "posterior_log_variance_clipped")


def max_scaled_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.to(ref.dtype) - ref).abs().max()) / max(1.0, float(ref.abs().max()))


@pytest.fixture(scope="module")
def step_case(golden_dir):
    case = golden_dir / "prediff/tiny/sampler_step_tiny"
    inputs = torch.load(case / "inputs.pt", weights_only=True)
    refs = {
        torch.float32: (torch.load(case / "outputs.pt", weights_only=True),
                        golden_tolerance(torch.float32)),
        torch.float64: (torch.load(case / "outputs_fp64.pt", weights_only=True),
                        golden_tolerance(torch.float64)),
    }
    return inputs, refs


def stored_eps(sampler: DDPMSampler, inputs: dict, refs: dict) -> torch.Tensor:
    """The UNet output of the golden step, recovered exactly from the float64 z0 prediction.

    ``outputs.pt`` stores no ``eps``; inverting ``z0 = a z_t - b eps`` in float64 with the
    official (float32, upcast) coefficients recovers it to ~1e-15.
    """
    ref64 = refs[torch.float64][0]
    return sampler.predict_noise_from_start(inputs["zt"].double(), inputs["t"], ref64["z0_pred"])


@pytest.mark.golden
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_ddpm_reverse_step_matches_official(step_case, dtype):
    inputs, refs = step_case
    ref, tol = refs[dtype]
    sampler = DDPMSampler()
    eps = stored_eps(sampler, inputs, refs).to(dtype)
    calls = []

    def denoiser(z_t, t, cond):  # stand-in for the UNet: returns its stored output
        calls.append((z_t, t, cond))
        return eps

    zt, zc = inputs["zt"].to(dtype), inputs["zc"].to(dtype)
    out = sampler.p_mean_variance(denoiser, zt, inputs["t"], zc)
    assert len(calls) == 1 and calls[0][2] is zc and torch.equal(calls[0][1], inputs["t"])
    ours = {
        "z0_pred": out.z0_pred,
        "model_mean": out.mean,
        "posterior_variance": out.variance,
        "posterior_log_variance_clipped": out.log_variance,
    }
    for name in STEP_OUTPUTS:
        assert ours[name].shape == ref[name].shape, name
        assert ours[name].dtype == dtype
        assert max_scaled_error(ours[name], ref[name]) <= tol, name


class _StoredShift:
    """Guidance stand-in returning the official ``alignment_mean_shift`` (no alignment net yet)."""

    def __init__(self, shift):
        self.shift = shift

    def shift_mean(self, mean, z_t, t, sigma):
        return mean - sigma * self.shift.to(mean.dtype)


@pytest.mark.golden
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_aligned_mean_composition_matches_official(step_case, dtype):
    """aligned_mean = model_mean - exp(0.5 * logvar_t) * alignment_mean_shift, through step()."""
    inputs, refs = step_case
    ref, tol = refs[dtype]
    sampler = DDPMSampler()
    eps = stored_eps(sampler, inputs, refs).to(dtype)
    guidance = _StoredShift(ref["alignment_mean_shift"])
    zt = inputs["zt"].to(dtype)
    # step() adds sigma_t * noise; the same generator reproduces that noise
    noise = torch.randn(zt.shape, generator=torch.Generator().manual_seed(7), dtype=dtype)
    z_prev = sampler.step(
        lambda z, t, c: eps,
        zt,
        inputs["t"],
        inputs["zc"].to(dtype),
        guidance=guidance,
        generator=torch.Generator().manual_seed(7),
    )
    sigma = torch.exp(0.5 * ref["posterior_log_variance_clipped"])
    aligned = z_prev - sigma * noise
    assert max_scaled_error(aligned, ref["aligned_mean"]) <= tol


def _official_models():
    """The UNet and alignment net under their official names."""
    from xearthformer.models import CuboidTransformerUNet, NoisyCuboidTransformerEncoder

    return CuboidTransformerUNet, NoisyCuboidTransformerEncoder


@pytest.mark.golden
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_full_reverse_step_with_alignment_matches_official(golden_dir, step_case, dtype,
                                                           fp64_through_fp32_softmax_tol,
                                                           pin_official_timestep_embedding, backend):
    # Both nets embed the steps in float32 with float32 trig, as officially; the official
    # embedding of these steps (17, 903) is pinned in, so float64 meets the float64 bound.
    unet_cls, align_cls = _official_models()
    inputs, refs = step_case
    ref, tol = refs[dtype]
    tiny = golden_dir / "prediff/tiny"
    nets = []
    for cls, name in ((unet_cls, "unet_tiny"), (align_cls, "alignment_tiny")):
        net = cls.from_official_kwargs(json.loads((tiny / name / "kwargs.json").read_text()))
        net.load_state_dict(torch.load(tiny / name / "state_dict.pt", weights_only=True))
        nets.append(net.eval().to(dtype))
    unet, align = nets
    zt, zc = inputs["zt"].to(dtype), inputs["zc"].to(dtype)
    sampler = DDPMSampler()
    control = KnowledgeControl(
        lambda z, t: align(z, t), inputs["avg_x_gt"].to(dtype), guide_scale=50.0, norm="batch"
    )
    with torch.no_grad():
        out = sampler.p_mean_variance(unet, zt, inputs["t"], zc)
    shift = control.mean_shift(zt, inputs["t"])
    aligned = control.shift_mean(out.mean, zt, inputs["t"], torch.exp(0.5 * out.log_variance))
    ours = {
        "z0_pred": out.z0_pred,
        "model_mean": out.mean,
        "alignment_mean_shift": shift,
        "aligned_mean": aligned,
    }
    through_alignment = ("alignment_mean_shift", "aligned_mean")  # its readout softmax is float32
    for name, value in ours.items():
        bound = fp64_through_fp32_softmax_tol if dtype == torch.float64 and name in through_alignment else tol
        assert max_scaled_error(value, ref[name]) <= bound, name


# ---------------------------------------------------------------------------------------------
# behaviour of the samplers on a Gaussian toy whose exact denoiser is known

MU, SD = 0.5, 0.3


def exact_denoiser(schedule: NoiseSchedule):
    """E[eps | z_t] when every element of z_0 is N(MU, SD^2) independently."""

    def denoiser(z, t, cond):
        a = schedule.extract("alphas_cumprod", t, ndim=z.ndim, dtype=z.dtype)
        return (1 - a).sqrt() * (z - a.sqrt() * MU) / (a * SD**2 + 1 - a)

    return denoiser


@pytest.fixture(scope="module")
def z_T():
    return torch.randn(
        4, 1, 50, 50, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )


def test_ddpm_recovers_the_gaussian_target(z_T):
    schedule = NoiseSchedule()
    x = DDPMSampler(schedule).sample(
        exact_denoiser(schedule), z_T, None, generator=torch.Generator().manual_seed(1)
    )
    assert float(x.mean()) == pytest.approx(MU, abs=0.01)
    assert float(x.std()) == pytest.approx(SD, abs=0.01)


def test_ddim_eta0_follows_the_probability_flow(z_T):
    """For Gaussian data the exact flow maps z_T affinely; DDIM converges to it with steps."""
    schedule = NoiseSchedule()
    a_T = schedule.alphas_cumprod[-1].double()
    flow = MU + SD * (z_T - a_T.sqrt() * MU) / (a_T * SD**2 + 1 - a_T).sqrt()
    errors = [
        float(
            (DDIMSampler(schedule, num_steps=n).sample(exact_denoiser(schedule), z_T, None) - flow)
            .abs()
            .max()
        )
        for n in (10, 50, 200)
    ]
    assert errors[0] > errors[1] > errors[2] and errors[1] < 0.08 and errors[2] < 0.02


def test_ddim_eta0_is_deterministic_and_ignores_the_generator(z_T):
    sampler = DDIMSampler(num_steps=20)
    den = exact_denoiser(sampler.schedule)
    a = sampler.sample(den, z_T, None, generator=torch.Generator().manual_seed(1))
    b = sampler.sample(den, z_T, None, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


def _linear_denoiser(z, t, cond):
    return 0.3 * z + 0.1 * torch.tanh(cond)


def test_ddim_eta1_all_steps_equals_ddpm_step_by_step():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, 3, 4, 4, 2, generator=gen, dtype=torch.float64)
    cond = torch.randn(2, 3, 4, 4, 2, generator=gen, dtype=torch.float64)
    ddpm, ddim = DDPMSampler(), DDIMSampler(num_steps=1000, eta=1.0)
    assert torch.equal(ddim.timesteps, ddpm.timesteps)
    for step in (999, 500, 17, 1, 0):
        t = torch.full((2,), step)
        a = ddpm.step(_linear_denoiser, z, t, cond, generator=torch.Generator().manual_seed(step))
        b = ddim.step(
            _linear_denoiser, z, t, t - 1, cond, generator=torch.Generator().manual_seed(step)
        )
        # The two formulas agree exactly in real arithmetic; each reads its own float32
        # buffers (one rounding each, u32) and combines them in a few operations:
        # 16 u32 = 9.5e-7 relative.
        step_bound = 16 * unit_roundoff(torch.float32)
        assert float((a - b).abs().max()) <= step_bound * float(a.abs().max()), step
    a = ddpm.sample(_linear_denoiser, z, cond, generator=torch.Generator().manual_seed(5))
    b = ddim.sample(_linear_denoiser, z, cond, generator=torch.Generator().manual_seed(5))
    # 1000 such steps: independent roundings add like a random walk (Higham & Mary 2019),
    # sqrt(1000) * 16 u32 = 3.0e-5
    assert max_scaled_error(b, a) <= 1000 ** 0.5 * step_bound


def test_sampling_is_reproducible_through_the_generator(z_T):
    sampler = DDPMSampler(NoiseSchedule(NoiseScheduleConfig(timesteps=50)))
    den = exact_denoiser(sampler.schedule)
    runs = [
        sampler.sample(den, z_T, None, generator=torch.Generator().manual_seed(s))
        for s in (4, 4, 5)
    ]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    state = torch.random.get_rng_state()
    sampler.sample(den, z_T, None, generator=torch.Generator().manual_seed(4))
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched


def test_last_ddpm_step_adds_no_noise():
    sampler = DDPMSampler()
    z = torch.randn(2, 1, 2, 2, 1, generator=torch.Generator().manual_seed(0))
    den = lambda z, t, c: torch.zeros_like(z)  # noqa: E731
    a = sampler.step(den, z, 0, None, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, sampler.p_mean_variance(den, z, 0, None).mean)
    # mixed steps in one batch: only the t > 0 member gets noise
    t = torch.tensor([0, 10])
    b = sampler.step(den, z, t, None, generator=torch.Generator().manual_seed(1))
    mean = sampler.p_mean_variance(den, z, t, None).mean
    assert torch.equal(b[0], mean[0]) and not torch.equal(b[1], mean[1])


def test_x0_parameterization_and_clipping():
    schedule = NoiseSchedule(NoiseScheduleConfig(timesteps=10, parameterization="x0"))
    z = torch.full((1, 1, 2, 2, 1), 3.0)
    sampler = DDPMSampler(schedule, clip_denoised=True)
    out = sampler.p_mean_variance(lambda z, t, c: torch.full_like(z, 5.0), z, 4, None)
    assert torch.equal(out.z0_pred, torch.ones_like(z))
    ddim = DDIMSampler(schedule, num_steps=10)
    assert ddim.sample(lambda z, t, c: torch.full_like(z, 0.25), z, None).allclose(
        torch.full_like(z, 0.25)
    )


def test_sampler_argument_errors():
    with pytest.raises(ConfigError):
        DDIMSampler(num_steps=0)
    with pytest.raises(ConfigError):
        DDIMSampler(num_steps=1001)
    with pytest.raises(ConfigError):
        DDIMSampler(eta=-1.0)
    z = torch.zeros(2, 1, 2, 2, 1)
    with pytest.raises(ConfigError, match="shape"):
        DDPMSampler().step(lambda z, t, c: torch.zeros(3), z, 5, None)
    with pytest.raises(ConfigError):
        DDPMSampler().step(lambda z, t, c: z, z, torch.tensor([5]), None)
    with pytest.raises(ConfigError, match="t_prev"):
        DDIMSampler().step(lambda z, t, c: z, z, 5, 5, None)
    with pytest.raises(ConfigError):
        DDPMSampler().step(lambda z, t, c: z, z, 1000, None)
    assert DDIMSampler(num_steps=1).timesteps.tolist() == [999]
