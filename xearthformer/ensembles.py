"""Probabilistic forecasts of labelled data with a PreDiff model: :func:`ensemble`.

The data take :func:`~xearthformer.forecasting.forecast`'s path (:func:`~xearthformer.
forecasting.plan_forecast`, then :func:`~xearthformer.forecasting.wrap_output`); the sampling
itself is :func:`xearthformer._ensemble.run_ensemble_chunk` (numpy in, numpy out), one dask
task per init for dask-backed input.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from . import _postprocess as post
from . import _preprocess as pre
from ._ensemble import EnsembleOptionError
from ._preprocess import LeadError
from .forecasting import ModelKindError, _ChunkJob, plan_forecast, wrap_output
from .progress import show_progress
from .zoo import LoadedModel

__all__ = ["ensemble", "EnsembleOptionError", "DEFAULT_ENSEMBLE_MODEL"]

DEFAULT_ENSEMBLE_MODEL = "prediff-demo-enso"


def _models_with_alignment() -> list[str]:
    from .zoo import list_models  # noqa: PLC0415

    return [m["name"] for m in list_models() if m.get("kind") == "prediff" and m.get("alignment")]


def ensemble(
    data: xr.DataArray | xr.Dataset,
    *,
    n: int = 20,
    kc_sigma: float | Sequence[float] | None = None,
    lead: int | Sequence[int] | None = None,
    model: str | os.PathLike | LoadedModel = DEFAULT_ENSEMBLE_MODEL,
    init: Any = None,
    steps: int | None = None,
    sampler: Literal["ddim", "ddpm", "dpmpp"] | None = None,
    eta: float | None = None,
    guide_scale: float | None = None,
    norm: Literal["per_sample", "batch"] | None = None,
    control: Literal["mean_shift", "clean_estimate"] | None = None,
    member_batch: int = 20,
    var: str | Sequence[str] | None = None,
    regrid: Literal["linear", "nearest", "conservative"] | None = None,
    anomalies: bool | None = None,
    climatology: xr.DataArray | None = None,
    units: str | None = None,
    device: str = "auto",
    seed: int = 0,
    progress: bool | None = None,
    weights: str | os.PathLike | None = None,
    config: str | None = None,
    missing: Literal["context", "strict"] = "context",
    bad_values: Literal["raise", "mask", "clip"] = "raise",
) -> xr.DataArray | xr.Dataset:
    """Probabilistic forecasts with a PreDiff model, optionally knowledge-controlled.

    The data take the same path as in :func:`forecast` (validation, anomalies, normalisation,
    land fill); then for every init the context is encoded by the model's VAE, ``n`` members
    are sampled by reverse diffusion in the latent space and decoded.

    Parameters
    ----------
    data : xarray.DataArray or xarray.Dataset
        As for :func:`forecast`.
    n : int
        Ensemble members (dim ``member``, CF ``realization``), sampled ``member_batch`` at a
        time so that memory stays bounded for large ``n``.
    kc_sigma : float, sequence of float or None
        Knowledge control: steer every reverse step so that the model's alignment quantity
        (the forecast window's Nino3.4 mean anomaly for ENSO models; the mean future intensity
        for radar models) reaches ``mu + kc_sigma * sigma``, with ``mu``, ``sigma`` stored with
        the model. ``None``: no control. A sequence gives a ``kc_sigma`` dim; all scenarios
        share the members' noise (initial and per step), so they differ only by the control.
    lead : int or sequence of int, optional
        As for :func:`forecast`, up to the model's output length (default: all of it).
    model : str, path or LoadedModel
        A PreDiff zoo name (``"prediff-demo-enso"``, ``"prediff-demo-storms"``) or directory.
    steps : int, optional
        Denoising steps of ``"ddim"`` or ``"dpmpp"`` (default: the card's default sampler's,
        else the steps the model's guide scale was tuned for; ``"dpmpp"`` asked for by name:
        15).
    sampler : {"ddim", "ddpm", "dpmpp"}, optional
        ``"ddpm"``: PreDiff's ancestral sampler over the whole schedule (slow, ``steps``
        ignored); ``"ddim"``: fewer steps; ``"dpmpp"``: DPM-Solver++(2M), a second-order
        solver that needs fewer steps than DDIM for the same accuracy
        (:class:`~xearthformer.diffusion.DPMSolverSampler`; ``eta`` 0 or 1). Default: the
        model card's default sampler (``"dpmpp"``, 15 steps, for both demo models: the
        same CRPS and spread-skill as DDIM-50 at 3x less work, see their cards), else the
        sampler it was tuned with; DDPM for the official method on an official model.
    eta : float, optional
        DDIM stochasticity (0 deterministic given the initial noise; 1 DDPM-like); default
        the model's. For ``"dpmpp"``: 0 (ODE solver) or 1 (SDE solver).
    guide_scale : float, optional
        Knowledge-control strength per step. ``"mean_shift"``: lambda of the paper; default
        the model's tuned value (the official 50 for DDPM-1000 when it tuned none), scaled by
        ``tuned_steps / steps`` (each DDIM step applies the shift once). ``"clean_estimate"``:
        the fraction of the violation removed per step, in [0, 1] (default the model's).
    norm : {"per_sample", "batch"}, optional
        Norm of the ``"mean_shift"`` violation. ``"per_sample"`` gives each member its own
        gradient, so members never influence each other and results do not depend on how
        members are batched; ``"batch"`` is the official PreDiff norm over the whole batch
        (the default for the official method on an official model). With ``"per_sample"``
        each member is pulled ``sqrt(batch)``-ish times harder than with ``"batch"`` for the
        same ``guide_scale`` (2.48x in one measured 20-member case), so the official
        ``guide_scale`` does not carry over.
    control : {"mean_shift", "clean_estimate"}, optional
        How ``kc_sigma`` is applied. ``"mean_shift"``: PreDiff's knowledge alignment, the
        official method: every step's mean is shifted along the gradient of the alignment
        network's violation on the noisy latent (needs a model with an alignment network).
        ``"clean_estimate"``: this package's method (not in the paper): every step's clean
        estimate is corrected so that the exact quantity of its decoding moves to the target.
        None: the model's default (``attrs["kc_control"]`` says which ran).
    member_batch : int
        Members per model call (memory); results do not depend on it. The controlled
        scenarios of a ``kc_sigma`` list run together in each call (``len(kc_sigma) *
        member_batch`` rows), except with ``norm="batch"``, which would couple them.
    seed : int
        Each member's noise comes from its own generator, seeded by ``seed``, the init and the
        member number: member ``m`` is the same whatever ``n`` and ``member_batch`` are.
    progress : bool, optional
        A progress bar over reverse steps. Default: shown on a terminal and in a Jupyter
        kernel, not in logs (see :func:`xearthformer.progress.show_progress`).
    var, regrid, anomalies, climatology, units, device, init, weights, config, missing, bad_values
        As for :func:`forecast`.

    Returns
    -------
    xarray.DataArray
        Dims ``(*sample, init, [kc_sigma,] member, lead, y, x)``, ``valid_time(init, lead)``,
        the data's coordinates and attrs, provenance plus ``sampler``, ``steps``, ``eta``,
        ``seed``; with control ``kc_control`` (the method that ran), ``guide_scale`` (as
        applied per step), ``guidance_norm``, ``kc_sigma``, ``kc_target`` (the physical
        targets) and ``kc_quantity``. Ready for ``xskillscore.crps_ensemble(obs, ens, member_dim="member")``.

    Raises
    ------
    EnsembleOptionError
        ``n < 1``, non-finite ``kc_sigma``, ``kc_sigma`` with a model that has no alignment
        network (the message names those that have one), ``steps`` outside the schedule.
    The errors of :func:`forecast` for the data.

    Examples
    --------
    >>> import xearthformer
    >>> sst = xearthformer.tutorial.open_dataset("enso", n_years=2)["sst"]
    >>> ens = xearthformer.ensemble(sst, n=2, kc_sigma=[-2, 2], steps=2, lead=3)
    >>> dict(ens.sizes)
    {'init': 1, 'kc_sigma': 2, 'member': 2, 'lead': 3, 'lat': 24, 'lon': 48}
    >>> ens.attrs["sampler"], ens["member"].attrs["standard_name"]
    ('dpmpp', 'realization')
    """
    from . import _ensemble  # noqa: PLC0415

    plan = plan_forecast(data, lead=lead if lead is not None else 1, model=model, init=init,
                         var=var, regrid=regrid, anomalies=anomalies, climatology=climatology,
                         units=units, device=device, weights=weights, config=config,
                         missing=missing, bad_values=bad_values)
    loaded, c = plan.model, plan.contract
    if loaded.card.kind != "prediff":
        raise ModelKindError(f"model {loaded.name!r} is an {loaded.card.kind} model; ensemble() "
                             "needs a PreDiff model (e.g. 'prediff-demo-enso'). Use forecast() for "
                             "deterministic Earthformer forecasts.")
    if lead is None:
        plan.lead_values, plan.lead_steps = pre.parse_lead(c.out_len, c)
    if int(plan.lead_steps.max()) > c.out_len:
        raise LeadError(f"lead up to {int(plan.lead_values.max())} {c.step_units} exceeds what "
                        f"{loaded.name!r} forecasts in one pass ({c.out_len} steps of {c.step} "
                        f"{c.step_units}); PreDiff ensembles are not rolled out. Ask for a shorter lead.")
    scenarios = kc_sigma if isinstance(kc_sigma, (list, tuple, np.ndarray)) else [kc_sigma]
    if len(scenarios) == 0:
        raise EnsembleOptionError("kc_sigma=[] is empty; give None, a number or a list of numbers.")
    training = loaded.card.training if isinstance(loaded.card.training, dict) else {}
    opts = _ensemble.resolve_options(loaded, control=control, sampler=sampler, steps=steps,
                                     norm=norm, guide_scale=guide_scale)
    _ensemble.check_settings(loaded, n=n, kc_sigma=scenarios, steps=opts.steps,
                             sampler=opts.sampler, control=opts.control, norm=opts.norm,
                             available_with_alignment=_models_with_alignment())
    sampler, steps, norm, guide_scale = opts.sampler, int(opts.steps), opts.norm, opts.guide_scale
    if eta is None:
        eta = opts.eta if opts.eta is not None else 0.0
    eta = float(eta)
    if sampler == "dpmpp" and eta not in (0.0, 1.0):
        raise EnsembleOptionError(f"eta={eta!r}: sampler='dpmpp' takes eta=0 (the ODE solver, "
                                  "deterministic given the initial noise) or eta=1 (the SDE "
                                  "solver, noise at every step).")
    # the cheap clean-estimate mode linearises the quantity between its exact evaluations;
    # a quantity of values clipped to a valid range (radar) is too far from linear near the
    # bound (the storms demo missed kc_sigma=-2 by 3 sigma): exact at every step there
    fast = opts.control == "clean_estimate" and c.valid_range is None
    settings = _ensemble.EnsembleSettings(
        members=int(n), kc_sigma=tuple(None if k is None else float(k) for k in scenarios),
        sampler=sampler, steps=steps, eta=eta, guide_scale=guide_scale, norm=norm,
        seed=int(seed), member_batch=max(1, int(member_batch)),
        progress=show_progress(progress), control=opts.control,
        exact_steps=_ensemble.FAST_EXACT_STEPS if fast else None, reuse_jacobian=fast,
        control_tol=_ensemble.FAST_TOL if fast else 1e-3,
        control_iterations=int(training.get("control_iterations", 3)))
    stack = pre.stacked(plan.prep)
    n_samples = stack.sizes["_sample"]
    job = _ChunkJob(spec=plan.spec, device=plan.device, contract=c, land=plan.prep.land,
                    clim=plan.prep.clim, months=plan.prep.month_index(), times=plan.prep.times,
                    lead_steps=plan.lead_steps, unit_shift=plan.prep.unit_shift, batch_size=1,
                    missing=missing, bad_values=bad_values, where=plan.where())
    stats: dict | None = None
    h, w = c.grid_shape
    shape_tail = (len(scenarios), int(n), len(plan.lead_steps), h, w, stack.sizes["_channel"])
    if hasattr(stack.data, "dask"):
        import dask  # noqa: PLC0415
        import dask.array as dsa  # noqa: PLC0415

        run = dask.delayed(_ensemble.run_ensemble_chunk, pure=True)
        parts = []
        for pos in plan.positions:
            pos = np.asarray([pos])
            first = int(pos[0]) - c.in_len + 1
            slab = stack.data[:, first:int(pos[-1]) + 1]
            parts.append(dsa.from_delayed(run(slab, pos, first, job, settings),
                                          shape=(n_samples, 1, *shape_tail), dtype=np.float32))
        values = dsa.concatenate(parts, axis=1)
    else:
        stats = {}
        values = _ensemble.run_ensemble_chunk(np.asarray(stack.values), plan.positions, 0, job,
                                              settings, stats)
    # "s n k m l h w c": the kc_sigma dim only when a list was given
    extra: dict[str, Sequence[Any]] = {}
    if isinstance(kc_sigma, (list, tuple, np.ndarray)):
        extra["kc_sigma"] = [float(k) for k in scenarios]
    else:
        values = values[:, :, 0]
    extra["member"] = list(range(int(n)))
    out = wrap_output(plan, values, extra)
    call = (f"ensemble(model={loaded.name!r}, n={n}, kc_sigma={kc_sigma!r}, sampler={sampler!r}, "
            f"steps={steps}, inits={len(plan.inits)}, device={plan.device!r})")
    attrs = post.provenance(plan.prep, loaded, lead_values=plan.lead_values, device=plan.device,
                            seed=seed, rollout="none", call=call)
    attrs.update(plan.policy_attrs(stats))
    info = c.alignment or {}
    attrs.update({"sampler": sampler, "steps": int(steps), "eta": eta, "members": int(n)})
    if any(k is not None for k in scenarios):
        attrs.update(_ensemble.control_attrs(settings))
        ks = [float(k) for k in scenarios if k is not None]
        attrs["kc_sigma"] = ks if len(ks) > 1 else ks[0]
        targets = [float(info["mu"]) + k * float(info["sigma"]) for k in ks]
        attrs["kc_target"] = targets if len(targets) > 1 else targets[0]
        attrs["kc_quantity"] = str(info.get("quantity", ""))
        attrs["kc_mu"], attrs["kc_sigma_value"] = float(info["mu"]), float(info["sigma"])
    for name in (out.data_vars if isinstance(out, xr.Dataset) else [None]):
        (out[name] if name is not None else out).attrs = attrs
    if "member" in out.coords:
        out["member"].attrs = {"standard_name": "realization", "long_name": "ensemble member"}
    if "kc_sigma" in out.coords:
        out["kc_sigma"].attrs = {"long_name": "knowledge-control target in standard deviations",
                                 "units": "1"}
    return out
