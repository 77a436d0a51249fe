"""DPM-Solver++(2M) against the exact probability-flow ODE of a Gaussian toy problem.

For data ``x0 ~ N(mu, s^2)`` (independently per element) every marginal is Gaussian,
``z_t ~ N(alpha_t mu, v_t)`` with ``v_t = alpha_t^2 s^2 + sigma_t^2``, the ideal denoiser is
``E[x0 | z_t] = mu + alpha_t s^2 / v_t (z_t - alpha_t mu)`` in closed form, and the
probability-flow ODE keeps the standardised value ``(z_t - alpha_t mu) / sqrt(v_t)`` fixed: the
exact end point of any ODE solver is known, independently of the sampler's formulas.
"""

from __future__ import annotations

import math

import pytest
import torch

from xearthformer.diffusion import (
    CleanEstimateControl,
    DDIMSampler,
    DPMSolverSampler,
    KnowledgeControl,
    NoiseSchedule,
)
from xearthformer.diffusion.schedule import NoiseScheduleConfig
from xearthformer.nn._validation import ConfigError

X0_SCHEDULE = NoiseSchedule(NoiseScheduleConfig(parameterization="x0"))


def gaussian_case(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    shape = (3, 2, 4, 4, 2)  # "b t h w c"
    mu = torch.rand(shape[1:], generator=gen, dtype=torch.float64) * 2 - 1
    s = torch.rand(shape[1:], generator=gen, dtype=torch.float64) * 0.45 + 0.05
    z_T = torch.randn(shape, generator=gen, dtype=torch.float64)
    abar = X0_SCHEDULE.float64["alphas_cumprod"]

    def moments(step: int):
        alpha2 = float(abar[step])
        return math.sqrt(alpha2), alpha2 * s**2 + (1 - alpha2)

    def ideal(z, t, cond):  # E[x0 | z_t]: the exact clean estimate ("x0" parameterisation)
        alpha, v = moments(int(t[0]))
        return mu + alpha * s**2 / v * (z - alpha * mu)

    def exact(last_step: int = 0):
        """The ODE's value at ``last_step``, then the samplers' last move: its clean estimate."""
        alpha_T, v_T = moments(999)
        alpha, v = moments(last_step)
        z = alpha * mu + torch.sqrt(v / v_T) * (z_T - alpha_T * mu)
        return ideal(z, torch.tensor([last_step]), None)

    return z_T, ideal, exact


def error(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y - ref).abs().max())


def test_second_order_convergence_and_fewer_steps_than_ddim():
    z_T, ideal, exact = gaussian_case()
    ref = exact()
    steps = (10, 20, 40, 80)
    dpm = [error(DPMSolverSampler(X0_SCHEDULE, num_steps=n).sample(ideal, z_T, None), ref)
           for n in steps]
    ddim = [error(DDIMSampler(X0_SCHEDULE, num_steps=n).sample(ideal, z_T, None), ref)
            for n in steps]
    dpm_order = [math.log2(a / b) for a, b in zip(dpm, dpm[1:])]
    ddim_order = [math.log2(a / b) for a, b in zip(ddim, ddim[1:])]
    # doubling the steps divides the error by ~4 (order 2) vs ~2 for DDIM (order 1); the
    # observed orders approach 2 and 1 as the steps shrink (asymptotic regime from ~20 steps)
    assert all(1.7 < p < 2.3 for p in dpm_order[1:]), dpm_order
    assert all(0.7 < p < 1.3 for p in ddim_order[1:]), ddim_order
    # and at 10 steps the solver is already more accurate than DDIM with 40
    assert dpm[0] < ddim[2], (dpm, ddim)


def test_linear_spacing_is_worse_than_logsnr():
    """With DDIM's steps the last step's jump in lambda does not shrink with the step count."""
    z_T, ideal, exact = gaussian_case()
    ref = exact()
    for n in (10, 15):
        logsnr = DPMSolverSampler(X0_SCHEDULE, num_steps=n).sample(ideal, z_T, None)
        linear = DPMSolverSampler(X0_SCHEDULE, num_steps=n, spacing="linear").sample(
            ideal, z_T, None)
        assert error(logsnr, ref) < 0.5 * error(linear, ref)


@pytest.mark.parametrize("num_steps", [2, 10, 60, 300, 1000])
def test_logsnr_steps_are_distinct_and_span_the_schedule(num_steps):
    steps = DPMSolverSampler(num_steps=num_steps).timesteps
    assert len(steps) == num_steps and steps[0] == 999 and steps[-1] == 0
    assert bool((steps[:-1] > steps[1:]).all())


def test_exact_when_the_clean_estimate_is_constant():
    """A point mass (s = 0): the clean estimate never changes and every step is exact."""
    mu = torch.linspace(-1, 1, 2 * 3 * 3 * 1, dtype=torch.float64).reshape(1, 2, 3, 3, 1)
    z_T = torch.randn(mu.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = DPMSolverSampler(X0_SCHEDULE, num_steps=7).sample(
        lambda z, t, c: mu.clone(), z_T, None)
    # float64 coefficients: only rounding, a few ulps of values of order 1
    torch.testing.assert_close(out, mu, rtol=0, atol=1e-14)


@pytest.mark.parametrize("num_steps", [1, 2])
def test_first_order_steps_equal_ddim(num_steps):
    """With at most one step before the final move there is no history: DDIM (eta = 0)."""
    z_T, ideal, _ = gaussian_case(seed=2)
    ours = DPMSolverSampler(X0_SCHEDULE, num_steps=num_steps, spacing="linear").sample(
        ideal, z_T, None)
    ddim = DDIMSampler(X0_SCHEDULE, num_steps=num_steps).sample(ideal, z_T, None)
    # DDIM recovers eps through the float32 schedule buffers (relative rounding 2**-24,
    # amplified by sqrt(1 / abar_999) ~ 160 at the first step): ~1e-5 of values of order 1
    torch.testing.assert_close(ours, ddim, rtol=0, atol=1e-4)


def test_second_order_step_uses_the_previous_estimate():
    sampler = DPMSolverSampler(num_steps=4, spacing="linear")
    steps = sampler.timesteps.tolist()
    assert steps == [999, 666, 333, 0]
    c_first = sampler.coefficients(steps[1], steps[2], None)
    c_second = sampler.coefficients(steps[1], steps[2], steps[0])
    assert c_first[2] == 0.0 and c_second[2] != 0.0
    # the weights of the two estimates sum to the first-order weight (a constant D is kept)
    assert math.isclose(c_second[1] + c_second[2], c_first[1], rel_tol=1e-12)
    assert sampler.coefficients(0, -1, 333) == (0.0, 1.0, 0.0)  # to sigma = 0: the estimate


def test_eps_parameterisation_matches_x0():
    """PreDiff's denoisers predict noise: the same ideal denoiser written as eps."""
    z_T, ideal, exact = gaussian_case(seed=3)
    eps_sampler = DPMSolverSampler(NoiseSchedule(), num_steps=15)
    abar = eps_sampler.schedule.float64["alphas_cumprod"]

    def ideal_eps(z, t, cond):
        a2 = float(abar[int(t[0])])
        return (z - math.sqrt(a2) * ideal(z, t, cond)) / math.sqrt(1 - a2)

    out = eps_sampler.sample(ideal_eps, z_T, None)
    ref = DPMSolverSampler(X0_SCHEDULE, num_steps=15).sample(ideal, z_T, None)
    # the eps path goes through the float32 buffers (see test_first_order_steps_equal_ddim)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)
    ddim = DDIMSampler(NoiseSchedule(), num_steps=15).sample(ideal_eps, z_T, None)
    assert error(out, exact()) < 0.5 * error(ddim, exact())


def test_mean_shift_guidance_is_applied_each_step_with_the_posterior_std():
    z_T, ideal, _ = gaussian_case(seed=4)
    z_T = z_T.float()
    sampler = DPMSolverSampler(X0_SCHEDULE, num_steps=6)
    seen = []

    class Recorder:
        def shift_mean(self, mean, z_t, t, sigma):
            seen.append((int(t[0]), sigma.flatten()[0].item()))
            return mean

    def denoiser(z, t, c):
        return ideal(z.double(), t, c).float()

    plain = sampler.sample(denoiser, z_T, None)
    assert torch.equal(sampler.sample(denoiser, z_T, None, guidance=Recorder()), plain)
    assert [t for t, _ in seen] == sampler.timesteps.tolist()
    post = X0_SCHEDULE.posterior_log_variance_clipped
    assert [s for _, s in seen] == pytest.approx([math.exp(0.5 * float(post[t])) for t, _ in seen],
                                                 rel=1e-6)  # float32 exp of a float32 buffer

    align = lambda z, t: z.mean(dim=(1, 2, 3, 4))[:, None]  # noqa: E731
    target = float(align(plain, None).mean()) + 1.0
    control = KnowledgeControl(align, target, guide_scale=60.0)
    guided = sampler.sample(denoiser, z_T, None, guidance=control)
    # the control pulls every member's quantity toward the target
    before = (align(plain, None) - target).abs()
    after = (align(guided, None) - target).abs()
    assert bool((after < before - 0.1).all()), (before.flatten(), after.flatten())


def test_clean_estimate_control_lands_on_the_target():
    z_T, ideal, _ = gaussian_case(seed=5)
    z_T = z_T.float()
    align = lambda z, t: z.mean(dim=(1, 2, 3, 4))[:, None]  # noqa: E731
    control = CleanEstimateControl(align, target=0.7, guide_scale=1.0, tol=1e-3)
    out = DPMSolverSampler(X0_SCHEDULE, num_steps=10).sample(
        lambda z, t, c: ideal(z.double(), t, c).float(), z_T, None, guidance=control)
    # the last move returns the corrected clean estimate: the target up to the control's tol
    # (a linear quantity is met in one Gauss-Newton step, up to float32 rounding)
    assert float((align(out, None) - 0.7).abs().max()) <= 1e-3


@pytest.mark.parametrize("num_steps", [0, 1001, 2.5, True])
def test_bad_num_steps(num_steps):
    with pytest.raises(ConfigError, match="num_steps"):
        DPMSolverSampler(num_steps=num_steps)


def test_bad_spacing():
    with pytest.raises(ConfigError, match="spacing must be 'logsnr' or 'linear'"):
        DPMSolverSampler(spacing="karras")


@pytest.mark.parametrize("num_steps", [1, 2])
def test_sde_first_order_steps_equal_ddim_eta_1(num_steps):
    """eta = 1: the first-order SDE step is DDIM's eta = 1 step (the DDPM posterior), drawing
    the same noise from the same generator."""
    z_T, ideal, _ = gaussian_case(seed=6)
    ours = DPMSolverSampler(X0_SCHEDULE, num_steps=num_steps, eta=1, spacing="linear").sample(
        ideal, z_T, None, generator=torch.Generator().manual_seed(3))
    ddim = DDIMSampler(X0_SCHEDULE, num_steps=num_steps, eta=1.0).sample(
        ideal, z_T, None, generator=torch.Generator().manual_seed(3))
    # as test_first_order_steps_equal_ddim: DDIM goes through the float32 buffers
    torch.testing.assert_close(ours, ddim, rtol=0, atol=1e-4)


def test_sde_samples_the_data_distribution():
    """eta = 1 from pure noise: the samples' mean and std are the data's, N(mu, s^2)."""
    n, mu, s = 40_000, 0.3, 0.4
    z_T = torch.randn(n, 1, 1, 1, 1, generator=torch.Generator().manual_seed(7),
                      dtype=torch.float64)
    abar = X0_SCHEDULE.float64["alphas_cumprod"]

    def ideal(z, t, cond):
        a2 = float(abar[int(t[0])])
        return mu + math.sqrt(a2) * s**2 / (a2 * s**2 + 1 - a2) * (z - math.sqrt(a2) * mu)

    out = DPMSolverSampler(X0_SCHEDULE, num_steps=15, eta=1).sample(
        ideal, z_T, None, generator=torch.Generator().manual_seed(8)).flatten()
    ddim = DDIMSampler(X0_SCHEDULE, num_steps=15, eta=1.0).sample(
        ideal, z_T, None, generator=torch.Generator().manual_seed(8)).flatten()
    # sampling errors of n = 40,000 draws: 4 standard errors of the mean (s / sqrt(n)) and of
    # the std (s / sqrt(2n)), plus the solver's bias at 15 steps: 0.016 in the std (4 %,
    # measured against 120 steps); DDIM (eta = 1) at 15 steps is 0.086 too narrow (21 %)
    assert abs(float(out.mean()) - mu) < 4 * s / math.sqrt(n) + 0.01
    assert abs(float(out.std()) - s) < 4 * s / math.sqrt(2 * n) + 0.02
    assert abs(float(ddim.std()) - s) > 0.05


def test_bad_eta():
    with pytest.raises(ConfigError, match="eta must be 0"):
        DPMSolverSampler(eta=0.5)
