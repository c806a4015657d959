"""PBFT's messages: signed payloads inside one wire envelope.

Why a payload-inside-envelope layout: PBFT's view-change proofs embed
*other replicas'* messages (pre-prepares, prepares, checkpoints) and must
be checkable by a third replica. A signature is only checkable over the
exact bytes that were signed, so every protocol message is a payload
struct encoded once to ``body`` bytes; the signature (or MAC vector) covers
those bytes; and a proof embeds ``body`` + signature verbatim as a
:class:`Signed`. Nothing is ever re-encoded before a check.

The request batch of a pre-prepare travels beside the signed body in
``extra`` (the body carries its digest), as in the paper's
``<PRE-PREPARE, v, n, d>σp, m``: prepares and commits then name the batch
by digest only, and a digest can be compared without the batch.
"""

from __future__ import annotations

import hashlib
from typing import Union

import msgspec

from novacron.consensus.api import ClientRequest
from novacron.runtime import Message


class Signed(msgspec.Struct, frozen=True, array_like=True):
    """One authenticated payload as it can be embedded in a proof.

    ``sig`` is an Ed25519 signature over :data:`SIGN_DOMAIN` + ``body`` by
    ``sender``; ``extra`` is unauthenticated data bound by a digest inside
    the body (a pre-prepare's batch), empty otherwise.
    """

    sender: str
    body: bytes
    sig: bytes = b""
    extra: bytes = b""


class PBFTMessage(Message, tag="pbft"):
    """The one wire message of PBFT: a payload with its authentication.

    ``macs`` is the MAC authenticator (one HMAC-SHA256 per member, in member
    order) for payload kinds that MAC mode authenticates with MACs; empty
    otherwise. Authenticity comes from ``sig``/``macs`` under ``sender``'s
    keys, not from the transport, so replicas may relay each other's
    messages (a NEW-VIEW to a replica that missed it).
    """

    sender: str
    body: bytes
    sig: bytes = b""
    extra: bytes = b""
    macs: tuple[bytes, ...] = ()

    def signed(self) -> Signed:
        return Signed(self.sender, self.body, self.sig, self.extra)


# -- payloads (what ``body`` decodes to) -------------------------------------------------------


class PrePrepare(msgspec.Struct, tag="pbft-pre-prepare", frozen=True, array_like=True):
    """The primary of ``view`` binds sequence number ``seq`` to the batch with ``digest``."""

    view: int
    seq: int
    digest: bytes


class Prepare(msgspec.Struct, tag="pbft-prepare", frozen=True, array_like=True):
    """A backup accepted the pre-prepare for (view, seq, digest).

    ``pp_sig`` repeats the primary's signature on that pre-prepare. It costs
    64 bytes and buys equivocation *evidence*: a replica that sees a prepare
    for another digest than its own pre-prepare can tell, from whether the
    primary's signature on that other digest verifies, whether the primary
    equivocated or the backup lied; either way it holds signed proof.
    """

    view: int
    seq: int
    digest: bytes
    pp_sig: bytes = b""


class Commit(msgspec.Struct, tag="pbft-commit", frozen=True, array_like=True):
    view: int
    seq: int
    digest: bytes


class Checkpoint(msgspec.Struct, tag="pbft-checkpoint", frozen=True, array_like=True):
    """The sender's state after executing ``seq`` hashes to ``digest``."""

    seq: int
    digest: bytes


class PreparedProof(msgspec.Struct, frozen=True, array_like=True):
    """A prepared certificate: the pre-prepare (with its batch) and 2f matching prepares."""

    pre_prepare: Signed
    prepares: tuple[Signed, ...]


class ViewChange(msgspec.Struct, tag="pbft-view-change", frozen=True, array_like=True):
    """The sender moves to ``new_view``: its stable checkpoint (with 2f+1 signed CHECKPOINTs,
    empty for the initial checkpoint 0) and its prepared certificates above it (the P set)."""

    new_view: int
    stable_seq: int
    stable_digest: bytes
    checkpoint_proof: tuple[Signed, ...]
    prepared: tuple[PreparedProof, ...]


class NewView(msgspec.Struct, tag="pbft-new-view", frozen=True, array_like=True):
    """The new primary's proof that ``view`` may start: 2f+1 VIEW-CHANGEs and the O set of
    pre-prepares computed from them (each signed on its own, so it can appear in later proofs)."""

    view: int
    view_changes: tuple[Signed, ...]
    pre_prepares: tuple[Signed, ...]


class Status(msgspec.Struct, tag="pbft-status", frozen=True, array_like=True):
    """Periodic: where the sender is, so peers can retransmit what it lacks."""

    view: int
    in_view_change: bool
    stable_seq: int
    last_executed: int


class FetchState(msgspec.Struct, tag="pbft-fetch-state", frozen=True, array_like=True):
    """Ask for a stable checkpoint at or above ``seq`` (state transfer)."""

    seq: int


class StateReply(msgspec.Struct, tag="pbft-state", frozen=True, array_like=True):
    """A stable checkpoint's state with its proof; the proof, not the sender, makes it trustworthy."""

    seq: int
    digest: bytes
    proof: tuple[Signed, ...]
    state: bytes


Payload = Union[PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, Status, FetchState, StateReply]  # noqa: UP007

#: The kinds that can end up inside another replica's proof: always signed, in both auth modes.
PROVABLE = (PrePrepare, Prepare, Checkpoint, ViewChange, NewView)


class Batch(msgspec.Struct, frozen=True, array_like=True):
    """The requests ordered at one sequence number (empty: the null request)."""

    requests: tuple[ClientRequest, ...] = ()


class CheckpointState(msgspec.Struct, frozen=True, array_like=True):
    """What a checkpoint digest covers: the execution index reached and the Sessions snapshot."""

    exec_index: int
    snapshot: bytes


_encoder = msgspec.msgpack.Encoder()
_payload_decoder = msgspec.msgpack.Decoder(Payload)
_batch_decoder = msgspec.msgpack.Decoder(Batch)
_state_decoder = msgspec.msgpack.Decoder(CheckpointState)


def encode(obj: msgspec.Struct) -> bytes:
    return _encoder.encode(obj)


def decode_payload(body: bytes) -> Payload:
    """Decode a body; raises ``ValueError`` for bytes that are not a canonical payload.

    Canonical means re-encoding gives the same bytes: then a payload
    rebuilt from its fields (a pre-prepare from a prepare's view, seq and
    digest) has exactly the bytes its signer signed.
    """
    try:
        payload = _payload_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"undecodable payload: {exc}") from None
    if _encoder.encode(payload) != body:
        raise ValueError("non-canonical payload encoding")
    return payload


def encode_batch(requests: tuple[ClientRequest, ...] | list[ClientRequest]) -> bytes:
    return _encoder.encode(Batch(tuple(requests)))


def decode_batch(data: bytes) -> Batch:
    try:
        return _batch_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"undecodable batch: {exc}") from None


def encode_state(state: CheckpointState) -> bytes:
    return _encoder.encode(state)


def decode_state(data: bytes) -> CheckpointState:
    return _state_decoder.decode(data)


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


#: The digest of the null request (an empty batch), used in new-view O sets for gaps.
NULL_BATCH = encode_batch(())
NULL_DIGEST = digest(NULL_BATCH)
