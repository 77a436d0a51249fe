"""The ``xearthformer`` command line: one sub-command per module in this package.

Each sub-command module defines ``add_parser(subparsers)``; its parser sets ``func`` to a
callable taking the parsed arguments and returning an exit code. Bad input (a
``ValueError``) exits with code 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

SUBCOMMANDS = ("quickstart", "forecast", "ensemble", "evaluate", "train", "models")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xearthformer", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as err:
        print(f"xearthformer {args.command}: error: {err}".splitlines()[0], file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
