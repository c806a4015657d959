"""What a key of the map may be: a non-empty string of at most ``MAX_KEY_BYTES`` in UTF-8."""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_KEY_BYTES = 1024

#: a key in a message: checked as it is decoded
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_BYTES)]


def check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"a key is a non-empty string, got {key!r}")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"a key is at most {MAX_KEY_BYTES} bytes, got {len(key.encode())}")
