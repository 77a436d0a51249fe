"""PreDiff forecasting pipeline: encode the context, denoise (optionally guided), decode.

The parts are injected: any autoencoder with ``encode(frames) -> posterior`` (``.mode()``) and
``decode(latents)``, any denoiser ``eps = denoiser(z_t, t, z_cond)``, a sampler from
:mod:`xearthformer.diffusion.samplers`, and optionally an alignment network ``A(z_t, t)`` for
knowledge control. Tensors are ``"b t h w c"`` (pixels: ``c`` data channels; latents: ``c``
latent channels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import torch
from einops import rearrange
from torch import Tensor

from xearthformer.diffusion.guidance import CleanEstimateControl, KnowledgeControl, Norm
from xearthformer.diffusion.samplers import (
    DDIMSampler,
    DDPMSampler,
    Denoiser,
    StepCallback,
    _noise,
)
from xearthformer.nn._validation import ConfigError

__all__ = ["DecodedQuantity", "PreDiffPipeline"]

Control = Literal["mean_shift", "clean_estimate"]


class _Posterior(Protocol):
    def mode(self) -> Tensor: ...


class FrameAutoencoder(Protocol):
    """What the pipeline needs from the VAE, e.g. :class:`~xearthformer.models.AutoencoderKL`."""

    def encode(self, x: Tensor) -> _Posterior: ...

    def decode(self, z: Tensor) -> Tensor: ...


class PreDiffPipeline:
    """Latent-diffusion forecast from a context sequence (PreDiff's ``LatentDiffusion.sample``).

    1. ``z_cond = vae.encode(frames).mode()``, frame by frame (the posterior mean, as PreDiff).
    2. ``z_T ~ N(0, I)`` of shape ``(b, num_frames, h, w, c_latent)`` from ``generator``.
    3. The sampler's loop with ``denoiser(z_t, t, z_cond)``; with a ``target``, every step's mean
       is shifted by :class:`~xearthformer.diffusion.guidance.KnowledgeControl`.
    4. ``vae.decode`` frame by frame (latents are not rescaled: PreDiff's scale factor is 1).

    Parameters
    ----------
    vae : FrameAutoencoder
        Encodes ``"n c h w"`` frames to a posterior with ``.mode()``, decodes latents ``"n l h w"``.
    denoiser : callable
        ``eps = denoiser(z_t, t, z_cond)`` on latents ``"b t h w c"``.
    sampler : DDPMSampler or DDIMSampler
        The reverse process (PreDiff: ``DDPMSampler()``).
    alignment : callable, optional
        Alignment network ``A(z_t, t) -> "b t k"``; needed for ``target=``.
    guide_scale : float
        Knowledge-control strength (50 in PreDiff's configuration).
    norm : {"per_sample", "batch"}
        Norm of the alignment violation, see
        :class:`~xearthformer.diffusion.guidance.KnowledgeControl`.
    control : {"mean_shift", "clean_estimate"}
        ``"mean_shift"`` (default, PreDiff): :class:`~xearthformer.diffusion.guidance.
        KnowledgeControl` with ``alignment(z_t, t)`` on the noisy latent. ``"clean_estimate"``:
        :class:`~xearthformer.diffusion.guidance.CleanEstimateControl`, which corrects each
        step's clean estimate with ``alignment(z0, 0)`` (e.g. a :class:`DecodedQuantity`);
        ``guide_scale`` is then the fraction of the violation removed per step.
    control_iterations : int
        Most Gauss-Newton steps per reverse step for ``"clean_estimate"``.
    exact_steps : int, optional
        ``"clean_estimate"`` only: evaluate the alignment exactly (with its Jacobian) at the
        first step and at the last ``exact_steps`` steps of the sampler, and use each member's
        linearisation in between (see ``exact_at`` of :class:`~xearthformer.diffusion.
        guidance.CleanEstimateControl`). None (default): exactly at every step.
    reuse_jacobian : bool
        ``"clean_estimate"``: the iterations of a step after its first reuse its Jacobian
        (value-only chord iterations, no backward pass).
    control_tol : float
        ``"clean_estimate"``: violation (units of the alignment) below which a member takes
        no further Gauss-Newton step.

    Examples
    --------
    Stand-ins: an "autoencoder" that averages 2x2 pixel blocks, a denoiser predicting no noise.

    >>> import torch.nn.functional as F
    >>> from types import SimpleNamespace
    >>> from xearthformer.diffusion.schedule import NoiseSchedule, NoiseScheduleConfig
    >>> vae = SimpleNamespace(
    ...     encode=lambda x: SimpleNamespace(mode=lambda: F.avg_pool2d(x, 2)),
    ...     decode=lambda z: F.interpolate(z, scale_factor=2.0))
    >>> sampler = DDPMSampler(NoiseSchedule(NoiseScheduleConfig(timesteps=20)))
    >>> pipe = PreDiffPipeline(vae, lambda z, t, c: torch.zeros_like(z), sampler)
    >>> context = torch.rand(2, 3, 8, 8, 1)                        # "b t h w c"
    >>> pipe(context, num_frames=4, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 4, 8, 8, 1])
    """

    def __init__(
        self,
        vae: FrameAutoencoder,
        denoiser: Denoiser,
        sampler: DDPMSampler | DDIMSampler,
        alignment: Callable[[Tensor, Tensor], Tensor] | None = None,
        *,
        guide_scale: float = 50.0,
        norm: Norm = "per_sample",
        control: Control = "mean_shift",
        control_iterations: int = 3,
        exact_steps: int | None = None,
        reuse_jacobian: bool = False,
        control_tol: float = 1e-3,
    ):
        if exact_steps is not None and (not isinstance(exact_steps, int) or exact_steps < 1):
            raise ConfigError(f"exact_steps must be None or a positive int, got {exact_steps!r}")
        if control not in ("mean_shift", "clean_estimate"):
            raise ConfigError(f"control must be 'mean_shift' or 'clean_estimate', got {control!r}")
        if not callable(denoiser):
            raise ConfigError(
                f"denoiser must be callable as denoiser(z_t, t, z_cond), got {denoiser!r}"
            )
        if not hasattr(sampler, "sample"):
            raise ConfigError(f"sampler must be a DDPMSampler or DDIMSampler, got {sampler!r}")
        self.vae, self.denoiser, self.sampler = vae, denoiser, sampler
        self.alignment, self.guide_scale, self.norm = alignment, guide_scale, norm
        self.control, self.control_iterations = control, control_iterations
        self.exact_steps, self.reuse_jacobian = exact_steps, bool(reuse_jacobian)
        self.control_tol = float(control_tol)

    def exact_at(self) -> list[int] | None:
        """The steps ``t`` at which ``"clean_estimate"`` evaluates the alignment exactly
        (besides the first step); None: every step."""
        timesteps = getattr(self.sampler, "timesteps", None)
        if self.exact_steps is None or timesteps is None:
            return None
        return [int(t) for t in torch.as_tensor(timesteps).reshape(-1)[-self.exact_steps:]]

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Pixels ``"b t h w c"`` to latents ``"b t h' w' l"`` (posterior mean per frame)."""
        if x.ndim != 5:
            raise ConfigError(f"x must be 'b t h w c', got shape {tuple(x.shape)}")
        frames = rearrange(x, "b t h w c -> (b t) c h w")
        latents = self.vae.encode(frames).mode()
        return rearrange(latents, "(b t) c h w -> b t h w c", b=x.shape[0])

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Latents ``"b t h w l"`` to pixels ``"b t H W c"``, frame by frame."""
        if z.ndim != 5:
            raise ConfigError(f"z must be 'b t h w c', got shape {tuple(z.shape)}")
        cached = getattr(self.alignment, "decoded", None)
        frames = cached(z) if callable(cached) else None
        if frames is None:
            frames = self.vae.decode(rearrange(z, "b t h w c -> (b t) c h w"))
        return rearrange(frames, "(b t) c h w -> b t h w c", b=z.shape[0])

    def guidance(
        self, target: Tensor | float | None
    ) -> KnowledgeControl | CleanEstimateControl | None:
        """The knowledge control for ``target`` (None without a target)."""
        if target is None:
            return None
        if self.alignment is None:
            raise ConfigError(
                "a knowledge-control target was given but the pipeline has no alignment network; "
                "pass alignment= when building it"
            )
        if self.control == "clean_estimate":
            return CleanEstimateControl(self.alignment, target, guide_scale=self.guide_scale,
                                        iterations=self.control_iterations,
                                        exact_at=self.exact_at(),
                                        reuse_jacobian=self.reuse_jacobian,
                                        tol=self.control_tol)
        return KnowledgeControl(
            self.alignment, target, guide_scale=self.guide_scale, norm=self.norm
        )

    def __call__(
        self,
        context: Tensor,
        *,
        num_frames: int,
        target: Tensor | float | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        z_T: Tensor | None = None,
        callback: StepCallback | None = None,
        return_latents: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Forecast ``num_frames`` frames after ``context: "b t h w c"``.

        Parameters
        ----------
        context : Tensor
            Observed frames, ``"b t_in h w c"`` (pixel space).
        num_frames : int
            Frames to forecast.
        target : Tensor or float, optional
            Anticipated alignment quantity (``"b k"``, ``"b"`` or scalar): enables knowledge
            control.
        generator : torch.Generator or sequence of torch.Generator, optional
            Source of the initial noise and of every step's noise; one generator per batch
            row makes each row's noise independent of the batch it is in.
        z_T : Tensor, optional
            Initial noise ``"b num_frames h' w' l"`` (e.g. shared between scenarios); drawn
            from ``generator`` when omitted.
        callback : callable, optional
            ``callback(step, z)`` after each reverse step.
        return_latents : bool
            Also return the final latents.

        Returns
        -------
        Tensor or (Tensor, Tensor)
            Forecast ``"b num_frames h w c"``, and the latents if asked.
        """
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ConfigError(f"num_frames must be a positive int, got {num_frames!r}")
        z_cond = self.encode(context)
        batch, _, height, width, channels = z_cond.shape
        shape = (batch, num_frames, height, width, channels)
        if z_T is None:
            z_T = _noise(torch.empty(shape, dtype=z_cond.dtype, device=z_cond.device), generator)
        elif tuple(z_T.shape) != shape:
            raise ConfigError(f"z_T must have shape {shape}, got {tuple(z_T.shape)}")
        z0 = self.sampler.sample(
            self.denoiser,
            z_T,
            z_cond,
            guidance=self.guidance(target),
            generator=generator,
            callback=callback,
        )
        forecast = self.decode(z0)
        return (forecast, z0) if return_latents else forecast


class DecodedQuantity:
    """Alignment function ``A(z0, t) = quantity(decode(z0))``: the exact quantity of a decoding.

    For :class:`~xearthformer.diffusion.guidance.CleanEstimateControl` (``control=
    "clean_estimate"``): instead of a network trained to read the quantity off noisy latents,
    the clean estimate is decoded (differentiably, frame by frame) and the quantity computed on
    the pixels, so the control steers exactly what is verified. ``t`` is ignored.

    Parameters
    ----------
    vae : FrameAutoencoder
        Its ``decode`` must be differentiable.
    quantity : callable
        ``quantity(x "b t H W c") -> "b t k"`` or ``"b k"`` on decoded pixels (in the model's
        normalised units).

    Examples
    --------
    >>> import torch.nn.functional as F
    >>> from types import SimpleNamespace
    >>> vae = SimpleNamespace(decode=lambda z: F.interpolate(z, scale_factor=2.0))
    >>> align = DecodedQuantity(vae, lambda x: x.mean(dim=(2, 3, 4))[..., None])
    >>> align(torch.ones(2, 3, 4, 4, 1), torch.zeros(2)).shape
    torch.Size([2, 3, 1])
    """

    def __init__(self, vae: FrameAutoencoder, quantity: Callable[[Tensor], Tensor]):
        if not callable(quantity):
            raise ConfigError(f"quantity must be callable as quantity(x), got {quantity!r}")
        self.vae, self.quantity = vae, quantity
        self._last: tuple[Tensor, Tensor] | None = None

    def __call__(self, z0: Tensor, t: Tensor) -> Tensor:
        frames = self.vae.decode(rearrange(z0, "b t h w c -> (b t) c h w"))
        # a decoding without gradient is kept: when the sampler's output is that very latent
        # (the control's last check), the pipeline reuses it instead of decoding again
        self._last = None if frames.requires_grad else (z0.detach(), frames.detach())
        return self.quantity(rearrange(frames, "(b t) c h w -> b t h w c", b=z0.shape[0]))

    def decoded(self, z0: Tensor) -> Tensor | None:
        """The frames ``"(b t) c h w"`` of the last gradient-free call if it was on ``z0``."""
        if self._last is None or self._last[0].shape != z0.shape:
            return None
        return self._last[1] if torch.equal(self._last[0], z0) else None
