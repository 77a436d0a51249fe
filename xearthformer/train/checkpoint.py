"""Resumable training state: ``checkpoint.pt`` in a working folder next to the output.

For an output directory ``runs/x`` the working folder is ``runs/x.work/``. The checkpoint
holds the model, optimizer, scheduler and grad-scaler states, the step, the torch RNG
states (CPU and CUDA), the sampler's definition (its draws are a function of seed and step),
the loss and validation history and the best weights so far, plus a fingerprint of the run's
settings so that a checkpoint is never resumed into a different run. It is written
atomically (temporary file, then rename) and removed once the model directory is saved.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from .errors import ResumeMismatchError

__all__ = ["work_dir", "fingerprint", "save_checkpoint", "load_checkpoint", "CHECKPOINT"]

CHECKPOINT = "checkpoint.pt"


def work_dir(out_dir: str | os.PathLike) -> Path:
    """The working folder of an output directory (``runs/x`` -> ``runs/x.work``)."""
    out = Path(out_dir)
    return out.parent / (out.name + ".work")


def fingerprint(settings: dict[str, Any]) -> str:
    """sha256 of the settings that must be equal for a checkpoint to be resumed."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def save_checkpoint(folder: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``folder/checkpoint.pt`` atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (CHECKPOINT + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, folder / CHECKPOINT)
    return folder / CHECKPOINT


def load_checkpoint(folder: Path, expected: str) -> dict[str, Any] | None:
    """The checkpoint in ``folder`` (None if there is none); raises
    :class:`ResumeMismatchError` if it belongs to a run with other settings."""
    path = folder / CHECKPOINT
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != expected:
        raise ResumeMismatchError(
            f"{path} belongs to a training run with other settings (model, data, steps, batch "
            "size, learning rate or seed differ). Pass resume=False to start afresh (it will be "
            "replaced), or use another out_dir."
        )
    return state
