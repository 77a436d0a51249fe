"""Training on several processes with ``torch.distributed`` (launched by ``torchrun``).

:func:`xearthformer.fit` calls :func:`setup` first: under ``torchrun`` (``WORLD_SIZE > 1``
in the environment) it joins the process group (``gloo`` on CPU, ``nccl`` on GPU) and wraps
the model in ``DistributedDataParallel``. Every rank computes its contiguous share of the same
global batch (``batch_size`` must divide evenly) and DDP averages the gradients, so the update
equals the one-process update with the same global batch; the logged loss is the mean over
ranks. Only rank 0 writes files.

Run it as::

    torchrun --standalone --nproc_per_node=2 my_training_script.py

where the script calls ``xearthformer.fit(...)`` as usual.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist

from .errors import TrainingError

__all__ = ["DistInfo", "setup", "teardown", "wrap", "mean_over_ranks", "barrier", "broadcast_flag"]


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``; ``owns_group`` if
    :func:`setup` created the process group (and :func:`teardown` destroys it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device_type: str) -> DistInfo:
    """Join the process group set up by ``torchrun`` (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", 0)), False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_available():
        raise TrainingError("WORLD_SIZE > 1 but this torch build has no torch.distributed.")
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(),
                    int(os.environ.get("LOCAL_RANK", 0)), True)


def teardown(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model``."""
    if not info.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def mean_over_ranks(value: torch.Tensor, info: DistInfo) -> float:
    """Mean of a scalar over ranks (the value itself in one process)."""
    if not info.distributed:
        return float(value.detach())
    t = value.detach().clone().float().reshape(1)
    dist.all_reduce(t)
    return float(t) / info.world_size


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in one process)."""
    if info.distributed:
        dist.barrier()


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's value of ``flag`` on every rank."""
    if not info.distributed:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())
