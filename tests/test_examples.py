"""Every script in examples/ runs end to end with small settings and writes its figures.

Each script is run in a subprocess (as a user would run it) with ``XEARTHFORMER_FAST=1``,
``XEARTHFORMER_EXAMPLE_OUT`` set to a temporary folder and ``MPLBACKEND=Agg``. A script
whose header holds the marker ``SKELETON`` is a placeholder: it must run, but need not
write a figure yet.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
FIGURE_SUFFIXES = {".png", ".gif", ".svg", ".pdf"}


def test_there_are_examples():
    assert {p.stem for p in EXAMPLES} >= {"plotting", "skill_and_evaluation", "forecasting", "ensembles",
                                          "training"}


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_writes_figures(script: Path, tmp_path: Path):
    out = tmp_path / "out"
    env = dict(os.environ, XEARTHFORMER_FAST="1", XEARTHFORMER_EXAMPLE_OUT=str(out), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    if "SKELETON" in script.read_text():
        return
    figures = [p for p in out.rglob("*") if p.suffix in FIGURE_SUFFIXES]
    assert figures, f"{script.name} wrote no figure into XEARTHFORMER_EXAMPLE_OUT ({out})"
    assert all(p.stat().st_size > 1000 for p in figures), [p.name for p in figures]


def test_examples_are_percent_scripts():
    for script in EXAMPLES:
        text = script.read_text()
        assert "# %%" in text, f"{script.name}: cells are marked with '# %%' (percent format)"
        assert "XEARTHFORMER_EXAMPLE_OUT" in text and "XEARTHFORMER_FAST" in text, script.name
