"""The message log: one :class:`Slot` per sequence number, and quorum certificates.

Quorums: with n = 3f + 1 replicas any two sets of 2f + 1 share at least
f + 1 replicas, hence at least one correct one. That single fact is why a
request is *prepared* with a pre-prepare plus 2f matching prepares (2f + 1
replicas vouch for the (view, seq, digest) binding), *committed-local* with
2f + 1 commits, and why a checkpoint is *stable* with 2f + 1 matching
checkpoint messages. f + 1 matching replies are enough for a client: one of
them is from a correct replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .auth import Authenticator, AuthError
from .messages import (
    Batch,
    Checkpoint,
    Prepare,
    PreparedProof,
    PrePrepare,
    Signed,
    decode_batch,
    decode_payload,
)
from .messages import digest as sha256


class ProofError(ValueError):
    """An embedded certificate does not prove what it claims."""


@dataclass(frozen=True)
class Quorum:
    """Sizes derived from the membership; n must be exactly 3f + 1."""

    members: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.members)
        if len(set(self.members)) != n:
            raise ValueError(f"PBFT members listed twice: {list(self.members)}")
        if n < 4 or (n - 1) % 3:
            raise ValueError(
                f"PBFT needs n = 3f + 1 replicas with f >= 1 (4, 7, 10, ...), got n = {n}: "
                "fewer than 4 tolerates no Byzantine fault, and other sizes waste replicas "
                "(use the largest 3f + 1 not above what you have)"
            )

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def f(self) -> int:
        return (self.n - 1) // 3

    @property
    def strong(self) -> int:
        """2f + 1: commits, stable checkpoints, view changes in a new view."""
        return 2 * self.f + 1

    @property
    def weak(self) -> int:
        """f + 1: at least one correct replica among them."""
        return self.f + 1

    def primary(self, view: int) -> str:
        return self.members[view % self.n]


@dataclass
class Slot:
    """What one replica knows about one sequence number in its current view.

    Prepares and commits are kept per sender with their digest, whether or
    not they match the pre-prepare (which may arrive later), so a conflict
    is noticed whichever message comes first.
    """

    seq: int
    view: int
    pre_prepare: Signed | None = None
    digest: bytes | None = None
    batch: Batch | None = None
    prepares: dict[str, tuple[bytes, Signed]] = field(default_factory=dict)
    commits: dict[str, tuple[bytes, Signed]] = field(default_factory=dict)
    prepared: bool = False
    committed: bool = False

    def matching_prepares(self, primary: str) -> list[Signed]:
        return [s for r, (d, s) in sorted(self.prepares.items()) if d == self.digest and r != primary]

    def matching_commits(self) -> int:
        return sum(1 for d, _ in self.commits.values() if d == self.digest)


def verify_pre_prepare(auth: Authenticator, quorum: Quorum, signed: Signed) -> tuple[PrePrepare, Batch]:
    """A signed pre-prepare from its view's primary whose batch matches its digest."""
    try:
        payload = decode_payload(signed.body)
    except ValueError as exc:
        raise ProofError(str(exc)) from None
    if not isinstance(payload, PrePrepare):
        raise ProofError(f"expected a pre-prepare, got {type(payload).__name__}")
    if signed.sender != quorum.primary(payload.view):
        raise ProofError(f"pre-prepare for view {payload.view} from {signed.sender}, not its primary")
    if sha256(signed.extra) != payload.digest:
        raise ProofError(f"pre-prepare {payload.view}/{payload.seq}: batch does not match its digest")
    try:
        auth.verify(signed.sender, signed.body, signed.sig)
        batch = decode_batch(signed.extra)
    except (AuthError, ValueError) as exc:
        raise ProofError(str(exc)) from None
    return payload, batch


def verify_prepared(auth: Authenticator, quorum: Quorum, proof: PreparedProof) -> tuple[PrePrepare, Batch]:
    """Check a prepared certificate: a valid pre-prepare and 2f prepares from distinct backups."""
    pp, batch = verify_pre_prepare(auth, quorum, proof.pre_prepare)
    primary = quorum.primary(pp.view)
    senders: set[str] = set()
    for signed in proof.prepares:
        if signed.sender in senders or signed.sender == primary or signed.sender not in quorum.members:
            raise ProofError(
                f"prepared certificate {pp.view}/{pp.seq}: bad or repeated sender {signed.sender}"
            )
        try:
            prepare = decode_payload(signed.body)
        except ValueError as exc:
            raise ProofError(str(exc)) from None
        if not isinstance(prepare, Prepare) or (prepare.view, prepare.seq, prepare.digest) != (
            pp.view,
            pp.seq,
            pp.digest,
        ):
            raise ProofError(f"prepared certificate {pp.view}/{pp.seq}: a prepare does not match")
        try:
            auth.verify(signed.sender, signed.body, signed.sig)
        except AuthError as exc:
            raise ProofError(str(exc)) from None
        senders.add(signed.sender)
    if len(senders) < 2 * quorum.f:
        raise ProofError(
            f"prepared certificate {pp.view}/{pp.seq}: {len(senders)} prepares, need {2 * quorum.f}"
        )
    return pp, batch


def verify_checkpoint_proof(
    auth: Authenticator, quorum: Quorum, seq: int, digest: bytes, proof: Sequence[Signed]
) -> None:
    """2f + 1 distinct members signed CHECKPOINT(seq, digest); checkpoint 0 needs no proof."""
    if seq == 0:
        if digest or proof:
            raise ProofError("checkpoint 0 carries no digest and no proof")
        return
    senders: set[str] = set()
    for signed in proof:
        if signed.sender in senders or signed.sender not in quorum.members:
            raise ProofError(f"checkpoint proof for {seq}: bad or repeated sender {signed.sender}")
        try:
            payload = decode_payload(signed.body)
            auth.verify(signed.sender, signed.body, signed.sig)
        except (AuthError, ValueError) as exc:
            raise ProofError(f"checkpoint proof for {seq}: {exc}") from None
        if not isinstance(payload, Checkpoint) or payload.seq != seq or payload.digest != digest:
            raise ProofError(f"checkpoint proof for {seq}: a message is for another checkpoint")
        senders.add(signed.sender)
    if len(senders) < quorum.strong:
        raise ProofError(f"checkpoint proof for {seq}: {len(senders)} signatures, need {quorum.strong}")
