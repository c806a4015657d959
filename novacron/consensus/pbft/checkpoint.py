"""Checkpoints: agreeing on the state every K sequence numbers, so logs can be cut.

After executing a multiple of K a replica hashes its state (the Sessions
snapshot plus the execution index, see :class:`~.messages.CheckpointState`)
and broadcasts a signed CHECKPOINT. 2f + 1 matching ones make the
checkpoint *stable*: at least f + 1 correct replicas hold that state, so
the log below it is no longer needed (garbage collection), the low
watermark moves up to it, and the 2f + 1 signatures are a proof that a
lagging replica can check before it installs the state (state transfer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .log import Quorum
from .messages import Checkpoint, Signed


@dataclass
class CheckpointTracker:
    """Checkpoint votes above the stable checkpoint, and our own checkpoint states."""

    quorum: Quorum
    stable_seq: int = 0
    stable_digest: bytes = b""
    stable_proof: tuple[Signed, ...] = ()
    #: seq -> sender -> (digest, signed message)
    votes: dict[int, dict[str, tuple[bytes, Signed]]] = field(default_factory=dict)
    #: seq -> (digest, state bytes) for checkpoints we hold the state of (ours, or transferred)
    states: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)

    def add(self, sender: str, checkpoint: Checkpoint, signed: Signed) -> Signed | None:
        """Record a vote; returns the sender's earlier, *conflicting* vote if there is one."""
        votes = self.votes.setdefault(checkpoint.seq, {})
        previous = votes.get(sender)
        if previous is not None:
            return previous[1] if previous[0] != checkpoint.digest else None
        votes[sender] = (checkpoint.digest, signed)
        return None

    def certificate(self, seq: int, digest: bytes) -> tuple[Signed, ...] | None:
        """2f + 1 matching votes for (seq, digest), if we have them."""
        matching = tuple(s for d, s in self.votes.get(seq, {}).values() if d == digest)
        return matching[: self.quorum.strong] if len(matching) >= self.quorum.strong else None

    def newly_stable(self, seq: int) -> tuple[bytes, tuple[Signed, ...]] | None:
        """The digest and proof of ``seq`` if it just gathered 2f + 1 matching votes."""
        if seq <= self.stable_seq:
            return None
        for digest in {d for d, _ in self.votes.get(seq, {}).values()}:
            proof = self.certificate(seq, digest)
            if proof is not None:
                return digest, proof
        return None

    def stabilise(self, seq: int, digest: bytes, proof: tuple[Signed, ...]) -> None:
        """Make ``seq`` the stable checkpoint and forget everything older."""
        self.stable_seq, self.stable_digest, self.stable_proof = seq, digest, proof
        self.votes = {s: v for s, v in self.votes.items() if s > seq}
        self.states = {s: v for s, v in self.states.items() if s >= seq}

    def stable_state(self) -> bytes | None:
        """The state bytes of the stable checkpoint, if we hold them and they match its digest."""
        held = self.states.get(self.stable_seq)
        return held[1] if held is not None and held[0] == self.stable_digest else None
