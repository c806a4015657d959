"""Where the nodes are: node id -> (host, port, NodeInfo).

The runtime never assumes how addresses are learnt. A deployment builds a
static :class:`PeerDirectory` from its configuration (``--peers
n1=10.0.0.1:9090,...`` via :meth:`PeerDirectory.parse`); :class:`LocalCluster`
shares one mutable directory among its in-process nodes, so a node added later
or restarted on the same port is found by everyone. The runtime reads the
directory on every lookup, which is all either case needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from novacron.runtime import NodeInfo


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """How to reach one node, and what it says about itself."""

    host: str
    port: int
    info: NodeInfo


class PeerDirectory:
    """A mapping of node id to :class:`PeerAddress`, iterated in sorted id order."""

    def __init__(self, entries: Iterable[PeerAddress] = ()) -> None:
        self._entries: dict[str, PeerAddress] = {}
        for entry in entries:
            self._entries[entry.info.node_id] = entry

    def register(self, node_id: str, host: str, port: int, info: NodeInfo | None = None) -> None:
        """Add or update a node (e.g. once it has bound its listening port)."""
        if not node_id:
            raise ValueError("node id must be a non-empty string")
        if not 0 < port < 65536:
            raise ValueError(f"port of {node_id!r} must be in 1..65535, got {port}")
        if info is None:
            old = self._entries.get(node_id)
            info = old.info if old is not None else NodeInfo(node_id)
        if info.node_id != node_id:
            raise ValueError(f"NodeInfo for {info.node_id!r} registered under {node_id!r}")
        self._entries[node_id] = PeerAddress(host, port, info)

    def remove(self, node_id: str) -> None:
        self._entries.pop(node_id, None)

    def get(self, node_id: str) -> PeerAddress | None:
        return self._entries.get(node_id)

    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def parse(cls, spec: str) -> PeerDirectory:
        """Parse ``"n1=host:port,n2=[::1]:port"`` (whitespace around items is ignored).

        Raises :class:`ValueError` naming the item that is wrong.
        """
        directory = cls()
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            node_id, sep, address = item.partition("=")
            node_id = node_id.strip()
            if not sep or not node_id:
                raise ValueError(f"peer {item!r}: expected id=host:port")
            if node_id in directory:
                raise ValueError(f"peer {node_id!r} is listed twice")
            host, port = _split_host_port(address.strip(), item)
            directory.register(node_id, host, port)
        return directory


def _split_host_port(address: str, item: str) -> tuple[str, int]:
    if address.startswith("["):  # [IPv6]:port
        host, sep, port_text = address[1:].partition("]:")
    else:
        host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"peer {item!r}: expected id=host:port")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"peer {item!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"peer {item!r}: port {port} is not in 1..65535")
    return host, port
