"""Weight files of the official checkpoints: the cache, downloads through pooch, checksums.

The cache directory is, in this order: the ``cache_dir=`` argument, the environment variable
``XEARTHFORMER_CACHE``, ``pooch.os_cache("xearthformer")`` (the platform's cache folder).
Environment variables are read at call time, never at import. ``XEARTHFORMER_OFFLINE=1``
forbids downloads: a file missing from the cache then raises :class:`WeightsUnavailableError`
naming the file, its URL and the folder to put it in.

Examples
--------
>>> import os
>>> str(cache_dir("/tmp/xef-cache"))
'/tmp/xef-cache'
"""

from __future__ import annotations

import os
from pathlib import Path

from .model_dir import sha256_of

__all__ = ["WeightsUnavailableError", "ChecksumError", "cache_dir", "offline", "fetch"]


class WeightsUnavailableError(FileNotFoundError, ValueError):
    """A checkpoint is not in the cache and cannot be downloaded (offline, or no network)."""


class ChecksumError(ValueError):
    """A checkpoint's sha256 differs from the registered one (the file was removed)."""


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``path`` > ``$XEARTHFORMER_CACHE`` > ``pooch.os_cache("xearthformer")``.

    Read at call time (importing the package reads no environment variable).

    Examples
    --------
    >>> cache_dir("/data/weights").as_posix()
    '/data/weights'
    """
    if path is not None:
        return Path(path)
    env = os.environ.get("XEARTHFORMER_CACHE")
    if env:
        return Path(env)
    import pooch  # noqa: PLC0415

    return Path(pooch.os_cache("xearthformer"))


def offline() -> bool:
    """Whether ``XEARTHFORMER_OFFLINE`` forbids downloads (``1``, ``true``, ``yes``)."""
    return os.environ.get("XEARTHFORMER_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _verify(path: Path, sha256: str | None, name: str) -> None:
    if sha256 is None:
        return
    found = sha256_of(path)
    if found != sha256.lower():
        path.unlink(missing_ok=True)
        raise ChecksumError(
            f"{path.name} (model {name!r}) has sha256 {found}, expected {sha256}; the file is "
            f"corrupt or a different release and was removed from the cache ({path.parent}). "
            "Run again to download it afresh, or place the right file there."
        )


def fetch(name: str, url: str, filename: str, sha256: str | None = None, *,
          cache: str | os.PathLike | None = None) -> Path:
    """Path of a checkpoint in the cache, downloading it with pooch when needed and allowed.

    Parameters
    ----------
    name : str
        The zoo name (for messages).
    url, filename : str
        Where the file comes from, and its name in the cache.
    sha256 : str, optional
        Expected hex digest; a mismatch removes the file and raises :class:`ChecksumError`.
        ``None`` (the official releases publish none) verifies nothing.
    cache : path, optional
        Cache folder (see :func:`cache_dir`).

    Raises
    ------
    WeightsUnavailableError
        Offline (``XEARTHFORMER_OFFLINE=1``) with the file missing, or the download failed.
    ChecksumError
    """
    folder = cache_dir(cache)
    path = folder / filename
    if path.is_file():
        _verify(path, sha256, name)
        return path
    where = (f"Download {url} and place it at {path} (or pass weights=PATH / set "
             "XEARTHFORMER_CACHE to the folder holding it).")
    if offline():
        raise WeightsUnavailableError(
            f"the weights of {name!r} ({filename}) are not in the cache and XEARTHFORMER_OFFLINE "
            f"is set. {where}"
        )
    import pooch  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    try:
        fetched = pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None,
                                 fname=filename, path=folder, progressbar=False)
    except ValueError as err:  # pooch: hash mismatch (the download is not kept)
        path.unlink(missing_ok=True)
        raise ChecksumError(f"download of {filename} for {name!r} failed its checksum: {err}. "
                            f"{where}") from err
    except Exception as err:  # noqa: BLE001 - requests/urllib raise many kinds
        path.unlink(missing_ok=True)
        raise WeightsUnavailableError(
            f"could not download the weights of {name!r} ({filename}): {type(err).__name__}: "
            f"{err}. {where}"
        ) from err
    return Path(fetched)
