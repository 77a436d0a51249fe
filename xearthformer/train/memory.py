"""Memory per training batch: measured before training, refused when it will not fit.

The estimate adds parameters, gradients and the two AdamW moments (4 x the parameter bytes)
to the activations kept for backward, measured by running one forward pass on a single
sample and summing the tensors autograd saves (``torch.autograd.graph.saved_tensors_hooks``),
times the batch size.

Examples
--------
>>> import torch
>>> model = torch.nn.Linear(8, 8)
>>> est = estimate_batch_memory(model, torch.zeros(1, 8), batch_size=4)
>>> est.parameters == 4 * 72 * 4  # (weights, grads, 2 AdamW moments) x 72 float32
True
"""

from __future__ import annotations

import dataclasses
import os

import torch

from .errors import MemoryBudgetError

__all__ = ["MemoryEstimate", "estimate_batch_memory", "available_memory", "check_memory"]

_SAFETY = 0.9  # use at most this fraction of what is available


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed by one training step."""

    parameters: int  # parameters + gradients + AdamW moments
    activations_per_sample: int
    batch_size: int

    @property
    def total(self) -> int:
        return self.parameters + self.activations_per_sample * self.batch_size

    def describe(self) -> str:
        return (f"{_mib(self.total)} per batch of {self.batch_size} (parameters, gradients and "
                f"optimizer state {_mib(self.parameters)}, activations "
                f"{_mib(self.activations_per_sample)} per sample)")


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def estimate_batch_memory(model: torch.nn.Module, sample: torch.Tensor, *,
                          batch_size: int) -> MemoryEstimate:
    """Measure the activations of one sample (``sample`` has batch size 1) and scale."""
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            seen[key] = key[1]
        except (RuntimeError, NotImplementedError):
            seen[(id(t), 0)] = t.numel() * t.element_size()
        return t

    was_training = model.training
    model.eval()  # no dropout: the estimate must not consume random numbers
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(sample)
        out_bytes = out.numel() * out.element_size()
        del out
    finally:
        model.train(was_training)
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    acts = sum(v for (ptr, _), v in seen.items() if ptr not in param_ptrs)
    acts += 2 * out_bytes + 2 * sample.numel() * sample.element_size()
    return MemoryEstimate(parameters=4 * param_bytes, activations_per_sample=int(acts),
                          batch_size=batch_size)


def available_memory(device: torch.device) -> int | None:
    """Free bytes on ``device``: ``torch.cuda.mem_get_info`` on GPU, else psutil or
    ``/proc/meminfo`` MemAvailable; None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return None


def check_memory(estimate: MemoryEstimate, available: int | None, device: torch.device) -> None:
    """Raise :class:`MemoryBudgetError` if the batch will not fit, suggesting a batch size."""
    if available is None or estimate.total <= _SAFETY * available:
        return
    room = _SAFETY * available - estimate.parameters
    fits = int(room // max(estimate.activations_per_sample, 1)) if room > 0 else 0
    hint = (f"use batch_size={fits} or less" if fits >= 1 else
            "the model alone does not fit: use a smaller model (base_units, depths)")
    raise MemoryBudgetError(
        f"a training batch needs about {estimate.describe()}, but only {_mib(available)} is "
        f"available on {device}; {hint}, or free memory."
    )
