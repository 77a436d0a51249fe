"""What ``fit(model=...)`` starts from: a config, official kwargs, a module, a model
directory, a JSON file of official kwargs, or a zoo name."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..models import Earthformer, EarthformerConfig
from ..zoo.model_dir import InputContract, ModelCard, is_model_dir, load_model_dir
from .errors import GridMismatchError, TrainingError

__all__ = ["BaseModel", "resolve_model", "fit_shapes"]


@dataclasses.dataclass
class BaseModel:
    """The starting point of training."""

    official_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor] | None = None
    contract: InputContract | None = None
    source: str = "config"
    name: str | None = None
    card: ModelCard | None = None

    @property
    def fine_tuning(self) -> bool:
        return self.state_dict is not None


def _from_card(card: ModelCard, weights: Mapping[str, Any], source: str) -> BaseModel:
    if card.kind != "earthformer":
        raise TrainingError(
            f"{source} is a {card.kind!r} model; fit() trains Earthformer models only."
        )
    return BaseModel(dict(card.official_kwargs), dict(weights), card.contract, source,
                     card.name, card)


def _from_zoo(name: str) -> BaseModel:
    try:
        from ..zoo import load_model  # the zoo may not provide it yet
    except ImportError:
        load_model = None
    if load_model is None:
        from ..zoo import official_kwargs

        try:
            return BaseModel(official_kwargs(name), source=f"zoo config {name!r}", name=name)
        except KeyError as err:
            raise TrainingError(
                f"{name!r} is neither a model directory, a JSON file of official kwargs nor a "
                f"zoo name ({err.args[0]})."
            ) from None
    loaded = load_model(name)
    return _from_loaded(loaded, f"zoo model {name!r}")


def _from_loaded(loaded: Any, source: str) -> BaseModel:
    """Accept what ``zoo.load_model`` returns: a path, ``(card, weights)``, or an object with
    ``card`` and ``weights``/``state_dict``/``module`` attributes."""
    if isinstance(loaded, (str, os.PathLike)):
        card, weights = load_model_dir(loaded)
        return _from_card(card, weights, source)
    if isinstance(loaded, tuple) and len(loaded) == 2 and isinstance(loaded[0], ModelCard):
        return _from_card(loaded[0], loaded[1], source)
    card = getattr(loaded, "card", None)
    if isinstance(card, ModelCard):
        if card.kind != "earthformer":
            return _from_card(card, {}, source)  # raises: not an Earthformer
        weights = getattr(loaded, "weights", None)
        if weights is None:
            modules = getattr(loaded, "modules", None)
            module = (modules.get("earthformer") if isinstance(modules, Mapping)
                      else getattr(loaded, "module", None))
            if isinstance(loaded, torch.nn.Module):
                module = loaded
            if module is not None:
                weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
        elif callable(weights):
            weights = weights()
        if weights is None and getattr(loaded, "path", None) is not None:
            card, weights = load_model_dir(loaded.path)
        if weights is not None:
            return _from_card(card, weights, source)
    path = getattr(loaded, "path", None)
    if path is not None and is_model_dir(path):
        card, weights = load_model_dir(path)
        return _from_card(card, weights, source)
    raise TrainingError(
        f"cannot train from {source}: zoo.load_model returned a {type(loaded).__name__} without "
        "a model card and weights. Pass its model directory instead."
    )


def resolve_model(model: Any) -> BaseModel:
    """Turn the ``model`` argument of :func:`~xearthformer.fit` into a :class:`BaseModel`."""
    if isinstance(model, EarthformerConfig):
        return BaseModel(model.to_official_kwargs(), source="EarthformerConfig")
    if isinstance(model, Mapping):
        return BaseModel(copy.deepcopy(dict(model)), source="official kwargs")
    if isinstance(model, Earthformer):
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return BaseModel(model.config.to_official_kwargs(), state, source="Earthformer module")
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if is_model_dir(path):
            card, weights = load_model_dir(path)
            return _from_card(card, weights, f"model directory {str(path)!r}")
        if path.suffix == ".json" and path.is_file():
            return BaseModel(json.loads(path.read_text()), source=f"kwargs file {str(path)!r}")
        if path.exists():
            raise TrainingError(
                f"{str(path)!r} is neither a model directory (with model.json) nor a JSON file "
                "of official Earthformer kwargs."
            )
        return _from_zoo(str(model))
    raise TrainingError(
        f"model must be an EarthformerConfig, a dict of official kwargs, an Earthformer module, "
        f"a model directory, a JSON file or a zoo name; got {type(model).__name__}."
    )


def fit_shapes(base: BaseModel, *, in_len: int, out_len: int,
               grid: tuple[int, int]) -> tuple[dict[str, Any], list[str]]:
    """Official kwargs with ``input_shape``/``target_shape`` for ``in_len``/``out_len`` on
    ``grid`` and one channel. Config-only starts are adjusted (and the change is reported);
    starts with weights must already match."""
    kwargs = dict(base.official_kwargs)
    want_in, want_out = [in_len, *grid, 1], [out_len, *grid, 1]
    have_in = list(kwargs.get("input_shape") or [])
    have_out = list(kwargs.get("target_shape") or [])
    notes = []
    if have_in == want_in and have_out == want_out:
        return kwargs, notes
    if base.fine_tuning:
        if have_in[1:3] != list(grid):
            raise GridMismatchError(
                f"the {base.source} works on a {tuple(have_in[1:3])} grid but the data's grid is "
                f"{tuple(grid)}; regrid the data, or train a new model from its config."
            )
        raise TrainingError(
            f"the {base.source} has input_shape {have_in} and target_shape {have_out} (T, H, W, "
            f"C); fine-tuning it needs in_len={have_in[0] if have_in else '?'}, "
            f"out_len={have_out[0] if have_out else '?'} and one channel, but in_len={in_len}, "
            f"out_len={out_len} were given."
        )
    kwargs["input_shape"], kwargs["target_shape"] = want_in, want_out
    notes.append(f"adjusted the model's input_shape {have_in} -> {want_in} and target_shape "
                 f"{have_out} -> {want_out} to in_len, out_len and the data's grid")
    return kwargs, notes
