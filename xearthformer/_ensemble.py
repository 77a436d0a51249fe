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
from . import _quality as quality
from .zoo import LoadedModel, load_model
from .zoo.model_dir import InputContract

__all__ = ["ControlDefaults", "EnsembleOptionError", "EnsembleSettings", "resolve_options", "alignment_target", "control_method",
           "control_target", "decoded_alignment", "run_ensemble_chunk", "target_units"]


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
    control: str = "clean_estimate"  # "clean_estimate" | "mean_shift"
    exact_steps: int | None = None  # clean_estimate: exact alignment at the last N steps only
    reuse_jacobian: bool = False
    control_iterations: int = 3
    control_tol: float = 1e-3  # clean_estimate, in sigma (its decoded quantity is standardised)


TARGET_UNITS = ("physical", "standardised", "normalised", "x/255")


def target_units(contract: InputContract) -> str:
    """The units the model's alignment network was trained on (``alignment["target_units"]``).

    * ``"physical"``: the quantity itself, ``mu + k * sigma`` (e.g. K);
    * ``"standardised"``: ``(q - mu) / sigma``, so the target is ``k`` (the demo models);
    * ``"normalised"``: the quantity of the model-scale data, ``(q - offset) / scale`` with
      the contract's normalisation;
    * ``"x/255"``: the official PreDiff SEVIR-LR alignment network, which predicts the mean of
      VIL / 255 (values in [0, 1]) whatever the contract's normalisation.

    Cards written before the field existed say ``"(q - mu) / sigma"`` in ``prediction`` for
    standardised networks; anything else is read as physical.
    """
    info = contract.alignment or {}
    units = info.get("target_units")
    if units is None:
        return "standardised" if "(q - mu) / sigma" in str(info.get("prediction", "")) else "physical"
    if units not in TARGET_UNITS:
        raise EnsembleOptionError(
            f"the model's alignment target_units={units!r} is not known; expected one of "
            f"{', '.join(TARGET_UNITS)}. Fix 'alignment.target_units' in its model.json.")
    return str(units)


def alignment_target(contract: InputContract, kc_sigma: float) -> float:
    """The alignment network's target for ``kc_sigma``, in the units it was trained on.

    The physical target is ``mu + kc_sigma * sigma``; see :func:`target_units` for how it is
    brought to the network's units.

    Examples
    --------
    >>> from xearthformer.zoo.model_dir import InputContract
    >>> official = InputContract(variables=("vil",), in_len=7, out_len=6, step=10,
    ...     step_units="minutes", spatial_dims=("y", "x"), grid_shape=(128, 128), scale=255.0,
    ...     alignment={"quantity": "mean_future_intensity", "mu": 25.5, "sigma": 10.2,
    ...                "target_units": "x/255"})
    >>> round(alignment_target(official, 2.0), 6)     # (25.5 + 2 * 10.2) / 255
    0.18
    """
    info = contract.alignment or {}
    physical = float(info["mu"]) + float(kc_sigma) * float(info["sigma"])
    units = target_units(contract)
    if units == "standardised":
        return float(kc_sigma)
    if units == "normalised":
        return (physical - contract.offset) / contract.scale
    if units == "x/255":
        return physical / 255.0
    return physical


def control_target(contract: InputContract, kc_sigma: float, control: str) -> float:
    """The target handed to the control: ``kc_sigma`` itself for ``"clean_estimate"`` (whose
    decoded quantity is standardised, see :func:`decoded_alignment`), else the alignment
    network's target (:func:`alignment_target`)."""
    if control == "clean_estimate":
        return float(kc_sigma)
    return alignment_target(contract, kc_sigma)


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
    method = settings.control
    alignment = None
    if controlled:
        alignment = (decoded_alignment(model.modules["vae"], model.card.contract)
                     if method == "clean_estimate" else model.modules.get("alignment"))
    return PreDiffPipeline(model.modules["vae"], model.modules["denoiser"], sampler, alignment,
                           guide_scale=settings.guide_scale, norm=settings.norm, control=method,
                           control_iterations=settings.control_iterations,
                           exact_steps=settings.exact_steps,
                           reuse_jacobian=settings.reuse_jacobian,
                           control_tol=settings.control_tol)


def _sample(pipes: dict, context, settings: EnsembleSettings, contract: InputContract,
            init_seed: int, device: str, bar) -> np.ndarray:
    """One context ``"1 t h w c"`` -> normalised ``"k m l h w c"``.

    Controlled scenarios run together, stacked with the members in one model call (rows
    ``scenario x member``), as many as fit in ``member_batch`` rows (so ``member_batch`` bounds
    the rows of every call, hence the memory), except with the official ``norm="batch"``,
    whose single norm over the batch would couple them; the uncontrolled scenario runs on
    its own.
    """
    import torch  # noqa: PLC0415

    out_len = contract.out_len
    controlled = [i for i, k in enumerate(settings.kc_sigma) if k is not None]
    free = [i for i, k in enumerate(settings.kc_sigma) if k is None]
    if settings.control == "mean_shift" and settings.norm == "batch":
        groups = [[i] for i in controlled]
    else:  # stacked up to member_batch rows: larger batches were slower on a CPU, not faster
        per_call = max(1, settings.member_batch // min(settings.members, settings.member_batch))
        groups = [controlled[j:j + per_call] for j in range(0, len(controlled), per_call)]
    groups += [[i] for i in free]
    results: dict[int, list[np.ndarray]] = {i: [] for i in range(len(settings.kc_sigma))}
    for group in groups:
        ks = [settings.kc_sigma[i] for i in group]
        pipe = pipes[ks[0] is not None]
        for start in range(0, settings.members, settings.member_batch):
            size = min(settings.member_batch, settings.members - start)
            rows = len(group) * size
            batch = context.expand(rows, *context.shape[1:])
            # one generator per member, seeded by (seed, init, member): a member's noise (initial
            # and per step) is the same in every scenario and whatever n and member_batch are
            gen = [torch.Generator(device=device).manual_seed(init_seed * 100_003 + start + i)
                   for _ in group for i in range(size)]
            target = None
            if ks[0] is not None:
                values = [control_target(contract, k, settings.control) for k in ks]
                target = torch.tensor([v for v in values for _ in range(size)],
                                      dtype=context.dtype, device=context.device)

            def tick(step, z, _calls=len(group)):
                if bar is not None:
                    bar.update(_calls)

            with torch.no_grad():  # guidance takes its gradient inside, with grad enabled
                y = pipe(batch, num_frames=out_len, target=target, generator=gen, callback=tick)
            y = y.detach().float().cpu().numpy()
            for j, i in enumerate(group):
                results[i].append(y[j * size:(j + 1) * size])
    return np.stack([np.concatenate(results[i], axis=0) for i in range(len(settings.kc_sigma))])


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
    x, land = quality.series_contexts(np.asarray(values), positions, offset, c, job.land,
                                      job.clim, job.months, job.times, missing=job.missing,
                                      bad_values=job.bad_values, where=job.where, stats=stats)
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


CONTROLS = ("mean_shift", "clean_estimate")
OFFICIAL_GUIDE_SCALE = 50.0  # prediff_sevirlr_v1.yaml, for DDPM over the 1000-step schedule
# clean_estimate: exact alignment (value and Jacobian) at the first and the last step, the
# member's own linearisation in between, value-only (chord) iterations within the last step
# until each member is within FAST_TOL sigma (the issue asks 0.25 sigma per member); the last
# check's decoding is the output's, so a member met at once costs two decodings with backward
FAST_EXACT_STEPS = 1
FAST_TOL = 0.01


#: DPM-Solver++ steps when ``sampler="dpmpp"`` is asked for without ``steps``
#: (benchmarks/bench_ensemble.py, issue 23; prediff-demo-enso's card makes it its default)
DPMPP_DEFAULT_STEPS = 15


@dataclasses.dataclass(frozen=True)
class ControlDefaults:
    """What an ensemble call runs when the caller leaves an option at None."""

    control: str
    sampler: str
    steps: Any  # int once checked by check_settings
    norm: str
    guide_scale: float  # per step, as applied (clean_estimate: the fraction, clamped to [0, 1])
    official: bool  # the official method on an official (non-demo) model
    eta: float | None = None  # the stochasticity of the card's sampler chosen (None: not given)


def resolve_options(model: LoadedModel, *, control: str | None, sampler: str | None,
                    steps: int | None, norm: str | None, guide_scale: float | None) -> ControlDefaults:
    """Fill the options left at None from the model card.

    * ``control``: the card's (``training["control"]``; ``"mean_shift"`` without one).
    * ``"mean_shift"`` on an official (non-demo) model whose card tuned no other control: the
      official defaults, DDPM over the whole schedule, ``norm="batch"``, ``guide_scale`` 50.
    * otherwise the card's default sampler and steps (``training["default_sampler"]``, chosen
      on measured skill: DPM-Solver++ with 15 steps for the ENSO demo), else the sampler and
      steps it was tuned with (``training["sampler"]``), ``norm="per_sample"``; ``guide_scale``:
      for ``"mean_shift"`` the card's value when it tuned the mean shift (else the official 50
      for 1000 DDPM steps), scaled by ``tuned_steps / steps``; for ``"clean_estimate"`` the
      card's fraction (1.0 without one), not scaled: it is a fraction of the violation.
    """
    training = model.card.training if isinstance(model.card.training, dict) else {}
    card_control = str(training.get("control", "mean_shift"))
    control = card_control if control is None else control
    if control not in CONTROLS:
        raise EnsembleOptionError(f"control={control!r}: expected 'mean_shift' (PreDiff's "
                                  "knowledge alignment), 'clean_estimate' or None (the model's).")
    total = int((model.card.official_kwargs.get("schedule") or {}).get("timesteps", 1000))
    tuned = training.get("sampler", {}) if isinstance(training.get("sampler"), dict) else {}
    official = control == "mean_shift" and card_control == "mean_shift" and not model.card.demo
    tuned_steps = int(tuned.get("num_steps", 50)) if tuned else total
    default = training.get("default_sampler") if isinstance(training.get("default_sampler"), dict) else None
    eta = tuned.get("eta")
    if sampler == "dpmpp" and steps is None:  # asked for by name: the solver's own default
        steps = DPMPP_DEFAULT_STEPS
    if sampler is None and default is not None and not official:
        sampler, eta = str(default["name"]), default.get("eta", eta)
        if steps is None:
            steps = int(default["num_steps"])
    if sampler is None:
        sampler = "ddpm" if official and not tuned else str(tuned.get("name", "ddim"))
    if steps is None:
        steps = tuned_steps
    if sampler == "ddpm":
        steps = total  # the ancestral sampler visits every step
    if norm is None:
        norm = "batch" if official else "per_sample"
    if guide_scale is None:
        if control == "clean_estimate":
            guide_scale = float(training.get("guide_scale", 1.0)) if card_control == control else 1.0
        else:
            if card_control == "mean_shift" and "guide_scale" in training:
                base, base_steps = float(training["guide_scale"]), tuned_steps
            else:
                base, base_steps = OFFICIAL_GUIDE_SCALE, total
            steps_ok = isinstance(steps, (int, np.integer)) and steps >= 1
            guide_scale = base * base_steps / (steps if steps_ok else base_steps)
    if control == "clean_estimate":
        guide_scale = min(max(float(guide_scale), 0.0), 1.0)
    return ControlDefaults(control=control, sampler=str(sampler), steps=steps, norm=str(norm),
                           guide_scale=float(guide_scale), official=official,
                           eta=None if eta is None else float(eta))


CONTROL_DESCRIPTIONS = {
    "mean_shift": "PreDiff knowledge alignment (Gao et al. 2023): each reverse step's mean "
                  "shifted by -guide_scale * sigma_t * grad ||A(z_t, t) - target|| of the "
                  "alignment network on the noisy latent",
    "clean_estimate": "xearthformer's clean-estimate control (not PreDiff's knowledge "
                      "alignment): each step's clean estimate corrected by Gauss-Newton steps "
                      "so that the exact quantity of its decoding moves to the target",
}


def control_attrs(settings: EnsembleSettings) -> dict[str, Any]:
    """The attrs that say which control ran, with what strength per step."""
    out: dict[str, Any] = {"kc_control": settings.control,
                           "kc_control_description": CONTROL_DESCRIPTIONS[settings.control],
                           "guide_scale": float(settings.guide_scale)}
    if settings.control == "mean_shift":
        out["guidance_norm"] = settings.norm
    else:  # always each member's own violation
        out["guidance_norm"] = "per_sample"
        out["kc_exact_steps"] = ("every step" if settings.exact_steps is None else
                                 f"first and last {settings.exact_steps}")
    return out


def check_settings(model: LoadedModel, *, n: int, kc_sigma: Sequence[float | None], steps: int,
                   sampler: str, available_with_alignment: Sequence[str],
                   control: str = "mean_shift", norm: str = "per_sample") -> None:
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
    if norm not in ("per_sample", "batch"):
        raise EnsembleOptionError(f"norm={norm!r}: expected 'per_sample', 'batch' or None.")
    controlled = any(k is not None for k in kc_sigma)
    if controlled and not (model.card.contract.alignment or {}).get("quantity"):
        raise EnsembleOptionError(
            f"kc_sigma needs a model whose card defines a knowledge-control quantity; "
            f"{model.name!r} defines none. Pass kc_sigma=None.")
    if controlled and control == "mean_shift" and "alignment" not in model.modules:
        have = ", ".join(available_with_alignment) or "none installed"
        raise EnsembleOptionError(
            f"control='mean_shift' (PreDiff's knowledge alignment) needs a model with a "
            f"knowledge-alignment network; {model.name!r} has none. Models with one: {have}. "
            "Or pass control='clean_estimate' (which steers the decoded quantity and needs no "
            "network), or kc_sigma=None.")
    total = int((model.card.official_kwargs.get("schedule") or {}).get("timesteps", 1000))
    if sampler != "ddpm" and not (isinstance(steps, (int, np.integer)) and 1 <= steps <= total):
        raise EnsembleOptionError(
            f"steps={steps!r}: the model was trained with a {total}-step noise schedule; "
            f"{sampler.upper()} takes 1..{total} steps (DDIM: 50, DPM-Solver++: 15 are good "
            "defaults).")
