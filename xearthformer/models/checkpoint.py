"""Loading official Earthformer checkpoints in the layouts the releases use."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

LIGHTNING_PREFIX = "torch_nn_module."
_NESTING_KEYS = ("state_dict", "model", "model_state_dict", "module")


class CheckpointError(ValueError):
    """A checkpoint file does not fit the model it is loaded into."""


def extract_state_dict(obj: Mapping, expected_keys: set[str] | None = None) -> dict[str, torch.Tensor]:
    """Find the model's state_dict inside a loaded checkpoint object.

    Accepts a plain state_dict (the released ``.pt`` files), one nested under ``state_dict``
    / ``model`` / ``model_state_dict`` / ``module`` (Lightning and training checkpoints),
    and keys prefixed with ``torch_nn_module.`` (Lightning's wrapper) or ``module.`` (DDP).

    Examples
    --------
    >>> sd = {"state_dict": {"torch_nn_module.z_proj.weight": torch.zeros(1)}}
    >>> list(extract_state_dict(sd))
    ['z_proj.weight']
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"a checkpoint must hold a dict of tensors, got {type(obj).__name__}")
    candidate: Mapping = obj
    for key in _NESTING_KEYS:
        inner = candidate.get(key) if isinstance(candidate, Mapping) else None
        if isinstance(inner, Mapping) and inner and not isinstance(candidate.get(key), torch.Tensor):
            candidate = inner
            break
    tensors = {k: v for k, v in candidate.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"no tensors found in the checkpoint (top-level keys: {sorted(obj)[:10]})")
    for prefix in (LIGHTNING_PREFIX, "module.", "model."):
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
        elif expected_keys is not None:
            prefixed = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if prefixed and set(prefixed) >= expected_keys:
                tensors = prefixed
    return tensors


def load_official_checkpoint(model: nn.Module, source: str | os.PathLike | Mapping, *,
                             map_location: str | torch.device = "cpu") -> nn.Module:
    """Load an official (or our own) checkpoint into ``model`` strictly.

    Parameters
    ----------
    model
        The module, built with the matching config (e.g. ``Earthformer.from_official_kwargs``).
    source
        A path to a ``.pt`` file (read with ``torch.load(weights_only=True)``) or a loaded dict.

    Raises
    ------
    CheckpointError
        Listing missing and unexpected keys and shape mismatches, if the weights do not fit.

    Examples
    --------
    >>> from xearthformer.models import Earthformer
    >>> from xearthformer.zoo import official_kwargs
    >>> kwargs = official_kwargs("earthformer-icar-enso")
    >>> released = Earthformer.from_official_kwargs(kwargs).state_dict()   # stands in for the .pt file
    >>> model = load_official_checkpoint(Earthformer.from_official_kwargs(kwargs), released)
    >>> load_official_checkpoint(model, {"junk": torch.zeros(1)})
    Traceback (most recent call last):
    ...
    xearthformer.models.checkpoint.CheckpointError: ...
    """
    if isinstance(source, Mapping):
        obj = source
    else:
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"checkpoint file not found: {path}")
        try:
            obj = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
            raise CheckpointError(f"could not read {path} as a torch checkpoint: {err}") from err
    own = model.state_dict()
    state = extract_state_dict(obj, set(own))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong_shape:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")

        lines = ["the checkpoint does not match the model's configuration:"]
        if missing:
            lines.append(f"  missing keys: {show(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys: {show(unexpected)}")
        if wrong_shape:
            lines.append("  shape mismatches: " + show(
                [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong_shape]))
        lines.append("Build the model with the config the checkpoint was trained with.")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(state, strict=True)
    return model
