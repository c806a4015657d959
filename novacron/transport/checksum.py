"""Chunk checksums, named on the wire so that two ends with different libraries agree.

CRC32C (the ``crc32c`` package, hardware accelerated, ~10 GB/s) is preferred;
zlib's CRC32 (~2-4 GB/s, always there) is the fallback. A receiver asked to
verify an algorithm it does not have says so instead of guessing.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

NONE, CRC32, CRC32C = 0, 1, 2

ALGORITHMS: dict[int, Callable[[bytes | memoryview], int]] = {CRC32: zlib.crc32}
try:
    from crc32c import crc32c as _crc32c

    ALGORITHMS[CRC32C] = _crc32c
except ImportError:  # pragma: no cover - depends on the environment
    pass

#: what this node uses when it sends
PREFERRED = CRC32C if CRC32C in ALGORITHMS else CRC32


def compute(algorithm: int, data: bytes | memoryview) -> int:
    try:
        return ALGORITHMS[algorithm](data)
    except KeyError:
        raise ValueError(f"checksum algorithm {algorithm} is not available on this node") from None
