"""The noise schedule of PreDiff's latent diffusion (the official ``register_schedule``).

Every quantity is computed in float64 and stored twice: as float32 tensors (exactly the official
buffers, which the official sampler uses) and as float64 tensors (``NoiseSchedule.float64``).
The one exception is ``lvlb_weights`` (a training-loss weight, unused by PreDiff's loss), which
the official code computes in float32 from the float32 buffers; its float32 buffer does the same.
Samplers read the float32 buffers and cast them to the latent dtype, which is what the official
code does and what the float64 golden references assume.

PreDiff's ``"linear"`` schedule is linear in ``sqrt(beta)`` (the Stable-Diffusion convention,
called ``"scaled_linear"`` in diffusers):
``beta_t = (sqrt(1e-4) + (sqrt(2e-2) - sqrt(1e-4)) t / 999)^2`` for ``t = 0 .. 999``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from xearthformer.nn._validation import ConfigError

__all__ = ["BUFFER_NAMES", "NoiseSchedule", "NoiseScheduleConfig"]

BetaSchedule = Literal["linear", "sqrt_linear", "sqrt", "cosine"]

#: names of the official ``register_schedule`` buffers, in registration order
BUFFER_NAMES = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "lvlb_weights",
)


@dataclass(frozen=True)
class NoiseScheduleConfig:
    """Diffusion process settings; the defaults are PreDiff's (SEVIR-LR v1).

    Parameters
    ----------
    timesteps : int
        Number of diffusion steps T (steps are ``0 .. T-1``).
    beta_schedule : {"linear", "sqrt_linear", "sqrt", "cosine"}
        ``"linear"`` is linear in sqrt(beta) (PreDiff); ``"sqrt_linear"`` linear in beta.
    linear_start, linear_end : float
        First and last beta of the linear schedules.
    cosine_s : float
        Offset of the cosine schedule.
    v_posterior : float
        Posterior variance ``(1 - v) * beta_tilde + v * beta`` (0 in PreDiff).
    parameterization : {"eps", "x0"}
        What the denoiser predicts (PreDiff: the noise).
    """

    timesteps: int = 1000
    beta_schedule: BetaSchedule = "linear"
    linear_start: float = 1e-4
    linear_end: float = 2e-2
    cosine_s: float = 8e-3
    v_posterior: float = 0.0
    parameterization: Literal["eps", "x0"] = "eps"

    def __post_init__(self) -> None:
        if not isinstance(self.timesteps, int) or self.timesteps < 2:
            raise ConfigError(f"timesteps must be an int >= 2, got {self.timesteps!r}")
        if self.beta_schedule not in ("linear", "sqrt_linear", "sqrt", "cosine"):
            raise ConfigError(
                "beta_schedule must be one of ['linear', 'sqrt_linear', 'sqrt', 'cosine'], "
                f"got {self.beta_schedule!r}"
            )
        if not 0.0 < self.linear_start < self.linear_end < 1.0:
            raise ConfigError(
                "need 0 < linear_start < linear_end < 1, got "
                f"linear_start={self.linear_start}, linear_end={self.linear_end}"
            )
        if not 0.0 <= self.v_posterior <= 1.0:
            raise ConfigError(f"v_posterior must be in [0, 1], got {self.v_posterior}")
        if self.parameterization not in ("eps", "x0"):
            raise ConfigError(
                f"parameterization must be 'eps' or 'x0', got {self.parameterization!r}"
            )


def _betas(config: NoiseScheduleConfig) -> Tensor:
    n, start, end = config.timesteps, config.linear_start, config.linear_end
    f64 = torch.float64
    if config.beta_schedule == "linear":
        return torch.linspace(start**0.5, end**0.5, n, dtype=f64) ** 2
    if config.beta_schedule == "sqrt_linear":
        return torch.linspace(start, end, n, dtype=f64)
    if config.beta_schedule == "sqrt":
        return torch.linspace(start, end, n, dtype=f64) ** 0.5
    steps = torch.arange(n + 1, dtype=f64) / n + config.cosine_s
    alphas = torch.cos(steps / (1 + config.cosine_s) * math.pi / 2) ** 2
    alphas = alphas / alphas[0]
    return torch.clamp(1 - alphas[1:] / alphas[:-1], 0.0, 0.999)


class NoiseSchedule:
    """All per-step coefficients of the forward and reverse diffusion process.

    Each name of :data:`BUFFER_NAMES` is an attribute: a ``(T,)`` float32 tensor equal to the
    official buffer (computed in float64, then cast). ``schedule.float64[name]`` holds the float64
    values before the cast.

    Parameters
    ----------
    config : NoiseScheduleConfig, optional
        PreDiff's schedule by default.

    Examples
    --------
    >>> schedule = NoiseSchedule()
    >>> schedule.num_timesteps, schedule.betas.dtype
    (1000, torch.float32)
    >>> round(float(schedule.betas[-1]), 6), float(schedule.alphas_cumprod_prev[0])
    (0.02, 1.0)
    >>> schedule.extract("posterior_variance", torch.tensor([0, 999]), ndim=5).shape
    torch.Size([2, 1, 1, 1, 1])
    """

    def __init__(self, config: NoiseScheduleConfig | None = None):
        self.config = config = config or NoiseScheduleConfig()
        betas = _betas(config)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        alphas_cumprod_prev = torch.cat([betas.new_ones(1), alphas_cumprod[:-1]])
        v = config.v_posterior
        posterior_variance = (1 - v) * betas * (1.0 - alphas_cumprod_prev) / (
            1.0 - alphas_cumprod
        ) + v * betas
        if config.parameterization == "eps":
            lvlb_weights = betas**2 / (2 * posterior_variance * alphas * (1 - alphas_cumprod))
        else:
            lvlb_weights = 0.5 * torch.sqrt(alphas_cumprod) / (2.0 * 1 - alphas_cumprod)
        lvlb_weights[0] = lvlb_weights[1]  # step 0 divides by a zero posterior variance
        values = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": torch.sqrt(alphas_cumprod),
            "sqrt_one_minus_alphas_cumprod": torch.sqrt(1.0 - alphas_cumprod),
            "log_one_minus_alphas_cumprod": torch.log(1.0 - alphas_cumprod),
            "sqrt_recip_alphas_cumprod": torch.sqrt(1.0 / alphas_cumprod),
            "sqrt_recipm1_alphas_cumprod": torch.sqrt(1.0 / alphas_cumprod - 1),
            "posterior_variance": posterior_variance,
            # clipped: the posterior variance is 0 at step 0
            "posterior_log_variance_clipped": torch.log(torch.clamp(posterior_variance, min=1e-20)),
            "posterior_mean_coef1": betas
            * torch.sqrt(alphas_cumprod_prev)
            / (1.0 - alphas_cumprod),
            "posterior_mean_coef2": (
                (1.0 - alphas_cumprod_prev) * torch.sqrt(alphas) / (1.0 - alphas_cumprod)
            ),
            "lvlb_weights": lvlb_weights,
        }
        self.float64: dict[str, Tensor] = values
        self._moved: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}
        for name in BUFFER_NAMES:
            setattr(self, name, values[name].to(torch.float32))
        if config.parameterization == "eps":
            # The official code computes this one from the float32 buffers, in float32. Near
            # t = 0, ``1 - alphas_cumprod`` cancels catastrophically in float32, so the float32
            # values differ from the float64 ones by up to ~1e-4 (relative); keep the official.
            f32 = self.betas**2 / (
                2 * self.posterior_variance * alphas.to(torch.float32) * (1 - self.alphas_cumprod)
            )
            f32[0] = f32[1]
            self.lvlb_weights = f32

    # typing aid: the attributes set above
    betas: Tensor
    alphas_cumprod: Tensor
    alphas_cumprod_prev: Tensor
    sqrt_alphas_cumprod: Tensor
    sqrt_one_minus_alphas_cumprod: Tensor
    log_one_minus_alphas_cumprod: Tensor
    sqrt_recip_alphas_cumprod: Tensor
    sqrt_recipm1_alphas_cumprod: Tensor
    posterior_variance: Tensor
    posterior_log_variance_clipped: Tensor
    posterior_mean_coef1: Tensor
    posterior_mean_coef2: Tensor
    lvlb_weights: Tensor

    @property
    def num_timesteps(self) -> int:
        """T, the number of diffusion steps."""
        return self.config.timesteps

    def as_dict(self) -> dict[str, Tensor]:
        """The float32 buffers by name (as ``register_schedule`` registers them)."""
        return {name: getattr(self, name) for name in BUFFER_NAMES}

    def check_steps(self, t: Tensor) -> None:
        """Raise :class:`ConfigError` unless ``t`` is a 1-D integer tensor of steps in [0, T)."""
        if t.ndim != 1 or t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ConfigError(f"t must be a 1-D integer tensor 'b', got {t.dtype} {tuple(t.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.num_timesteps):
            raise ConfigError(f"steps must lie in [0, {self.num_timesteps - 1}], got {t.tolist()}")

    def extract(
        self,
        name: str,
        t: Tensor,
        *,
        ndim: int,
        dtype: torch.dtype | None = None,
        check: bool = True,
    ) -> Tensor:
        """Gather buffer ``name`` at steps ``t: "b"`` -> ``(b, 1, ..., 1)`` with ``ndim`` axes.

        The float32 buffer is moved to ``t``'s device and cast to ``dtype`` (default float32);
        the moved copies are cached. ``check=False`` skips validating ``t`` (callers that
        already did, to avoid a device synchronisation per call).
        """
        if name not in BUFFER_NAMES:
            raise ConfigError(f"unknown schedule buffer {name!r}; expected one of {BUFFER_NAMES}")
        if check:
            self.check_steps(t)
        dtype = dtype or torch.float32
        key = (name, t.device, dtype)
        values = self._moved.get(key)
        if values is None:
            values = self._moved[key] = getattr(self, name).to(device=t.device, dtype=dtype)
        return values[t].reshape(t.shape[0], *([1] * (ndim - 1)))

    def q_sample(self, z0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Forward process ``z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) noise`` (layout "b ...")."""
        a = self.extract("sqrt_alphas_cumprod", t, ndim=z0.ndim, dtype=z0.dtype)
        s = self.extract("sqrt_one_minus_alphas_cumprod", t, ndim=z0.ndim, dtype=z0.dtype)
        return a * z0 + s * noise
