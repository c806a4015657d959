"""One PySyncObj replica (a ``ReplDict``) on loopback, with its share of the benchmark's clients.

    python benchmarks/pysyncobj_node.py --port P --partners P2,P3 --dir DIR \\
        [--warmup 2] [--seconds 10] [--msync]

Started by ``bench_consensus_real.py``, three at a time. PySyncObj has no network
client protocol: an application calls a ``@replicated`` method in its own process
and the call is forwarded to the leader. So the load runs *inside* the replicas,
as in PySyncObj's own ``benchmarks/testobj.py`` (every node of the cluster issues
commands): each process runs its share of the closed-loop clients of
:mod:`consensus_load` with ``ReplDict.set(key, value, callback=...)``; the callback
fires once the command is committed and applied on this node. (This spares
PySyncObj the client-to-server hop that NovaCron's clients pay.)

Durability: ``SyncObjConf(journalFile=DIR/nodeP.journal, fullDumpFile=DIR/nodeP.dump)``,
everything else at PySyncObj 0.3.17's defaults. What that guarantees, read from
``pysyncobj/journal.py`` and ``syncobj.py`` of 0.3.17:

* ``journalFile`` replaces the in-memory log by ``FileJournal``: every entry is
  written, when appended (leader) or received (follower), into an ``mmap`` of the
  file. Nothing calls ``msync``/``fsync`` (``FileJournal.flush`` exists but
  ``SyncObj`` never calls it; 0.3.17 has no ``flushJournal`` option): the data is
  in the OS page cache, so it survives the *process* being killed, not a kernel
  crash or power loss. The term and vote are written (``write`` + ``rename``, no
  fsync) before a vote is sent; the commit index once a second.
* ``fullDumpFile`` makes log compaction (every 5000 entries) write the snapshot to
  disk (in a forked child) before it truncates the journal; without it a
  compaction would keep the snapshot only in memory and a restart would lose it.

``--msync`` (off by default; not a PySyncObj option) flushes the journal's ``mmap``
to disk at the end of every tick of PySyncObj's loop, to approximate the cost of a
disk flush per batch. It is not a correct write-ahead guarantee: PySyncObj sends
and acknowledges entries within the tick, before that flush.

Protocol with the driver: prints ``{"ready": ...}`` once the node knows a leader,
reads ``GO <unix time> <client ids, comma-separated>`` on stdin (the leader is
known only then, and the driver may give every client to it), runs those clients
from that instant, prints
``{"tally": ...}`` and then serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

from consensus_load import Tally, run_callbacks
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf
from pysyncobj.batteries import ReplDict

HOST = "127.0.0.1"


class CommandFailed(RuntimeError):
    """PySyncObj reported a failure (``FAIL_REASON``) for a command."""


def start(
    port: int, partners: list[int], directory: Path, *, msync: bool = False, **options: object
) -> tuple[SyncObj, ReplDict]:
    store = ReplDict()
    conf = SyncObjConf(
        journalFile=str(directory / f"node{port}.journal"),
        fullDumpFile=str(directory / f"node{port}.dump"),
        **options,
    )
    node = SyncObj(f"{HOST}:{port}", [f"{HOST}:{p}" for p in partners], conf=conf, consumers=[store])
    if msync:
        journal = node._SyncObj__raftLog  # the FileJournal; PySyncObj offers no public handle
        node.addOnTickCallback(journal.flush)
    return node, store


def wait_for_leader(node: SyncObj, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = node._getLeader()
        if leader is not None and node.isReady():
            return str(leader)
        time.sleep(0.05)
    raise TimeoutError(f"no leader after {timeout:g}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--partners", required=True, help="comma-separated ports of the other replicas")
    parser.add_argument("--dir", type=Path, required=True, help="where the journal and dump files go")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--msync", action="store_true", help="flush the journal mmap every tick")
    parser.add_argument(
        "--conf", action="append", default=[], metavar="NAME=VALUE", help="another SyncObjConf option"
    )
    args = parser.parse_args()

    options = {name: ast.literal_eval(value) for name, value in (o.split("=", 1) for o in args.conf)}
    partners = [int(p) for p in args.partners.split(",")]
    node, store = start(args.port, partners, args.dir, msync=args.msync, **options)
    print(json.dumps({"ready": args.port, "leader": wait_for_leader(node, 30.0)}), flush=True)

    line = sys.stdin.readline().split()
    if len(line) < 2 or line[0] != "GO":
        node.destroy_synchronous()
        return 1
    clients = [int(c) for c in line[2].split(",")] if len(line) > 2 else []

    def submit(key: str, value: bytes, done) -> None:
        def callback(result, error) -> None:
            done(None if error == FAIL_REASON.SUCCESS else CommandFailed(f"FAIL_REASON {error}"))

        store.set(key, value, callback=callback)

    tally = Tally()
    if clients:
        tally = run_callbacks(
            submit, clients, start_at=float(line[1]), warmup=args.warmup, seconds=args.seconds,
            timeout=args.timeout,
        )  # fmt: skip
    print(json.dumps({"tally": tally.to_json(), "log_size": node._getRaftLogSize()}), flush=True)
    sys.stdin.read()  # keep replicating for the others until the driver is done
    node.destroy_synchronous()
    return 0


if __name__ == "__main__":
    sys.exit(main())
