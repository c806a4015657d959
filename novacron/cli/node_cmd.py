"""``novacron node``: run one real node in this process.

The node reads its configuration file (``novacron.config``), opens its durable
storage at ``<system.data_dir>/<node_id>.sqlite3``, listens on
``network.listen_address:network.bind_port`` with the asyncio runtime
(``novacron.backends``, uvloop when installed), and runs the heartbeat
protocol against the peers given with ``--peers``. It answers health checks
(``GET /healthz``) on ``system.health_check_port`` and Prometheus scrapes
(``GET /metrics``) on ``monitoring.metrics_port``. It stops cleanly on
SIGINT/SIGTERM, within ``system.shutdown_timeout``.

Peers are a static list (``--peers n2=10.0.0.2:9090,n3=10.0.0.3:9090``):
the node accepts connections only from node ids in that list, and with
``network.enable_tls`` only from holders of a certificate, signed by
``--tls-ca``, whose common name is that node id.

Exit codes: 0 after a clean shutdown, 1 when the node could not start (e.g.
a port it must listen on is taken) or did not stop in time, 2 for a
configuration or usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily at run time: `novacron --help` stays fast
    from novacron.backends import TLSConfig

log = logging.getLogger("novacron.node")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "node",
        help="run one node (asyncio runtime over TCP/TLS)",
        description=(__doc__ or "").split("\n\n")[1],
    )
    parser.add_argument("--config", required=True, type=Path, help="the node's YAML config file")
    parser.add_argument(
        "--peers",
        default="",
        metavar="ID=HOST:PORT,...",
        help="the other nodes of the cluster (comma-separated)",
    )
    parser.add_argument("--region", default="", help="this node's region label")
    parser.add_argument("--zone", default="", help="this node's zone label")
    parser.add_argument("--tls-cert", type=Path, help="this node's certificate (PEM; CN = node id)")
    parser.add_argument("--tls-key", type=Path, help="this node's private key (PEM)")
    parser.add_argument("--tls-ca", type=Path, help="the CA that signs every node's certificate")
    parser.add_argument(
        "--consensus",
        choices=("raft", "pbft", "auto"),
        help="be a member of a replicated KV store (default: when dwcp.enable_v3_consensus is set, "
        "dwcp.consensus.protocol; auto picks by dwcp.forced_mode)",
    )
    parser.add_argument(
        "--members",
        default="",
        metavar="ID,...",
        help="the consensus members (default: this node and every peer); other peers are clients",
    )
    parser.add_argument(
        "--keyring-seed",
        type=int,
        help="PBFT: derive every member's keys from this seed (test clusters only: anyone who "
        "knows the seed can sign as any member)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from novacron.backends import PeerDirectory, new_event_loop
    from novacron.config import ConfigError, load_config
    from novacron.config.support import check_support

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"novacron node: {exc}", file=sys.stderr)
        return 2
    support = check_support(config)  # what the config asks that this node cannot do
    if support.refused:
        for problem in support.refused:
            print(f"novacron node: {args.config}: {problem}", file=sys.stderr)
        return 2
    try:
        peers = PeerDirectory.parse(args.peers)
    except ValueError as exc:
        print(f"novacron node: --peers: {exc}", file=sys.stderr)
        return 2
    try:
        tls = _tls_config(config.network.enable_tls, args)
    except ValueError as exc:
        print(f"novacron node: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.system.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for warning in support.warnings:
        logging.getLogger("novacron.node").warning("%s", warning)
    for ignored in support.ignored:
        logging.getLogger("novacron.node").info("%s", ignored)
    from novacron.backends.node import serve

    try:
        consensus = _consensus_member(config, peers, args)
    except ValueError as exc:
        print(f"novacron node: {exc}", file=sys.stderr)
        return 2
    loop = new_event_loop()
    try:
        return loop.run_until_complete(
            serve(config, peers, tls, region=args.region, zone=args.zone, consensus=consensus)
        )
    finally:
        loop.close()


def _consensus_member(config, peers, args: argparse.Namespace):
    """What ``--consensus``/``--members``/``--keyring-seed`` and the config ask for, checked."""
    from novacron.backends.node import ConsensusMember
    from novacron.consensus.adaptive import choose_protocol

    consensus = config.dwcp.consensus
    wanted = args.consensus
    if wanted is None and not config.dwcp.enable_v3_consensus:
        return None
    if wanted in (None, "auto"):
        settings = consensus if wanted is None else consensus.model_copy(update={"protocol": "auto"})
        protocol = choose_protocol(settings, config.dwcp.forced_mode or None)
    else:
        protocol = choose_protocol(consensus.model_copy(update={"protocol": wanted}))
    node_id = config.system.node_id
    members = [m for m in args.members.split(",") if m] or [node_id, *peers.ids()]
    unknown = [m for m in members if m != node_id and m not in peers]
    if unknown:
        raise ValueError(f"--members {', '.join(unknown)}: not in --peers (every member needs an address)")
    if node_id not in members:
        raise ValueError(f"--members must include this node ({node_id})")
    keyring = None
    if protocol == "pbft":
        if args.keyring_seed is None:
            raise ValueError("a PBFT member needs --keyring-seed (test clusters) to get its keys")
        from novacron.consensus.pbft import Keyring

        keyring = Keyring.generate(sorted(members), seed=args.keyring_seed)
    return ConsensusMember(protocol, tuple(sorted(members)), keyring)


def _tls_config(enabled: bool, args: argparse.Namespace) -> TLSConfig | None:
    from novacron.backends import TLSConfig

    given = {"--tls-cert": args.tls_cert, "--tls-key": args.tls_key, "--tls-ca": args.tls_ca}
    if not enabled:
        if any(given.values()):
            ignored = ", ".join(flag for flag, value in given.items() if value)
            print(f"novacron node: network.enable_tls is false: ignoring {ignored}", file=sys.stderr)
        return None
    missing = [flag for flag, value in given.items() if value is None]
    if missing:
        raise ValueError(
            "network.enable_tls is true, so the node needs its certificate, key and CA: "
            f"missing {', '.join(missing)} (or set network.enable_tls: false)"
        )
    for flag, path in given.items():
        if not path.is_file():
            raise ValueError(f"{flag} {path}: no such file")
    return TLSConfig(cert=args.tls_cert, key=args.tls_key, ca=args.tls_ca)


def main(argv: list[str] | None = None) -> int:
    """Run ``novacron node`` alone (``python -m novacron.cli.node_cmd --config ...``)."""
    parser = argparse.ArgumentParser(prog="novacron")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["node", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
