"""Sphinx configuration of the xearthformer documentation.

Build (warnings are errors, as in ``tests/test_docs.py``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference is generated from the docstrings (numpydoc + autosummary); the
``.earthformer`` accessor is documented with sphinx-autosummary-accessors, as xarray does.
The model-zoo table is generated at build time from the registry (``_ext/zoo_table.py``).
No notebook is executed and no network is used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import sphinx_autosummary_accessors

import xearthformer  # noqa: F401  (registers the accessors autosummary documents)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

os.environ.setdefault("MPLBACKEND", "Agg")

project = "xearthformer"
author = "xearthformer developers"
copyright = "the xearthformer developers"  # noqa: A001
version = release = xearthformer.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_autosummary_accessors",
    "zoo_table",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]
templates_path = ["_templates", sphinx_autosummary_accessors.templates_path]

# --- API reference --------------------------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # a module page lists exactly the names in its __all__
autosummary_imported_members = False
autodoc_typehints = "none"  # the numpydoc "Parameters" sections carry the types
autodoc_default_options = {"member-order": "bysource"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- Markdown pages ---------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# --- HTML ---------------------------------------------------------------------------------------
html_theme = "furo" if __import__("importlib").util.find_spec("furo") else "alabaster"
html_title = f"xearthformer {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
