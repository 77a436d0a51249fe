"""Import the official Earthformer model code (PyPI ``earthformer==0.2.1``) without running
its package ``__init__`` (which needs ``pkg_resources`` and heavy dependencies).

Install it with ``make bench-env`` (``pip install --no-deps earthformer==0.2.1``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path


def official_package_root() -> Path:
    """Folder of the installed official ``earthformer`` package, registered in ``sys.modules``
    as a bare package (its ``__init__`` is not run), or a clear error."""
    if "earthformer" not in sys.modules:
        spec = importlib.util.find_spec("earthformer")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("the official implementation is not installed: run `make bench-env` "
                             "(pip install --no-deps earthformer==0.2.1)")
        package = types.ModuleType("earthformer")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["earthformer"] = package
    return Path(sys.modules["earthformer"].__path__[0])


def official_cuboid_module():
    """The module ``earthformer.cuboid_transformer.cuboid_transformer``, or a clear error."""
    official_package_root()
    return importlib.import_module("earthformer.cuboid_transformer.cuboid_transformer")


def official_model(kwargs: dict):
    """Build the official ``CuboidTransformerModel`` from kwargs (lists for patterns)."""
    return official_cuboid_module().CuboidTransformerModel(**kwargs)
