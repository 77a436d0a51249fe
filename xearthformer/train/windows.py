"""Lazy windowed samples over labelled data: only the drawn windows are ever read.

A *run* is a stretch of consecutive time steps of one sample (one ``event``, or the single
series when there is no extra sample dim); gaps in time split runs. A *window* is
``in_len + out_len`` consecutive steps inside one run, so windows never cross a gap or an
event boundary. Windows are read one by one with ``.isel(...).values``, which reads just
that slice from a numpy array, a dask array or a file opened lazily.

The sampler draws a global batch for every step as a pure function of ``(seed, step)``:
epochs are seeded permutations of all windows, concatenated. Resuming at step ``k`` or
splitting a batch over DDP ranks therefore needs no sampler state beyond the step.

Examples
--------
>>> import numpy as np, pandas as pd, xarray as xr
>>> t = pd.DatetimeIndex(["2000-01-01", "2000-02-01", "2000-03-01", "2000-05-01", "2000-06-01"])
>>> da = xr.DataArray(np.arange(5.0)[:, None, None] * np.ones((5, 2, 2)),
...                   dims=("time", "lat", "lon"), coords={"time": t})
>>> windows = WindowSet.from_dataarray(da, window=2, step=1, step_units="months")
>>> len(windows), windows.read(2)[0][:, 0, 0].tolist()
(3, [3.0, 4.0])
>>> WindowSampler(len(windows), batch_size=2, seed=0).batch(0).shape
(2,)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._layout import Dims, contiguous_runs, find_dims, sample_windows

__all__ = ["WindowSet", "WindowSampler", "WindowDataset", "StepBatches", "rank_share"]


class WindowSet:
    """All windows of ``window`` consecutive steps in a DataArray, described, not read.

    Parameters
    ----------
    da : xarray.DataArray
        Dims time, two spatial dims and optional sample dims (numpy or dask-backed).
    dims : Dims
        As found by :func:`xearthformer._layout.find_dims`.
    window : int
        Steps per window (``in_len + out_len``).
    step, step_units
        The time step; stamps further apart start a new run.
    stride : int
        Distance between consecutive window starts within a run.
    """

    def __init__(self, da: xr.DataArray, dims: Dims, *, window: int, step: int,
                 step_units: str, stride: int = 1) -> None:
        self.da = da
        self.dims = dims
        self.window = int(window)
        time_runs = contiguous_runs(da[dims.time], step=step, step_units=step_units)
        sample_positions = list(itertools.product(*(range(da.sizes[d]) for d in dims.sample)))
        self.runs: list[tuple[dict[Any, int], slice]] = [
            (dict(zip(dims.sample, pos)), run) for pos in sample_positions for run in time_runs
        ]
        self.run_lengths = [r.stop - r.start for _, r in self.runs]
        self.starts = sample_windows(self.run_lengths, self.window, stride)
        self.months = (da[dims.time].dt.month.values.astype(np.int64)
                       if step_units == "months" else None)

    @classmethod
    def from_dataarray(cls, da: xr.DataArray, *, window: int, step: int, step_units: str,
                       stride: int = 1) -> WindowSet:
        """Find the dims of ``da`` and describe its windows."""
        return cls(da, find_dims(da), window=window, step=step, step_units=step_units,
                   stride=stride)

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @property
    def longest_run(self) -> int:
        """Length of the longest run of consecutive steps (0 without data)."""
        return max(self.run_lengths, default=0)

    def selection(self, i: int) -> dict[Any, Any]:
        """The ``isel`` indexer of window ``i``."""
        run, start = (int(v) for v in self.starts[i])
        sample, times = self.runs[run]
        t0 = times.start + start
        return {**sample, self.dims.time: slice(t0, t0 + self.window)}

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Values of window ``i`` as ``"t h w"`` and the calendar month of each step (or None)."""
        sel = self.selection(i)
        values = self.da.isel(sel).transpose(self.dims.time, self.dims.y, self.dims.x).values
        months = None if self.months is None else self.months[sel[self.dims.time]]
        return values, months

    def first_times(self, indices: Sequence[int]) -> np.ndarray:
        """Time stamp of the first step of each window."""
        stamps = self.da[self.dims.time].values
        return np.asarray([stamps[self.selection(int(i))[self.dims.time].start] for i in indices])

    def subset(self, max_windows: int | None) -> np.ndarray:
        """At most ``max_windows`` window indices, evenly spaced (all when None)."""
        n = len(self)
        if max_windows is None or n <= max_windows:
            return np.arange(n)
        return np.unique(np.linspace(0, n - 1, max_windows).round().astype(np.int64))


class WindowSampler:
    """Global batch of window indices for each step: a pure function of ``(seed, step)``.

    Epoch ``e`` is the permutation ``numpy.random.default_rng([seed, e]).permutation(n)``;
    the stream of indices is the concatenation of the epochs, cut into batches.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < 1:
            raise ValueError("a sampler needs at least one window")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self._cache: dict[int, np.ndarray] = {}

    def _epoch(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._cache[epoch]

    def batch(self, step: int) -> np.ndarray:
        """The ``batch_size`` window indices of ``step`` (0-based)."""
        first = step * self.batch_size
        positions = np.arange(first, first + self.batch_size)
        out = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(positions // self.n):
            mask = positions // self.n == epoch
            out[mask] = self._epoch(int(epoch))[positions[mask] % self.n]
        return out

    def state_dict(self) -> dict[str, int]:
        """Everything that defines the stream (the step is kept by the training loop)."""
        return {"n": self.n, "batch_size": self.batch_size, "seed": self.seed}


def rank_share(indices: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """The contiguous share of a global batch that ``rank`` computes."""
    per = len(indices) // world_size
    return indices[rank * per:(rank + 1) * per]


class StepBatches:
    """Batch sampler for a ``DataLoader``: this rank's share of the batches of steps
    ``start .. stop - 1``."""

    def __init__(self, sampler: WindowSampler, start: int, stop: int, rank: int = 0,
                 world_size: int = 1) -> None:
        self.sampler, self.start, self.stop = sampler, start, stop
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            yield rank_share(self.sampler.batch(step), self.rank, self.world_size).tolist()


class WindowDataset(torch.utils.data.Dataset):
    """Torch view of a :class:`WindowSet`: item ``i`` is ``(x, y)``, "t h w c" float32
    tensors of the context (``in_len`` steps) and the target (the rest).

    ``transform(values, months)`` turns a window's physical values ("t h w") into the
    model's scale (see :class:`xearthformer.train.prepare.Preprocessor`).
    """

    def __init__(self, windows: WindowSet, in_len: int,
                 transform: Callable[[np.ndarray, np.ndarray | None], np.ndarray]) -> None:
        self.windows, self.in_len, self.transform = windows, int(in_len), transform

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        values, months = self.windows.read(int(i))
        x = torch.from_numpy(np.ascontiguousarray(self.transform(values, months), np.float32))
        x = x.unsqueeze(-1)  # one channel: "t h w" -> "t h w c"
        return x[: self.in_len], x[self.in_len:]
