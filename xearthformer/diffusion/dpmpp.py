"""DPM-Solver++(2M): a second-order multistep sampler of the probability-flow ODE.

Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models", Algorithm 2 (the multistep, data-prediction solver; diffusers calls it
``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
solver_type="midpoint")``), written for PreDiff's discrete schedule.

With ``alpha_t = sqrt(abar_t)``, ``sigma_t = sqrt(1 - abar_t)``, the log signal-to-noise ratio
``lambda_t = log(alpha_t / sigma_t)`` and ``D_i`` the denoiser's clean estimate ``z0_hat`` at
the ``i``-th visited step ``t_i``, one step ``t_{i-1} -> t_i`` with ``h_i = lambda_{t_i} -
lambda_{t_{i-1}}`` is::

    z_{t_i} = sigma_{t_i} / sigma_{t_{i-1}} z_{t_{i-1}} - alpha_{t_i} (exp(-h_i) - 1) D,

with ``D = D_{i-1}`` for the first step (first order: this is DDIM with ``eta = 0``) and the
second-order ``D = D_{i-1} + (D_{i-1} - D_{i-2}) h_i / (2 h_{i-1})`` after it. The last move,
from step 0 to the clean sample (``sigma = 0``, where ``h`` is infinite), is first order: it
returns the clean estimate at step 0 (as diffusers' ``lower_order_final``). One denoiser call
per visited step, as DDIM.

The visited steps are evenly spaced in ``lambda`` from step ``T-1`` to step 0 (``spacing=
"logsnr"``, the DPM-Solver paper's choice; each rounded to the nearest integer step), so that
every step has a similar ``h``. With DDIM's steps, evenly spaced in ``t`` (``spacing=
"linear"``), ``lambda`` jumps by a few units over the last step (``lambda`` grows like
``-log(t) / 2`` near ``t = 0``), and on a Gaussian toy problem with a known exact solution
(``tests/diffusion/test_dpmpp.py``) the solver is then *less* accurate than DDIM at 8-20 steps;
with ``"logsnr"`` its error falls as ``num_steps**-2`` and is 5-10x below DDIM's at 10-20 steps.

With ``eta = 0`` the sampler is deterministic given ``z_T`` (the ODE solver). With ``eta = 1``
it is SDE-DPM-Solver++(2M) (diffusers' ``algorithm_type="sde-dpmsolver++"``): the same
multistep update with ``exp(-h)`` and ``1 - exp(-h)`` replaced by ``exp(-2h)``-terms::

    z_{t_i} = sigma_{t_i} / sigma_{t_{i-1}} exp(-h_i) z_{t_{i-1}} + alpha_{t_i} (1 - exp(-2 h_i)) D
              + sigma_{t_i} sqrt(1 - exp(-2 h_i)) n,   n ~ N(0, I),

whose first-order step is DDIM's with ``eta = 1`` (the DDPM posterior), noise and all. Knowledge
control works as in
:class:`~xearthformer.diffusion.DDIMSampler`: a guidance with ``correct_start`` corrects each
clean estimate ``D`` before it is used (and stored for the next step), and a mean-shift guidance
shifts each new latent by ``-sigma_t * guide_scale * grad`` with the DDPM posterior standard
deviation of the step just taken.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from xearthformer.diffusion.samplers import _noise, _Sampler
from xearthformer.diffusion.schedule import NoiseSchedule
from xearthformer.nn._validation import ConfigError

__all__ = ["DPMSolverSampler"]


class DPMSolverSampler(_Sampler):
    """DPM-Solver++(2M) over ``num_steps`` evenly spaced steps (not in the official code).

    Parameters
    ----------
    schedule : NoiseSchedule, optional
        PreDiff's schedule by default.
    num_steps : int
        Steps visited (one denoiser call each), from ``T-1`` down to 0, ``1 <= num_steps <= T``.
    eta : {0, 1}
        0: the ODE solver (deterministic given ``z_T``); 1: the SDE solver, which adds noise
        at every step but the last, like DDIM with ``eta = 1``.
    spacing : {"logsnr", "linear"}
        ``"logsnr"``: evenly spaced in ``lambda`` (default); ``"linear"``: evenly spaced in
        ``t``, the steps of :class:`~xearthformer.diffusion.DDIMSampler`.
    clip_denoised : bool
        Clamp each clean estimate to [-1, 1].

    Examples
    --------
    >>> sampler = DPMSolverSampler(num_steps=5)
    >>> sampler.timesteps.tolist()
    [999, 740, 303, 37, 0]
    >>> DPMSolverSampler(num_steps=5, spacing="linear").timesteps.tolist()
    [999, 749, 500, 250, 0]
    >>> denoiser = lambda z, t, cond: 0.1 * z
    >>> z_T = torch.randn(1, 2, 3, 3, 1, generator=torch.Generator().manual_seed(0))
    >>> a = sampler.sample(denoiser, z_T, cond=None)
    >>> a.shape, torch.equal(a, sampler.sample(denoiser, z_T, cond=None))   # deterministic
    (torch.Size([1, 2, 3, 3, 1]), True)
    """

    def __init__(
        self,
        schedule: NoiseSchedule | None = None,
        *,
        num_steps: int = 15,
        eta: float = 0.0,
        spacing: Literal["logsnr", "linear"] = "logsnr",
        clip_denoised: bool = False,
    ):
        super().__init__(schedule, clip_denoised)
        total = self.schedule.num_timesteps
        if not isinstance(num_steps, int) or isinstance(num_steps, bool) or not (
            1 <= num_steps <= total
        ):
            raise ConfigError(f"num_steps must be an int in [1, {total}], got {num_steps!r}")
        if spacing not in ("logsnr", "linear"):
            raise ConfigError(f"spacing must be 'logsnr' or 'linear', got {spacing!r}")
        if eta not in (0, 1):
            raise ConfigError(f"eta must be 0 (ODE solver) or 1 (SDE solver), got {eta!r}")
        self.num_steps, self.spacing, self.eta = num_steps, spacing, float(eta)

    @property
    def timesteps(self) -> Tensor:
        """The steps visited, in order, from ``T-1`` down to 0."""
        total = self.schedule.num_timesteps
        if self.num_steps == 1:
            return torch.tensor([total - 1])
        if self.spacing == "linear":
            return torch.linspace(total - 1, 0, self.num_steps, dtype=torch.float64).round().long()
        abar = self.schedule.float64["alphas_cumprod"]
        lam = 0.5 * (torch.log(abar) - torch.log1p(-abar))  # increasing as t decreases
        wanted = torch.linspace(float(lam[-1]), float(lam[0]), self.num_steps, dtype=torch.float64)
        steps = (lam[None, :] - wanted[:, None]).abs().argmin(dim=1).tolist()
        # many steps crowd near t = 0, where lambda changes fastest: keep them distinct (room
        # for the steps after step i first, then each step above the next)
        steps = [min(step, total - 1 - i) for i, step in enumerate(steps)]
        for i in range(self.num_steps - 2, -1, -1):
            steps[i] = max(steps[i], steps[i + 1] + 1)
        return torch.tensor(steps)

    def _alpha_sigma_lambda(self, step: int) -> tuple[float, float, float]:
        """``(alpha_t, sigma_t, lambda_t)`` in float64; ``step = -1`` is the clean sample."""
        if step < 0:
            return 1.0, 0.0, math.inf
        abar = float(self.schedule.float64["alphas_cumprod"][step])
        alpha, sigma = math.sqrt(abar), math.sqrt(1.0 - abar)
        return alpha, sigma, math.log(alpha) - math.log(sigma)

    def coefficients(self, step: int, step_prev: int, step_before: int | None
                     ) -> tuple[float, float, float]:
        """``(c_z, c_0, c_1)`` of the move ``step -> step_prev``: ``z' = c_z z + c_0 D_i +
        c_1 D_{i-1}`` (plus :meth:`noise_std` times fresh noise for ``eta = 1``), with ``D_i``
        the clean estimate at ``step`` and ``D_{i-1}`` that at ``step_before`` (the previously
        visited step; None or ``step_prev = -1``: first order, ``c_1 = 0``). In float64.

        A noise-free latent ``z = alpha_s D`` with a constant clean estimate ``D`` moves to
        ``alpha_t D`` exactly:

        >>> sampler = DPMSolverSampler(num_steps=3)
        >>> c_z, c_0, c_1 = sampler.coefficients(500, 0, 999)
        >>> alpha = sampler.schedule.float64["sqrt_alphas_cumprod"]
        >>> abs(c_z * float(alpha[500]) + c_0 + c_1 - float(alpha[0])) < 1e-12
        True
        """
        alpha_s, sigma_s, lambda_s = self._alpha_sigma_lambda(step)
        alpha_t, sigma_t, lambda_t = self._alpha_sigma_lambda(step_prev)
        if step_prev < 0:  # to sigma = 0: exp(-h) = 0, z' = D_i
            return 0.0, 1.0, 0.0
        h = lambda_t - lambda_s
        if self.eta:  # SDE: exp(-h) z and alpha_t (1 - exp(-2h))
            c_z, c_d = sigma_t / sigma_s * math.exp(-h), -alpha_t * math.expm1(-2.0 * h)
        else:
            c_z, c_d = sigma_t / sigma_s, -alpha_t * math.expm1(-h)  # alpha_t (1 - exp(-h))
        if step_before is None:
            return c_z, c_d, 0.0
        _, _, lambda_before = self._alpha_sigma_lambda(step_before)
        half_over_r = 0.5 * h / (lambda_s - lambda_before)  # 1 / (2 r), r = h_{i-1} / h_i
        return c_z, c_d * (1.0 + half_over_r), -c_d * half_over_r

    def noise_std(self, step: int, step_prev: int) -> float:
        """Standard deviation of the noise added by the move ``step -> step_prev``:
        ``sigma_{t'} sqrt(1 - exp(-2h))`` for ``eta = 1``, 0 for ``eta = 0`` and the last move."""
        if not self.eta or step_prev < 0:
            return 0.0
        _, _, lambda_s = self._alpha_sigma_lambda(step)
        _, sigma_t, lambda_t = self._alpha_sigma_lambda(step_prev)
        return sigma_t * math.sqrt(-math.expm1(-2.0 * (lambda_t - lambda_s)))

    def _move(self, denoiser, z, step, step_prev, cond, guidance, generator, memory):
        """One solver step; ``memory`` is the previous step and its clean estimate ``(step, D)``."""
        step_before, d_before = memory if memory is not None else (None, None)
        t = torch.full((z.shape[0],), step, dtype=torch.long, device=z.device)
        d, _ = self.predict(denoiser, z, t, cond)
        if guidance is not None and hasattr(guidance, "correct_start"):
            d = guidance.correct_start(d, t)
        c_z, c_0, c_1 = self.coefficients(step, step_prev, step_before)
        new = c_z * z + c_0 * d if c_1 == 0.0 else c_z * z + c_0 * d + c_1 * d_before
        if guidance is not None:
            new = guidance.shift_mean(new, z, t, self.posterior_std(t, z))
        std = self.noise_std(step, step_prev)
        if std > 0:
            new = new + std * _noise(z, generator)
        return new, (step, d)
