"""Replicated puts per second on the real backend: NovaCron Raft vs PySyncObj (run by hand; not a test).

    .venv/bin/python benchmarks/bench_consensus_real.py [--clients 32] [--warmup 2] [--seconds 10]
        [--only novacron|pysyncobj] [--pysyncobj-load all|leader] [--pysyncobj-msync] [--json]

The issue's target: 3 nodes on loopback, 10-byte commands, durability on; sustained
committed operations per second and p50/p99 latency, at least 2x PySyncObj's
throughput at p99 under 50 ms. Both systems get the same closed-loop workload from
:mod:`consensus_load` (``C`` clients, one command in flight each, warm-up discarded),
one after the other in this run, on this machine, and the table prints them together.

* **NovaCron Raft**: ``novacron cluster up --nodes 3 --protocol raft`` (one process
  per node, SQLite log with ``journal_mode=WAL`` and ``synchronous=FULL``, i.e.
  fsync'd before acknowledging); the ``C`` clients are ``KVClient``s sharing one
  runtime in this process, talking TCP to the members.
* **PySyncObj** (0.3.17 from PyPI): three ``pysyncobj_node.py`` processes with a
  ``ReplDict`` and ``journalFile`` + ``fullDumpFile`` (its durable mode, which writes
  the journal through ``mmap`` with no fsync: see that file's docstring) and
  ``appendEntriesUseBatch=False`` (see :data:`PYSYNCOBJ_CONF`). It has no client
  protocol, so the clients run inside the replicas, split over all three as in
  PySyncObj's own benchmarks (``--pysyncobj-load leader``: all in the leader).

The machine is shared: 3 servers and the load generator on 2 cores here, so the
figures are what the whole system sustains on that, not per-node capacity.
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

from common import machine, report
from consensus_load import LoadResult, Tally, add_load_arguments, run_async

HERE = Path(__file__).resolve().parent
NODES = 3
CLI = "import sys; from novacron.cli import main; sys.exit(main(sys.argv[1:]))"
#: PySyncObj's documented low-latency mode. Its default (batching: append entries go out
#: every ``appendEntriesPeriod`` = 100 ms) caps 32 closed-loop clients at ~200 ops/s with
#: p50 ~200 ms on this machine; without batching it did ~3000 ops/s at p50 ~8 ms. The
#: baseline should be PySyncObj at its best for this workload, not a straw man.
PYSYNCOBJ_CONF = ["appendEntriesUseBatch=False"]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --- PySyncObj -------------------------------------------------------------------------------


class _Node:
    """A ``pysyncobj_node.py`` process; a thread queues its stdout lines so reads can time out."""

    def __init__(self, port: int, partners: list[int], directory: Path, args: argparse.Namespace) -> None:
        cmd = [
            sys.executable, str(HERE / "pysyncobj_node.py"),
            "--port", str(port),
            "--partners", ",".join(map(str, partners)),
            "--dir", str(directory),
            "--warmup", str(args.warmup),
            "--seconds", str(args.seconds),
        ] + (["--msync"] if args.pysyncobj_msync else [])  # fmt: skip
        for option in pysyncobj_conf(args):
            cmd += ["--conf", option]
        self.port = port
        self.stderr_path = directory / f"node{port}.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, cwd=HERE
            )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return json.loads(self.lines.get(timeout=0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break  # it died: say so now rather than at the deadline
        tail = self.stderr_path.read_text()[-2000:]
        state = "no answer in time" if self.proc.poll() is None else f"exited ({self.proc.returncode})"
        raise RuntimeError(f"pysyncobj node {self.port}: {state}; stderr:\n{tail}")

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        """Close stdin (the node exits); terminate, then kill, if it does not."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        for signal_it in (None, self.proc.terminate, self.proc.kill):
            if signal_it is not None:
                signal_it()
            try:
                self.proc.wait(5)
                return
            except subprocess.TimeoutExpired:
                continue


def pysyncobj_conf(args: argparse.Namespace) -> list[str]:
    return PYSYNCOBJ_CONF if args.pysyncobj_conf is None else args.pysyncobj_conf


def run_pysyncobj(args: argparse.Namespace) -> Tally:
    with tempfile.TemporaryDirectory(prefix="bench-pysyncobj-") as tmp:
        ports = free_ports(NODES)
        nodes: list[_Node] = []
        try:
            for port in ports:
                nodes.append(_Node(port, [p for p in ports if p != port], Path(tmp), args))
            ready = [node.read(timeout=30.0) for node in nodes]
            if args.pysyncobj_load == "leader":
                leader = int(ready[0]["leader"].rsplit(":", 1)[1])
                shares = {port: list(range(args.clients)) if port == leader else [] for port in ports}
            else:  # as PySyncObj's benchmarks do: every replica issues commands
                shares = {port: list(range(i, args.clients, NODES)) for i, port in enumerate(ports)}
            start_at = time.time() + 0.5
            for node in nodes:
                node.send(f"GO {start_at} {','.join(map(str, shares[node.port]))}")
            budget = 0.5 + args.warmup + args.seconds + 30.0
            tallies = [Tally.from_json(node.read(timeout=budget)["tally"]) for node in nodes]
        finally:
            for node in nodes:
                node.stop()
    return Tally.merge(tallies)


# --- NovaCron --------------------------------------------------------------------------------


def novacron_cli(*argv: str, timeout: float = 90.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLI, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


async def drive_novacron(directory: Path, args: argparse.Namespace) -> Tally:
    from novacron.backends.cluster_client import connect
    from novacron.consensus.client import KVClient

    # retry_interval 1 s: a re-send to another member while the leader is merely slow
    # under load would add commands (and redirects) that PySyncObj's clients never send.
    async with connect(directory, timeout=args.timeout, retry_interval=1.0) as first:
        options = {
            "quorum": first.client.quorum,
            "timeout": args.timeout,
            "retry_interval": 1.0,
        }
        kvs = [first] + [
            KVClient(first.rt, first.client.members, client_id=f"{first.client_id}-{i}", **options)
            for i in range(1, args.clients)
        ]
        return await run_async([kv.put for kv in kvs], warmup=args.warmup, seconds=args.seconds)


def run_novacron(args: argparse.Namespace) -> Tally:
    return on_cluster(drive_novacron, args)


def on_cluster(drive, args: argparse.Namespace, *up_args: str):
    """``await drive(directory, args)`` against a fresh ``novacron cluster up`` of :data:`NODES`
    Raft members (8 client slots; ``up_args``: more options), taken down after."""
    from novacron.backends import new_event_loop

    with tempfile.TemporaryDirectory(prefix="bench-novacron-") as tmp:
        directory = Path(tmp)
        try:
            up = novacron_cli(
                "cluster", "up", "--dir", tmp, "--nodes", str(NODES), "--protocol", "raft", "--clients", "8",
                *up_args,
            )  # fmt: skip
            if up.returncode:
                logs = "".join(p.read_text()[-1500:] for p in sorted(directory.glob("n*.log")))
                raise RuntimeError(f"novacron cluster up failed:\n{up.stdout}{up.stderr}\n{logs}")
            loop = new_event_loop()
            try:
                tally = loop.run_until_complete(drive(directory, args))
            finally:
                loop.close()
        finally:
            if (directory / "cluster.json").exists():
                novacron_cli("cluster", "down", "--dir", tmp)
    return tally


SYSTEMS = {"novacron": ("NovaCron Raft", run_novacron), "pysyncobj": ("PySyncObj", run_pysyncobj)}


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per system, alternating; pooled in the table (1)"
    )
    parser.add_argument("--only", choices=("novacron", "pysyncobj"), help="run one system only")
    parser.add_argument(
        "--pysyncobj-load", choices=("all", "leader"), default="all",
        help="which PySyncObj replicas run the clients (all: split evenly, as its own benchmarks do)",
    )  # fmt: skip
    parser.add_argument(
        "--pysyncobj-msync", action="store_true", help="flush PySyncObj's journal mmap every tick"
    )
    parser.add_argument(
        "--pysyncobj-conf", action="append", metavar="NAME=VALUE",
        help=f"a SyncObjConf option for PySyncObj's replicas, repeatable; replaces the default "
        f"{' '.join(PYSYNCOBJ_CONF)} (appendEntriesUseBatch=True: PySyncObj's own defaults)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()

    names = [name for name in SYSTEMS if args.only in (None, name)]
    tallies: dict[str, list[Tally]] = {name: [] for name in names}
    failures: dict[str, str] = {}
    for repeat in range(args.repeats):
        # Alternate the order (ABBA...) so that neither system always runs on a warmer machine.
        for name in names if repeat % 2 == 0 else names[::-1]:
            if name in failures:
                continue
            if any(tallies.values()):
                time.sleep(1.0)  # let the previous run's processes exit and its disk writes drain
            try:
                tallies[name].append(SYSTEMS[name][1](args))
            except Exception as exc:  # noqa: BLE001 - report it, still print the other system
                failures[name] = f"{type(exc).__name__}: {exc}"
    results = {
        name: LoadResult.of(SYSTEMS[name][0], args.clients, args.seconds * len(runs), Tally.merge(runs))
        for name, runs in tallies.items()
        if runs
    }

    title = (
        f"{NODES} nodes on loopback, 10-byte puts, durability on, {args.clients} closed-loop clients, "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s measured"
        + (f", x{args.repeats}" if args.repeats > 1 else "")
    )
    if results:
        report(title, [r.row() for r in results.values()])
    else:
        print(f"\n== {title} ==  ({machine()})")
    if "pysyncobj" in results:
        conf = ", ".join(["journalFile", "fullDumpFile", *pysyncobj_conf(args)])
        msync = ", journal msync'd every tick" if args.pysyncobj_msync else ""
        print(f"PySyncObj: SyncObjConf({conf}){msync}; clients in {args.pysyncobj_load} replica(s)")
    if len(results) == 2:
        ours, theirs = results["novacron"], results["pysyncobj"]
        ratio = ours.ops_per_s / theirs.ops_per_s if theirs.ops_per_s else float("nan")
        verdict = "met" if ratio >= 2.0 and ours.p99_ms < 50.0 else "not met"
        print(f"throughput NovaCron / PySyncObj: {ratio:.2f}x  (target >= 2x at p99 < 50 ms: {verdict})")
    for name, error in failures.items():
        print(f"{name}: FAILED: {error}", file=sys.stderr)
    if args.json:
        out = {"machine": machine(), **{k: asdict(v) for k, v in results.items()}, "failed": failures}
        print(json.dumps(out))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
