"""Seeds for each random stream of a simulation, derived from its one seed."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, label: str) -> int:
    """A 64-bit seed for one purpose, stable across Python versions and platforms.

    Each consumer (the network, each node incarnation, the nemesis...) gets
    its own stream, so adding a node or a fault does not shift the others.
    """
    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
