"""The model directory: weights, configuration and input contract of a trained model, on disk.

A model directory is what :func:`xearthformer.fit` writes, what ``forecast(model=PATH)`` reads
and what the zoo's embedded demo models are::

    model.json     format marker, name, kind, official constructor kwargs, input contract,
                   licence, paper, training summary (plain JSON, human readable)
    weights.pt     state_dict(s), loadable with ``torch.load(..., weights_only=True)``
    arrays.npz     the contract's arrays: grid coordinates, land mask, climatology
                   (``numpy.load(..., allow_pickle=False)``)
    report.md      optional: the human-readable training report

Everything here is plain numpy, json and torch (no xarray): the xarray-facing code in
``forecast``/``train`` turns a :class:`InputContract` into validation and preprocessing.

Normalisation is one affine map for every model, ``x_model = (x_physical - offset) / scale``:
the official ICAR-ENSO min-max scaling is ``offset = SST_MIN, scale = SST_MAX - SST_MIN``,
the official SEVIR scaling is ``offset = 0, scale = 255``, and a z-score is ``offset = mean,
scale = std``.

Examples
--------
>>> import numpy as np, tempfile, torch
>>> contract = InputContract(variables=("sst",), in_len=12, out_len=14, step=1,
...     step_units="months", spatial_dims=("lat", "lon"), grid_shape=(2, 3),
...     coords={"lat": np.array([-5.0, 5.0]), "lon": np.array([190.0, 195.0, 200.0])},
...     units="K", offset=0.0, scale=2.0)
>>> contract.normalise(np.array([1.0, -4.0]))
array([ 0.5, -2. ])
>>> card = ModelCard(name="toy", kind="earthformer", official_kwargs={"input_shape": [12, 2, 3, 1]},
...                  contract=contract)
>>> path = save_model_dir(tempfile.mkdtemp() + "/toy", card, {"w": torch.ones(2)})
>>> card2, weights = load_model_dir(path)
>>> card2.contract.coords["lon"].tolist(), weights["w"].tolist()
([190.0, 195.0, 200.0], [1.0, 1.0])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "InputContract",
    "ModelCard",
    "ModelDirError",
    "is_model_dir",
    "load_model_dir",
    "save_model_dir",
    "sha256_of",
]

FORMAT = "xearthformer-model"
FORMAT_VERSION = 1
_ARRAY_FIELDS = ("land_mask", "climatology")


class ModelDirError(ValueError):
    """A model directory is missing, incomplete, of another format, or would be overwritten."""


@dataclasses.dataclass(frozen=True, eq=False)
class InputContract:
    """What a model expects from the data and how it was normalised.

    Parameters
    ----------
    variables : tuple of str
        Variable names, one per model channel, in channel order (``("sst",)``, ``("vil",)``).
    in_len, out_len : int
        Context and forecast lengths in time steps.
    step : int
        Time step in ``step_units`` (1 month; 5 minutes for SEVIR-like radar).
    step_units : {"months", "minutes"}
        Units of the step and of the forecast's ``lead`` coordinate (climpred's vocabulary).
    spatial_dims : tuple of str
        Names of the two spatial dims in the model's training data, ``("lat", "lon")`` for
        geographic grids or ``("y", "x")`` for image-like grids.
    grid_shape : tuple of int
        ``(H, W)``, the model's grid size.
    coords : dict of str to ndarray
        1-D coordinate values of the spatial dims (empty if the grid has no geographic meaning).
    units : str
        Physical units of the variables as the model sees them (``"K"``, ``"1"``).
    offset, scale : float
        Normalisation ``x_model = (x - offset) / scale``.
    anomaly : bool
        The model works on anomalies against ``climatology`` (True for ENSO models).
    fill_value : float
        Physical value given to land / missing cells before normalisation (0 K anomaly).
    valid_range : tuple of float, optional
        Physical range of the data (``(0, 255)`` for VIL); forecasts are clipped to it.
    land_mask : ndarray of bool, optional
        ``(H, W)``, True where the model's training data was always missing (land).
    climatology : ndarray, optional
        ``(12, H, W)`` monthly climatology (month 1..12 along the first axis) used to form
        anomalies from absolute input.
    alignment : dict, optional
        PreDiff knowledge control: ``{"quantity": str, "mu": float, "sigma": float}``.
    auxiliary : dict, optional
        Driver variables a model with an auxiliary encoder takes besides ``variables``
        (EarthNet2021): ``{"static": [names], "dynamic": [names], "order": [names]}``, the
        channel order being ``order``; see :mod:`xearthformer._drivers`.
    """

    variables: tuple[str, ...]
    in_len: int
    out_len: int
    step: int
    step_units: Literal["months", "minutes"]
    spatial_dims: tuple[str, str]
    grid_shape: tuple[int, int]
    coords: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    units: str = ""
    offset: float = 0.0
    scale: float = 1.0
    anomaly: bool = False
    fill_value: float = 0.0
    valid_range: tuple[float, float] | None = None
    land_mask: np.ndarray | None = None
    climatology: np.ndarray | None = None
    alignment: dict[str, Any] | None = None
    auxiliary: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("variables", "spatial_dims", "grid_shape"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.valid_range is not None:
            object.__setattr__(self, "valid_range", tuple(float(v) for v in self.valid_range))
        object.__setattr__(
            self, "coords", {k: np.asarray(v) for k, v in dict(self.coords).items()}
        )
        problems = []
        if not self.variables:
            problems.append("variables is empty; give one name per channel")
        if self.in_len < 1 or self.out_len < 1:
            problems.append(f"in_len={self.in_len} and out_len={self.out_len} must be >= 1")
        if self.step < 1:
            problems.append(f"step={self.step} must be a positive integer")
        if self.step_units not in ("months", "minutes"):
            problems.append(f"step_units={self.step_units!r} must be 'months' or 'minutes'")
        if len(self.spatial_dims) != 2 or len(self.grid_shape) != 2:
            problems.append("spatial_dims and grid_shape need two entries each")
        if not np.isfinite(self.scale) or self.scale == 0:
            problems.append(f"scale={self.scale} must be finite and non-zero")
        for dim, size in zip(self.spatial_dims, self.grid_shape):
            if dim in self.coords and self.coords[dim].shape != (size,):
                problems.append(f"coords[{dim!r}] has shape {self.coords[dim].shape}, not ({size},)")
        if self.land_mask is not None and np.shape(self.land_mask) != tuple(self.grid_shape):
            problems.append(f"land_mask shape {np.shape(self.land_mask)} != grid {self.grid_shape}")
        if self.climatology is not None and np.shape(self.climatology) != (12, *self.grid_shape):
            problems.append(
                f"climatology shape {np.shape(self.climatology)} != (12, *grid) = "
                f"{(12, *self.grid_shape)}"
            )
        if self.anomaly and self.climatology is None:
            pass  # anomalies given directly by the user are fine; absolute input then errors
        if problems:
            raise ModelDirError("invalid input contract: " + "; ".join(problems) + ".")

    # -- normalisation -------------------------------------------------------------------
    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Physical values (anomalies if ``anomaly``) to the model's scale."""
        return (x - self.offset) / self.scale

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        """The model's scale back to physical values (clipped to ``valid_range``)."""
        y = x * self.scale + self.offset
        if self.valid_range is not None:
            y = np.clip(y, *self.valid_range)
        return y

    # -- (de)serialisation -----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The JSON-able scalars (arrays go to ``arrays.npz``, see :func:`save_model_dir`)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _ARRAY_FIELDS or field.name == "coords":
                continue
            out[field.name] = list(value) if isinstance(value, tuple) else value
        out["coords"] = sorted(self.coords)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays, keyed as in ``arrays.npz``."""
        out = {f"coord_{k}": v for k, v in self.coords.items()}
        for name in _ARRAY_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = np.asarray(value)
        return out

    @classmethod
    def from_json(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> InputContract:
        """Inverse of :meth:`to_json` + :meth:`arrays`."""
        kwargs = dict(meta)
        coord_names = kwargs.pop("coords", [])
        kwargs["coords"] = {k: np.asarray(arrays[f"coord_{k}"]) for k in coord_names}
        for name in _ARRAY_FIELDS:
            kwargs[name] = np.asarray(arrays[name]) if name in arrays else None
        return cls(**kwargs)


@dataclasses.dataclass(frozen=True, eq=False)
class ModelCard:
    """Everything about a trained model except its weights.

    Parameters
    ----------
    name : str
        Short name (``"demo-enso"``); used in provenance attrs.
    kind : {"earthformer", "prediff"}
        Which architecture ``official_kwargs`` builds.
    official_kwargs : dict
        For ``"earthformer"``: the official ``CuboidTransformerModel`` kwargs. For ``"prediff"``:
        ``{"vae": ..., "denoiser": ..., "alignment": ...}`` (alignment optional), plus
        ``"schedule"`` for the noise schedule.
    contract : InputContract
        Data expected, normalisation, climatology.
    demo : bool
        True for the small models trained on the package's synthetic data.
    licence, paper, description : str
        Shown by ``xearthformer models``.
    training : dict
        Summary of training (data, steps, scores against persistence); free-form JSON.
    """

    name: str
    kind: Literal["earthformer", "prediff"]
    official_kwargs: dict[str, Any]
    contract: InputContract
    demo: bool = False
    licence: str = ""
    paper: str = ""
    description: str = ""
    training: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``model.json`` content."""
        out = {"format": FORMAT, "format_version": FORMAT_VERSION}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = value.to_json() if field.name == "contract" else value
        return out


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_model_dir(path: str | os.PathLike) -> bool:
    """True if ``path`` is a directory holding a ``model.json``."""
    return Path(path, "model.json").is_file()


def save_model_dir(
    path: str | os.PathLike,
    card: ModelCard,
    weights: Mapping[str, Any],
    *,
    report: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a model directory atomically (a temporary sibling renamed into place).

    Parameters
    ----------
    path : path-like
        Directory to create.
    card : ModelCard
    weights : mapping
        A state_dict, or for PreDiff a dict of state_dicts; saved with ``torch.save``.
    report : str, optional
        Markdown training report, written to ``report.md``.
    overwrite : bool
        Replace an existing directory. Without it an existing path raises
        :class:`ModelDirError` and nothing is touched.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ModelDirError(
            f"{path} already exists; choose another output directory or pass overwrite=True."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        weights_cpu = _to_cpu(weights)
        torch.save(weights_cpu, tmp / "weights.pt")
        np.savez(tmp / "arrays.npz", **card.contract.arrays())
        meta = card.to_json()
        meta["weights_sha256"] = sha256_of(tmp / "weights.pt")
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
        if report is not None:
            (tmp / "report.md").write_text(report)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a model directory is for sharing
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_model_dir(path: str | os.PathLike, *, map_location: str | torch.device = "cpu"):
    """Read a model directory written by :func:`save_model_dir`.

    Returns
    -------
    (ModelCard, dict)
        The card and the weights (loaded with ``weights_only=True``).

    Raises
    ------
    ModelDirError
        Not a model directory, a file missing, or the weights' sha256 differs from the one
        recorded in ``model.json`` (a corrupt or replaced file).
    """
    path = Path(path)
    if not is_model_dir(path):
        raise ModelDirError(
            f"{path} is not an xearthformer model directory (no model.json); expected the output "
            "of xearthformer.fit() or a zoo model name."
        )
    meta = json.loads((path / "model.json").read_text())
    if meta.get("format") != FORMAT:
        raise ModelDirError(f"{path / 'model.json'} has format {meta.get('format')!r}, not {FORMAT!r}.")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelDirError(
            f"{path} uses model-directory format {meta['format_version']}; this xearthformer reads "
            f"up to {FORMAT_VERSION}. Upgrade xearthformer."
        )
    for name in ("weights.pt", "arrays.npz"):
        if not (path / name).is_file():
            raise ModelDirError(f"{path} is incomplete: {name} is missing.")
    expected = meta.pop("weights_sha256", None)
    if expected is not None and sha256_of(path / "weights.pt") != expected:
        raise ModelDirError(
            f"{path / 'weights.pt'} does not match the sha256 recorded in model.json; the file is "
            "corrupt or was replaced. Re-create the model directory."
        )
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta.pop("format")
    meta.pop("format_version")
    contract = InputContract.from_json(meta.pop("contract"), arrays)
    card = ModelCard(contract=contract, **meta)
    weights = torch.load(path / "weights.pt", map_location=map_location, weights_only=True)
    return card, weights


def _to_cpu(weights: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in weights.items():
        if isinstance(value, Mapping):
            out[key] = _to_cpu(value)
        elif isinstance(value, torch.Tensor):
            out[key] = value.detach().cpu().contiguous()
        else:
            out[key] = value
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to model.json")
