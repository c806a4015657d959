"""``novacron vm list|start|stop|migrate|where``: VMs on a cluster's hosts, live-migrated on request.

Talks to the cluster in ``--cluster DIR`` (what ``novacron cluster up`` wrote; its nodes host VMs)
through one of its client slots. ``start`` places the VM on the host it fits best (by memory)
unless ``--on`` names one; ``migrate`` moves it, live, to ``--to`` or to the best-fitting other
host, and prints what the migration took; ``where`` reads the VM's record in the inventory the
hosts keep in the replicated state map (any node answers, its host need not). Exit status 0 on
success, 1 when a host refused (the reason is printed) or ``where`` found no record, 3 when a host
did not answer (what was asked may still have happened), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys

from novacron.cli.common import EXIT_UNKNOWN, add_cluster_argument

EXIT_REFUSED = 1


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "vm",
        help="start, stop, list and live-migrate VMs on a cluster's hosts",
        description=(__doc__ or "").split("\n\n")[1],
    )
    parser.add_argument("op", choices=("list", "start", "stop", "migrate", "where"))
    parser.add_argument("name", nargs="?", help="the VM (start, stop, migrate, where)")
    add_cluster_argument(parser)
    parser.add_argument("--memory", type=int, help="start: guest memory in MiB")
    parser.add_argument(
        "--dirty-rate", type=float, default=0.0, help="start: pages the guest writes per second (default 0)"
    )
    parser.add_argument(
        "--working-set", type=int, default=0, help="start: MiB those writes fall in (default: all memory)"
    )
    parser.add_argument("--on", help="start: the host (default: the best fit)")
    parser.add_argument("--to", help="migrate: the destination (default: the best-fitting other host)")
    parser.add_argument("--postcopy", action="store_true", help="migrate: post-copy instead of pre-copy")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds a host has to answer a request")
    parser.add_argument(
        "--migration-timeout", type=float, default=600.0, help="seconds a migration may take (default 600)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if not problem and args.op == "start":
        from novacron.hosting import VMSpec, VMSpecError

        try:
            args.spec = VMSpec(args.name, args.memory, args.dirty_rate, args.working_set).check()
        except VMSpecError as exc:
            problem = str(exc)
    if problem:
        print(f"novacron vm: {problem}", file=sys.stderr)
        return 2
    from novacron.cli.common import run_client

    return run_client("novacron vm", lambda: _run(args))


def _usage_problem(args: argparse.Namespace) -> str:
    if (args.op == "list") != (args.name is None):
        return "list takes no VM name" if args.op == "list" else f"{args.op} needs a VM name"
    if (args.op == "start") != (args.memory is not None):
        return "start needs --memory MiB" if args.op == "start" else "--memory is for start"
    if args.on is not None and args.op != "start":
        return "--on is for start"
    if (args.to is not None or args.postcopy) and args.op != "migrate":
        return "--to and --postcopy are for migrate"
    return ""


async def _run(args: argparse.Namespace) -> int:
    from novacron.backends.cluster_client import client_runtime
    from novacron.hosting import OutcomeUnknown, VMClient, VMNotFound, VMRequestRefused

    async with client_runtime(args.cluster) as (rt, manifest, _):
        hosts = [m["id"] for m in manifest["members"]]
        if not manifest.get("vm_memory_mib"):
            raise ValueError(f"the nodes of {args.cluster} host no VMs (started with --vm-memory 0)")
        client = VMClient(rt, hosts, timeout=args.timeout)
        try:
            if args.op == "list":
                _print_cluster(await client.cluster(), rt.now())
            elif args.op == "start":
                print(f"{args.name} started on {await client.start(args.spec, host=args.on)}")
            elif args.op == "stop":
                print(f"{args.name} stopped on {await client.stop(args.name)}")
            elif args.op == "where":
                return await _where(rt, hosts, args)
            else:
                engine = "postcopy" if args.postcopy else "precopy"
                summary = await client.migrate(
                    args.name, args.to, engine=engine, timeout=args.migration_timeout
                )
                _print_migration(summary)
        except (VMRequestRefused, VMNotFound, ValueError) as exc:  # ValueError: NoHostFits
            print(f"novacron vm: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        except OutcomeUnknown as exc:  # a host did not answer, or a migration is in doubt
            print(f"novacron vm: {exc}", file=sys.stderr)
            return EXIT_UNKNOWN
    return 0


async def _where(rt, hosts: list[str], args: argparse.Namespace) -> int:
    """The VM's record in the inventory (the ASS map the hosts write), read at the first replica
    that answers: it answers even when the VM's host does not."""
    from novacron.hosting.inventory import hosts_in, key_of
    from novacron.sync import NoReplicaAnswered, StateClient

    try:
        state = await StateClient(rt, hosts, timeout=args.timeout).get(key_of(args.name))
    except NoReplicaAnswered as exc:
        print(f"novacron vm: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    where = hosts_in(state.values)
    if not where:
        print(f"{args.name}: no record")
        return EXIT_REFUSED
    note = " (recorded by several hosts: a conflict, or a hand-over still settling)" if len(where) > 1 else ""
    print(f"{args.name}: {' and '.join(where)}{note}")
    return 0


def _print_cluster(hosts: dict, now: float) -> None:
    """One line per host (memory used of its budget), then a table of the VMs."""
    import pandas as pd

    rows = []
    for node, status in hosts.items():
        if status is None:
            print(f"{node}: did not answer")
            continue
        print(f"{node}: {status.used_mib} of {status.capacity_mib} MiB used, {len(status.vms)} VMs")
        for vm in status.vms:
            spec = vm.spec
            rows.append(
                {
                    "vm": spec.name,
                    "host": node,
                    "memory_mib": spec.memory_mib,
                    "dirty_rate": spec.dirty_rate,
                    "working_set_mib": spec.working_set_mib or spec.memory_mib,
                    "state": vm.state,
                    "detail": vm.detail,
                }
            )
    if rows:
        print()
        table = pd.DataFrame(rows).sort_values("vm")
        if not table["detail"].any():
            table = table.drop(columns="detail")
        print(table.to_string(index=False))


def _print_migration(s) -> None:
    print(
        f"{s.migration}: {s.source} -> {s.destination} ({s.engine}) in {s.total_time:.3f} s, "
        f"downtime {s.downtime * 1e3:.1f} ms, {s.bytes_sent / 2**20:.1f} MiB sent for "
        f"{s.memory_bytes / 2**20:.0f} MiB of memory, {s.rounds} rounds"
    )
