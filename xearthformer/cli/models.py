"""``xearthformer models``: the models of the zoo, one per line (``--long`` for every field)."""

from __future__ import annotations

import argparse
from typing import Any

_COLUMNS = ("name", "kind", "source", "variables", "grid", "step", "in_len", "out_len", "licence")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``models`` sub-command."""
    parser = subparsers.add_parser("models", help="list the models of the zoo",
                                   description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("--long", action="store_true",
                        help="every field: normalisation, climatology, URL, sha256, paper")
    parser.set_defaults(func=run)
    return parser


def format_table(rows: list[dict[str, Any]], columns: tuple[str, ...] = _COLUMNS) -> str:
    """A plain-text table of ``rows`` (dicts) in ``columns`` order.

    >>> print(format_table([{"name": "a", "kind": "b"}], ("name", "kind")))
    name  kind
    a     b
    """
    cells = [[str(c) for c in columns]] + [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells)


def run(args: argparse.Namespace) -> int:
    from xearthformer.zoo import list_models

    rows = list_models()
    if args.long:
        for row in rows:
            print(row["name"])
            for key, value in row.items():
                if key != "name":
                    print(f"  {key:14s}{value}")
        return 0
    print(format_table(rows))
    return 0
