"""The official noise schedule (register_schedule) against the golden buffers."""

from __future__ import annotations

import pytest
import torch

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
    assert float((ours - ref).abs().max()) <= 1e-6 * float(ref.abs().max())


@pytest.mark.golden
@pytest.mark.parametrize("name", ["betas", "alphas_cumprod"])
def test_float64_arrays_match_official(reference, name):
    ours, ref = NoiseSchedule().float64[name], reference[f"{name}_float64"]
    assert ours.dtype == torch.float64
    assert float(((ours - ref).abs() / ref.abs()).max()) <= 1e-15


def test_schedule_identities():
    s = NoiseSchedule()
    f = s.float64
    assert torch.allclose(f["alphas_cumprod"], torch.cumprod(1 - f["betas"], 0), rtol=0, atol=0)
    # posterior mean coefficients: coef1 + coef2 * sqrt(abar_t) = sqrt(abar_{t-1})
    lhs = f["posterior_mean_coef1"] + f["posterior_mean_coef2"] * f["sqrt_alphas_cumprod"]
    assert torch.allclose(lhs, f["alphas_cumprod_prev"].sqrt(), rtol=1e-12)
    assert float(s.posterior_variance[0]) == 0.0
    assert float(s.posterior_log_variance_clipped[0]) == pytest.approx(-46.0517, abs=1e-4)
    sqrt_betas = f["betas"].sqrt()
    assert torch.allclose(sqrt_betas.diff(), sqrt_betas.diff()[:1].expand(999), rtol=1e-9)


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
