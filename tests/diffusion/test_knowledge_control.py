"""Knowledge control: the official batch norm, the per-sample default, and the mean shift."""

from __future__ import annotations

import pytest
import torch

from xearthformer.diffusion import DDPMSampler, KnowledgeControl, NoiseSchedule
from xearthformer.diffusion.schedule import NoiseScheduleConfig
from xearthformer.nn._validation import ConfigError


def frame_means(z, t):
    """Toy alignment net: per-frame mean of the latent, 'b t h w c' -> 'b t 1'."""
    return z.mean(dim=(2, 3, 4))[..., None]


@pytest.fixture
def z():
    return torch.randn(
        3, 2, 4, 4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )


def analytic_batch_grad(z, target):
    """d ||F - y||_2 / dz for F_b = mean(z_b) (one norm over the batch)."""
    diff = z.mean(dim=(1, 2, 3, 4)) - target
    per_element = 1.0 / z[0].numel()
    return (diff / diff.norm())[:, None, None, None, None] * per_element * torch.ones_like(z)


def test_batch_norm_gradient_matches_analytic(z):
    target = torch.tensor([[0.2], [-0.1], [0.4]], dtype=torch.float64)
    control = KnowledgeControl(frame_means, target, guide_scale=50.0, norm="batch")
    assert torch.allclose(
        control.mean_shift(z, torch.tensor([5, 6, 7])),
        50.0 * analytic_batch_grad(z, target[:, 0]),
        rtol=1e-12,  # float64 autograd of means of 32 values vs the closed form: ~32 u64 = 3.6e-15
    )


def test_per_sample_norm_gradient_is_a_sign(z):
    target = torch.zeros(3, dtype=torch.float64)
    control = KnowledgeControl(frame_means, target, guide_scale=2.0)
    shift = control.mean_shift(z, torch.tensor([1, 1, 1]))
    sign = torch.sign(z.mean(dim=(1, 2, 3, 4)))
    expected = 2.0 * sign[:, None, None, None, None] / z[0].numel() * torch.ones_like(z)
    assert torch.allclose(shift, expected, rtol=1e-12)  # float64, a few roundings: ~u64


def test_per_sample_members_do_not_influence_each_other(z):
    """The default: member 0's shift is the same whatever the rest of the batch holds."""
    t = torch.tensor([3, 3, 3])
    other = z.clone()
    other[1:] = 10 * torch.randn(
        other[1:].shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64
    )
    per_sample = KnowledgeControl(frame_means, 0.3)
    assert torch.equal(per_sample.mean_shift(z, t)[0], per_sample.mean_shift(other, t)[0])
    assert torch.allclose(per_sample.mean_shift(z, t)[:1], per_sample.mean_shift(z[:1], t[:1]))
    batch = KnowledgeControl(frame_means, 0.3, norm="batch")
    assert not torch.allclose(batch.mean_shift(z, t)[0], batch.mean_shift(other, t)[0])
    # for one member both norms coincide
    assert torch.allclose(batch.mean_shift(z[:1], t[:1]), per_sample.mean_shift(z[:1], t[:1]))


def test_shift_mean_and_zero_violation(z):
    control = KnowledgeControl(frame_means, 0.0, guide_scale=1.0)
    sigma = torch.full((3, 1, 1, 1, 1), 0.5, dtype=torch.float64)
    mean = torch.zeros_like(z)
    assert torch.allclose(
        control.shift_mean(mean, z, torch.tensor([1, 1, 1]), sigma),
        -0.5 * control.mean_shift(z, torch.tensor([1, 1, 1])),
    )
    exact = KnowledgeControl(frame_means, z.mean(dim=(1, 2, 3, 4)), norm="batch")
    assert torch.isfinite(exact.mean_shift(z, torch.tensor([1, 1, 1]))).all()


def test_shift_runs_inside_no_grad_and_leaves_z_alone(z):
    control = KnowledgeControl(frame_means, 0.0)
    with torch.no_grad():
        shift = control.mean_shift(z, torch.tensor([1, 2, 3]))
    assert not shift.requires_grad and not z.requires_grad and shift.shape == z.shape


def test_guided_sampling_moves_toward_the_target():
    schedule = NoiseSchedule(NoiseScheduleConfig(timesteps=100))
    sampler = DDPMSampler(schedule)
    z_T = torch.randn(
        4, 2, 4, 4, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )

    def denoiser(z, t, cond):  # data: every element N(0, 0.1^2)
        a = schedule.extract("alphas_cumprod", t, ndim=z.ndim, dtype=z.dtype)
        return (1 - a).sqrt() * z / (a * 0.01 + 1 - a)

    def run(guidance):
        return sampler.sample(
            denoiser, z_T, None, guidance=guidance, generator=torch.Generator().manual_seed(1)
        )

    free = run(None).mean(dim=(1, 2, 3, 4))
    guided = run(KnowledgeControl(frame_means, 0.5, guide_scale=20.0)).mean(dim=(1, 2, 3, 4))
    assert bool((guided > free + 0.05).all())


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("not callable", 0.0), {}), ((frame_means, 0.0), {"norm": "l1"})],
)
def test_bad_arguments(args, kwargs):
    with pytest.raises(ConfigError):
        KnowledgeControl(*args, **kwargs)


def test_bad_shapes(z):
    t = torch.tensor([1, 1, 1])
    with pytest.raises(ConfigError, match="broadcast"):
        KnowledgeControl(frame_means, torch.zeros(2, 1)).mean_shift(z, t)
    with pytest.raises(ConfigError, match="'b t k' or 'b k'"):
        KnowledgeControl(lambda z, t: z, 0.0).mean_shift(z, t)


# --------------------------------------------------------------------------------------------
# CleanEstimateControl: the clean estimate is corrected toward the target
# --------------------------------------------------------------------------------------------
def test_clean_estimate_full_step_meets_a_linear_target(z):
    from xearthformer.diffusion import CleanEstimateControl

    target = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    control = CleanEstimateControl(frame_means, target, guide_scale=1.0, iterations=1)
    out = control.correct_start(z, torch.tensor([5, 6, 7]))
    # float64 and linear: exact up to rounding of means over 32 values (~32 u64 * |z| < 1e-14)
    assert torch.allclose(out.mean(dim=(1, 2, 3, 4)), target, atol=1e-10)
    half = CleanEstimateControl(frame_means, target, guide_scale=0.5, iterations=1)
    before = z.mean(dim=(1, 2, 3, 4))
    after = half.correct_start(z, torch.tensor([5, 6, 7])).mean(dim=(1, 2, 3, 4))
    assert torch.allclose(after - before, 0.5 * (target - before), atol=1e-10)
    # members are corrected independently; a met target leaves z alone
    kept = CleanEstimateControl(frame_means, before[:, None]).correct_start(z, None)
    assert torch.equal(kept, z) and not kept.requires_grad


def test_clean_estimate_iterations_handle_a_clipped_quantity():
    from xearthformer.diffusion import CleanEstimateControl

    clipped_mean = lambda z, t: z.clamp(min=0.0).mean(dim=(1, 2, 3, 4))[:, None]  # noqa: E731
    z = torch.linspace(-1.0, 1.0, 16, dtype=torch.float64).reshape(1, 1, 4, 4, 1)
    one = CleanEstimateControl(clipped_mean, 0.05, iterations=1).correct_start(z, None)
    many = CleanEstimateControl(clipped_mean, 0.05, iterations=20).correct_start(z, None)
    err = lambda x: abs(float(clipped_mean(x, None)) - 0.05)  # noqa: E731
    assert err(many) < err(one) and err(many) < 1e-3


def test_clean_estimate_guided_sampling_lands_on_the_target():
    from xearthformer.diffusion import CleanEstimateControl, DDIMSampler

    sampler = DDIMSampler(NoiseSchedule(NoiseScheduleConfig(timesteps=50)), num_steps=10, eta=1.0)
    denoiser = lambda z, t, cond: 0.3 * z  # noqa: E731
    z_T = torch.randn(4, 2, 3, 3, 1, generator=torch.Generator().manual_seed(0))
    # each member stops iterating once its violation is below tol: 1e-5 here, well inside the
    # 1e-4 asserted (float32 means of 18 values of order 1 are exact to ~1e-6)
    control = CleanEstimateControl(frame_means, 1.5, guide_scale=1.0, tol=1e-5)
    out = sampler.sample(denoiser, z_T, None, guidance=control,
                         generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out.mean(dim=(1, 2, 3, 4)), torch.full((4,), 1.5), atol=1e-4)
    ddpm = DDPMSampler(NoiseSchedule(NoiseScheduleConfig(timesteps=50)))
    out = ddpm.sample(denoiser, z_T, None, guidance=control,
                      generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out.mean(dim=(1, 2, 3, 4)), torch.full((4,), 1.5), atol=1e-4)


@pytest.mark.parametrize("kwargs", [{"iterations": 0}, {"iterations": 1.5}])
def test_clean_estimate_bad_arguments(kwargs):
    from xearthformer.diffusion import CleanEstimateControl

    with pytest.raises(ConfigError):
        CleanEstimateControl(frame_means, 0.0, **kwargs)
    with pytest.raises(ConfigError):
        CleanEstimateControl("not callable", 0.0)


# --------------------------------------------------------------------------------------------
# issue 26 §4: every decision per member; issue 25 §1: the cheap (linearised) mode
# --------------------------------------------------------------------------------------------
def clipped_mean(z, t):
    """A non-linear quantity: the mean of the positive part, 'b ...' -> 'b 1'."""
    return z.clamp(min=0.0).mean(dim=(1, 2, 3, 4))[:, None]


def test_clean_estimate_early_stop_is_decided_per_member():
    from xearthformer.diffusion import CleanEstimateControl

    z = torch.linspace(-1.0, 1.0, 32, dtype=torch.float64).reshape(2, 1, 4, 4, 1)
    z[1] = z[1] - 0.8  # member 1 far below the target, member 0 within tol of it
    tol = 1e-3
    target = float(clipped_mean(z[:1], None)) + 0.5 * tol
    both = CleanEstimateControl(clipped_mean, target, iterations=5, tol=tol).correct_start(z, None)
    alone = [CleanEstimateControl(clipped_mean, target, iterations=5, tol=tol)
             .correct_start(z[i:i + 1], None) for i in range(2)]
    # member 0 meets the target already: it is left exactly as it was, in the batch or alone
    assert torch.equal(both[0], z[0]) and torch.equal(alone[0][0], z[0])
    # member 1 iterates, and its result does not depend on member 0 sharing its batch (the
    # same float64 operations on its own row: equal to rounding, 1e-12 of values of order 1)
    assert torch.allclose(both[1], alone[1][0], rtol=0, atol=1e-12)
    assert abs(float(clipped_mean(both[1:], None)) - target) <= tol


def test_clean_estimate_cheap_mode_evaluates_only_at_listed_steps():
    from xearthformer.diffusion import CleanEstimateControl, DDIMSampler

    sampler = DDIMSampler(NoiseSchedule(NoiseScheduleConfig(timesteps=50)), num_steps=10, eta=1.0)
    denoiser = lambda z, t, cond: 0.3 * z  # noqa: E731
    z_T = torch.randn(4, 2, 3, 3, 1, generator=torch.Generator().manual_seed(0),
                      dtype=torch.float64)
    # a linear quantity: the linearisation is exact, so the cheap mode lands on the target
    # after a single exact evaluation with its Jacobian
    cheap = CleanEstimateControl(frame_means, 1.5, exact_at={0}, reuse_jacobian=True, tol=1e-9)
    out = sampler.sample(denoiser, z_T, None, guidance=cheap,
                         generator=torch.Generator().manual_seed(1))
    # float64 means of 18 values: exact to ~1e-15; 1e-9 is the control's own tol
    assert torch.allclose(out.mean(dim=(1, 2, 3, 4)), torch.full((4,), 1.5, dtype=torch.float64),
                          atol=1e-9)
    # the first step's Jacobian, then the last step's (t = 0): the linearisation stands in
    # for the quantity at the 8 steps in between
    assert cheap.backward_passes == 2
    # the first step (one Gauss-Newton step), then at the last step the value and Jacobian
    # of the denoiser's clean estimate and, after one step, the check (value only) that it is met
    assert cheap.exact_evaluations == 3
    exact = CleanEstimateControl(frame_means, 1.5, tol=1e-9)
    sampler.sample(denoiser, z_T, None, guidance=exact, generator=torch.Generator().manual_seed(1))
    assert exact.backward_passes >= 10  # every step


def test_clean_estimate_cheap_mode_meets_a_nonlinear_target_at_the_last_step():
    from xearthformer.diffusion import CleanEstimateControl, DDIMSampler

    sampler = DDIMSampler(NoiseSchedule(NoiseScheduleConfig(timesteps=50)), num_steps=10, eta=1.0)
    denoiser = lambda z, t, cond: 0.3 * z  # noqa: E731
    z_T = torch.randn(3, 2, 3, 3, 1, generator=torch.Generator().manual_seed(2),
                      dtype=torch.float64)
    tol = 1e-4
    cheap = CleanEstimateControl(clipped_mean, 0.4, exact_at={0}, reuse_jacobian=True,
                                 iterations=20, tol=tol)
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    out = sampler.sample(denoiser, z_T, None, guidance=cheap, generator=gens([10, 11, 12]))
    # the last step iterates (chord steps with its first Jacobian) until each member is
    # within tol; the output is that step's clean estimate
    assert (clipped_mean(out, None) - 0.4).abs().max() <= tol
    # members do not influence each other in the cheap mode either: member 0 alone, with its
    # own generator, is member 0 of the batch (float64 row-wise operations: equal to ~1e-15)
    alone = CleanEstimateControl(clipped_mean, 0.4, exact_at={0}, reuse_jacobian=True,
                                 iterations=20, tol=tol)
    first = sampler.sample(denoiser, z_T[:1], None, guidance=alone, generator=gens([10]))
    assert torch.allclose(first[0], out[0], rtol=0, atol=1e-12)
