"""The one error HDE raises for input it cannot trust."""

from __future__ import annotations


class EncodingError(ValueError):
    """A frame or delta that cannot be decoded into exactly the bytes that were encoded.

    Raised for wrong magic, unsupported versions, unknown codecs or frame kinds, truncated or
    over-long input, checksum mismatches, a delta applied to the wrong base, and output that would
    exceed the declared length. The message names what is wrong. Decoding never returns bytes
    that differ from what was encoded: it raises this instead.
    """
