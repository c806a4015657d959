"""Typed protocol messages and their wire codec.

Every message is a :class:`Message` subclass (a tagged ``msgspec.Struct``).
The simulator passes message objects by reference and charges the link for
:func:`encoded_size`; the real backend sends :meth:`MessageCodec.encode`
frames. Both use the same encoder, so a message that cannot be encoded fails
in the simulator too, rather than only in production.

The wire tag defaults to the class name; give a class an explicit
``tag="..."`` when two modules would otherwise clash. The codec refuses to
build when two message types share a tag, naming both.
"""

from __future__ import annotations

from typing import Union

import msgspec

#: Bumped whenever a Message subclass is defined, so the codec knows when to rebuild.
_generation = 0


class Message(msgspec.Struct, tag=True, frozen=True):
    """Base class of every protocol message (immutable: shared by reference)."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        global _generation
        _generation += 1


class WireError(ValueError):
    """A frame that does not decode to a known, valid message."""


def _all_message_types() -> list[type[Message]]:
    seen: list[type[Message]] = []
    stack = list(Message.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen


class MessageCodec:
    """msgpack encoding of any :class:`Message` subclass known at build time.

    Rebuilds its decoder when new message types have been defined since
    (a counter bumped by ``Message.__init_subclass__``), so importing a
    protocol module later is enough to make its messages decodable.
    """

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder | None = None
        self._known: int = -1

    def encode(self, message: Message) -> bytes:
        if not isinstance(message, Message):
            raise TypeError(f"not a novacron Message: {type(message).__name__}")
        return self._encoder.encode(message)

    def decode(self, data: bytes | memoryview) -> Message:
        decoder = self._decoder_for_current_types()
        try:
            return decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # ValidationError is a DecodeError
            raise WireError(f"undecodable message frame ({len(data)} bytes): {exc}") from None

    def _decoder_for_current_types(self) -> msgspec.msgpack.Decoder:
        if self._decoder is None or self._known != _generation:  # a new message type was defined
            types = _all_message_types()
            concrete = [t for t in types if not getattr(t, "__abstractmethods__", None)]
            _check_unique_tags(concrete)
            union = Union[tuple(concrete)] if concrete else Message  # noqa: UP007
            self._decoder = msgspec.msgpack.Decoder(union)
            self._known = _generation
        return self._decoder


def _check_unique_tags(types: list[type[Message]]) -> None:
    by_tag: dict[object, type[Message]] = {}
    for cls in types:
        tag = cls.__struct_config__.tag
        other = by_tag.setdefault(tag, cls)
        if other is not cls:
            raise TypeError(
                f"message types {other.__module__}.{other.__qualname__} and "
                f"{cls.__module__}.{cls.__qualname__} share the wire tag {tag!r}; "
                "give one of them an explicit tag=..."
            )


#: The process-wide codec (both runtimes use it).
codec = MessageCodec()

_size_encoder = msgspec.msgpack.Encoder()


def encoded_size(message: Message) -> int:
    """Bytes the message occupies on the wire (payload only, no framing)."""
    return len(_size_encoder.encode(message))
