"""The `novacron` command line.

Each sub-command lives in its own module exposing ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed args and
returning an exit code). Keeping them apart means ``novacron config`` never
imports the simulator, and ``novacron node`` never imports SimPy.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command modules, in the order ``--help`` lists them
_COMMANDS = ("simulate", "dst", "cluster", "kv", "state", "vm", "pba", "itp", "node", "config")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="novacron",
        description="NovaCron: DWCP v3 protocols in a deterministic simulator and on real machines.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        module = importlib.import_module(f"novacron.cli.{name}_cmd")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
