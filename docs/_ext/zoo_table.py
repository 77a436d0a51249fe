"""The ``xearthformer-model-zoo`` directive: the model-zoo table, made at build time from the registry.

Uses :func:`xearthformer.list_models` (any of a ``pandas.DataFrame``, a mapping
``name -> info``, or a sequence of names, mappings or dataclasses), so the table is
always the registry of the version being documented. Before the registry has
``list_models``, it lists the official configurations known to :mod:`xearthformer.zoo`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

# columns shown first when present, in this order (other columns follow)
PREFERRED = ("name", "source", "variables", "grid", "step", "in_len", "out_len", "licence", "description")
MAX_COLUMNS = len(PREFERRED)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = " ".join(str(value).split())
    return text


def _records(listing: Any) -> list[dict[str, Any]]:
    """Rows of the registry listing, whatever container ``list_models`` returns."""
    if hasattr(listing, "to_dict") and hasattr(listing, "columns"):  # pandas.DataFrame
        frame = listing.reset_index() if listing.index.name else listing
        return frame.to_dict(orient="records")
    if isinstance(listing, Mapping):
        rows = []
        for name, info in listing.items():
            row = {"name": name}
            row.update(_records([info])[0] if not isinstance(info, str) else {"description": info})
            rows.append(row)
        return rows
    rows = []
    for item in listing:
        if isinstance(item, str):
            rows.append({"name": item})
        elif isinstance(item, Mapping):
            rows.append(dict(item))
        elif dataclasses.is_dataclass(item):
            rows.append({f.name: getattr(item, f.name) for f in dataclasses.fields(item)})
        else:
            rows.append({"name": str(item)})
    return rows


def registry_rows() -> tuple[list[dict[str, Any]], bool]:
    """``(rows, from_list_models)``."""
    from xearthformer import zoo

    list_models = getattr(zoo, "list_models", None)
    if list_models is not None:
        return _records(list_models()), True
    # versions before the registry had list_models(): the official configurations only
    rows = []
    for name in sorted(getattr(zoo, "_CONFIG_FILES", {})):
        kwargs = zoo.official_kwargs(name)
        rows.append({"name": name, "input shape (T, H, W, C)": kwargs["input_shape"],
                     "output shape (T, H, W, C)": kwargs["target_shape"]})
    return rows, False


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        seen.extend(k for k in row if k not in seen)
    first = [c for c in PREFERRED if c in seen]
    return (first + [c for c in seen if c not in first])[:MAX_COLUMNS]


def _table(columns: list[str], rows: list[dict[str, Any]]) -> nodes.table:
    """A docutils table built node by node (so it works in Markdown and reST pages alike)."""
    table = nodes.table(classes=["longtable"])
    group = nodes.tgroup(cols=len(columns))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in columns)

    def row_of(cells: list[str]) -> nodes.row:
        row = nodes.row()
        for text in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=text)
            row += entry
        return row

    head = nodes.thead()
    head += row_of(columns)
    body = nodes.tbody()
    body.extend(row_of([_cell(r.get(c)) for c in columns]) for r in rows)
    group += head
    group += body
    return table


class ModelZooTable(SphinxDirective):
    """``xearthformer-model-zoo``: no arguments, no content."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        rows, from_registry = registry_rows()
        if not rows:
            return [nodes.paragraph(text="The registry lists no model.")]
        out: list[nodes.Node] = []
        if not from_registry:
            out.append(nodes.note("", nodes.paragraph(
                text="This version's registry has no list_models() yet: the table shows the "
                     "official configurations known to xearthformer.zoo.")))
        out.append(_table(columns_of(rows), rows))
        return out


def setup(app):
    app.add_directive("xearthformer-model-zoo", ModelZooTable)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
