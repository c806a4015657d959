"""View changes: the VIEW-CHANGE proof, its check, and the new primary's O set.

When backups suspect the primary of view v they move to v + 1 and send
VIEW-CHANGE with their stable checkpoint (and its proof) and, for every
sequence number above it that *prepared* at them, the prepared certificate
of the latest view it prepared in (the P set). The new primary gathers
2f + 1 of these and computes, exactly as in the paper (OSDI'99 §4.4):

* ``min_s``: the highest stable checkpoint among them;
* ``max_s``: the highest sequence number in any prepared certificate;
* for every n in (min_s, max_s]: a pre-prepare in the new view for the
  batch of the certificate for n with the highest view, or for the null
  request when no certificate names n.

Why this is safe: a request that committed at any correct replica prepared
at 2f + 1 replicas, f + 1 of them correct; any 2f + 1 VIEW-CHANGEs include
one of those, so its certificate reaches the O set (and no certificate of a
later view can name another batch for the same n). Backups recompute O from
the same VIEW-CHANGEs and accept NEW-VIEW only if it matches, so a faulty
new primary cannot drop or change a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .auth import Authenticator, AuthError
from .log import ProofError, Quorum, verify_checkpoint_proof, verify_prepared
from .messages import NULL_BATCH, NULL_DIGEST, Signed, ViewChange, decode_payload


@dataclass(frozen=True)
class CheckedViewChange:
    """A VIEW-CHANGE whose signature and every embedded proof checked out."""

    signed: Signed
    message: ViewChange
    #: seq -> (view it prepared in, digest, batch bytes)
    prepared: dict[int, tuple[int, bytes, bytes]]


@dataclass(frozen=True)
class NewViewPlan:
    """What a NEW-VIEW for ``view`` must contain, computed from its VIEW-CHANGEs."""

    view: int
    min_s: int
    stable_digest: bytes
    stable_proof: tuple[Signed, ...]
    #: (seq, digest, batch bytes) for every n in (min_s, max_s]
    entries: tuple[tuple[int, bytes, bytes], ...]


def verify_view_change(auth: Authenticator, quorum: Quorum, signed: Signed, window: int) -> CheckedViewChange:
    """Check a VIEW-CHANGE and all it embeds; raises :class:`ProofError` naming the defect."""
    try:
        vc = decode_payload(signed.body)
    except ValueError as exc:
        raise ProofError(str(exc)) from None
    if not isinstance(vc, ViewChange):
        raise ProofError(f"expected a view-change, got {type(vc).__name__}")
    if signed.sender not in quorum.members:
        raise ProofError(f"view-change from non-member {signed.sender!r}")
    try:
        auth.verify(signed.sender, signed.body, signed.sig)
    except AuthError as exc:
        raise ProofError(str(exc)) from None
    verify_checkpoint_proof(auth, quorum, vc.stable_seq, vc.stable_digest, vc.checkpoint_proof)
    prepared: dict[int, tuple[int, bytes, bytes]] = {}
    for proof in vc.prepared:
        pp, _ = verify_prepared(auth, quorum, proof)
        if pp.view >= vc.new_view:
            raise ProofError(f"view-change to {vc.new_view} carries a certificate of view {pp.view}")
        if not vc.stable_seq < pp.seq <= vc.stable_seq + window:
            raise ProofError(f"view-change certificate for {pp.seq} outside ({vc.stable_seq}, +{window}]")
        if pp.seq in prepared:
            raise ProofError(f"view-change has two certificates for {pp.seq}")
        prepared[pp.seq] = (pp.view, pp.digest, proof.pre_prepare.extra)
    return CheckedViewChange(signed, vc, prepared)


def compute_new_view(view: int, checked: Sequence[CheckedViewChange]) -> NewViewPlan:
    """The O set for ``view`` from (at least 2f + 1) checked VIEW-CHANGEs; deterministic."""
    best = max(checked, key=lambda c: (c.message.stable_seq, c.signed.sender))
    min_s = best.message.stable_seq
    max_s = max([s for c in checked for s in c.prepared] + [min_s])
    entries = []
    for seq in range(min_s + 1, max_s + 1):
        candidates = [c.prepared[seq] for c in checked if seq in c.prepared]
        if candidates:
            _, digest, batch = max(candidates, key=lambda x: (x[0], x[1]))
            entries.append((seq, digest, batch))
        else:
            entries.append((seq, NULL_DIGEST, NULL_BATCH))
    return NewViewPlan(view, min_s, best.message.stable_digest, best.message.checkpoint_proof, tuple(entries))
