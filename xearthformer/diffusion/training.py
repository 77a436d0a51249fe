"""Training loops of PreDiff's three networks: autoencoder, denoiser, alignment network.

Pure torch. Every network is injected, every random draw (posterior samples, diffusion steps,
noise, batch order) comes from a :class:`torch.Generator` built from ``seed=`` (or passed as
``generator=``): the global RNG is never touched, so the same seed and the same initial weights
give the same trained weights. Dropout draws from the global RNG, so the demo models use no
dropout; :func:`seeded_init` builds a network with seeded initial weights and restores the
global RNG state afterwards.

``batches`` is any iterator of ``(context, target)`` float tensors ``"b t h w c"`` in the
model's normalised units (:func:`window_batches` makes one from stacked windows). The three
stages, as in PreDiff:

1. :func:`train_autoencoder`: frame by frame, reconstruction (L1 or MSE) of a posterior sample
   plus ``kl_weight`` times the KL divergence to ``N(0, I)`` (both averaged per element).
   :func:`standardise_latents` then rescales the latent space to unit standard deviation by
   folding a factor into ``quant_conv`` / ``post_quant_conv`` (PreDiff's latent scale factor
   is 1, so the diffusion sees the VAE latents as they are).
2. :func:`train_denoiser`: with the frozen VAE, ``z_cond = encode(context).mode()``,
   ``z0 = encode(target).sample()``, ``t ~ U{0..T-1}``, ``z_t = q_sample(z0, t, eps)``;
   loss ``MSE(denoiser(z_t, t, z_cond), eps)`` (``z0`` for an ``"x0"`` schedule). The official
   learned per-step log-variance of the loss is omitted (it is not part of the released weights).
3. :func:`train_alignment`: the alignment network ``A(z_t, t) -> "b t k"`` regresses a quantity
   of the future computed from the pixel target by ``quantity_fn`` (normalised to order one),
   from the noisy target latent at a random step.

Model-directory contract of a trained PreDiff model
---------------------------------------------------
``scripts/train_demo_prediff.py`` writes the demo models with
:func:`xearthformer.zoo.model_dir.save_model_dir`; code that loads a ``kind="prediff"`` model
relies on this layout:

* ``card.official_kwargs = {"vae": AutoencoderKL.official_kwargs(), "denoiser":
  CuboidTransformerUNet kwargs, "alignment": NoisyCuboidTransformerEncoder kwargs,
  "schedule": NoiseScheduleConfig fields}``. Each network is rebuilt with its class's
  ``from_official_kwargs``; the schedule with ``NoiseScheduleConfig(**kwargs["schedule"])``.
* ``weights = {"vae": state_dict, "denoiser": state_dict, "alignment": state_dict}``, each
  loadable with ``strict=True``.
* ``card.contract.alignment = {"quantity": name, "mu": float, "sigma": float, ...}``: ``mu`` and
  ``sigma`` are the mean and standard deviation of the quantity over the training windows, in
  physical units. The alignment network predicts the **normalised** quantity
  ``(q - mu) / sigma`` per future frame (its mean over frames is the normalised window
  quantity), so the knowledge-control target for ``kc_sigma = k`` (physical target
  ``mu + k * sigma``) is simply ``k``.
* ``card.training["guide_scale"]``: the knowledge-control strength tuned (on validation data)
  for the sampler in ``card.training["sampler"]`` (``{"name": "ddim", "num_steps": N, "eta":
  1.0}``) with :class:`~xearthformer.diffusion.KnowledgeControl`'s default per-sample norm. With
  another number of steps scale it roughly by ``N / steps`` (see
  :class:`~xearthformer.diffusion.DDIMSampler`). ``card.training["latent_scale"]`` is
  informative only: the factor is already folded into the VAE weights.
* Pixels are normalised with the contract, ``x_model = (x - offset) / scale``, fill value for
  missing (land) cells before normalisation, layout ``"b t h w c"``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xearthformer.diffusion.schedule import NoiseSchedule
from xearthformer.diffusion.training_loop import (
    TrainingDataError,
    TrainingHistory,
    _check_steps,
    _device,
    _frames,
    _generator,
    _log,
    _next_batch,
    _optimise,
    _optimiser,
    _video,
    seeded_init,
    window_batches,
)

__all__ = [
    "TrainingDataError",
    "TrainingHistory",
    "seeded_init",
    "standardise_latents",
    "train_alignment",
    "train_autoencoder",
    "train_denoiser",
    "window_batches",
]

Batches = Iterable[tuple[Tensor, Tensor]]
QuantityFn = Callable[[Tensor], Tensor]


class _Posterior(Protocol):
    def mode(self) -> Tensor: ...

    def sample(self, generator: torch.Generator | None = None) -> Tensor: ...

    def kl(self) -> Tensor: ...

    std: Tensor


def train_autoencoder(
    vae: nn.Module,
    batches: Batches,
    *,
    steps: int,
    lr: float = 1e-3,
    kl_weight: float = 1e-4,
    reconstruction: Literal["l1", "mse"] = "l1",
    weight_decay: float = 0.0,
    warmup: int = 20,
    grad_clip: float | None = 1.0,
    max_frames: int | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    log_every: int = 0,
) -> TrainingHistory:
    """Train a frame autoencoder on every frame (context and target) of the batches.

    Per step: ``posterior = vae.encode(frames)``, ``z = posterior.sample(generator)``,
    ``loss = rec(vae.decode(z), frames) + kl_weight * mean(KL) / latent elements per frame``,
    with ``rec`` the mean absolute (``"l1"``) or squared (``"mse"``) error per pixel.

    Parameters
    ----------
    vae : nn.Module
        Has ``encode(frames "n c h w") -> posterior`` (``.sample(generator)``, ``.kl()``) and
        ``decode(z)``, e.g. :class:`xearthformer.models.AutoencoderKL`. Trained in place.
    batches : iterable of (Tensor, Tensor)
        ``(context, target)``, each ``"b t h w c"`` float.
    steps : int
        Optimisation steps (one batch each).
    lr, weight_decay, warmup, grad_clip
        AdamW learning rate, weight decay, linear warm-up steps (then cosine decay to 1 % of
        ``lr``) and gradient-norm clip (None: no clipping).
    kl_weight : float
        Weight of the per-element KL divergence.
    reconstruction : {"l1", "mse"}
        Pixel loss.
    max_frames : int, optional
        Train on a random subset of at most this many frames of each batch (cheaper steps).
    generator, seed
        Source of the posterior samples and frame subsets (``seed=0`` if neither is given).
    log_every : int
        Print the loss every ``log_every`` steps (0: silent).

    Returns
    -------
    TrainingHistory
        ``loss`` per step, ``extra["reconstruction"]`` and ``extra["kl"]``.

    Examples
    --------
    >>> from xearthformer.models import AutoencoderKL, AutoencoderKLConfig
    >>> with seeded_init(0):
    ...     vae = AutoencoderKL(AutoencoderKLConfig(block_out_channels=(4, 8), layers_per_block=1,
    ...                                             latent_channels=2, norm_num_groups=4))
    >>> data = torch.rand(4, 3, 8, 8, 1, generator=torch.Generator().manual_seed(0))
    >>> history = train_autoencoder(vae, window_batches(data[:, :1], data[:, 1:], batch_size=2),
    ...                             steps=3, seed=0)
    >>> history.steps, history.mean_loss() > 0
    (3, True)
    """
    _check_steps(steps, lr)
    if reconstruction not in ("l1", "mse"):
        raise TrainingDataError(f"reconstruction must be 'l1' or 'mse', got {reconstruction!r}")
    gen = _generator(generator, seed)
    device = _device(vae)
    optimiser, scheduler = _optimiser(vae, lr, weight_decay, steps, warmup)
    history = TrainingHistory("autoencoder", extra={"reconstruction": [], "kl": []})
    iterator = iter(batches)
    vae.train()
    start = time.perf_counter()
    for step in range(steps):
        context, target = _next_batch(iterator, step, steps, device)
        frames = torch.cat([_frames(context), _frames(target)])
        if max_frames is not None and frames.shape[0] > max_frames:
            frames = frames[torch.randperm(frames.shape[0], generator=gen)[:max_frames].to(device)]
        posterior: _Posterior = vae.encode(frames)
        z = _posterior_sample(posterior, gen)
        decoded = vae.decode(z)
        error = decoded - frames
        rec = error.abs().mean() if reconstruction == "l1" else error.square().mean()
        kl = posterior.kl().mean() / z[0].numel()
        loss = rec + kl_weight * kl
        _optimise(vae, optimiser, scheduler, loss, grad_clip)
        history.loss.append(float(loss.detach()))
        history.extra["reconstruction"].append(float(rec.detach()))
        history.extra["kl"].append(float(kl.detach()))
        _log(log_every, "autoencoder", step, steps, history.loss[-1], start)
    history.seconds = time.perf_counter() - start
    vae.eval()
    return history


@torch.no_grad()
def standardise_latents(vae: nn.Module, frames: Tensor, *, batch_size: int = 64) -> float:
    """Rescale an ``AutoencoderKL``'s latents to unit standard deviation, in place.

    The standard deviation ``s`` of the posterior means of ``frames`` (``"n c h w"``) is folded
    into the weights: ``quant_conv`` outputs ``mean / s`` (and ``logvar - 2 log s``),
    ``post_quant_conv`` multiplies its input by ``s`` first. Reconstructions ``decode(mode)``
    are unchanged; the diffusion model then sees latents of unit scale (PreDiff applies no
    latent scale factor, so it has to live in the VAE).

    Returns
    -------
    float
        The factor ``s`` (1.0 means nothing changed).

    Examples
    --------
    >>> from xearthformer.models import AutoencoderKL, AutoencoderKLConfig
    >>> with seeded_init(0):
    ...     vae = AutoencoderKL(AutoencoderKLConfig(block_out_channels=(4, 8), layers_per_block=1,
    ...                                             latent_channels=2, norm_num_groups=4)).eval()
    >>> frames = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> with torch.no_grad():
    ...     before = vae(frames)
    ...     s = standardise_latents(vae, frames)
    ...     print(round(float(vae.encode(frames).mode().std()), 4),
    ...           torch.allclose(vae(frames), before, atol=1e-5))
    1.0 True
    """
    for name in ("quant_conv", "post_quant_conv", "encode"):
        if not hasattr(vae, name):
            raise TrainingDataError(
                f"standardise_latents needs an AutoencoderKL-like module with {name!r}"
            )
    vae.eval()
    means = torch.cat([vae.encode(frames[i : i + batch_size]).mode()
                       for i in range(0, frames.shape[0], batch_size)])
    s = float(means.std())
    if not math.isfinite(s) or s <= 0:
        raise TrainingDataError(f"latent standard deviation is {s}; is the autoencoder trained?")
    latent = vae.post_quant_conv.in_channels
    quant, post = vae.quant_conv, vae.post_quant_conv
    quant.weight[:latent] /= s
    quant.bias[:latent] /= s
    quant.bias[latent:] -= 2.0 * math.log(s)
    post.weight *= s
    return s


def _encode(vae: nn.Module, x: Tensor) -> _Posterior:
    return vae.encode(_frames(x))


def _posterior_sample(posterior: _Posterior, gen: torch.Generator) -> Tensor:
    """``mean + std * n`` with ``n`` drawn on the CPU from ``gen`` (any model device)."""
    mean = posterior.mode()
    noise = torch.randn(mean.shape, generator=gen, dtype=mean.dtype).to(mean.device)
    return mean + posterior.std * noise


def _latent_sample(posterior: _Posterior, batch: int, gen: torch.Generator) -> Tensor:
    return _video(_posterior_sample(posterior, gen), batch)


def _diffuse(z0: Tensor, schedule: NoiseSchedule, gen: torch.Generator):
    t = torch.randint(0, schedule.num_timesteps, (z0.shape[0],), generator=gen).to(z0.device)
    noise = torch.randn(z0.shape, generator=gen, dtype=z0.dtype).to(z0.device)
    z_t = schedule.q_sample(z0, t, noise)
    # Work-around for a torch 2.13 CPU crash: the backward of GroupNorm on a channels-last 5-D
    # input that does not require grad segfaults (the ResBlocks' first GroupNorm sees exactly
    # that). Asking for the input's gradient takes the working code path; it costs one tensor.
    return z_t.requires_grad_(True), t, noise


def _freeze(vae: nn.Module) -> None:
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)


def train_denoiser(
    denoiser: nn.Module,
    vae: nn.Module,
    batches: Batches,
    schedule: NoiseSchedule,
    *,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    warmup: int = 20,
    grad_clip: float | None = 1.0,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    log_every: int = 0,
) -> TrainingHistory:
    """Train a latent denoiser with PreDiff's objective (the VAE stays frozen).

    Per step: ``z_cond = vae.encode(context).mode()``, ``z0 = vae.encode(target).sample()``
    (frame by frame), ``t ~ U{0 .. T-1}``, ``eps ~ N(0, I)``,
    ``z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps``, and
    ``loss = MSE(denoiser(z_t, t, z_cond), eps)`` (``z0`` instead of ``eps`` when the schedule's
    parameterization is ``"x0"``).

    Parameters
    ----------
    denoiser : nn.Module
        ``out = denoiser(z_t "b t_out h w l", t "b", z_cond "b t_in h w l")``, e.g.
        :class:`xearthformer.models.CuboidTransformerUNet`. Trained in place.
    vae : nn.Module
        Trained autoencoder; its parameters are frozen (``requires_grad=False``).
    batches : iterable of (Tensor, Tensor)
        ``(context, target)`` pixels, each ``"b t h w c"`` float.
    schedule : NoiseSchedule
        The diffusion process the sampler will use.
    steps, lr, weight_decay, warmup, grad_clip, generator, seed, log_every
        As in :func:`train_autoencoder`; the generator draws the posterior samples, the steps
        ``t`` and the noise.

    Returns
    -------
    TrainingHistory

    Examples
    --------
    >>> from xearthformer.models import (AutoencoderKL, AutoencoderKLConfig,
    ...                                  CuboidTransformerUNet)
    >>> with seeded_init(0):
    ...     vae = AutoencoderKL(AutoencoderKLConfig(block_out_channels=(4, 8), layers_per_block=1,
    ...                                             latent_channels=2, norm_num_groups=4))
    ...     unet = CuboidTransformerUNet((1, 4, 4, 2), (2, 4, 4, 2), base_units=8, num_heads=2,
    ...                                  depth=(1, 1), block_attn_patterns="axial")
    >>> data = torch.rand(4, 3, 8, 8, 1, generator=torch.Generator().manual_seed(0))
    >>> history = train_denoiser(unet, vae, window_batches(data[:, :1], data[:, 1:], batch_size=2),
    ...                          NoiseSchedule(), steps=2, seed=0)
    >>> history.steps
    2
    """
    _check_steps(steps, lr)
    gen = _generator(generator, seed)
    _freeze(vae)
    device = _device(denoiser)
    optimiser, scheduler = _optimiser(denoiser, lr, weight_decay, steps, warmup)
    history = TrainingHistory("denoiser")
    iterator = iter(batches)
    x0_target = schedule.config.parameterization == "x0"
    denoiser.train()
    start = time.perf_counter()
    for step in range(steps):
        context, target = _next_batch(iterator, step, steps, device)
        batch = context.shape[0]
        with torch.no_grad():
            z_cond = _video(_encode(vae, context).mode(), batch)
            z0 = _latent_sample(_encode(vae, target), batch, gen)
        z_t, t, noise = _diffuse(z0, schedule, gen)
        out = denoiser(z_t, t, z_cond)
        loss = F.mse_loss(out, z0 if x0_target else noise)
        _optimise(denoiser, optimiser, scheduler, loss, grad_clip)
        history.loss.append(float(loss.detach()))
        _log(log_every, "denoiser", step, steps, history.loss[-1], start)
    history.seconds = time.perf_counter() - start
    denoiser.eval()
    return history


def _quantity_like(values: Tensor, pred: Tensor) -> Tensor:
    """Broadcast ``quantity_fn``'s ``"b"``, ``"b t"`` or ``"b t k"`` values to ``pred: "b t k"``."""
    if values.ndim == 1:
        values = values[:, None, None]
    elif values.ndim == 2:
        values = values[..., None]
    try:
        return torch.broadcast_to(values.to(pred.dtype), pred.shape)
    except RuntimeError:
        raise TrainingDataError(
            f"quantity_fn returned shape {tuple(values.shape)}, which does not broadcast to the "
            f"alignment network's output 'b t k' = {tuple(pred.shape)}; return 'b', 'b t' or "
            "'b t k' values"
        ) from None


def train_alignment(
    alignment: nn.Module,
    vae: nn.Module,
    batches: Batches,
    schedule: NoiseSchedule,
    quantity_fn: QuantityFn,
    *,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    warmup: int = 20,
    grad_clip: float | None = 1.0,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    log_every: int = 0,
) -> TrainingHistory:
    """Train PreDiff's knowledge-alignment network ``A(z_t, t)`` (the VAE stays frozen).

    Per step: ``z0 = vae.encode(target).sample()``, ``t ~ U{0 .. T-1}``,
    ``z_t = q_sample(z0, t, eps)``, ``loss = MSE(A(z_t, t), quantity_fn(target))``. The
    network sees only the noisy future latent and the step, as in PreDiff.

    Parameters
    ----------
    alignment : nn.Module
        ``A(z_t "b t h w l", t "b") -> "b t k"``, e.g.
        :class:`xearthformer.models.NoisyCuboidTransformerEncoder`. Trained in place.
    vae : nn.Module
        Trained autoencoder (frozen).
    batches : iterable of (Tensor, Tensor)
        ``(context, target)`` pixels ``"b t h w c"``; only ``target`` is used.
    schedule : NoiseSchedule
        The diffusion process of the denoiser.
    quantity_fn : callable
        ``quantity_fn(target "b t h w c") -> "b"``, ``"b t"`` or ``"b t k"``: the value the
        network should predict, already normalised to order one (the demo models use
        ``(q - mu) / sigma`` per future frame). ``"b"`` values are repeated on every frame.
    steps, lr, weight_decay, warmup, grad_clip, generator, seed, log_every
        As in :func:`train_denoiser`.

    Returns
    -------
    TrainingHistory

    Examples
    --------
    >>> from xearthformer.models import (AutoencoderKL, AutoencoderKLConfig,
    ...                                  NoisyCuboidTransformerEncoder)
    >>> with seeded_init(0):
    ...     vae = AutoencoderKL(AutoencoderKLConfig(block_out_channels=(4, 8), layers_per_block=1,
    ...                                             latent_channels=2, norm_num_groups=4))
    ...     net = NoisyCuboidTransformerEncoder((2, 4, 4, 2), base_units=8, num_heads=2,
    ...                                         depth=(1, 1), block_attn_patterns="axial",
    ...                                         out_len=2)
    >>> data = torch.rand(4, 3, 8, 8, 1, generator=torch.Generator().manual_seed(0))
    >>> frame_means = lambda target: target.mean(dim=(2, 3, 4))         # "b t h w c" -> "b t"
    >>> history = train_alignment(net, vae, window_batches(data[:, :1], data[:, 1:], batch_size=2),
    ...                           NoiseSchedule(), frame_means, steps=2, seed=0)
    >>> history.steps
    2
    """
    _check_steps(steps, lr)
    if not callable(quantity_fn):
        raise TrainingDataError(
            f"quantity_fn must be callable as quantity_fn(target), got {quantity_fn!r}"
        )
    gen = _generator(generator, seed)
    _freeze(vae)
    device = _device(alignment)
    optimiser, scheduler = _optimiser(alignment, lr, weight_decay, steps, warmup)
    history = TrainingHistory("alignment")
    iterator = iter(batches)
    alignment.train()
    start = time.perf_counter()
    for step in range(steps):
        _, target = _next_batch(iterator, step, steps, device)
        batch = target.shape[0]
        with torch.no_grad():
            z0 = _latent_sample(_encode(vae, target), batch, gen)
            wanted = quantity_fn(target)
        z_t, t, _ = _diffuse(z0, schedule, gen)
        pred = alignment(z_t, t)
        if pred.ndim != 3 or pred.shape[0] != batch:
            raise TrainingDataError(
                f"alignment(z_t, t) must return 'b t k' with b = {batch}, got {tuple(pred.shape)}"
            )
        loss = F.mse_loss(pred, _quantity_like(wanted, pred))
        _optimise(alignment, optimiser, scheduler, loss, grad_clip)
        history.loss.append(float(loss.detach()))
        _log(log_every, "alignment", step, steps, history.loss[-1], start)
    history.seconds = time.perf_counter() - start
    alignment.eval()
    return history
