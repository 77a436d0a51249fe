"""``xearthformer forecast``, ``models`` and ``quickstart``: outputs, exit codes, nothing partial."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import xearthformer
from xearthformer._precision import output_tolerance
from xearthformer.cli import main
from xearthformer.zoo.toy import save_toy_model

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return save_toy_model(tmp_path_factory.mktemp("m") / "toy-enso", "enso")


@pytest.fixture(scope="module")
def infile(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "sst.nc"
    xearthformer.tutorial.open_dataset("enso", n_years=3).to_netcdf(path)
    return path


def test_forecast_writes_what_the_api_returns(toy, infile, tmp_path, capsys) -> None:
    out = tmp_path / "fc.nc"
    code = main(["forecast", str(infile), "--var", "sst", "--lead", "3", "--model", str(toy),
                 "--init", "1951-06:1952-12", "--no-progress", "-o", str(out)])
    assert code == 0 and "wrote" in capsys.readouterr().out
    with xr.open_dataset(infile) as ds:
        expected = xearthformer.forecast(ds["sst"], lead=3, model=toy,
                                         init=slice("1951-06", "1952-12"))
    with xr.open_dataset(out) as written:
        # the CLI runs the same float32 toy network (offset 0, scale 1), perhaps batched
        # otherwise: output_tolerance; the netCDF round trip keeps float32 exactly
        xr.testing.assert_allclose(written["sst"].drop_attrs(), expected.drop_attrs(), rtol=0,
                                   atol=output_tolerance(expected.values))
        assert written["sst"].attrs["forecast_model"] == "toy-enso"
        assert written["lead"].attrs["units"] == "months"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.nc"]


def test_progress_bar_on_request(toy, infile, tmp_path, capsys) -> None:
    out = tmp_path / "fc.nc"
    assert main(["forecast", str(infile), "--lead", "2", "--model", str(toy), "--init",
                 "1951-01:1952-12", "--batch-size", "4", "--progress", "-o", str(out)]) == 0
    assert "forecast" in capsys.readouterr().err  # tqdm writes to stderr


def test_unwritable_output_exits_2_with_nothing_left(toy, infile, tmp_path, capsys) -> None:
    code = main(["forecast", str(infile), "--lead", "2", "--model", str(toy),
                 "-o", str(tmp_path / "missing" / "fc.nc")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "does not exist" in err
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["forecast", str(infile), "--lead", "2", "--model", str(toy),
                 "-o", str(blocker / "fc.nc")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_failure_while_writing_leaves_nothing(toy, infile, tmp_path, monkeypatch, capsys) -> None:
    def broken(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    code = main(["forecast", str(infile), "--lead", "2", "--model", str(toy),
                 "-o", str(tmp_path / "fc.nc")])
    assert code == 2 and "No space left" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bad_input_exits_2_with_one_line(toy, infile, tmp_path, capsys) -> None:
    for args, message in ((["--lead", "0"], "lead"), (["--lead", "2", "--var", "tos"], "tos"),
                          (["--lead", "2", "--init", "1990-01"], "not times of the data")):
        code = main(["forecast", str(infile), "--model", str(toy), "-o",
                     str(tmp_path / "fc.nc"), *args])
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and "\n" not in err
    assert main(["forecast", str(infile), "--lead", "2", "--model", "earthformer-icar-ensoo",
                 "-o", str(tmp_path / "fc.nc")]) == 2
    assert "Did you mean" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_models_lists_the_zoo(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "earthformer-icar-enso" in out and "earthformer-sevir" in out and "Apache-2.0" in out
    assert main(["models", "--long"]) == 0
    assert "normalisation" in capsys.readouterr().out


def test_quickstart_with_an_injected_model(toy, tmp_path, capsys) -> None:
    out = tmp_path / "forecast.nc"
    assert main(["quickstart", "--model", str(toy), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Nino3.4" in text and "persistence" in text and text.count("2010-") == 12
    with xr.open_dataset(out) as fc:
        assert fc["sst"].sizes == {"init": 1, "lead": 12, "lat": 24, "lon": 48}
        assert str(fc["init"].values[0])[:7] == "2009-12"
        assert np.isfinite(fc["sst"].values).any()


def test_quickstart_without_the_demo_model_says_so(tmp_path, capsys, monkeypatch) -> None:
    from xearthformer.zoo import registry

    monkeypatch.setattr(registry, "DEMO_DIR", tmp_path / "no-demo")
    assert main(["quickstart", "-o", str(tmp_path / "forecast.nc")]) == 2
    assert "demo model not found" in capsys.readouterr().err
    assert not (tmp_path / "forecast.nc").exists()


def test_real_file_with_year_zero_and_the_policies(toy, infile, tmp_path, capsys) -> None:
    from pathlib import Path

    coads = Path(__file__).parents[1] / "data" / "real" / "coads_climatology_sst.nc"
    out = tmp_path / "fc.nc"
    # opened although xarray cannot decode year 0; absolute degC given to an anomaly model is
    # refused (values far outside its training range), naming the fix; nothing written
    code = main(["forecast", str(coads), "--lead", "1", "--model", str(toy), "--regrid",
                 "linear", "--no-progress", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "training data" in err and "bad_values=" in err and not out.exists()
    holey = tmp_path / "holey.nc"
    with xr.open_dataset(infile) as ds:
        ds = ds.load()
    ds["sst"][-2, 12, 30] = np.nan
    ds.to_netcdf(holey)
    assert main(["forecast", str(holey), "--lead", "1", "--model", str(toy), "--missing",
                 "strict", "--no-progress", "-o", str(out)]) == 2
    assert "missing='context'" in capsys.readouterr().err and not out.exists()
    assert main(["forecast", str(holey), "--lead", "1", "--model", str(toy), "--no-progress",
                 "-o", str(out)]) == 0
    with xr.open_dataset(out) as written:
        assert written["sst"].attrs["missing_cells"] >= 1
        assert bool(written["sst"].isel(init=0, lat=12, lon=30).isnull().all())
