"""Byzantine behaviours for fault campaigns: the same replica, lying on the way out.

A :class:`Byzantine` object plugged into :class:`~.node.PBFTReplica`
(``byzantine=Byzantine("equivocate")``) rewrites the replica's outgoing
messages at :meth:`PBFTReplica.transmit`, the one place all of them pass.
The replica's own logic stays correct, so a faulty replica still takes
part (the interesting case: a silent replica is easy to survive, a
half-honest one is not). Kinds:

``silent``
    sends nothing at all (a crashed or mute replica, or a primary that
    ignores clients).
``tamper``
    alters what it sends: digests of pre-prepares, prepares, commits and
    checkpoints, batch contents and client results. With ``resign=False``
    the original signature stays, so receivers reject the message as
    forged; with ``resign=True`` it signs the altered content, i.e. lies
    with a valid signature.
``equivocate``
    sends *different* signed messages to different replicas: as primary,
    another batch for the same sequence number to every other replica
    (by member index); as backup, prepares, commits and checkpoints with
    another digest. Correct replicas detect and report it.
``replay``
    keeps what it sent and received and, with each send, also resends an
    old message to a random member.

Every choice uses the replica's ``rt.random``, so runs replay exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import msgspec

from novacron.consensus.api import ClientReply
from novacron.runtime import Message

from .messages import (
    Checkpoint,
    Commit,
    PBFTMessage,
    Prepare,
    PrePrepare,
    decode_batch,
    decode_payload,
    digest,
    encode,
    encode_batch,
)

if TYPE_CHECKING:
    from .node import PBFTReplica

Kind = Literal["silent", "tamper", "equivocate", "replay"]
KINDS: tuple[str, ...] = ("silent", "tamper", "equivocate", "replay")


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 0xFF]) + value[1:] if value else b"\xff"


@dataclass
class Byzantine:
    """One faulty behaviour (see the module docstring)."""

    kind: Kind
    resign: bool = False  #: tamper: sign the altered content instead of keeping the old signature
    history: int = 256  #: replay: how many old messages to remember
    sent: int = 0
    altered: int = 0
    _seen: deque[Message] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown Byzantine behaviour {self.kind!r}; expected one of {KINDS}")
        self._seen = deque(maxlen=self.history)

    # -- hooks called by PBFTReplica ---------------------------------------------------------------
    def incoming(self, replica: PBFTReplica, src: str, message: Message) -> None:
        if self.kind == "replay":
            self._seen.append(message)

    def outgoing(self, replica: PBFTReplica, dst: str, message: Message) -> Iterable[tuple[str, Message]]:
        if self.kind == "silent":
            return []
        if self.kind == "replay":
            out = [(dst, message)]
            if self._seen:
                rng = replica.rt.random
                old = self._seen[rng.randrange(len(self._seen))]
                out.append((rng.choice(replica.members), old))
            self._seen.append(message)
            self.sent += len(out)
            return out
        if self.kind == "tamper":
            return [(dst, self._tamper(replica, message))]
        return [(dst, self._equivocate(replica, dst, message))]

    # -- behaviours --------------------------------------------------------------------------------
    def _seal(self, replica: PBFTReplica, original: PBFTMessage, payload: object, extra: bytes) -> Message:
        """Re-encode an altered payload; sign it (a lie) or keep the stale signature (a forgery)."""
        body = encode(payload)  # type: ignore[arg-type]
        self.altered += 1
        if self.resign or self.kind == "equivocate":
            auth = replica.core.auth
            if original.macs:
                return PBFTMessage(original.sender, body, b"", extra, auth.authenticator(body))
            return PBFTMessage(original.sender, body, auth.sign(body), extra, ())
        return PBFTMessage(original.sender, body, original.sig, extra, original.macs)

    def _tamper(self, replica: PBFTReplica, message: Message) -> Message:
        if isinstance(message, ClientReply):
            self.altered += 1
            return msgspec.structs.replace(message, result=b"tampered:" + message.result)
        if not isinstance(message, PBFTMessage) or message.sender != replica.node_id:
            return message
        payload = decode_payload(message.body)
        if isinstance(payload, PrePrepare):
            batch = decode_batch(message.extra)
            requests = tuple(msgspec.structs.replace(r, op=b"tampered") for r in batch.requests)
            extra = encode_batch(requests)
            return self._seal(replica, message, msgspec.structs.replace(payload, digest=digest(extra)), extra)
        if isinstance(payload, Prepare | Commit | Checkpoint):
            flipped = msgspec.structs.replace(payload, digest=_flip(payload.digest))
            return self._seal(replica, message, flipped, b"")
        return message

    def _equivocate(self, replica: PBFTReplica, dst: str, message: Message) -> Message:
        if not isinstance(message, PBFTMessage) or message.sender != replica.node_id:
            return message
        if replica.members.index(dst) % 2 == 0:
            return message  # even-indexed members get the honest version
        payload = decode_payload(message.body)
        if isinstance(payload, PrePrepare):
            requests = decode_batch(message.extra).requests
            if not requests:
                return message
            other = requests[::-1] if len(requests) > 1 else ()
            extra = encode_batch(other)
            return self._seal(replica, message, msgspec.structs.replace(payload, digest=digest(extra)), extra)
        if isinstance(payload, Prepare | Commit | Checkpoint):
            flipped = msgspec.structs.replace(payload, digest=_flip(payload.digest))
            return self._seal(replica, message, flipped, b"")
        return message
