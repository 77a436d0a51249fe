"""``--scheduler`` / ``--scheduler-file`` on ``xearthformer evaluate``, ``forecast`` and
``ensemble``: the work runs on a dask cluster started by the test (issue 23 §3)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import xearthformer
from xearthformer.cli import main
from xearthformer.zoo.toy import save_toy_model


@pytest.fixture(scope="module")
def cluster(import_or_skip):
    distributed = import_or_skip("distributed", "the 'test' extra installs distributed")
    # threads in this process (cheap), but a real TCP scheduler the CLI connects to by address
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture
def scheduler_file(cluster, tmp_path):
    """The file dask-mpi / `dask scheduler --scheduler-file` write (the address is the key)."""
    path = tmp_path / "scheduler.json"
    path.write_text(json.dumps({"type": "Scheduler", "address": cluster.scheduler_address}))
    return path


def ran_on(cluster, prefix: str) -> bool:
    """Whether the cluster's scheduler has seen tasks whose keys start with ``prefix``."""
    return any(name.startswith(prefix) for name in cluster.scheduler.task_prefixes)


def tasks_seen(cluster) -> int:
    """Tasks the cluster's scheduler has handled so far (dask may fuse and rename them)."""
    return sum(sum(p.state_counts.values()) for p in cluster.scheduler.task_prefixes.values())


@pytest.fixture(scope="module")
def infile(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "sst.nc"
    xearthformer.tutorial.open_dataset("enso", n_years=3).to_netcdf(path)
    return path


def test_evaluate_on_a_cluster_by_address(cluster, infile, tmp_path, capsys):
    assert cluster.scheduler_address.startswith("tcp://")
    args = ["evaluate", str(infile), "--model", "persistence", "--leads", "1-3",
            "--metrics", "rmse,correlation", "--chunk-size", "5"]
    assert main([*args, "-o", str(tmp_path / "local.nc")]) == 0
    assert not ran_on(cluster, "evaluate-chunk")
    assert main([*args, "-o", str(tmp_path / "cluster.nc"),
                 "--scheduler", cluster.scheduler_address]) == 0
    assert "evaluated" in capsys.readouterr().out
    assert ran_on(cluster, "evaluate-chunk")
    with xr.open_dataset(tmp_path / "local.nc") as a, xr.open_dataset(tmp_path / "cluster.nc") as b:
        # the same partial sums, added in the same tree: identical up to float64 rounding
        xr.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def test_forecast_on_a_cluster_by_scheduler_file(cluster, scheduler_file, infile, tmp_path):
    toy = save_toy_model(tmp_path / "toy-enso", "enso")
    args = ["forecast", str(infile), "--var", "sst", "--lead", "3", "--model", str(toy),
            "--init", "1952-06:1952-12", "--batch-size", "4", "--no-progress"]
    before = tasks_seen(cluster)
    assert main([*args, "-o", str(tmp_path / "local.nc")]) == 0
    assert tasks_seen(cluster) == before  # without --scheduler: local threads
    assert main([*args, "-o", str(tmp_path / "cluster.nc"),
                 "--scheduler-file", str(scheduler_file)]) == 0
    assert tasks_seen(cluster) > before
    with xr.open_dataset(tmp_path / "local.nc") as a, xr.open_dataset(tmp_path / "cluster.nc") as b:
        # the same model on the same batches of inits: the same float32 arithmetic
        xr.testing.assert_allclose(a["sst"], b["sst"], rtol=0, atol=1e-5)


def test_ensemble_over_many_inits_on_a_cluster(cluster, infile, tmp_path):
    args = ["ensemble", str(infile), "--var", "sst", "-n", "2", "--lead", "2", "--steps", "2",
            "--init", "1951-10:1952-01", "--no-progress"]
    before = tasks_seen(cluster)
    assert main([*args, "-o", str(tmp_path / "local.nc")]) == 0
    assert tasks_seen(cluster) == before
    assert main([*args, "-o", str(tmp_path / "cluster.nc"),
                 "--scheduler", cluster.scheduler_address]) == 0
    assert tasks_seen(cluster) > before
    with xr.open_dataset(tmp_path / "local.nc") as a, xr.open_dataset(tmp_path / "cluster.nc") as b:
        assert b.sizes["init"] == 4 and b.sizes["member"] == 2
        # each member's noise comes from its own seeded generator: same members anywhere
        np.testing.assert_allclose(a["sst"].values, b["sst"].values, rtol=0, atol=1e-5)


def test_scheduler_errors(tmp_path, infile, capsys):
    out = str(tmp_path / "scores.nc")
    args = ["evaluate", str(infile), "--model", "persistence", "--leads", "2", "-o", out]
    assert main([*args, "--scheduler-file", str(tmp_path / "nope.json")]) == 2
    assert "scheduler file" in capsys.readouterr().err
    # nothing listens on port 9 (discard) of this machine: refused at once, or timed out
    assert main([*args, "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "2"]) == 2
    assert "cannot connect to the dask scheduler 'tcp://127.0.0.1:9'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not both
        main([*args, "--scheduler", "tcp://x:1", "--scheduler-file", "f.json"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "scores.nc").exists()
