"""What the adaptive host says on the wire and keeps on disk.

Every message a protocol instance sends travels inside an :class:`EpochEnvelope`
naming the epoch it belongs to, so an instance never sees a message of another
epoch: a Raft vote from before a switch cannot reach the PBFT replica after it.
The other three messages let a member that missed a switch (down, partitioned,
or simply behind when the old leader stopped) find out and fetch the state the
new epoch started from.
"""

from __future__ import annotations

import hashlib

import msgspec

from novacron.runtime import Message

#: Client ids starting with this are the host's own (switch commands); clients may not use them.
RESERVED_CLIENT = "__acp__/"
#: How a switch command's ``op`` starts: a byte no encoded KV operation (msgpack) starts with.
SWITCH_MAGIC = b"\x00acp-switch\x00"


class EpochEnvelope(Message, tag="acp-envelope"):
    """A protocol message of ``epoch``, encoded (the codec knows every message type)."""

    epoch: int
    frame: bytes


class EpochHint(Message, tag="acp-hint"):
    """ "I am in ``epoch``": sent to a peer heard speaking an older epoch, and to all on entering one."""

    epoch: int


class EpochStartRequest(Message, tag="acp-start-request"):
    """Asks a peer for the start of its current epoch (the asker is in an older one)."""

    epoch: int  #: the asker's epoch: answer only if yours is newer


class EpochStart(Message, tag="acp-start"):
    """The record an epoch started from (see :class:`EpochRecord`), sent to a laggard."""

    epoch: int
    protocol: str
    base: int
    snapshot: bytes


class SwitchProtocol(msgspec.Struct, array_like=True, frozen=True):
    """The committed decision "epoch ``epoch`` runs ``protocol``", ordered by the current epoch."""

    epoch: int
    protocol: str


class EpochRecord(msgspec.Struct, array_like=True, frozen=True):
    """What a member persists on entering an epoch (key ``acp/epoch``).

    ``snapshot`` is the :class:`~novacron.consensus.sessions.Sessions` snapshot (state and
    client table) at the switch command, empty for epoch 0 (the initial state). ``base`` is
    the global index of the switch command: indexes reported to the observer in this epoch are
    ``base + `` the protocol's own index, so they keep increasing across epochs.
    """

    epoch: int
    protocol: str
    base: int = 0
    snapshot: bytes = b""

    def digest(self) -> bytes:
        """What f + 1 members must agree on before a laggard trusts a fetched start."""
        return hashlib.sha256(msgspec.msgpack.encode(self)).digest()

    def to_message(self) -> EpochStart:
        return EpochStart(self.epoch, self.protocol, self.base, self.snapshot)

    @classmethod
    def from_message(cls, msg: EpochStart) -> EpochRecord:
        return cls(msg.epoch, msg.protocol, msg.base, msg.snapshot)


def encode_switch(switch: SwitchProtocol) -> bytes:
    return SWITCH_MAGIC + msgspec.msgpack.encode(switch)


def decode_switch(op: bytes) -> SwitchProtocol | None:
    """The switch an operation carries, or None if it is not a (well-formed) switch command."""
    if not op.startswith(SWITCH_MAGIC):
        return None
    try:
        return msgspec.msgpack.decode(op[len(SWITCH_MAGIC) :], type=SwitchProtocol)
    except msgspec.DecodeError:
        return None
