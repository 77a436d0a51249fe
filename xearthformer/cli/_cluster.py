"""``--scheduler tcp://HOST:PORT`` / ``--scheduler-file FILE``: run a command on a dask cluster.

HPC users start dask with dask-jobqueue or dask-mpi, which leave a scheduler address or a
scheduler file (``dask-mpi --scheduler-file``, ``dask scheduler --scheduler-file``,
``cluster.scheduler.address``); the commands connect a :class:`distributed.Client` to it for
their duration and hand it to the computation. The command line is the edge of the package:
the library itself never creates a client (DESIGN.md); this module connects to one that exists
and never starts or stops a cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["SchedulerError", "add_cluster_options", "connect"]


class SchedulerError(ValueError):
    """The dask scheduler named on the command line cannot be used."""


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler``, ``--scheduler-file`` (exclusive) and ``--scheduler-timeout``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the dask cluster at this scheduler address, "
                            "e.g. tcp://10.0.0.1:8786 (needs the 'distributed' package)")
    group.add_argument("--scheduler-file", metavar="FILE",
                       help="run on the dask cluster described by this scheduler file "
                            "(written by dask-mpi or `dask scheduler --scheduler-file`)")
    parser.add_argument("--scheduler-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="seconds to wait for the scheduler (default 30)")


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[Any]:
    """A ``distributed.Client`` connected to the scheduler of ``args`` (None without one).

    The client is the default scheduler of dask inside the block and is closed at its end;
    the cluster keeps running. A missing scheduler file, an unreachable address or a missing
    ``distributed`` package raise :class:`SchedulerError` naming what to do.

    >>> import argparse
    >>> with connect(argparse.Namespace(scheduler=None, scheduler_file=None)) as client:
    ...     print(client)
    None
    """
    address = getattr(args, "scheduler", None)
    path = getattr(args, "scheduler_file", None)
    if address is None and path is None:
        yield None
        return
    try:
        from distributed import Client  # noqa: PLC0415
    except ImportError:
        raise SchedulerError(
            "--scheduler/--scheduler-file need the 'distributed' package; install it with "
            "`pip install 'xearthformer[distributed]'` (or `conda install distributed`).") from None
    if path is not None and not os.path.isfile(path):
        raise SchedulerError(f"scheduler file {path!r} not found; start the scheduler first "
                             "(e.g. `dask-mpi --scheduler-file FILE`) or check the path.")
    timeout = float(getattr(args, "scheduler_timeout", 30.0))
    where = f"scheduler file {path!r}" if path is not None else f"scheduler {address!r}"
    try:
        client = (Client(scheduler_file=path, timeout=timeout) if path is not None
                  else Client(address, timeout=timeout))
    except (OSError, TimeoutError, ValueError) as err:
        raise SchedulerError(
            f"cannot connect to the dask {where} within {timeout:g} s ({err}); check that the "
            "scheduler is running and reachable from this machine, or raise "
            "--scheduler-timeout.") from None
    try:
        with client.as_current():
            yield client
    finally:
        client.close()
