"""Models made of several weight files (the PreDiff SEVIR-LR release): where each file is.

PreDiff's three checkpoints (VAE, Earthformer-UNet denoiser, alignment network) are not on a
plain URL, so they are never downloaded: :func:`locate_parts` finds them

* in ``weights={"vae": PATH, "denoiser": PATH, "alignment": PATH}``,
* in a folder ``weights=DIR`` holding the official file names, directly or one folder down
  (the official ``pretrained/`` folder has ``vae/``, ``earthformerunet/``, ``alignment/``),
* or, without ``weights=``, in the cache folder (``cache_dir=`` > ``$XEARTHFORMER_CACHE`` >
  the platform cache), laid out the same way.

A missing file raises :class:`~xearthformer.zoo.weights.WeightsUnavailableError` naming every
missing file, where to get it and where to put it.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> files = (("vae", "v.pt"), ("denoiser", "d.pt"))
>>> for name in ("v.pt", "d.pt"):
...     _ = (folder / name).write_bytes(b"")
>>> {part: path.name for part, path in locate_parts("toy", files, folder).items()}
{'vae': 'v.pt', 'denoiser': 'd.pt'}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .weights import WeightsUnavailableError, cache_dir

__all__ = ["locate_parts", "as_weights_key"]

PathLike = str | os.PathLike


def as_weights_key(weights: PathLike | Mapping[str, PathLike] | None):
    """``weights=`` in a hashable form: a path string, sorted ``(part, path)`` pairs or None.

    >>> as_weights_key({"vae": "/a/v.pt", "denoiser": "/a/d.pt"})
    (('denoiser', '/a/d.pt'), ('vae', '/a/v.pt'))
    """
    if weights is None:
        return None
    if isinstance(weights, Mapping):
        return tuple(sorted((str(k), os.fspath(v)) for k, v in weights.items()))
    if isinstance(weights, tuple):  # already a key
        return weights
    return os.fspath(weights)


def _find_in(folder: Path, filename: str) -> Path | None:
    direct = folder / filename
    if direct.is_file():
        return direct
    if folder.is_dir():
        for sub in sorted(folder.iterdir()):
            if sub.is_dir() and (sub / filename).is_file():
                return sub / filename
    return None


def locate_parts(name: str, files: tuple[tuple[str, str], ...],
                 weights: PathLike | Mapping[str, PathLike] | tuple | None = None, *,
                 cache: PathLike | None = None, where: str = "") -> dict[str, Path]:
    """Path of every weight file of the multi-file model ``name``.

    Parameters
    ----------
    name : str
        The zoo name (for messages).
    files : tuple of (str, str)
        ``(part, official file name)`` pairs, e.g. ``("vae", "pretrained_sevirlr_vae_8x8x64_v1.pt")``.
    weights : path, mapping or None
        A folder, a ``{part: path}`` mapping (or its :func:`as_weights_key` form), or None for
        the cache folder.
    cache : path, optional
        Cache folder (see :func:`~xearthformer.zoo.weights.cache_dir`).
    where : str
        How to obtain the files (put in the error message).

    Returns
    -------
    dict of str to pathlib.Path
        In the order of ``files``.

    Raises
    ------
    WeightsUnavailableError
        A file missing (each one named, with where to get it), a single file given for a
        model of several files, or unknown part names.
    """
    parts = dict(files)
    if isinstance(weights, tuple):
        weights = dict(weights)
    listing = ", ".join(f"{part}={filename}" for part, filename in files)
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(parts))
        if unknown:
            raise WeightsUnavailableError(
                f"weights= of {name!r} has unknown part(s) {unknown}; expected the keys "
                f"{list(parts)} ({listing}).")
        found: dict[str, Path | None] = {}
        for part in parts:
            path = weights.get(part)
            found[part] = (Path(path).expanduser()
                           if path is not None and Path(path).expanduser().is_file() else None)
        folder_text = "the paths given in weights="
    else:
        folder = cache_dir(cache) if weights is None else Path(weights).expanduser()
        if weights is not None and folder.is_file():
            raise WeightsUnavailableError(
                f"{name!r} is made of {len(parts)} weight files ({listing}); weights={folder} is "
                "one file. Pass a folder holding them, or weights={"
                + ", ".join(f"{part!r}: PATH" for part in parts) + "}.")
        found = {part: _find_in(folder, filename) for part, filename in parts.items()}
        folder_text = (f"the folder {folder}" if weights is not None else
                       f"the cache folder {folder} (cache_dir= or XEARTHFORMER_CACHE)")
    missing = [part for part, path in found.items() if path is None]
    if missing:
        given = ("" if not isinstance(weights, Mapping) else
                 "".join(f" {part}={weights[part]!s} is not a file." for part in missing
                         if weights.get(part) is not None))
        raise WeightsUnavailableError(
            f"missing weight file(s) of {name!r}: "
            + ", ".join(f"{part} ({parts[part]})" for part in missing)
            + f", looked for in {folder_text}.{given} These files are not downloaded "
            f"automatically. {where} Then pass weights=FOLDER (the files directly in it or one "
            "folder down), weights={" + ", ".join(f"{part!r}: PATH" for part in parts)
            + "}, or place them in the cache folder."
        )
    return {part: found[part] for part in parts}  # type: ignore[misc]
