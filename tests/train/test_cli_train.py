"""``xearthformer train`` end to end on a small netCDF file."""

from __future__ import annotations

import json

import pytest

import xearthformer.cpu_memory
from xearthformer.cli import main
from xearthformer.zoo.model_dir import load_model_dir

from .helpers import TINY, monthly_sst


def _files(tmp_path):
    data, valid = tmp_path / "train.nc", tmp_path / "valid.nc"
    monthly_sst().to_dataset().to_netcdf(data)
    monthly_sst(seed=1, start="2010-01-01").to_dataset().to_netcdf(valid)
    config = tmp_path / "kwargs.json"
    config.write_text(json.dumps(TINY))
    return str(config), str(data), str(valid)


@pytest.fixture(autouse=True)
def kept_memory_calls(monkeypatch):
    """Record keep_freed_memory calls instead of changing the test process's allocator."""
    calls = []
    monkeypatch.setattr(xearthformer.cpu_memory, "keep_freed_memory", lambda: calls.append(1) or True)
    return calls


def test_cli_trains_and_writes_a_model_directory(tmp_path, capsys, kept_memory_calls):
    config, data, valid = _files(tmp_path)
    out = tmp_path / "runs" / "x"
    code = main(["train", config, data, "--var", "sst", "--in-len", "4", "--out-len", "3",
                 "-o", str(out), "--steps", "3", "--batch-size", "4", "--valid", valid,
                 "--no-progress"])
    assert code == 0 and kept_memory_calls == [1]  # freed memory kept for reuse by default
    assert f"-> {out}" in capsys.readouterr().out
    card, _ = load_model_dir(out)
    assert card.contract.variables == ("sst",) and card.training["steps_done"] == 3
    assert card.training["valid"]["windows"] > 0
    # the output exists now: refused with exit code 2 and a one-line message
    code = main(["train", config, data, "--in-len", "4", "--out-len", "3", "-o", str(out),
                 "--steps", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "overwrite" in err and len(err.strip().splitlines()) == 1
    # fine-tune from the directory just written
    kept_memory_calls.clear()
    code = main(["train", str(out), data, "--in-len", "4", "--out-len", "3",
                 "-o", str(tmp_path / "tuned"), "--steps", "1", "--no-progress", "--return-freed-memory"])
    assert code == 0 and load_model_dir(tmp_path / "tuned")[0].training["fine_tuned"]
    assert kept_memory_calls == []


def test_cli_bad_input_exits_2(tmp_path, capsys):
    config, data, _ = _files(tmp_path)
    code = main(["train", config, data, "--in-len", "40", "--out-len", "30",
                 "-o", str(tmp_path / "y"), "--steps", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "70 consecutive time steps" in err
    code = main(["train", config, data, "--in-len", "4", "--out-len", "3",
                 "-o", str(tmp_path / "y"), "--no-progress"])
    assert code == 2 and "--steps" in capsys.readouterr().err
