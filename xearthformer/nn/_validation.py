"""Argument checks shared by the torch layers (clear ``ValueError`` s, never ``assert``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ConfigError(ValueError):
    """A layer or model was constructed with arguments it cannot use."""


def int_triple(value: Any, name: str, *, allow_zero: bool = False) -> tuple[int, int, int]:
    """Return ``value`` as a tuple of three ints, or raise :class:`ConfigError`.

    >>> int_triple([2, 4, 4], "cuboid_size")
    (2, 4, 4)
    """
    lowest = 0 if allow_zero else 1
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= lowest for v in value)
    ):
        kind = "non-negative" if allow_zero else "positive"
        raise ConfigError(
            f"{name} must be a tuple of three {kind} ints (T, H, W), got {value!r}"
        )
    return tuple(int(v) for v in value)  # type: ignore[return-value]


def int_pair(value: Any, name: str, *, allow_zero: bool = False) -> tuple[int, int]:
    """Return ``value`` as a tuple of two ints, or raise :class:`ConfigError`."""
    lowest = 0 if allow_zero else 1
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= lowest for v in value)
    ):
        kind = "non-negative" if allow_zero else "positive"
        raise ConfigError(f"{name} must be a tuple of two {kind} ints (H, W), got {value!r}")
    return tuple(int(v) for v in value)  # type: ignore[return-value]


def strategy_triple(value: Any, name: str = "strategy") -> tuple[str, str, str]:
    """Return a per-axis strategy as a tuple of three of ``'l'`` (local) / ``'d'`` (dilated)."""
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or len(value) != 3
        or not all(v in ("l", "d") for v in value)
    ):
        raise ConfigError(
            f"{name} must be three of 'l' (local) or 'd' (dilated), one per axis (T, H, W), "
            f"got {value!r}"
        )
    return tuple(value)  # type: ignore[return-value]


def one_of(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ConfigError`."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
