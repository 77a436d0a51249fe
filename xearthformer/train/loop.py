"""The training loop: one optimizer step per global batch, validation, best-model selection,
early stopping and periodic checkpoints. Pure torch; the data come from a loader factory."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F

from . import ddp
from .scores import MONITORS, ScoreKind, better

__all__ = ["LoopSettings", "LoopState", "run_loop"]


@dataclasses.dataclass
class LoopSettings:
    steps: int
    clip_grad_norm: float | None
    valid_every: int
    early_stopping_patience: int | None
    checkpoint_every: int
    progress: bool
    callbacks: Sequence[Callable[[int, dict[str, Any]], Any]] = ()
    #: ``loss(pred, target) -> scalar`` in the model's scale (default: MSE)
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    #: ``augment(x, y, step) -> (x, y)``: this rank's share of the batch of ``step``
    augment: Callable[[torch.Tensor, torch.Tensor, int],
                      tuple[torch.Tensor, torch.Tensor]] | None = None


@dataclasses.dataclass
class LoopState:
    """Everything the loop changes besides model/optimizer/scheduler (saved in checkpoints)."""

    step: int = 0
    history: list[list[float]] = dataclasses.field(default_factory=list)
    validation: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_step: int | None = None
    best_score: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    bad_validations: int = 0
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"best_state": self.best_state}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopState:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="fit", unit="step", dynamic_ncols=True)


def run_loop(
    *,
    model: torch.nn.Module,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: Any,
    batches: Callable[[int, int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    validate: Callable[[], dict[str, dict[str, float]]] | None,
    kind: ScoreKind,
    state: LoopState,
    settings: LoopSettings,
    info: ddp.DistInfo,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager],
    save: Callable[[LoopState], None],
) -> LoopState:
    """Train from ``state.step`` to ``settings.steps`` (or an early stop)."""
    monitor = MONITORS[kind][0]
    loss_fn = settings.loss if settings.loss is not None else F.mse_loss
    bar = _progress(settings.steps, state.step, settings.progress and info.is_main)
    model.train()
    try:
        for step, (x, y) in zip(range(state.step, settings.steps),
                                batches(state.step, settings.steps)):
            if settings.augment is not None:
                x, y = settings.augment(x, y, step)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast():
                pred = model(x)
            loss = loss_fn(pred.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if settings.clip_grad_norm:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(module.parameters(), settings.clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            value = ddp.mean_over_ranks(loss, info)
            state.step = step + 1
            state.history.append([state.step, value])
            logs: dict[str, Any] = {"loss": value, "lr": scheduler.get_last_lr()[0]}
            if validate is not None and (state.step % settings.valid_every == 0
                                         or state.step == settings.steps):
                scores = validate()
                state.validation.append({"step": state.step, **scores})
                score = scores["model"][monitor]
                logs[f"valid_{monitor}"] = score
                if better(kind, score, state.best_score):
                    state.best_step, state.best_score, state.bad_validations = state.step, score, 0
                    state.best_state = {k: v.detach().cpu().clone()
                                        for k, v in module.state_dict().items()}
                else:
                    state.bad_validations += 1
                patience = settings.early_stopping_patience
                if patience is not None and state.bad_validations >= patience:
                    state.stopped_early = True
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "lr"})
            if state.step % settings.checkpoint_every == 0 and state.step < settings.steps:
                save(state)  # collective under DDP; only rank 0 writes
                ddp.barrier(info)
            for callback in settings.callbacks:
                callback(state.step, logs)
            if state.stopped_early:
                break
    finally:
        if bar is not None:
            bar.close()
    return state
