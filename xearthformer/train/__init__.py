"""Training on labelled data: :func:`fit` (one process, or many under ``torchrun``).

Modules: ``windows`` (lazy windowed samples and the seeded sampler), ``prepare`` (the input
contract from the training split), ``schedule`` (warm-up + cosine), ``memory`` (memory per
batch), ``scores`` (validation against persistence), ``checkpoint`` (resumable state),
``loop`` (the optimisation loop), ``losses`` (the training losses: MSE, MAE, the balanced radar
loss, ocean-only with a land mask), ``augment`` (flips and quarter turns of radar windows),
``ddp`` (DistributedDataParallel), ``report`` and ``fit``.
"""

from .errors import (
    GridMismatchError,
    MemoryBudgetError,
    NotEnoughDataError,
    PrecisionError,
    ResumeMismatchError,
    TrainingError,
    ValidationOverlapWarning,
)
from .fit import fit

__all__ = [
    "fit",
    "TrainingError",
    "NotEnoughDataError",
    "GridMismatchError",
    "MemoryBudgetError",
    "PrecisionError",
    "ResumeMismatchError",
    "ValidationOverlapWarning",
]
