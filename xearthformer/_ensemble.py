"""The PreDiff ensemble runner behind :func:`xearthformer.ensemble` (numpy in, numpy out).

One call of :func:`run_ensemble_chunk` turns the physical data of a chunk of inits into
physical ensembles ``"s n k m l h w c"`` (sample, init, kc_sigma scenario, member, lead).
The noise of every member is drawn from its own generator seeded by ``(seed, init, member)``
and reused for every ``kc_sigma`` scenario, so scenarios differ only by the control and a
member does not depend on ``n`` or ``member_batch`` (with the per-sample guidance norm).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _postprocess as post
from . import _preprocess as pre
from .zoo import LoadedModel, load_model
from .zoo.model_dir import InputContract

__all__ = ["EnsembleOptionError", "EnsembleSettings", "alignment_target", "control_method",
           "decoded_alignment", "run_ensemble_chunk"]


class EnsembleOptionError(ValueError):
    """A bad option of :func:`xearthformer.ensemble` (``n``, ``kc_sigma``, ``steps``, ``sampler``)."""


@dataclasses.dataclass(frozen=True)
class EnsembleSettings:
    """The sampling options of one ensemble call (picklable, for dask tasks)."""

    members: int
    kc_sigma: tuple[float | None, ...]
    sampler: str  # "ddim" | "ddpm" | "dpmpp"
    steps: int
    eta: float
    guide_scale: float
    norm: str  # "per_sample" | "batch"
    seed: int
    member_batch: int
    progress: bool = False


def alignment_target(contract: InputContract, kc_sigma: float) -> float:
    """The alignment network's target for ``kc_sigma``: ``k`` when the network predicts the
    standardised quantity ``(q - mu) / sigma`` (the demo models), ``mu + k * sigma`` in the
    contract's normalised units when ``alignment["target_units"] == "normalised"`` (the official
    SEVIR-LR network predicts mean(VIL / 255)), else ``mu + k * sigma``."""
    info = contract.alignment or {}
    if "(q - mu) / sigma" in str(info.get("prediction", "")):
        return float(kc_sigma)
    target = float(info["mu"]) + float(kc_sigma) * float(info["sigma"])
    if info.get("target_units") == "normalised":
        return float(contract.normalise(target))
    return target


def control_method(model: LoadedModel) -> str:
    """How the model's knowledge control is applied: ``"mean_shift"`` (PreDiff: the alignment
    network on noisy latents) or ``"clean_estimate"`` (each step's clean estimate is decoded and
    corrected toward the target, see :class:`~xearthformer.diffusion.CleanEstimateControl`),
    as recorded by the training script in ``card.training["control"]``."""
    training = model.card.training if isinstance(model.card.training, dict) else {}
    return str(training.get("control", "mean_shift"))


def decoded_alignment(vae, contract: InputContract):
    """``A(z0, t)``: the contract's alignment quantity of ``vae.decode(z0)``, standardised.

    The decoded, normalised forecast is brought to physical units, clipped to the contract's
    ``valid_range`` (as the output is), averaged over the alignment region (``alignment
    ["region"]`` lat/lon bounds on the contract's coordinates; the whole grid without one) and
    standardised with the stored ``mu``, ``sigma``: ``"b t 1"``, per forecast step.
    """
    import torch  # noqa: PLC0415

    from .diffusion import DecodedQuantity  # noqa: PLC0415

    info = contract.alignment or {}
    mu, sigma = float(info["mu"]), float(info["sigma"])
    h, w = contract.grid_shape
    mask = np.ones((h, w), dtype=bool)
    region = info.get("region") or {}
    for axis, dim in enumerate(contract.spatial_dims):
        bounds = region.get(dim)
        if bounds is None:
            continue
        values = np.asarray(contract.coords[dim], dtype=np.float64)
        inside = (values >= min(bounds)) & (values <= max(bounds))
        mask &= inside[:, None] if axis == 0 else inside[None, :]
    if not mask.any():
        raise EnsembleOptionError(f"the alignment region {region} holds no grid cell")
    mask_t = torch.from_numpy(mask)
    low_high = None if contract.valid_range is None else sorted(contract.valid_range)

    def quantity(x):  # normalised "b t h w c" -> "b t 1"
        phys = x * contract.scale + contract.offset
        if low_high is not None:
            phys = phys.clamp(*low_high)
        box = phys[:, :, mask_t.to(x.device)]  # "b t cells c"
        return ((box.mean(dim=(2, 3)) - mu) / sigma)[..., None]

    return DecodedQuantity(vae, quantity)


def _pipeline(model: LoadedModel, settings: EnsembleSettings, controlled: bool):
    from .diffusion import (  # noqa: PLC0415
        DDIMSampler,
        DDPMSampler,
        NoiseSchedule,
        NoiseScheduleConfig,
        PreDiffPipeline,
    )

    schedule_kwargs = model.card.official_kwargs.get("schedule") or {}
    schedule = NoiseSchedule(NoiseScheduleConfig(**schedule_kwargs))
    if settings.sampler == "ddpm":
        sampler = DDPMSampler(schedule)
    elif settings.sampler == "dpmpp":
        from .diffusion import DPMSolverSampler  # noqa: PLC0415

        sampler = DPMSolverSampler(schedule, num_steps=settings.steps, eta=settings.eta)
    else:
        sampler = DDIMSampler(schedule, num_steps=settings.steps, eta=settings.eta)
    method = control_method(model)
    alignment = None
    if controlled:
        alignment = (decoded_alignment(model.modules["vae"], model.card.contract)
                     if method == "clean_estimate" else model.modules.get("alignment"))
    training = model.card.training if isinstance(model.card.training, dict) else {}
    return PreDiffPipeline(model.modules["vae"], model.modules["denoiser"], sampler, alignment,
                           guide_scale=settings.guide_scale, norm=settings.norm, control=method,
                           control_iterations=int(training.get("control_iterations", 3)))


def _sample(pipes: dict, context, settings: EnsembleSettings, contract: InputContract,
            init_seed: int, device: str, bar) -> np.ndarray:
    """One context ``"1 t h w c"`` -> normalised ``"k m l h w c"``."""
    import torch  # noqa: PLC0415

    out_len = contract.out_len
    scenarios = []
    for k in settings.kc_sigma:
        pipe = pipes[k is not None]
        if k is None:
            target = None
        elif pipe.control == "clean_estimate":  # decoded_alignment is standardised
            target = float(k)
        else:
            target = alignment_target(contract, k)
        members = []
        for start in range(0, settings.members, settings.member_batch):
            size = min(settings.member_batch, settings.members - start)
            batch = context.expand(size, *context.shape[1:])
            # one generator per member, seeded by (seed, init, member): a member's noise (initial
            # and per step) is the same in every scenario and whatever n and member_batch are
            gen = [torch.Generator(device=device).manual_seed(init_seed * 100_003 + start + i)
                   for i in range(size)]

            def tick(step, z):
                if bar is not None:
                    bar.update(1)

            with torch.no_grad():  # guidance takes its gradient inside, with grad enabled
                y = pipe(batch, num_frames=out_len, target=target, generator=gen, callback=tick)
            members.append(y.detach().float().cpu().numpy())
        scenarios.append(np.concatenate(members, axis=0))
    return np.stack(scenarios, axis=0)


def run_ensemble_chunk(values: np.ndarray, positions: np.ndarray, offset: int, job: Any,
                       settings: EnsembleSettings, stats: dict | None = None) -> np.ndarray:
    """Physical ``"s time h w c"`` slab -> physical ensembles ``"s n k m l h w c"``.

    ``job`` is the forecast module's chunk job (contract, land, climatology, months, times,
    lead steps, unit shift, model spec, device).
    """
    import torch  # noqa: PLC0415
    from einops import rearrange  # noqa: PLC0415

    model = job.spec if isinstance(job.spec, LoadedModel) else load_model(job.spec, device=job.device)
    c = job.contract
    windows = pre.context_windows(np.asarray(values), positions, c.in_len, offset)
    ctx_months = (None if job.months is None
                  else job.months[positions[:, None] + np.arange(-c.in_len + 1, 1)])
    x, land = pre.normalised_context(windows, c, job.land, job.clim, ctx_months, job.times[positions],
                                     missing=job.missing, bad_values=job.bad_values,
                                     where=job.where, stats=stats)
    s, n = x.shape[:2]
    pipes = {False: _pipeline(model, settings, controlled=False)}
    if any(k is not None for k in settings.kc_sigma):
        pipes[True] = _pipeline(model, settings, controlled=True)
    steps_per_run = len(pipes[False].sampler.timesteps)
    bar = None
    if settings.progress:
        from tqdm.auto import tqdm  # noqa: PLC0415

        runs = s * n * len(settings.kc_sigma) * math.ceil(settings.members / settings.member_batch)
        bar = tqdm(total=runs * steps_per_run, desc="ensemble", unit="step")
    fill = np.float32(c.normalise(np.float64(c.fill_value)))
    flat = rearrange(x, "s n t h w c -> (s n) t h w c")
    out = []
    for j in range(flat.shape[0]):
        ctx = torch.from_numpy(np.ascontiguousarray(flat[j:j + 1])).to(job.device)
        init_id = int(positions[j % n])
        out.append(_sample(pipes, ctx, settings, c, settings.seed * 1_000_003 + init_id,
                           job.device, bar))
    if bar is not None:
        bar.close()
    y = rearrange(np.stack(out), "(s n) k m l h w c -> s n k m l h w c", s=s, n=n)
    y = y[:, :, :, :, job.lead_steps - 1]
    if c.valid_range is not None:
        y = np.clip(y, *sorted(c.normalise(np.asarray(c.valid_range, np.float64))))
    land_b = land[:, :, None, None, None]
    y = np.where(np.broadcast_to(land_b, y.shape), fill, y)
    out_months = (None if job.months is None
                  else job.months[positions][:, None] + job.lead_steps[None, :] * c.step)
    phys = np.empty(y.shape, np.float32)
    for k in range(y.shape[2]):
        for m in range(y.shape[3]):
            phys[:, :, k, m] = post.to_physical(y[:, :, k, m], c, job.clim, out_months, land,
                                                job.unit_shift)
    return phys


def check_settings(model: LoadedModel, *, n: int, kc_sigma: Sequence[float | None], steps: int,
                   sampler: str, available_with_alignment: Sequence[str]) -> None:
    """Bad options of :func:`xearthformer.ensemble`, each a clear ``ValueError``."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise EnsembleOptionError(f"n={n!r}: the number of members must be an integer >= 1.")
    if sampler not in ("ddim", "ddpm", "dpmpp"):
        raise EnsembleOptionError(f"sampler={sampler!r}: expected 'ddim', 'ddpm' or 'dpmpp'.")
    for k in kc_sigma:
        if k is not None and not (isinstance(k, (int, float, np.number)) and math.isfinite(float(k))):
            raise EnsembleOptionError(
                f"kc_sigma={k!r} is not a finite number; give values like 2 or [-2, 0, 2] (in "
                "standard deviations of the model's alignment quantity), or None for no control.")
    if any(k is not None for k in kc_sigma) and "alignment" not in model.modules:
        have = ", ".join(available_with_alignment) or "none installed"
        raise EnsembleOptionError(
            f"kc_sigma needs a model with a knowledge-alignment network; {model.name!r} has none. "
            f"Models with one: {have}. Or pass kc_sigma=None.")
    total = int((model.card.official_kwargs.get("schedule") or {}).get("timesteps", 1000))
    if sampler != "ddpm" and not (isinstance(steps, (int, np.integer)) and 1 <= steps <= total):
        raise EnsembleOptionError(
            f"steps={steps!r}: the model was trained with a {total}-step noise schedule; "
            f"{sampler.upper()} takes 1..{total} steps (DDIM: 50, DPM-Solver++: 15 are good "
            "defaults).")
