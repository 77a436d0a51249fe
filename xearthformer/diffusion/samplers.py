"""Reverse-diffusion samplers on latents ``"b t h w c"``: ancestral DDPM (official) and DDIM.

Both work with any denoiser callable ``out = denoiser(z_t, t, cond)`` returning the noise (or
``z_0`` with ``parameterization="x0"``) in the shape of ``z_t``; ``t`` is an int64 tensor ``"b"``.
All randomness comes from the ``generator=`` argument. The one loop over the visited steps is
``_Sampler.sample``; each sampler says how it makes one move (``_move``).

* :class:`DDPMSampler` is PreDiff's sampler: 1000 ancestral steps with the posterior variance
  ``beta_tilde`` (``predict_start_from_noise``, ``q_posterior``, ``p_mean_variance``, noise except
  at ``t = 0``).
* :class:`DDIMSampler` (Song et al. 2021) is not in the official code: ``num_steps`` evenly spaced
  steps; deterministic with ``eta = 0``; with ``eta = 1`` and all 1000 steps it is the DDPM
  sampler again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from xearthformer.diffusion.guidance import Guidance
from xearthformer.diffusion.schedule import NoiseSchedule
from xearthformer.nn._validation import ConfigError

__all__ = ["DDIMSampler", "DDPMSampler", "Denoiser", "ReverseStep"]

Denoiser = Callable[[Tensor, Tensor, Tensor], Tensor]
StepCallback = Callable[[int, Tensor], None]


@dataclass(frozen=True)
class ReverseStep:
    """Quantities of one reverse step ``z_t -> z_{t-1}`` (the official ``p_mean_variance``).

    ``mean``, ``z0_pred`` and ``eps`` have the shape of ``z_t``; ``variance`` and
    ``log_variance`` (posterior variance and its clipped log) are ``(b, 1, 1, 1, 1)``.
    """

    mean: Tensor
    variance: Tensor
    log_variance: Tensor
    z0_pred: Tensor
    eps: Tensor


def _steps(t: Tensor | int, batch: int, device: torch.device) -> Tensor:
    if isinstance(t, int):
        return torch.full((batch,), t, dtype=torch.long, device=device)
    if t.shape != (batch,):
        raise ConfigError(
            f"t must have shape ({batch},) like the batch of z_t, got {tuple(t.shape)}"
        )
    return t.to(device)


def _noise(z: Tensor, generator: torch.Generator | Sequence[torch.Generator] | None) -> Tensor:
    """Standard normal noise like ``z``; a sequence of generators draws each batch row from its
    own generator (so a row's noise does not depend on the batch it is in)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != z.shape[0]:
            raise ConfigError(f"got {len(generator)} generators for a batch of {z.shape[0]}")
        return torch.stack([torch.randn(z.shape[1:], generator=g, dtype=z.dtype, device=z.device)
                            for g in generator])
    return torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)


class _Sampler:
    def __init__(self, schedule: NoiseSchedule | None, clip_denoised: bool):
        self.schedule = schedule or NoiseSchedule()
        self.clip_denoised = clip_denoised

    def _coef(self, name: str, t: Tensor, like: Tensor) -> Tensor:
        return self.schedule.extract(name, t, ndim=like.ndim, dtype=like.dtype, check=False)

    def _steps(self, t: Tensor | int, batch: int, device: torch.device) -> Tensor:
        t = _steps(t, batch, device)
        self.schedule.check_steps(t)
        return t

    def predict_start_from_noise(self, z_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """``z0 = sqrt(1/abar_t) z_t - sqrt(1/abar_t - 1) eps``."""
        return (
            self._coef("sqrt_recip_alphas_cumprod", t, z_t) * z_t
            - self._coef("sqrt_recipm1_alphas_cumprod", t, z_t) * eps
        )

    def predict_noise_from_start(self, z_t: Tensor, t: Tensor, z0: Tensor) -> Tensor:
        """Inverse of :meth:`predict_start_from_noise`."""
        return (self._coef("sqrt_recip_alphas_cumprod", t, z_t) * z_t - z0) / self._coef(
            "sqrt_recipm1_alphas_cumprod", t, z_t
        )

    def predict(
        self, denoiser: Denoiser, z_t: Tensor, t: Tensor, cond: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Run the denoiser once: ``(z0_pred, eps)``."""
        out = denoiser(z_t, t, cond)
        if out.shape != z_t.shape:
            raise ConfigError(
                f"denoiser(z_t, t, cond) must return the shape of z_t {tuple(z_t.shape)}, "
                f"got {tuple(out.shape)}"
            )
        if self.schedule.config.parameterization == "eps":
            eps, z0 = out, self.predict_start_from_noise(z_t, t, out)
        else:
            z0, eps = out, self.predict_noise_from_start(z_t, t, out)
        if self.clip_denoised:
            z0 = z0.clamp(-1.0, 1.0)
        return z0, eps

    def posterior_std(self, t: Tensor, like: Tensor) -> Tensor:
        """``sigma_t = exp(0.5 * posterior_log_variance_clipped[t])``, ``(b, 1, ..., 1)``."""
        return torch.exp(0.5 * self._coef("posterior_log_variance_clipped", t, like))

    @property
    def timesteps(self) -> Tensor:  # pragma: no cover - every sampler defines its own
        raise NotImplementedError

    def _move(self, denoiser: Denoiser, z: Tensor, step: int, step_prev: int, cond: Tensor,
              guidance: Guidance | None, generator: torch.Generator | Sequence[torch.Generator] | None,
              memory: Any) -> tuple[Tensor, Any]:
        """One move ``step -> step_prev`` of :meth:`sample` (``step_prev = -1``: to ``z_0``):
        the new latent and what the next move needs to remember (multistep solvers)."""
        raise NotImplementedError  # pragma: no cover

    @torch.no_grad()
    def sample(
        self,
        denoiser: Denoiser,
        z_T: Tensor,
        cond: Tensor,
        *,
        guidance: Guidance | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        """Denoise ``z_T: "b t h w c"`` (pure noise) to ``z_0`` over :attr:`timesteps`.

        ``generator`` (one, or one per batch row) draws the noise of stochastic steps.
        ``callback(step, z)`` is called after each step with the new latent.
        """
        steps = self.timesteps.tolist()
        z, memory = z_T, None
        for step, step_prev in zip(steps, steps[1:] + [-1], strict=True):
            z, memory = self._move(denoiser, z, step, step_prev, cond, guidance, generator, memory)
            if callback is not None:
                callback(step, z)
        return z


class DDPMSampler(_Sampler):
    """Ancestral sampling over every step, from ``T-1`` down to ``0`` (PreDiff's ``p_sample_loop``).

    Parameters
    ----------
    schedule : NoiseSchedule, optional
        PreDiff's schedule by default.
    clip_denoised : bool
        Clamp the predicted ``z_0`` to [-1, 1] (False in PreDiff).

    Examples
    --------
    A stand-in denoiser that predicts zero noise, on a 10-step schedule:

    >>> from xearthformer.diffusion.schedule import NoiseScheduleConfig
    >>> sampler = DDPMSampler(NoiseSchedule(NoiseScheduleConfig(timesteps=10)))
    >>> denoiser = lambda z, t, cond: torch.zeros_like(z)
    >>> gen = torch.Generator().manual_seed(0)
    >>> z_T = torch.randn(2, 3, 4, 4, 1, generator=gen)                 # "b t h w c"
    >>> sampler.sample(denoiser, z_T, cond=None, generator=gen).shape
    torch.Size([2, 3, 4, 4, 1])
    """

    def __init__(self, schedule: NoiseSchedule | None = None, *, clip_denoised: bool = False):
        super().__init__(schedule, clip_denoised)

    @property
    def timesteps(self) -> Tensor:
        """The steps visited, in order: ``T-1, ..., 0``."""
        return torch.arange(self.schedule.num_timesteps - 1, -1, -1)

    def q_posterior(self, z0: Tensor, z_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, variance and clipped log-variance of ``q(z_{t-1} | z_t, z_0)``."""
        mean = (
            self._coef("posterior_mean_coef1", t, z_t) * z0
            + self._coef("posterior_mean_coef2", t, z_t) * z_t
        )
        variance = self._coef("posterior_variance", t, z_t)
        log_variance = self._coef("posterior_log_variance_clipped", t, z_t)
        return mean, variance, log_variance

    def p_mean_variance(
        self, denoiser: Denoiser, z_t: Tensor, t: Tensor | int, cond: Tensor,
        guidance: Guidance | None = None,
    ) -> ReverseStep:
        """The model's reverse-step distribution at ``z_t`` (no noise).

        A guidance with a ``correct_start(z0, t)`` method (e.g.
        :class:`~xearthformer.diffusion.guidance.CleanEstimateControl`) corrects ``z0_pred``
        before the posterior mean is formed; a mean shift is applied later, in :meth:`step`.
        """
        t = self._steps(t, z_t.shape[0], z_t.device)
        z0, eps = self.predict(denoiser, z_t, t, cond)
        if guidance is not None and hasattr(guidance, "correct_start"):
            z0 = guidance.correct_start(z0, t)
        mean, variance, log_variance = self.q_posterior(z0, z_t, t)
        return ReverseStep(mean, variance, log_variance, z0, eps)

    def step(
        self,
        denoiser: Denoiser,
        z_t: Tensor,
        t: Tensor | int,
        cond: Tensor,
        *,
        guidance: Guidance | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> Tensor:
        """One ancestral step: ``z_{t-1} = mu' + 1[t > 0] * sigma_t * n``, ``n ~ N(0, I)``."""
        t = self._steps(t, z_t.shape[0], z_t.device)
        out = self.p_mean_variance(denoiser, z_t, t, cond, guidance)
        sigma = torch.exp(0.5 * out.log_variance)
        mean = out.mean if guidance is None else guidance.shift_mean(out.mean, z_t, t, sigma)
        if not bool((t > 0).any()):
            return mean  # the last step adds no noise (and draws none)
        nonzero = (t > 0).to(z_t.dtype).reshape(-1, *([1] * (z_t.ndim - 1)))
        return mean + nonzero * sigma * _noise(z_t, generator)

    def _move(self, denoiser, z, step, step_prev, cond, guidance, generator, memory):
        return self.step(denoiser, z, step, cond, guidance=guidance, generator=generator), None


class DDIMSampler(_Sampler):
    """DDIM sampling over ``num_steps`` evenly spaced steps (not in the official code).

    For consecutive visited steps ``t > s`` (``abar_s = 1`` after the last one):
    ``z_s = sqrt(abar_s) z0 + sqrt(1 - abar_s - sigma^2) eps + sigma n`` with
    ``sigma = eta * sqrt((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s))``.
    With ``eta = 0`` the map from ``z_T`` to ``z_0`` is deterministic; with ``eta = 1`` and
    ``num_steps = T`` it equals :class:`DDPMSampler` step for step.

    Guidance (if any) shifts the mean by ``-sigma_t * guide_scale * grad`` with the *DDPM*
    posterior standard deviation of the current step, so that one step is guided as in the
    official sampler whatever ``eta``. With fewer steps the shift is applied fewer times: raise
    ``guide_scale`` roughly by ``T / num_steps`` for a comparable total pull.

    Parameters
    ----------
    schedule : NoiseSchedule, optional
        PreDiff's schedule by default.
    num_steps : int
        Steps visited, from ``T-1`` down to 0 (rounded ``linspace``), ``1 <= num_steps <= T``.
    eta : float
        0 for deterministic DDIM, 1 for DDPM-like stochasticity.
    clip_denoised : bool
        Clamp the predicted ``z_0`` to [-1, 1].

    Examples
    --------
    >>> sampler = DDIMSampler(num_steps=5)
    >>> sampler.timesteps.tolist()
    [999, 749, 500, 250, 0]
    >>> denoiser = lambda z, t, cond: 0.1 * z
    >>> z_T = torch.randn(1, 2, 3, 3, 1, generator=torch.Generator().manual_seed(0))
    >>> a = sampler.sample(denoiser, z_T, cond=None)
    >>> torch.equal(a, sampler.sample(denoiser, z_T, cond=None))       # eta = 0: deterministic
    True
    """

    def __init__(
        self,
        schedule: NoiseSchedule | None = None,
        *,
        num_steps: int = 50,
        eta: float = 0.0,
        clip_denoised: bool = False,
    ):
        super().__init__(schedule, clip_denoised)
        total = self.schedule.num_timesteps
        if not isinstance(num_steps, int) or not 1 <= num_steps <= total:
            raise ConfigError(f"num_steps must be an int in [1, {total}], got {num_steps!r}")
        if eta < 0:
            raise ConfigError(f"eta must be >= 0, got {eta}")
        self.num_steps, self.eta = num_steps, float(eta)

    @property
    def timesteps(self) -> Tensor:
        """The steps visited, in order, from ``T-1`` down to 0."""
        total = self.schedule.num_timesteps
        if self.num_steps == 1:
            return torch.tensor([total - 1])
        return torch.linspace(total - 1, 0, self.num_steps, dtype=torch.float64).round().long()

    def _alphas_cumprod(self, t: Tensor, like: Tensor) -> Tensor:
        """``abar_t`` as ``(b, 1, ..., 1)``; ``t = -1`` (after the last step) gives 1."""
        values = self.schedule.alphas_cumprod.to(device=like.device, dtype=like.dtype)
        values = torch.cat([values, values.new_ones(1)])  # index -1 -> 1.0
        return values[t].reshape(-1, *([1] * (like.ndim - 1)))

    def step(
        self,
        denoiser: Denoiser,
        z_t: Tensor,
        t: Tensor | int,
        t_prev: Tensor | int,
        cond: Tensor,
        *,
        guidance: Guidance | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> Tensor:
        """One DDIM step from ``t`` to ``t_prev < t`` (``t_prev = -1``: to ``z_0``)."""
        t = self._steps(t, z_t.shape[0], z_t.device)
        t_prev = _steps(t_prev, z_t.shape[0], z_t.device)
        if bool((t_prev >= t).any()) or bool((t_prev < -1).any()):
            raise ConfigError(
                f"need -1 <= t_prev < t, got t={t.tolist()}, t_prev={t_prev.tolist()}"
            )
        z0, eps = self.predict(denoiser, z_t, t, cond)
        if guidance is not None and hasattr(guidance, "correct_start"):
            z0 = guidance.correct_start(z0, t)
        abar_t, abar_prev = self._alphas_cumprod(t, z_t), self._alphas_cumprod(t_prev, z_t)
        sigma = self.eta * torch.sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev))
        direction = torch.sqrt(torch.clamp(1 - abar_prev - sigma**2, min=0.0))
        mean = torch.sqrt(abar_prev) * z0 + direction * eps
        if guidance is not None:
            mean = guidance.shift_mean(mean, z_t, t, self.posterior_std(t, z_t))
        if self.eta == 0 or not bool((sigma > 0).any()):
            return mean
        return mean + sigma * _noise(z_t, generator)

    def _move(self, denoiser, z, step, step_prev, cond, guidance, generator, memory):
        return self.step(denoiser, z, step, step_prev, cond, guidance=guidance, generator=generator), None
