"""The model zoo: named models, their weights, input contracts, licences and papers.

* :func:`list_models` describes every registered model (``xearthformer models`` prints it);
* :func:`load_model` turns a name, a model directory or a checkpoint file into a
  :class:`LoadedModel` (card + torch modules), cached per process so that forecasts on dask
  workers load each model once;
* :func:`official_kwargs` gives the official constructor kwargs of a released model.

Weights of the official checkpoints are downloaded with pooch into a cache (``cache_dir=`` >
``XEARTHFORMER_CACHE`` > the platform cache folder); ``XEARTHFORMER_OFFLINE=1`` forbids it. A
local checkpoint always works offline: ``load_model("earthformer-icar-enso", weights=PATH)``,
or equivalently ``load_model(PATH, config="earthformer-icar-enso")``.

>>> from xearthformer.zoo import official_kwargs
>>> official_kwargs("earthformer-icar-enso")["input_shape"]
[12, 24, 48, 1]
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .model_dir import ModelCard, ModelDirError, is_model_dir, load_model_dir, sha256_of
from .parts import as_weights_key, locate_parts
from .registry import UnknownModelError, ZooEntry, entries, get_entry, official_kwargs
from .weights import ChecksumError, WeightsUnavailableError, cache_dir, fetch

__all__ = [
    "LoadedModel",
    "ModelSpec",
    "ChecksumError",
    "UnknownModelError",
    "WeightsUnavailableError",
    "ZooEntry",
    "cache_dir",
    "clear_cache",
    "list_models",
    "load_model",
    "official_kwargs",
    "resolve",
]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A picklable reference to a model: what a dask task carries instead of the module.

    ``source`` is a zoo name, a model directory or a checkpoint path; ``weights`` and
    ``config`` as in :func:`load_model` (a ``{part: path}`` mapping of ``weights`` is kept as
    sorted ``(part, path)`` pairs).
    """

    source: str
    weights: str | tuple[tuple[str, str], ...] | None = None
    config: str | None = None
    cache_dir: str | None = None


@dataclasses.dataclass(eq=False)
class LoadedModel:
    """A model ready to run: its card (name, contract, ...), torch modules and provenance.

    Attributes
    ----------
    card : ModelCard
    modules : dict of str to torch.nn.Module
        ``{"earthformer": ...}``, or for PreDiff ``{"vae", "denoiser"[, "alignment"]}``.
    sha256 : str
        Hex digest of the weight file read (``"unverified"`` never: always computed).
    weights_path : str
        The file the weights came from.
    verified : bool
        Whether the file was checked against a registered sha256.
    spec : ModelSpec
        How to load it again (in another process).
    """

    card: ModelCard
    modules: dict[str, Any]
    sha256: str
    weights_path: str
    verified: bool
    spec: ModelSpec

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def contract(self):
        return self.card.contract

    @property
    def module(self):
        """The Earthformer module (for ``kind == "earthformer"``)."""
        if "earthformer" not in self.modules:
            raise TypeError(f"model {self.name!r} is a {self.card.kind} model; see .modules")
        return self.modules["earthformer"]


def list_models() -> list[dict[str, Any]]:
    """Every registered model, one dict per model (a list, so it needs no pandas).

    Keys: ``name``, ``kind``, ``source`` ("official" or "demo"), ``variables``, ``grid``,
    ``step``, ``in_len``, ``out_len``, ``normalisation``, ``climatology``, ``licence``,
    ``paper``, ``url``, ``sha256``, ``alignment`` (the knowledge-control quantity of PreDiff
    models, empty otherwise), ``description``. ``pandas.DataFrame(list_models())``
    gives a table.

    Examples
    --------
    >>> from xearthformer.zoo import list_models
    >>> rows = {row["name"]: row for row in list_models()}
    >>> rows["earthformer-icar-enso"]["grid"]
    'lat -55..60 x lon 95..330 (24 x 48)'
    >>> rows["earthformer-sevir"]["step"], rows["earthformer-sevir"]["licence"]
    ('5 minutes', 'Apache-2.0')
    """
    rows = []
    for name, entry in entries().items():
        try:
            c = entry.contract()
        except (OSError, ValueError, KeyError) as err:  # a broken demo directory
            rows.append({"name": name, "kind": entry.kind, "source": entry.source,
                         "description": f"unreadable: {err}"})
            continue
        if all(dim in c.coords for dim in c.spatial_dims):
            grid = " x ".join(f"{dim} {c.coords[dim][0]:g}..{c.coords[dim][-1]:g}"
                              for dim in c.spatial_dims) + f" ({c.grid_shape[0]} x {c.grid_shape[1]})"
        else:
            grid = f"{c.grid_shape[0]} x {c.grid_shape[1]} ({', '.join(c.spatial_dims)})"
        clim = ("stored" if c.climatology is not None else "none (input must be anomalies)"
                if c.anomaly else "-")
        rows.append({
            "name": name, "kind": entry.kind, "source": entry.source,
            "variables": ",".join(c.variables), "grid": grid,
            "step": f"{c.step} {c.step_units}", "in_len": c.in_len, "out_len": c.out_len,
            "normalisation": f"(x - {c.offset:g}) / {c.scale:g}", "climatology": clim,
            "licence": entry.licence, "paper": entry.paper,
            "url": entry.url or ("local files: " + ", ".join(f for _, f in entry.files)
                                 if entry.files else "embedded"),
            "sha256": entry.sha256 or ("in model.json" if entry.path else "unknown (not verified)"),
            "alignment": (c.alignment or {}).get("quantity", ""),
            "description": entry.description,
        })
    return rows


def resolve(model: str | os.PathLike | ModelSpec, *,
            weights: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
            config: str | None = None, cache_dir: str | os.PathLike | None = None) -> ModelSpec:
    """Normalise the ways of naming a model into a :class:`ModelSpec` (no file is read).

    Examples
    --------
    >>> resolve("earthformer-icar-enso", weights="/data/earthformer_icarenso2021.pt").config
    >>> resolve("/data/my.pt", config="earthformer-icar-enso").config
    'earthformer-icar-enso'
    """
    if isinstance(model, ModelSpec):
        return model
    text = os.fspath(model)
    return ModelSpec(source=text, weights=as_weights_key(weights),
                     config=config, cache_dir=None if cache_dir is None else os.fspath(cache_dir))


def load_model(name_or_path: str | os.PathLike | ModelSpec, *,
               weights: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
               config: str | None = None,
               cache_dir: str | os.PathLike | None = None, device: str = "cpu") -> LoadedModel:
    """Load a model by zoo name, model directory, or checkpoint file (cached per process).

    Parameters
    ----------
    name_or_path : str or path
        A zoo name (:func:`list_models`), a model directory written by
        :func:`xearthformer.fit` / :func:`~xearthformer.zoo.model_dir.save_model_dir`, or a
        ``.pt`` checkpoint file (then ``config=`` names the zoo entry whose configuration and
        input contract it has).
    weights : path or mapping, optional
        A local checkpoint for a zoo name: used instead of the download (always offline). For
        models of several files (``prediff-sevirlr``): a folder holding the official file
        names, or ``{"vae": PATH, "denoiser": PATH, "alignment": PATH}``; without it they are
        looked for in the cache folder (they are never downloaded, see
        :mod:`xearthformer.zoo.parts`).
    config : str, optional
        Zoo name giving the configuration of a checkpoint file passed as ``name_or_path``.
    cache_dir : path, optional
        Download cache (default ``$XEARTHFORMER_CACHE`` or the platform cache folder).
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...

    Returns
    -------
    LoadedModel
        In eval mode. The same arguments return the same object while the files are unchanged.

    Raises
    ------
    UnknownModelError
        An unknown name (close matches listed).
    WeightsUnavailableError, ChecksumError
        Offline with the file missing, a failed download, a corrupt file.
    ModelDirError, xearthformer.models.CheckpointError
        A broken model directory, or a checkpoint that does not fit the configuration.

    Examples
    --------
    >>> import tempfile, torch
    >>> from xearthformer.models import Earthformer
    >>> from xearthformer.zoo import load_model, official_kwargs
    >>> path = tempfile.mkdtemp() + "/enso.pt"
    >>> torch.save(Earthformer.from_official_kwargs(official_kwargs("earthformer-icar-enso")).state_dict(), path)
    >>> model = load_model("earthformer-icar-enso", weights=path)
    >>> model.card.contract.grid_shape, model.verified
    ((24, 48), False)
    >>> load_model(path, config="earthformer-icar-enso") is model
    True
    """
    spec = resolve(name_or_path, weights=weights, config=config, cache_dir=cache_dir)
    source = Path(spec.source)
    entry = _multi_file_entry(spec)
    if entry is not None:
        paths = locate_parts(entry.name, entry.files, spec.weights, cache=spec.cache_dir,
                             where=entry.where)
        stamp = tuple((part, str(p), p.stat().st_mtime_ns, p.stat().st_size)
                      for part, p in paths.items())
        return _load_parts_cached(spec, stamp, str(device))
    if isinstance(spec.weights, tuple):
        raise UnknownModelError(f"weights= as a mapping of parts is for models of several files "
                                f"({', '.join(_multi_file_names())}); {spec.source!r} takes one "
                                "checkpoint path.")
    if spec.config is not None and source.suffix in (".pt", ".pth", ".ckpt") and spec.weights is None:
        spec = ModelSpec(source=spec.config, weights=spec.source, config=None,
                         cache_dir=spec.cache_dir)
    elif spec.config is not None and spec.weights is None and not is_model_dir(source):
        raise UnknownModelError(f"config={spec.config!r} is for a checkpoint file, but "
                                f"{spec.source!r} is not a .pt/.pth/.ckpt file.")
    path, kind = _locate(spec)
    stat = Path(path).stat()
    return _load_cached(spec, str(path), kind, stat.st_mtime_ns, stat.st_size, str(device))


def _multi_file_names() -> list[str]:
    return sorted(name for name, entry in entries().items() if entry.files)


def _multi_file_entry(spec: ModelSpec) -> ZooEntry | None:
    """The zoo entry of ``spec`` when it names a model of several weight files."""
    if spec.config is not None or is_model_dir(Path(spec.source).expanduser()):
        return None
    entry = entries().get(spec.source)
    return entry if entry is not None and entry.files else None


@functools.lru_cache(maxsize=4)
def _load_parts_cached(spec: ModelSpec, stamp: tuple, device: str) -> LoadedModel:
    """Read every part's file (``stamp``: part, path, mtime, size) and build the modules."""
    import torch  # noqa: PLC0415

    from ..models import CheckpointError  # noqa: PLC0415

    entry = get_entry(spec.source)
    card = entry.card()
    state, digests = {}, []
    for part, path, _, _ in stamp:
        try:
            state[part] = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
            raise CheckpointError(f"could not read {path} ({part} of {entry.name!r}) as a torch "
                                  f"checkpoint ({err}); the file is corrupt or not a checkpoint. "
                                  "Replace it.") from err
        digests.append(f"{part}:{sha256_of(path)}")
    modules = {}
    for part, path, _, _ in stamp:  # part by part, so that an error names the file
        try:
            modules.update(_build(card, {part: state[part]}))
        except CheckpointError as err:
            raise CheckpointError(f"{path} does not fit the {part} of {entry.name!r} (expected "
                                  f"the official {dict(entry.files)[part]}): {err}") from err
    for module in modules.values():
        module.to(device).eval()
    return LoadedModel(card=card, modules=modules, sha256=";".join(digests),
                       weights_path=";".join(path for _, path, _, _ in stamp), verified=False,
                       spec=spec)


def _locate(spec: ModelSpec) -> tuple[Path, str]:
    """(file or directory to read, "dir" | "zoo")."""
    source = Path(spec.source).expanduser()
    if is_model_dir(source):
        return source, "dir"
    if spec.weights is None and source.suffix in (".pt", ".pth", ".ckpt"):
        if not source.is_file():
            raise WeightsUnavailableError(f"checkpoint file not found: {source}")
        raise UnknownModelError(
            f"{source} is a checkpoint file; say which configuration it has with "
            f"config=NAME, one of {sorted(n for n, e in entries().items() if e.source == 'official')}."
        )
    if source.is_dir() and (os.sep in spec.source or spec.source.startswith(".")):
        raise ModelDirError(f"{source} is not an xearthformer model directory (no model.json); "
                            "expected the output of xearthformer.fit() or a zoo model name.")
    entry = get_entry(spec.source)
    if entry.path is not None and spec.weights is None:
        return entry.path, "dir"
    if spec.weights is not None:
        weights = Path(spec.weights).expanduser()
        if not weights.is_file():
            raise WeightsUnavailableError(f"checkpoint file not found: {weights} (weights= of "
                                          f"{entry.name!r}).")
        return weights, "zoo"
    return fetch(entry.name, entry.url, entry.filename, entry.sha256, cache=spec.cache_dir), "zoo"


@functools.lru_cache(maxsize=8)
def _load_cached(spec: ModelSpec, path: str, kind: str, mtime_ns: int, size: int,
                 device: str) -> LoadedModel:
    import torch  # noqa: PLC0415

    if kind == "dir":
        card, state = load_model_dir(path, map_location="cpu")
        weights_path = str(Path(path) / "weights.pt")
        verified = True
    else:
        entry = get_entry(spec.source)
        card = entry.card()
        weights_path = path
        verified = entry.sha256 is not None and spec.weights is None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
            from ..models import CheckpointError  # noqa: PLC0415

            raise CheckpointError(f"could not read {path} as a torch checkpoint ({err}); the "
                                  "file is corrupt or not a checkpoint. Replace it.") from err
    modules = _build(card, state)
    for module in modules.values():
        module.to(device).eval()
    return LoadedModel(card=card, modules=modules, sha256=sha256_of(weights_path),
                       weights_path=weights_path, verified=verified, spec=spec)


def _build(card: ModelCard, state: Any) -> dict[str, Any]:
    from ..models import load_official_checkpoint  # noqa: PLC0415

    if card.kind == "earthformer":
        from ..models import Earthformer  # noqa: PLC0415

        if "auxiliary_channels" in card.official_kwargs:  # EarthNet2021: CuboidTransformerAuxModel
            from ..models import EarthformerAux  # noqa: PLC0415

            model = EarthformerAux.from_official_kwargs(card.official_kwargs)
        else:
            model = Earthformer.from_official_kwargs(card.official_kwargs)
        return {"earthformer": load_official_checkpoint(model, state)}
    if card.kind == "prediff":
        from ..models import (  # noqa: PLC0415
            AutoencoderKL,
            CuboidTransformerUNet,
            NoisyCuboidTransformerEncoder,
        )

        builders = {"vae": AutoencoderKL, "denoiser": CuboidTransformerUNet,
                    "alignment": NoisyCuboidTransformerEncoder}
        out = {}
        for part, cls in builders.items():
            if part in card.official_kwargs and part in state:
                out[part] = load_official_checkpoint(
                    cls.from_official_kwargs(card.official_kwargs[part]), state[part])
        return out
    raise ModelDirError(f"model kind {card.kind!r} is not known; expected 'earthformer' or 'prediff'.")


def clear_cache() -> None:
    """Forget the loaded models (e.g. after replacing a file with the same size and time).

    Examples
    --------
    >>> clear_cache()   # the next load_model() reads the files again
    """
    _load_cached.cache_clear()
    _load_parts_cached.cache_clear()
