"""Progress where people work (issue 25 §3): terminal and Jupyter kernel yes, logs no.

The notebook test runs the README's tour, verbatim, as a notebook in a real Jupyter kernel
(nbclient + ipykernel, from the ``test`` extra).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xearthformer import progress

README = Path(__file__).resolve().parents[1] / "README.md"


class _Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_show_progress_defaults(monkeypatch):
    assert progress.show_progress(True) and not progress.show_progress(False)
    monkeypatch.setattr(sys, "stderr", _Stream(True))
    assert progress.show_progress(None)  # a terminal
    monkeypatch.setattr(sys, "stderr", _Stream(False))
    assert not progress.show_progress(None)  # a log file or a pipe (CI)
    monkeypatch.setattr(progress, "in_jupyter_kernel", lambda: True)
    assert progress.show_progress(None)  # a Jupyter kernel: its stderr is no TTY
    assert not progress.show_progress(False)


def test_no_bar_in_logs():
    """stderr to a pipe, as in CI logs: a long call prints no bar."""
    code = textwrap.dedent("""
        import xearthformer
        sst = xearthformer.tutorial.open_dataset("enso", n_years=3)["sst"]
        xearthformer.ensemble(sst, n=2, steps=2, lead=2)
    """)
    env = {**os.environ, "PYTHONPATH": str(README.parent)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    assert "ensemble:" not in run.stderr and "it/s" not in run.stderr and "step/s" not in run.stderr


def tour_code() -> str:
    text = README.read_text()
    section = text[text.index("## A short tour"):]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "README.md has no python block under '## A short tour'"
    return match.group(1)


@pytest.mark.slow
def test_readme_tour_runs_in_a_jupyter_kernel_and_shows_progress(tmp_path, import_or_skip):
    nbformat = import_or_skip("nbformat")
    nbclient = import_or_skip("nbclient")
    import_or_skip("ipykernel")
    lines = [line for line in tour_code().splitlines() if line.strip()]
    cells = [nbformat.v4.new_code_cell("import torch; torch.set_num_threads(2)")]
    cells += [nbformat.v4.new_code_cell(line) for line in lines]
    # the same long call asked to be quiet
    cells.append(nbformat.v4.new_code_cell("sst.earthformer.ensemble(n=2, steps=2, progress=False)"))
    nb = nbformat.v4.new_notebook(cells=cells)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any error in a cell

    def shown(cell) -> str:
        parts = []
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts.append(str(data.get("text/plain", "")) + str(data.get("text/html", "")))
            if "application/vnd.jupyter.widget-view+json" in data:
                parts.append("<widget>")
        return "".join(parts)

    errors = [out for cell in nb.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert not errors
    ensemble_cells = [c for c in nb.cells if "ensemble(n=20" in c.source]
    assert ensemble_cells, "the tour has no ensemble call"
    for cell in ensemble_cells:  # a tqdm bar: a widget, or text like "ensemble: 100%|...| 50/50"
        out = shown(cell)
        assert "<widget>" in out or re.search(r"ensemble: +100%", out), out[-500:]
    quiet = shown(nb.cells[-1])
    assert "ensemble:" not in quiet and "<widget>" not in quiet
