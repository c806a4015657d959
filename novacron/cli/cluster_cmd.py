"""``novacron cluster up|down|status``: a local cluster of node processes on loopback.

``up`` writes one config per node into ``--dir`` (default ``./novacron-cluster``),
starts ``novacron node`` processes (each with its SQLite storage and log file
there, and its ``/healthz`` and ``/metrics`` on an HTTP port of its own),
records them in ``cluster.json`` and waits until the cluster serves a read.
It also reserves client slots: ids and ports the members accept connections
from, which ``novacron kv`` and benchmark drivers take one at a time.
``down`` stops every process (SIGTERM, then SIGKILL after a grace period);
``status`` lists them.

This is for development, tests and benchmarks on one machine: TLS is off and
PBFT keys derive from a seed stored in ``cluster.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from novacron.cli.common import CLUSTER_DIR

DEFAULT_DIR = CLUSTER_DIR
MANIFEST = "cluster.json"


@dataclass
class Member:
    id: str
    port: int
    pid: int = 0
    log: str = ""
    http_port: int = 0  # /healthz and /metrics (0: a manifest from before they existed)

    def describe(self, host: str) -> str:
        """The member's addresses, for ``up`` and ``status``."""
        http = f"  http {host}:{self.http_port}" if self.http_port else ""
        return f"{self.id}  {host}:{self.port}{http}  pid {self.pid}"


@dataclass
class ClusterManifest:
    """What ``cluster up`` started, for ``down``, ``status`` and clients."""

    protocol: str
    host: str
    members: list[Member]
    clients: dict[str, int] = field(default_factory=dict)  # client slot id -> port
    keyring_seed: int = 0
    heartbeat_interval: str = "50ms"
    election_timeout: str = "500ms"
    vm_memory_mib: int = 0  # guest memory each member may give VMs (0: they host none)
    storage_key: str = ""  # the key file encrypting the members' storage ("": not encrypted)

    @classmethod
    def load(cls, directory: Path) -> ClusterManifest:
        path = directory / MANIFEST
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"no cluster in {directory} (no {MANIFEST}): run cluster up first") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        raw["members"] = [Member(**m) for m in raw["members"]]
        return cls(**raw)

    def save(self, directory: Path) -> None:
        (directory / MANIFEST).write_text(json.dumps(asdict(self), indent=2) + "\n")

    def peer_spec(self, exclude: str = "") -> str:
        """``id=host:port,...`` for every member and client slot except ``exclude``."""
        ports = {m.id: m.port for m in self.members} | self.clients
        return ",".join(f"{i}={self.host}:{p}" for i, p in sorted(ports.items()) if i != exclude)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "cluster",
        help="start or stop a local cluster of consensus nodes (loopback processes)",
        description=(__doc__ or "").split("\n\n")[1],
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = sub.add_parser("up", help="start a cluster")
    up.add_argument("--nodes", type=int, default=3, help="members (default 3; PBFT needs 3f+1 >= 4)")
    up.add_argument("--protocol", choices=("raft", "pbft"), default="raft")
    up.add_argument("--clients", type=int, default=8, help="client slots to reserve (default 8)")
    up.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="first port: members' peer ports, client slots', then members' HTTP ports (default: free ports)",
    )
    up.add_argument("--heartbeat-interval", default="50ms")
    up.add_argument("--election-timeout", default="500ms")
    up.add_argument("--wait", type=float, default=30.0, help="seconds to wait until it serves (0: don't)")
    up.add_argument(
        "--encrypt",
        action="store_true",
        help="encrypt the members' storage at rest (a key made in --dir: to try it, not to keep secrets)",
    )
    up.add_argument(
        "--vm-memory",
        type=int,
        default=1024,
        help="MiB of guest memory each node may give VMs (novacron vm; default 1024, 0: host none)",
    )
    down = sub.add_parser("down", help="stop a cluster")
    down.add_argument("--grace", type=float, default=10.0, help="seconds before SIGKILL")
    sub.add_parser("status", help="list the cluster's processes")
    for p in sub.choices.values():
        p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"its directory ({DEFAULT_DIR})")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "up":
            return up(args)
        if args.action == "down":
            return down(args.dir, grace=args.grace)
        return status(args.dir)
    except ValueError as exc:
        print(f"novacron cluster: {exc}", file=sys.stderr)
        return 2


def _free_ports(n: int, host: str) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def up(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if (directory / MANIFEST).exists():
        existing = ClusterManifest.load(directory)
        if any(_alive(m.pid) for m in existing.members):
            raise ValueError(f"a cluster is already running in {directory}; `novacron cluster down` first")
    if args.protocol == "pbft" and (args.nodes < 4 or (args.nodes - 1) % 3):
        raise ValueError(f"PBFT needs 3f + 1 >= 4 nodes, got {args.nodes}")
    if args.nodes < 1 or args.clients < 1:
        raise ValueError("--nodes and --clients must be >= 1")
    if args.vm_memory < 0:
        raise ValueError(f"--vm-memory must be >= 0 MiB, got {args.vm_memory}")
    host = "127.0.0.1"
    nodes, clients = args.nodes, args.clients
    count = 2 * nodes + clients  # a peer port per member and client slot, an HTTP port per member
    base = args.base_port
    ports = list(range(base, base + count)) if base else _free_ports(count, host)
    peer_ports, http_ports = ports[: nodes + clients], ports[nodes + clients :]
    directory.mkdir(parents=True, exist_ok=True)
    manifest = ClusterManifest(
        protocol=args.protocol,
        host=host,
        members=[Member(f"n{i + 1}", peer_ports[i], http_port=http_ports[i]) for i in range(nodes)],
        clients={f"client{i + 1}": peer_ports[nodes + i] for i in range(clients)},
        keyring_seed=int.from_bytes(os.urandom(4), "big"),
        heartbeat_interval=args.heartbeat_interval,
        election_timeout=args.election_timeout,
        vm_memory_mib=args.vm_memory,
    )
    if args.encrypt:
        key = directory / "storage.key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        manifest.storage_key = str(key.resolve())
    members = ",".join(m.id for m in manifest.members)
    for member in manifest.members:
        config = directory / f"{member.id}.yaml"
        config.write_text(_node_config(manifest, member, directory))
        log_path = directory / f"{member.id}.log"
        cmd = [
            sys.executable, "-m", "novacron.cli.node_cmd",
            "--config", str(config),
            "--peers", manifest.peer_spec(exclude=member.id),
            "--consensus", manifest.protocol,
            "--members", members,
            "--keyring-seed", str(manifest.keyring_seed),
        ]  # fmt: skip
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                cmd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        member.pid, member.log = proc.pid, str(log_path)
    manifest.save(directory)
    print(f"started {args.nodes} {args.protocol} nodes in {directory}:")
    for member in manifest.members:
        print(f"  {member.describe(host)}  log {member.log}")
    if args.wait > 0:
        from novacron.cli.kv_cmd import wait_until_serving

        took = wait_until_serving(directory, timeout=args.wait)
        if took is None:
            print(f"the cluster did not serve a read within {args.wait:g}s; see the logs", file=sys.stderr)
            return 1
        print(f"serving after {took:.2f}s")
    return 0


def _node_config(manifest: ClusterManifest, member: Member, directory: Path) -> str:
    return (
        "system:\n"
        f"  node_id: {member.id}\n"
        f"  data_dir: {directory.resolve()}\n"
        "  log_level: info\n"
        "  shutdown_timeout: 5s\n"
        f"  health_check_port: {member.http_port}\n"
        "dwcp:\n"
        "  forced_mode: datacenter\n"
        "  enable_v3_consensus: true\n"
        "  enable_v3_state_sync: true\n"
        "  consensus:\n"
        f"    protocol: {manifest.protocol}\n"
        f"    heartbeat_interval: {manifest.heartbeat_interval}\n"
        f"    election_timeout: {manifest.election_timeout}\n"
        "network:\n"
        f"  listen_address: {manifest.host}\n"
        f"  bind_port: {member.port}\n"
        "  enable_tls: false\n"
        "monitoring:\n"
        "  enable_metrics: true\n"
        f"  metrics_port: {member.http_port}  # the health check's: one server answers both\n"
        "security:\n"
        "  enable_auth: false  # TLS is off: peers are not authenticated, and the config says so\n"
        f"  enable_encryption: {'true' if manifest.storage_key else 'false'}\n"
        f"  encryption_key_file: '{manifest.storage_key}'\n"
        "hosting:\n"
        f"  enable: {'true' if manifest.vm_memory_mib else 'false'}\n"
        f"  memory_mib: {manifest.vm_memory_mib or 4096}\n"
    )


def down(directory: Path, *, grace: float = 10.0) -> int:
    manifest = ClusterManifest.load(directory)
    running = [m for m in manifest.members if _alive(m.pid)]
    for member in running:
        try:
            os.kill(member.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while any(_alive(m.pid) for m in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = [m for m in running if _alive(m.pid)]
    for member in killed:
        os.kill(member.pid, signal.SIGKILL)
    print(f"stopped {len(running)} nodes in {directory}" + (f" ({len(killed)} killed)" if killed else ""))
    return 0


def status(directory: Path) -> int:
    manifest = ClusterManifest.load(directory)
    for member in manifest.members:
        state = "running" if _alive(member.pid) else "stopped"
        print(f"{member.describe(manifest.host)}  {state}")
    return 0
