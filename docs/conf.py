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
import pkgutil
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
# api.rst includes three lists written here, from the package itself, so that a new public
# function, accessor method or module is documented without editing the docs.
FIRST_MODULES = ["tutorial", "datasets", "forecasting", "ensembles", "train", "evaluate", "metrics", "plot", "zoo"]
NOT_API = {"cli", "accessor"}  # the command line and the accessor have their own sections


def _public_toplevel_functions() -> list[str]:
    """Top-level names of ``xearthformer`` that are functions (not modules), when they import."""
    names = []
    for name, module in sorted(xearthformer._LAZY.items()):
        if module.endswith("." + name):
            continue
        try:
            obj = getattr(xearthformer, name)
        except ModuleNotFoundError as err:  # the module is not written yet
            if err.name != module:
                raise
            continue
        except AttributeError:  # the module exists but does not define the name yet
            continue
        if callable(obj):
            names.append(name)
    return names


def _public_modules() -> list[str]:
    found = [m.name for m in pkgutil.iter_modules(xearthformer.__path__) if not m.name.startswith("_")]
    found = [m for m in found if m not in NOT_API]
    ordered = [m for m in FIRST_MODULES if m in found] + sorted(set(found) - set(FIRST_MODULES))
    return ordered


def _accessor_methods(cls: type) -> list[str]:
    return [n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))]


def _autosummary(entries: list[str], template: str, currentmodule: str) -> str:
    """An autosummary directive (with its current module) listing ``entries``."""
    lines = [f".. currentmodule:: {currentmodule}", "", ".. autosummary::", "   :toctree: generated/",
             f"   :template: {template}", ""]
    return "\n".join(lines + [f"   {e}" for e in entries]) + "\n"


def _write_api_lists() -> dict[str, str]:
    from xearthformer.accessor import EarthformerDataArrayAccessor, EarthformerDatasetAccessor

    lists = {
        "_api_toplevel.rst": _autosummary(_public_toplevel_functions(), "autosummary/function.rst", "xearthformer"),
        "_api_accessor.rst": _autosummary(
            [f"DataArray.earthformer.{n}" for n in _accessor_methods(EarthformerDataArrayAccessor)]
            + [f"Dataset.earthformer.{n}" for n in _accessor_methods(EarthformerDatasetAccessor)],
            "autosummary/accessor_method.rst", "xarray"),
        "_api_modules.rst": _autosummary(_public_modules(), "autosummary/module.rst", "xearthformer"),
    }
    for name, text in lists.items():
        path = HERE / name
        if not path.exists() or path.read_text() != text:  # unchanged files keep their mtime
            path.write_text(text)
    return lists


_API_LISTS = _write_api_lists()
exclude_patterns += list(_API_LISTS)  # included by api.rst, not pages of their own
autosummary_generate = ["api.rst", *_API_LISTS]
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
