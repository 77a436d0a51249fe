"""Import rules: xearthformer alone does not import matplotlib; plot never imports torch."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_plot_imports_no_torch_and_top_level_no_matplotlib():
    mods = _modules_after("import xearthformer")
    assert "matplotlib" not in mods and "cartopy" not in mods
    mods = _modules_after("import xearthformer.plot; xearthformer.plot.vil_cmap()")
    assert "matplotlib" in mods
    assert not {"torch", "einops"} & mods
    assert not {m for m in mods if m.startswith(("xearthformer.nn", "xearthformer.models",
                                                 "xearthformer.zoo", "xearthformer.diffusion"))}
