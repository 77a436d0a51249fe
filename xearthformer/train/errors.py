"""Typed errors and warnings of :func:`xearthformer.fit`.

Layout problems (dims, time axis, units, NaNs) raise the shared
:class:`~xearthformer._layout.LayoutError` subclasses; what is specific to training is here.
"""

from __future__ import annotations

from .._layout import LayoutError

__all__ = [
    "TrainingError",
    "NotEnoughDataError",
    "GridMismatchError",
    "MemoryBudgetError",
    "PrecisionError",
    "ResumeMismatchError",
    "ValidationOverlapWarning",
]


class TrainingError(ValueError):
    """An argument of :func:`xearthformer.fit` cannot be used as given."""


class NotEnoughDataError(LayoutError):
    """No run of consecutive time steps is long enough for one sample window."""


class GridMismatchError(LayoutError):
    """The data's grid differs from the grid of the model being fine-tuned."""


class MemoryBudgetError(TrainingError):
    """A training batch would not fit in the available memory."""


class PrecisionError(TrainingError):
    """The requested precision is not available on the device."""


class ResumeMismatchError(TrainingError):
    """A checkpoint in the working folder belongs to a different training run."""


class ValidationOverlapWarning(UserWarning):
    """The validation data overlap the training data, so validation scores are optimistic."""
