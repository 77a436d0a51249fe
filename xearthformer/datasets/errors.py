"""Typed errors raised by the dataset readers and generators.

Every class subclasses :class:`ValueError`, so ``except ValueError`` catches them
all; a missing file is also a :class:`FileNotFoundError`.
"""

from __future__ import annotations

__all__ = [
    "DataFileNotFoundError",
    "DataFormatError",
    "DatasetError",
    "DatasetParameterError",
    "UnknownDatasetError",
]


class DatasetError(ValueError):
    """Base class of the errors raised by :mod:`xearthformer.datasets`."""


class DatasetParameterError(DatasetError):
    """An argument is out of range or of the wrong kind (e.g. ``n_years=0``)."""


class DataFormatError(DatasetError):
    """A file exists but does not have the expected layout (variables, dims, shapes, ids)."""


class DataFileNotFoundError(DataFormatError, FileNotFoundError):
    """A file the reader needs is missing; the message names it and what it should hold."""


class UnknownDatasetError(DatasetError):
    """An unknown tutorial dataset name; the message lists the available names."""
