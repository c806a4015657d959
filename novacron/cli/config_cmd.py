"""``novacron config``: check configuration files and show the configuration a node would run.

* ``novacron config validate FILE...`` prints ``FILE: ok (summary)`` for each valid file, then
  the settings a real node would not honour (warnings, ignored knobs: see
  :mod:`novacron.config.support`), and exits 0; otherwise (a schema error, or a setting the node
  refuses) it prints the problems to stderr and exits 2 (the usual "bad input" status, as argparse
  uses for bad arguments).
* ``novacron config show [FILE | --example NAME]`` prints the effective configuration as YAML:
  defaults < file or example < ``NOVACRON_*`` environment. ``--list-examples`` lists the
  shipped examples.

Both apply the environment by default, because the point is to see what a node started from this
shell would get; ``--no-env`` looks at the file alone.

Only :mod:`novacron.config` is imported here: checking a file must not pay for the simulator.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from novacron.config import (
    ConfigError,
    NovaCronConfig,
    dump_yaml,
    example_names,
    example_text,
    format_duration,
    load_config,
    load_example,
)
from novacron.config.support import check_support

#: exit status for an invalid configuration (argparse uses 2 for invalid arguments as well)
EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``config`` command and its actions to ``subparsers``."""
    parser = subparsers.add_parser(
        "config",
        help="validate configuration files and show the effective configuration",
        description="Check configuration files and show the configuration a node would run.",
    )
    actions = parser.add_subparsers(dest="config_action", required=True, metavar="ACTION")

    validate = actions.add_parser(
        "validate",
        help="check configuration files (exit 0 if all are valid, 2 if not)",
        description="Check each FILE; problems are printed to stderr, one line each.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="YAML configuration file")
    _add_no_env(validate)
    validate.set_defaults(func=run_validate)

    show = actions.add_parser(
        "show",
        help="print the effective configuration as YAML",
        description="Print the configuration a node would run with: "
        "defaults < FILE or example < NOVACRON_* environment.",
    )
    source = show.add_mutually_exclusive_group()
    source.add_argument("file", nargs="?", metavar="FILE", help="YAML configuration file")
    source.add_argument("--example", metavar="NAME", help="start from a shipped example")
    source.add_argument("--list-examples", action="store_true", help="list the shipped examples and exit")
    _add_no_env(show)
    show.set_defaults(func=run_show)
    return parser


def _add_no_env(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-env",
        action="store_true",
        help="ignore NOVACRON_* environment overrides",
    )


def _env(args: argparse.Namespace) -> Mapping[str, str]:
    return {} if args.no_env else os.environ


def run_validate(args: argparse.Namespace) -> int:
    """Validate every file (not stopping at the first bad one) and report each."""
    status = 0
    for path in args.files:
        try:
            config = load_config(path, env=_env(args))
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            status = EXIT_INVALID
            continue
        support = check_support(config)
        if support.refused:
            for problem in support.refused:
                print(f"{path}: {problem}", file=sys.stderr)
            status = EXIT_INVALID
            continue
        print(f"{path}: ok ({summary(config)})")
        for line in support.lines():
            print(f"  {line}")
    return status


def run_show(args: argparse.Namespace) -> int:
    """Print the effective configuration, or the list of examples."""
    if args.list_examples:
        for name in example_names():
            print(f"{name:<12} {_description(name)}")
        return 0
    try:
        if args.example is not None:
            config = load_example(args.example, env=_env(args))
            origin = f"the {args.example} example"
        else:
            config = load_config(args.file, env=_env(args))
            origin = args.file
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    layers = ["defaults", origin, None if args.no_env else "environment"]
    print(f"# effective configuration: {' < '.join(layer for layer in layers if layer)}")
    print(dump_yaml(config), end="")
    return 0


def summary(config: NovaCronConfig) -> str:
    """One line with the choices that shape a deployment most."""
    dwcp = config.dwcp
    detected = "auto-detect" if dwcp.enable_auto_detection else "unset, detection off"
    mode = dwcp.forced_mode or detected
    transport, compression, consensus = dwcp.transport, dwcp.compression, dwcp.consensus
    return (
        f"mode {mode}; "
        f"{transport.min_streams}-{transport.max_streams} streams {transport.congestion_algo}; "
        f"{compression.algorithm} level {compression.level}; "
        f"{consensus.protocol} heartbeat {format_duration(consensus.heartbeat_interval)} "
        f"election {format_duration(consensus.election_timeout)}"
    )


def _description(name: str) -> str:
    """The first comment line of an example, which says what network it is for."""
    for line in example_text(name).splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
