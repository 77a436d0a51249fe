"""``fit``: train or fine-tune an Earthformer on labelled xarray data and write a model
directory that ``forecast(model=PATH)`` and the zoo read."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr

from ..models import Earthformer
from ..progress import show_progress
from ..zoo.model_dir import ModelCard, ModelDirError, save_model_dir
from . import ddp
from .augment import AUGMENTS, augment_batch, flip_rotate
from .checkpoint import fingerprint, load_checkpoint, save_checkpoint, work_dir
from .errors import PrecisionError, TrainingError
from .loop import LoopSettings, LoopState, run_loop
from .losses import LOSSES, loss_name, make_loss
from .memory import available_memory, check_memory, estimate_batch_memory
from .model_source import fit_shapes, resolve_model
from .prepare import prepare_training_data, prepare_validation_data, select_variable
from .report import curve_summary, training_report
from .schedule import make_scheduler
from .scores import MONITORS, score_kind, validate
from .windows import StepBatches, WindowDataset, WindowSampler

__all__ = ["fit"]

Precision = Literal["fp32", "bf16", "fp16"]
LossName = Literal["mse", "mae", "mse+mae", "balanced"]


def _check_args(in_len: int, out_len: int, steps: int | None, epochs: float | None,
                batch_size: int, precision: str, world_size: int, loss: Any = "mse",
                augment: Any = None) -> None:
    problems = []
    if not (callable(loss) or (isinstance(loss, str) and loss in LOSSES)):
        problems.append(f"loss={loss!r} must be one of {', '.join(map(repr, LOSSES))} or a "
                        "callable loss(pred, target) -> scalar tensor")
    if not (augment is None or callable(augment)
            or (isinstance(augment, str) and augment in AUGMENTS)):
        problems.append(f"augment={augment!r} must be None, {', '.join(map(repr, AUGMENTS))} "
                        "or a callable augment(x, y, generator) -> (x, y)")
    for label, value in (("in_len", in_len), ("out_len", out_len), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            problems.append(f"{label}={value!r} must be a positive integer")
    if (steps is None) == (epochs is None):
        problems.append("give exactly one of steps= (optimizer steps) or epochs= (passes over "
                        "the training windows)")
    elif steps is not None and (not isinstance(steps, (int, np.integer)) or steps < 1):
        problems.append(f"steps={steps!r} must be a positive integer")
    elif epochs is not None and not epochs > 0:
        problems.append(f"epochs={epochs!r} must be positive")
    if precision not in ("fp32", "bf16", "fp16"):
        problems.append(f"precision={precision!r} must be 'fp32', 'bf16' or 'fp16'")
    if not problems and batch_size % world_size:
        problems.append(f"batch_size={batch_size} (the global batch) must be divisible by the "
                        f"number of processes ({world_size})")
    if problems:
        raise TrainingError("; ".join(problems) + ".")


def _device(device: str | torch.device, info: ddp.DistInfo) -> torch.device:
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("device='cuda' was asked for but no CUDA device is available; "
                                "use device='cpu' or 'auto'.")
        if dev.index is None:
            dev = torch.device("cuda", info.local_rank if info.distributed else 0)
    return dev


def _autocast(precision: str, device: torch.device) -> Callable[[], Any]:
    if precision == "fp32":
        return contextlib.nullcontext
    if device.type != "cuda":
        if precision == "fp16":
            raise PrecisionError(
                "precision='fp16' needs a CUDA device; on CPU use precision='fp32' (or 'bf16' "
                "on a GPU)."
            )
        warnings.warn("precision='bf16' autocast is used on GPU only; training on CPU in fp32.",
                      UserWarning, stacklevel=3)
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast("cuda", dtype=dtype)


def _param_groups(module: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _log(info: ddp.DistInfo, message: str) -> None:
    if info.is_main:
        print(f"xearthformer.fit: {message}", file=sys.stderr, flush=True)


def fit(
    model: Any,
    train: xr.DataArray | xr.Dataset,
    *,
    in_len: int,
    out_len: int,
    out_dir: str | os.PathLike,
    valid: xr.DataArray | xr.Dataset | None = None,
    var: str | None = None,
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    warmup_fraction: float = 0.2,
    min_lr_ratio: float = 1e-3,
    clip_grad_norm: float | None = 1.0,
    loss: LossName | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "mse",
    augment: Literal["flip_rotate"] | Callable[..., tuple[torch.Tensor, torch.Tensor]]
    | None = None,
    valid_every: int | None = None,
    early_stopping_patience: int | None = None,
    max_valid_windows: int | None = 256,
    checkpoint_every: int | None = None,
    name: str | None = None,
    overwrite: bool = False,
    resume: bool = True,
    seed: int = 0,
    device: str | torch.device = "auto",
    precision: Precision = "fp32",
    num_workers: int = 0,
    units: str | None = None,
    progress: bool | None = None,
    callbacks: Sequence[Callable[[int, dict[str, Any]], Any]] = (),
) -> Path:
    """Train (or fine-tune) an Earthformer on labelled data and write a model directory.

    Samples are windows of ``in_len + out_len`` consecutive time steps drawn lazily from
    ``train`` (never across gaps in time or across events). Monthly data are turned into
    anomalies against the training split's monthly climatology; land (cells missing at every
    training time) is filled; values are normalised (z-score, or ``/ 255`` for ``uint8``
    radar data). All these statistics come from ``train`` only and are stored with the model,
    so ``forecast`` inverts them.

    Parameters
    ----------
    model : EarthformerConfig, dict, Earthformer, path or str
        What to train: a config or a dict of official ``CuboidTransformerModel`` kwargs (their
        ``input_shape``/``target_shape`` are set to ``in_len``/``out_len``, the data's grid and
        one channel, and the change is reported), an :class:`~xearthformer.models.Earthformer`
        module, a model directory (fine-tuned from its weights, keeping its normalisation and
        climatology), a JSON file of official kwargs, or a zoo name.
    train : xarray.DataArray or xarray.Dataset
        Training data with dims time, two spatial dims (lat/lon or y/x) and optionally sample
        dims such as ``event``; numpy- or dask-backed.
    in_len, out_len : int
        Context and forecast lengths in time steps.
    out_dir : path-like
        The model directory to write. Refused if it exists, unless ``overwrite=True``.
        Checkpoints go to the working folder ``<out_dir>.work/`` (removed at the end).
    valid : xarray.DataArray or xarray.Dataset, optional
        Validation data (same grid and step). Without it, the final weights are kept.
    var : str, optional
        The variable of a Dataset to train on.
    steps, epochs : int or float
        Training length: optimizer steps, or passes over the training windows (one of them).
    batch_size : int
        Global batch size (split evenly over processes under ``torchrun``).
    lr, weight_decay : float
        AdamW settings (no weight decay on biases and norms).
    warmup_fraction, min_lr_ratio : float
        The official schedule: linear warm-up over this fraction of the steps, then cosine
        decay to ``lr * min_lr_ratio``.
    clip_grad_norm : float or None
        Gradient-norm clipping (None: off).
    loss : {"mse", "mae", "mse+mae", "balanced"} or callable
        The training loss, in the model's (normalised) scale (:mod:`xearthformer.train.losses`):
        mean squared error (default), mean absolute error, their sum, or ``"balanced"``, the
        intensity-weighted MSE + MAE of radar nowcasting (Shi et al. 2017; weights 1, 2, 5,
        10, 20 where the target's VIL on the 0..255 scale is below 16, >= 16, 74, 133, 181;
        radar data only). Or a callable ``loss(pred, target) -> scalar tensor`` on
        ``"b t h w c"`` tensors. With a land mask the built-in losses average over ocean
        cells only; a callable gets predictions equal to the target on land (no error there).
    augment : {None, "flip_rotate"} or callable
        Augmentation of the training windows (:mod:`xearthformer.train.augment`):
        ``"flip_rotate"`` turns each window by a random multiple of 90 degrees and flips it at
        random, context and target alike (square ``y``/``x`` grids only, e.g. radar; refused
        on lat/lon grids). Or a callable ``augment(x, y, generator) -> (x, y)`` called per
        window on its ``"t h w c"`` context and target with a ``torch.Generator`` seeded by
        ``(seed, step, position in the global batch)``, so that resuming and DDP give the
        one-process result.
    valid_every : int, optional
        Validate every this many steps (default: 10 times per run) and at the end.
    early_stopping_patience : int, optional
        Stop after this many validations without improvement.
    max_valid_windows : int or None
        Validate on at most this many evenly spaced windows (None: all).
    checkpoint_every : int, optional
        Write a checkpoint every this many steps (default: ``valid_every``).
    name : str, optional
        Model name in the card (default: the output directory's name).
    overwrite : bool
        Replace an existing ``out_dir``.
    resume : bool
        Continue from the checkpoint of an interrupted run with the same settings.
    seed : int
        Seeds model initialisation, the sampler and dropout; the global RNGs are untouched.
    device : {"auto", "cpu", "cuda"}
    precision : {"fp32", "bf16", "fp16"}
        bf16/fp16 autocast on GPU; fp16 is refused on CPU.
    num_workers : int
        DataLoader worker processes reading windows.
    units : str, optional
        Units of the data when the attribute is missing or wrong.
    progress : bool, optional
        Show a progress bar with the loss. Default: on a terminal and in a Jupyter kernel,
        not in logs (:func:`xearthformer.progress.show_progress`).
    callbacks : sequence of callables
        Each called as ``callback(step, logs)`` after every step (``logs`` has ``loss``,
        ``lr`` and validation scores); an exception stops training (the last checkpoint
        stays for ``resume``).

    Returns
    -------
    pathlib.Path
        The model directory (read it with :func:`xearthformer.zoo.model_dir.load_model_dir`).

    Raises
    ------
    TrainingError, NotEnoughDataError, MissingDataError, TimeStepError, UnitsError,
    GridMismatchError, MemoryBudgetError, PrecisionError, ModelDirError
        Each says what was wrong and what to do. A validation period overlapping the
        training data warns (:class:`ValidationOverlapWarning`).

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, xarray as xr
    >>> from xearthformer.models import EarthformerConfig
    >>> t = pd.date_range("2000-01-01", periods=48, freq="MS")
    >>> da = xr.DataArray(np.random.default_rng(0).normal(size=(48, 4, 8)).astype("float32"),
    ...     dims=("time", "lat", "lon"), coords={"time": t, "lat": [-7.5, -2.5, 2.5, 7.5],
    ...     "lon": 190.0 + 5 * np.arange(8)}, name="sst", attrs={"units": "K"})
    >>> cfg = EarthformerConfig(input_shape=(1, 1, 1, 1), target_shape=(1, 1, 1, 1),
    ...     base_units=16, num_heads=2, enc_depth=(1,), dec_depth=(1,), num_global_vectors=0,
    ...     enc_attn_patterns="axial", dec_self_attn_patterns="axial",
    ...     dec_cross_attn_patterns="cross_1x1", z_init_method="zeros", padding_type="zeros",
    ...     pos_embed_type="t+h+w", initial_downsample_scale=(1, 1, 1))
    >>> path = fit(cfg, da, in_len=3, out_len=2, steps=2, batch_size=2, progress=False,
    ...            out_dir=tempfile.mkdtemp() + "/toy")
    >>> path.name
    'toy'
    """
    started = time.perf_counter()
    device_type = "cuda" if (str(device) == "auto" and torch.cuda.is_available()) or str(
        device).startswith("cuda") else "cpu"
    info = ddp.setup(device_type)
    try:
        _check_args(in_len, out_len, steps, epochs, batch_size, precision, info.world_size,
                    loss, augment)
        dev = _device(device, info)
        autocast = _autocast(precision, dev)
        out = Path(out_dir)
        if out.exists() and not overwrite:
            raise ModelDirError(
                f"{out} already exists; choose another out_dir or pass overwrite=True."
            )
        return _fit(**locals() | {"device": dev, "autocast": autocast, "out": out,
                                  "info": info, "started": started})
    finally:
        ddp.teardown(info)


def _fit(*, model: Any, train: Any, valid: Any, var: str | None, in_len: int, out_len: int,
         steps: int | None, epochs: float | None, batch_size: int, lr: float,
         weight_decay: float, warmup_fraction: float, min_lr_ratio: float,
         clip_grad_norm: float | None, loss: Any, augment: Any, valid_every: int | None,
         early_stopping_patience: int | None, max_valid_windows: int | None,
         checkpoint_every: int | None, name: str | None, overwrite: bool, resume: bool,
         seed: int, device: torch.device, precision: str, num_workers: int, units: str | None,
         progress: bool, callbacks: Sequence[Callable], autocast: Callable, out: Path,
         info: ddp.DistInfo, started: float, **_: Any) -> Path:
    base = resolve_model(model)
    train_da = select_variable(train, var)
    prepared = prepare_training_data(train_da, in_len=in_len, out_len=out_len,
                                     base=base.contract, units=units)
    contract = prepared.contract
    kwargs, notes = fit_shapes(base, in_len=in_len, out_len=out_len, grid=contract.grid_shape)
    for note in notes:
        _log(info, note)
    notes = [*prepared.notes, *notes]
    valid_prep = None
    if valid is not None:
        valid_prep = prepare_validation_data(select_variable(valid, var or str(train_da.name)),
                                             prepared, units=units)
        notes += valid_prep.notes
    n_windows = len(prepared.windows)
    batches_per_epoch = math.ceil(n_windows / batch_size)
    total = int(steps) if steps is not None else max(1, round(float(epochs) * batches_per_epoch))
    valid_every = int(valid_every or max(1, total // 10))
    checkpoint_every = int(checkpoint_every or valid_every)
    kind = score_kind(contract)
    _check_loss_and_augment(loss, augment, kind, prepared)
    loss_fn = make_loss(loss, land_mask=contract.land_mask, offset=contract.offset,
                        scale=contract.scale)
    augment_fn = flip_rotate if augment == "flip_rotate" else augment
    work = work_dir(out)
    settings_id = fingerprint({
        "kwargs": kwargs, "contract": contract.to_json(), "source": base.source,
        "windows": n_windows, "valid_windows": len(valid_prep.windows) if valid_prep else 0,
        "steps": total, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "warmup_fraction": warmup_fraction, "min_lr_ratio": min_lr_ratio,
        "clip_grad_norm": clip_grad_norm, "valid_every": valid_every,
        "loss": loss_name(loss), "augment": None if augment is None else loss_name(augment),
        "patience": early_stopping_patience, "max_valid_windows": max_valid_windows,
        "seed": seed, "precision": precision, "world_size": info.world_size,
    })
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        net = Earthformer.from_official_kwargs(kwargs)
        if base.state_dict is not None:
            net.load_state_dict(base.state_dict, strict=True)
        net = net.to(device)
        dataset = WindowDataset(prepared.windows, in_len, prepared.preprocess)
        sample = dataset[0][0][None].to(device)
        estimate = estimate_batch_memory(net, sample, batch_size=batch_size // info.world_size)
        _log(info, f"estimated memory: {estimate.describe()}")
        check_memory(estimate, available_memory(device), device)
        wrapped = ddp.wrap(net, info, device)
        optimizer = torch.optim.AdamW(_param_groups(net, weight_decay), lr=lr)
        scheduler = make_scheduler(optimizer, total, warmup_fraction=warmup_fraction,
                                   min_ratio=min_lr_ratio)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        torch.manual_seed(seed + 1 + info.rank)  # dropout stream, one per rank
        state = LoopState()
        checkpoint = load_checkpoint(work, settings_id) if resume else None
        if checkpoint is not None:
            net.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            scaler.load_state_dict(checkpoint["scaler"])
            torch.set_rng_state(checkpoint["torch_rng"][info.rank])
            if device.type == "cuda" and checkpoint.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(checkpoint["cuda_rng"][info.rank], device)
            state = LoopState.from_dict(checkpoint["loop"])
            _log(info, f"resuming from step {state.step} ({work / 'checkpoint.pt'})")
        sampler = WindowSampler(n_windows, batch_size, seed)

        def batches(start: int, stop: int) -> Any:
            return torch.utils.data.DataLoader(
                dataset, batch_sampler=StepBatches(sampler, start, stop, info.rank,
                                                   info.world_size),
                num_workers=num_workers, pin_memory=device.type == "cuda",
                # its own generator: creating the iterator must not draw from the dropout RNG
                generator=torch.Generator().manual_seed(seed))

        def save(loop_state: LoopState) -> None:
            rng = _gather_rng(info, None)  # collective: every rank takes part
            cuda_rng = _gather_rng(info, device) if device.type == "cuda" else None
            if not info.is_main:
                return
            save_checkpoint(work, {
                "fingerprint": settings_id, "step": loop_state.step,
                "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "torch_rng": rng, "cuda_rng": cuda_rng, "sampler": sampler.state_dict(),
                "loop": loop_state.to_dict(),
            })

        validate_fn: Callable[[], dict[str, dict[str, float]]] | None = None
        if valid_prep is not None:
            valid_set = WindowDataset(valid_prep.windows, in_len, valid_prep.preprocess)
            valid_idx = valid_prep.windows.subset(max_valid_windows)

            def _validate() -> dict[str, dict[str, float]]:
                return validate(net, valid_set, valid_idx, device=device,
                                batch_size=max(1, batch_size // info.world_size),
                                autocast=autocast, kind=kind)

            validate_fn = _validate

        augment_step = None
        if augment_fn is not None:
            per_rank = batch_size // info.world_size

            def augment_step(x: torch.Tensor, y: torch.Tensor, step: int) -> Any:
                return augment_batch(augment_fn, x, y, seed=seed, step=step,
                                     first_position=info.rank * per_rank)

        settings = LoopSettings(steps=total, clip_grad_norm=clip_grad_norm,
                                valid_every=valid_every,
                                early_stopping_patience=early_stopping_patience,
                                checkpoint_every=checkpoint_every,
                                progress=show_progress(progress),
                                callbacks=callbacks, loss=loss_fn, augment=augment_step)
        state = run_loop(model=wrapped, module=net, optimizer=optimizer, scheduler=scheduler,
                         scaler=scaler, batches=batches, validate=validate_fn, kind=kind,
                         state=state, settings=settings, info=info, device=device,
                         autocast=autocast, save=save)
    weights = state.best_state if state.best_state is not None else net.state_dict()
    monitor = MONITORS[kind][0]
    best = next((v for v in state.validation if v["step"] == state.best_step), None)
    training = {
        "trainer": "xearthformer.fit",
        "started_from": base.source, "fine_tuned": base.fine_tuning,
        "train": prepared.describe(), "valid": valid_prep.describe() if valid_prep else None,
        "in_len": in_len, "out_len": out_len, "steps": total, "steps_done": state.step,
        "epochs": state.step * batch_size / n_windows, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "warmup_fraction": warmup_fraction,
        "min_lr_ratio": min_lr_ratio, "clip_grad_norm": clip_grad_norm,
        "loss": loss_name(loss), "augment": None if augment is None else loss_name(augment),
        "valid_every": valid_every, "early_stopping_patience": early_stopping_patience,
        "stopped_early": state.stopped_early, "seed": seed, "device": str(device),
        "precision": precision, "world_size": info.world_size,
        "memory_per_batch_bytes": estimate.total,
        "loss_curve": state.history, "loss_summary": curve_summary(state.history),
        "monitor": monitor, "validation": state.validation, "best_step": state.best_step,
        "scores": ({"model": best["model"], "persistence": best["persistence"]}
                   if best else None),
        "seconds": time.perf_counter() - started, "notes": notes,
    }
    card_name = name or out.name
    card = ModelCard(name=card_name, kind="earthformer", official_kwargs=kwargs,
                     contract=contract, training=training,
                     description=f"Earthformer trained with xearthformer.fit from {base.source}")
    if info.is_main:
        save_model_dir(out, card, weights, report=training_report(card_name, training),
                       overwrite=overwrite)
        if (work / "checkpoint.pt").exists():
            (work / "checkpoint.pt").unlink()
        with contextlib.suppress(OSError):
            work.rmdir()
        _log(info, f"wrote {out}")
    ddp.barrier(info)
    return out


def _is_geographic(da: xr.DataArray, dim: Any) -> bool:
    """Whether a spatial dim is a latitude or longitude (by CF attributes or by name)."""
    from .. import _reader as reader

    attrs = da[dim].attrs if dim in da.coords else {}
    return (str(attrs.get("standard_name", "")) in ("grid_latitude", "grid_longitude")
            or str(attrs.get("units", "")).lower().startswith("degree")
            or str(dim).lower() in ("rlat", "rlon")
            or reader.is_latitude(da, dim) or reader.is_longitude(da, dim))


def _check_loss_and_augment(loss: Any, augment: Any, kind: str, prepared: Any) -> None:
    """Refuse a loss or an augmentation that does not fit the data."""
    contract = prepared.contract
    if isinstance(loss, str) and loss == "balanced" and kind != "radar":
        raise TrainingError(
            "loss='balanced' weights the errors by radar intensity (VIL >= 16, 74, 133, 181 on "
            "the 0..255 scale) and needs radar data: uint8 values 0..255 (or a model whose "
            f"valid range is 0..255), but these data ({contract.variables[0]!r}, units "
            f"{contract.units!r}) are not. Use loss='mse', 'mae', 'mse+mae' or a callable."
        )
    if isinstance(augment, str) and augment == "flip_rotate":
        dims = prepared.dims
        if any(_is_geographic(prepared.data, d) for d in (dims.y, dims.x)):
            raise TrainingError(
                f"augment='flip_rotate' turns and mirrors the grid, which suits image-like "
                f"y/x grids such as radar, but these data are on a latitude/longitude grid "
                f"({dims.y}, {dims.x}), where a turned field would put the tropics at the poles "
                "and swap east and west. Use augment=None (or your own callable)."
            )
        h, w = contract.grid_shape
        if h != w:
            raise TrainingError(
                f"augment='flip_rotate' needs a square grid (a quarter turn swaps y and x), "
                f"but the grid is {h} x {w} ({dims.y}, {dims.x}); crop it to a square or use "
                "augment=None."
            )


def _gather_rng(info: ddp.DistInfo, device: torch.device | None) -> list[torch.Tensor]:
    """The RNG state of every rank (rank order), so each rank resumes its own stream."""
    state = torch.get_rng_state() if device is None else torch.cuda.get_rng_state(device)
    if not info.distributed:
        return [state]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, state)
    return out
