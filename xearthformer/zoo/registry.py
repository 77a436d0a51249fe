"""The registry: named models with their configuration, weight source and input contract.

Two kinds of entries:

* **official** checkpoints of the Earthformer release (``earthformer-icar-enso``,
  ``earthformer-sevir``, ``earthformer-earthnet2021`` with its drivers): the official
  constructor kwargs (``configs/*.json``), the weight file's URL (downloaded through
  :mod:`pooch`, see :mod:`xearthformer.zoo.weights`) and the input contract written down
  from the reference data pipeline; and the PreDiff SEVIR-LR
  pipeline (``prediff-sevirlr``), three files with no plain URL, read from local paths
  (:mod:`xearthformer.zoo.parts`);
* **demo** models shipped inside the package: every model directory (written by
  :func:`~xearthformer.zoo.model_dir.save_model_dir`) under ``xearthformer/zoo/demo/``.
  They are discovered at call time; a missing directory simply means no demo entry.

Examples
--------
>>> from xearthformer.zoo.registry import get_entry
>>> entry = get_entry("earthformer-icar-enso")
>>> entry.contract().grid_shape, entry.contract().in_len, entry.licence
((24, 48), 12, 'Apache-2.0')
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .model_dir import InputContract, ModelCard, is_model_dir

__all__ = ["ZooEntry", "UnknownModelError", "get_entry", "entries", "official_kwargs",
           "SST_MIN", "SST_MAX", "SEVIR_VIL_MEAN", "SEVIR_VIL_STD", "EARTHNET_AUX_ORDER", "DEMO_DIR"]

#: Min-max constants of the official ICAR-ENSO pipeline (anomalies in K).
SST_MIN = -16.549121856689453
SST_MAX = 10.198975563049316

_EARTHFORMER_PAPER = ("Gao et al. (2022), Earthformer: Exploring Space-Time Transformers for Earth "
                      "System Forecasting, NeurIPS 2022")
_PREDIFF_PAPER = ("Gao et al. (2023), PreDiff: Precipitation Nowcasting with Latent Diffusion "
                  "Models, NeurIPS 2023")
_S3 = "https://earthformer.s3.amazonaws.com/pretrained_checkpoints/"

#: Where the embedded demo model directories live.
DEMO_DIR = Path(__file__).resolve().parent / "demo"


class UnknownModelError(KeyError, ValueError):
    """A model name is neither in the zoo nor a path to a model directory or checkpoint."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _read_config(filename: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath("configs", filename).read_text()
    return json.loads(text)


def _icar_contract() -> InputContract:
    return InputContract(
        variables=("sst",), in_len=12, out_len=14, step=1, step_units="months",
        spatial_dims=("lat", "lon"), grid_shape=(24, 48),
        coords={"lat": np.arange(-55.0, 60.0 + 1e-9, 5.0),
                "lon": np.arange(95.0, 330.0 + 1e-9, 5.0)},
        units="K", offset=SST_MIN, scale=SST_MAX - SST_MIN, anomaly=True, fill_value=0.0)


#: SEVIR VIL statistics of the official Earthformer SEVIR loader (``PREPROCESS_OFFSET_SEVIR`` /
#: ``PREPROCESS_SCALE_SEVIR`` in ``earthformer/datasets/sevir/sevir_dataloader.py``): the mean and
#: standard deviation of VIL pixels (0-255). PreDiff publishes no statistics of its alignment
#: quantity; see :func:`_sevirlr_contract`.
SEVIR_VIL_MEAN = 33.44
SEVIR_VIL_STD = 47.54


def _sevirlr_contract() -> InputContract:
    """PreDiff SEVIR-LR: 7 VIL frames of 10 minutes on 128 x 128 -> 6 frames, VIL / 255.

    Knowledge control (the official ``SEVIRAvgIntensityAlignment``): the alignment network
    predicts, from the noisy latent, each future frame's mean of VIL / 255 (the normalised
    units, ``target_units="x/255"``). ``kc_sigma=k`` asks for a mean intensity of
    ``mu + k * sigma`` in VIL units, handed to the network as ``(mu + k * sigma) / 255``.
    ``mu`` and ``sigma`` are the SEVIR VIL pixel mean and standard deviation: the official code
    estimates no statistics of the window mean (its demo rule is twice the observed future
    mean), the pixel mean equals the mean of the frame means, and the standard deviation of a
    window mean is smaller than the pixel one, so one ``kc_sigma`` here is a large step.
    """
    return InputContract(
        variables=("vil",), in_len=7, out_len=6, step=10, step_units="minutes",
        spatial_dims=("y", "x"), grid_shape=(128, 128), units="1", offset=0.0, scale=255.0,
        valid_range=(0.0, 255.0), fill_value=0.0,
        alignment={"quantity": "mean_future_intensity", "mu": SEVIR_VIL_MEAN,
                   "sigma": SEVIR_VIL_STD, "units": "VIL (0-255)",
                   "prediction": "mean(VIL / 255) per forecast frame (official alignment network)",
                   "target_units": "x/255",  # the official network, whatever the contract
                   "statistics": "SEVIR VIL pixel mean and standard deviation (official SEVIR "
                                 "loader); PreDiff gives none for the window mean"})


#: EarthNet2021 drivers, in the official channel order of the auxiliary encoder: the
#: high-resolution elevation, the five E-OBS meso-scale weather variables, the meso elevation.
EARTHNET_STATIC = ("elevation", "meso_elevation")
EARTHNET_DYNAMIC = ("precipitation", "sea_level_pressure", "mean_temperature",
                    "min_temperature", "max_temperature")
EARTHNET_AUX_ORDER = ("elevation", *EARTHNET_DYNAMIC, "meso_elevation")


def _earthnet_contract() -> InputContract:
    """EarthNet2021: 10 Sentinel-2 frames (5-day steps, 128 x 128, blue/green/red/NIR reflectance
    in [0, 1]) and 7 drivers -> 20 frames. Steps are in minutes (5 days = 7200)."""
    return InputContract(
        variables=("blue", "green", "red", "nir"), in_len=10, out_len=20, step=7200,
        step_units="minutes", spatial_dims=("y", "x"), grid_shape=(128, 128), units="1",
        offset=0.0, scale=1.0, valid_range=(0.0, 1.0), fill_value=0.0,
        auxiliary={"static": list(EARTHNET_STATIC), "dynamic": list(EARTHNET_DYNAMIC),
                   "order": list(EARTHNET_AUX_ORDER), "resize": "nearest",
                   "cloud_mask": ("not an input; the official loss and scores compare "
                                  "pred * (1 - mask) with target * (1 - mask), mask = 1 where "
                                  "cloudy or invalid"),
                   "note": ("drivers as in the EarthNet2021 cubes (not rescaled); meso variables "
                            "on their own 80 x 80 grid are resized (nearest) onto the 128 x 128 "
                            "frame grid as the official pipeline does; NaN -> 0 as officially")})


def _sevir_contract() -> InputContract:
    return InputContract(
        variables=("vil",), in_len=13, out_len=12, step=5, step_units="minutes",
        spatial_dims=("y", "x"), grid_shape=(384, 384), units="1", offset=0.0, scale=255.0,
        valid_range=(0.0, 255.0), fill_value=0.0)


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One named model.

    Parameters
    ----------
    name : str
        The zoo name (``"earthformer-icar-enso"``).
    kind : {"earthformer", "prediff"}
    source : {"official", "demo"}
    description, licence, paper : str
    url, filename, sha256 : str or None
        Weight source of an official checkpoint; ``sha256=None`` when the release publishes
        none (the file is then not verified, and :func:`load_model` says so in its card).
    config : str or None
        The ``configs/*.json`` file with the official constructor kwargs.
    path : pathlib.Path or None
        The model directory of a demo model.
    files : tuple of (str, str)
        For models made of several weight files (PreDiff: ``vae``, ``denoiser``,
        ``alignment``): ``(part, official file name)`` pairs. Such files are not downloaded:
        ``where`` says how to get them, and :func:`~xearthformer.zoo.load_model` reads them
        from local paths or a folder (see :mod:`xearthformer.zoo.parts`).
    where : str
        How to obtain the weight files when there is no plain URL.
    training : dict
        Sampling defaults written to the card (``guide_scale``, ``sampler``, ``control``).
    """

    name: str
    kind: Literal["earthformer", "prediff"]
    source: Literal["official", "demo"]
    description: str = ""
    licence: str = ""
    paper: str = ""
    url: str | None = None
    filename: str | None = None
    sha256: str | None = None
    config: str | None = None
    path: Path | None = None
    files: tuple[tuple[str, str], ...] = ()
    where: str = ""
    training: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    _contract: Any = dataclasses.field(default=None, repr=False, compare=False)

    def official_kwargs(self) -> dict[str, Any]:
        """The constructor kwargs (official names)."""
        if self.config is not None:
            return _read_config(self.config)
        return dict(self.card().official_kwargs)

    def contract(self) -> InputContract:
        """The input contract (read from the model directory for demo models)."""
        if self._contract is not None:
            return self._contract()
        return self.card().contract

    def card(self) -> ModelCard:
        """A :class:`ModelCard` describing this entry (no weights are read)."""
        if self.path is not None:
            return _card_only(self.path)[0]
        return ModelCard(name=self.name, kind=self.kind, official_kwargs=self.official_kwargs(),
                         contract=self._contract(), demo=self.source == "demo",
                         licence=self.licence, paper=self.paper, description=self.description,
                         training=dict(self.training))


def _card_only(path: Path) -> tuple[ModelCard, None]:
    """The card of a model directory without loading its weights."""
    meta = json.loads((path / "model.json").read_text())
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key in ("format", "format_version", "weights_sha256"):
        meta.pop(key, None)
    contract = InputContract.from_json(meta.pop("contract"), arrays)
    return ModelCard(contract=contract, **meta), None


_OFFICIAL: dict[str, ZooEntry] = {
    "earthformer-icar-enso": ZooEntry(
        name="earthformer-icar-enso", kind="earthformer", source="official",
        description=("official Earthformer ICAR-ENSO checkpoint: 12 months of SST anomalies on "
                     "the 5-degree grid -55..60N x 95..330E -> 14 months"),
        licence="Apache-2.0", paper=_EARTHFORMER_PAPER,
        url=_S3 + "earthformer_icarenso2021.pt", filename="earthformer_icarenso2021.pt",
        sha256=None, config="earthformer_icarenso2021.json", _contract=_icar_contract),
    "earthformer-sevir": ZooEntry(
        name="earthformer-sevir", kind="earthformer", source="official",
        description=("official Earthformer SEVIR checkpoint: 13 VIL frames (5 min, 384 x 384, "
                     "0-255) -> 12 frames"),
        licence="Apache-2.0", paper=_EARTHFORMER_PAPER,
        url=_S3 + "earthformer_sevir.pt", filename="earthformer_sevir.pt",
        sha256=None, config="earthformer_sevir.json", _contract=_sevir_contract),
    "earthformer-earthnet2021": ZooEntry(
        name="earthformer-earthnet2021", kind="earthformer", source="official",
        description=("official Earthformer EarthNet2021 checkpoint (CuboidTransformerAuxModel): "
                     "10 Sentinel-2 frames (5 days, 128 x 128, blue/green/red/NIR) + 7 weather "
                     "and elevation drivers -> 20 frames"),
        licence="Apache-2.0", paper=_EARTHFORMER_PAPER,
        url=_S3 + "earthformer_earthnet2021.pt", filename="earthformer_earthnet2021.pt",
        sha256=None, config="earthformer_earthnet2021.json", _contract=_earthnet_contract),
    "prediff-sevirlr": ZooEntry(
        name="prediff-sevirlr", kind="prediff", source="official",
        description=("official PreDiff SEVIR-LR pipeline (VAE, Earthformer-UNet, alignment "
                     "network): 7 VIL frames (10 min, 128 x 128, VIL/255) -> 6-frame ensembles, "
                     "knowledge control on the mean future intensity"),
        licence="Apache-2.0", paper=_PREDIFF_PAPER, config="prediff_sevirlr.json",
        files=(("vae", "pretrained_sevirlr_vae_8x8x64_v1.pt"),
               ("denoiser", "pretrained_sevirlr_earthformerunet_v1.pt"),
               ("alignment", "pretrained_sevirlr_alignment_avg_x_cuboid_v1.pt")),
        where=("The official PreDiff README (github.com/gaozhihan/PreDiff) fetches them with "
               "`python scripts/download_pretrained.py --model vae|earthformerunet|alignment` "
               "into pretrained/{vae,earthformerunet,alignment}/ (SharePoint links, no plain URL)."),
        training={"guide_scale": 50.0, "sampler": {"num_steps": 1000, "eta": 1.0},
                  "control": "mean_shift",
                  "note": ("official settings: ancestral DDPM over 1000 steps (DDIM with eta 1 "
                           "over all steps is the same process), guide_scale 50 "
                           "(prediff_sevirlr_v1.yaml), batch L2 norm of the violation")},
        _contract=_sevirlr_contract),
}


def _demo_entries(demo_dir: Path | None = None) -> dict[str, ZooEntry]:
    """The demo models in ``demo_dir``, read again only when a ``model.json`` there changes
    (``load_model`` asks at every chunk of a hindcast: 4 ms of json each time otherwise)."""
    demo_dir = DEMO_DIR if demo_dir is None else demo_dir
    if not demo_dir.is_dir():
        return {}
    stamp = []
    for path in sorted(demo_dir.iterdir()):
        try:
            stamp.append((path.name, (path / "model.json").stat().st_mtime_ns))
        except OSError:
            stamp.append((path.name, None))
    return dict(_read_demo_entries(demo_dir, tuple(stamp)))


@functools.lru_cache(maxsize=8)
def _read_demo_entries(demo_dir: Path, stamp: tuple) -> dict[str, ZooEntry]:
    out: dict[str, ZooEntry] = {}
    for path in sorted(demo_dir.iterdir()):
        if not is_model_dir(path):
            continue
        try:
            meta = json.loads((path / "model.json").read_text())
        except (OSError, ValueError):
            continue
        kind = meta.get("kind", "earthformer")
        out[path.name] = ZooEntry(
            name=path.name, kind=kind, source="demo",
            description=meta.get("description", "") or f"demo {kind} model",
            licence=meta.get("licence", "") or "Apache-2.0",
            paper=meta.get("paper", "") or (_PREDIFF_PAPER if kind == "prediff" else _EARTHFORMER_PAPER),
            path=path)
    return out


def entries() -> dict[str, ZooEntry]:
    """Every registered model by name: the official checkpoints, then the demo models found."""
    return {**_OFFICIAL, **_demo_entries()}


def get_entry(name: str) -> ZooEntry:
    """The entry called ``name``.

    Raises
    ------
    UnknownModelError
        Naming the close matches (``difflib``) and every known name.
    """
    known = entries()
    if name in known:
        return known[name]
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise UnknownModelError(
        f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(known))}. A path to a "
        "model directory (written by xearthformer.fit) or to a checkpoint file (with config=NAME) "
        "also works; xearthformer.list_models() describes them."
    )


def official_kwargs(name: str) -> dict[str, Any]:
    """The official constructor kwargs of a registered model (from its ``_v1`` YAML).

    Examples
    --------
    >>> official_kwargs("earthformer-icar-enso")["input_shape"]
    [12, 24, 48, 1]
    """
    return get_entry(name).official_kwargs()
