"""What the TCP machinery of one node shares: identity, peers, TLS, limits, counters.

Message connections (:mod:`.messaging`) and bulk streams (:mod:`.transfers`)
apply the same authentication rule and count rejections the same way; they
get both from this object instead of reaching into the runtime.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from dataclasses import dataclass, field

from ..directory import PeerDirectory
from ..options import RuntimeOptions
from ..stats import LogThrottle, NetworkStats

log = logging.getLogger("novacron.backends.tcp")


@dataclass
class NodeContext:
    node_id: str
    loop: asyncio.AbstractEventLoop
    directory: PeerDirectory
    options: RuntimeOptions
    stats: NetworkStats
    #: TLS contexts (both ``None`` when TLS is off)
    client_tls: ssl.SSLContext | None = None
    server_tls: ssl.SSLContext | None = None
    #: require the claimed node id to appear in the peer's certificate
    check_identity: bool = True
    #: randomness for backoff jitter: separate from the protocol's generator,
    #: so reconnect timing never shifts the protocol's random sequence
    jitter: random.Random = field(default_factory=random.Random)
    throttle: LogThrottle | None = None

    def __post_init__(self) -> None:
        if self.throttle is None:
            self.throttle = LogThrottle(self.loop.time)

    @property
    def tls(self) -> bool:
        return self.server_tls is not None

    def authenticate(self, node_id: str, identities: frozenset[str]) -> str | None:
        """Why a connection claiming to be ``node_id`` is refused, or ``None``."""
        if node_id not in self.directory:
            return "not a known peer"
        if self.tls and self.check_identity and node_id not in identities:
            shown = ", ".join(sorted(identities)) or "no identity"
            return f"certificate is for {shown}"
        return None

    def reject(self, reason: str, detail: str, where: str = "") -> None:
        """Count a refused frame or connection and log it (throttled per reason)."""
        self.stats.rejected[reason] += 1
        assert self.throttle is not None
        if self.throttle.allow(reason):
            skipped = self.throttle.suppressed(reason)
            more = f" ({skipped} similar suppressed)" if skipped else ""
            log.warning("[%s] rejected (%s)%s: %s%s", self.node_id, reason, where, detail, more)
