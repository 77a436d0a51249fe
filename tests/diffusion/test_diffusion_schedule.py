"""The official noise schedule (register_schedule) against the golden buffers."""

from __future__ import annotations

import pytest
import torch

from xearthformer._precision import unit_roundoff
from xearthformer.diffusion.schedule import BUFFER_NAMES, NoiseSchedule, NoiseScheduleConfig
from xearthformer.nn._validation import ConfigError


@pytest.fixture(scope="module")
def reference(golden_dir):
    return torch.load(golden_dir / "prediff/schedule/schedule.pt", weights_only=True)


@pytest.mark.golden
@pytest.mark.parametrize("name", BUFFER_NAMES)
def test_float32_buffers_match_official(reference, name):
    ours, ref = getattr(NoiseSchedule(), name), reference[name]
    assert ours.dtype == ref.dtype == torch.float32 and ours.shape == (1000,)
    # float64 formulas cast to float32 as officially: equal up to one float32 rounding of the
    # cast (u32) and of the official float32 arithmetic; 16 u32 = 9.5e-7 relative
    assert float((ours - ref).abs().max()) <= 16 * unit_roundoff(torch.float32) * float(ref.abs().max())


@pytest.mark.golden
@pytest.mark.parametrize("name", ["betas", "alphas_cumprod"])
def test_float64_arrays_match_official(reference, name):
    ours, ref = NoiseSchedule().float64[name], reference[f"{name}_float64"]
    assert ours.dtype == torch.float64
    # numpy.linspace vs torch.linspace, squared, then a cumulative product of up to 1000
    # factors; each step rounds once: 8 u64 = 8.9e-16 on betas; the cumprod is a running
    # product, whose float64 rounding differs only where the linspace inputs did
    assert float(((ours - ref).abs() / ref.abs()).max()) <= 8 * unit_roundoff(torch.float64)


def test_schedule_identities():
    s = NoiseSchedule()
    f = s.float64
    assert torch.allclose(f["alphas_cumprod"], torch.cumprod(1 - f["betas"], 0), rtol=0, atol=0)
    # posterior mean coefficients: coef1 + coef2 * sqrt(abar_t) = sqrt(abar_{t-1})
    lhs = f["posterior_mean_coef1"] + f["posterior_mean_coef2"] * f["sqrt_alphas_cumprod"]
    # an identity in real arithmetic; float64 rounds each of ~6 operations, with division by
    # 1 - abar_t (>= 1e-4) amplifying it: 6 u64 / 1e-4 = 6.7e-12 -> 1e-11
    assert torch.allclose(lhs, f["alphas_cumprod_prev"].sqrt(), rtol=1e-11, atol=0)
    assert float(s.posterior_variance[0]) == 0.0
    # log(1e-20) = -46.0517019 (the clip); the literal is written to 4 decimals
    assert float(s.posterior_log_variance_clipped[0]) == pytest.approx(-46.0517, abs=1e-4)
    sqrt_betas = f["betas"].sqrt()
    # linspace then square then sqrt: each step's float64 rounding of values ~0.01..0.14,
    # relative to the differences (~1.3e-4): 4 u64 * 0.14 / 1.3e-4 = 4.8e-13 -> rtol 1e-11
    assert torch.allclose(sqrt_betas.diff(), sqrt_betas.diff()[:1].expand(999), rtol=1e-11)


def test_extract_and_q_sample():
    s = NoiseSchedule()
    t = torch.tensor([0, 500, 999])
    coef = s.extract("sqrt_alphas_cumprod", t, ndim=5, dtype=torch.float64)
    assert coef.shape == (3, 1, 1, 1, 1) and coef.dtype == torch.float64
    z0, noise = torch.ones(3, 2, 2, 2, 1), torch.zeros(3, 2, 2, 2, 1)
    assert torch.allclose(s.q_sample(z0, t, noise)[:, 0, 0, 0, 0], s.sqrt_alphas_cumprod[t])
    with pytest.raises(ConfigError, match="999"):
        s.extract("betas", torch.tensor([1000]), ndim=1)
    with pytest.raises(ConfigError):
        s.extract("betas", torch.tensor([1.0]), ndim=1)
    with pytest.raises(ConfigError, match="unknown schedule buffer"):
        s.extract("alphas", t, ndim=1)


@pytest.mark.parametrize("beta_schedule", ["sqrt_linear", "sqrt", "cosine"])
def test_other_schedules_are_valid(beta_schedule):
    s = NoiseSchedule(NoiseScheduleConfig(timesteps=50, beta_schedule=beta_schedule))
    assert bool((s.betas > 0).all()) and bool((s.betas < 1).all())
    assert bool((s.alphas_cumprod.diff() < 0).all())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timesteps": 1},
        {"beta_schedule": "scaled_linear"},
        {"linear_start": 0.1, "linear_end": 0.01},
        {"v_posterior": 2.0},
        {"parameterization": "v"},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ConfigError):
        NoiseScheduleConfig(**kwargs)
