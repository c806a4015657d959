"""The PBFT replica as a pure state machine (no I/O, no clock).

Like etcd-raft's ``raft.Node``, :class:`PBFTCore` is fed inputs and
accumulates outputs; the host (:class:`~.node.PBFTReplica`) moves them
between the core and the world:

inputs
    :meth:`receive` (a wire message), :meth:`request` (a client request),
    :meth:`on_timer` (the view-change timer fired), :meth:`tick` (status
    period), :meth:`checkpoint_reached` (the host hashed its state).
outputs
    :attr:`outbox` (``(destination or None for every other member,
    message)``), :meth:`take_executable` (the next committed batch, in
    sequence order), :attr:`events` (misbehaviour, leadership, a state to
    install), :attr:`timer` (whether the view-change timer should run and
    its epoch), :attr:`persist_needed` and :attr:`dirty` (what must be made
    durable before the outbox may leave, see *Durability* below).

Being pure, the core is tested by feeding it messages by hand
(tests/consensus/pbft/test_core.py) and runs unchanged on both runtimes.

Protocol summary (Castro & Liskov, OSDI'99 / TOCS'02), where n = 3f + 1:

1. The primary of view v (``members[v % n]``) gives a batch of requests the
   next sequence number within the watermarks and broadcasts PRE-PREPARE.
2. Backups accept it (right view, in the window, no other digest for that
   number) and broadcast PREPARE. Pre-prepare + 2f matching prepares =
   *prepared*: then broadcast COMMIT.
3. 2f + 1 matching commits = *committed-local*; batches execute in sequence
   order and every replica answers the client.
4. Every K numbers a CHECKPOINT; 2f + 1 matching ones make it stable and
   cut the log (checkpoint.py). A replica behind a stable checkpoint fetches
   the state (state transfer).
5. A backup waiting too long for a request suspects the primary and starts
   a view change (viewchange.py); timeouts double for each view change in a
   row that brings no progress.

Durability (crash recovery). A replica that crashes and restarts must not
forget what it promised, or a few restarts add up to more than f faulty
replicas: if two of the 2f + 1 replicas that prepared a committed request
forget their prepared certificates, a later view change can see none of
them and give the sequence number to another request. So the host writes,
and syncs *before* any message of the same round leaves:

* per sequence number above the stable checkpoint (:meth:`durable_record`,
  listed in :attr:`dirty` when it changes): the pre-prepare accepted (or, as
  primary, sent) in the current view with its batch, which also pins this
  replica's own PREPARE, and its latest prepared certificate, which pins its
  own COMMIT and goes into its VIEW-CHANGE;
* the view and whether a view change is under way, and the stable
  checkpoint (:attr:`persist_needed`).

:meth:`restore_log` loads the records back after a restart.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from novacron.consensus.api import ClientRequest
from novacron.runtime import Message

from .auth import Authenticator, AuthError, Keyring
from .checkpoint import CheckpointTracker
from .log import ProofError, Quorum, Slot, verify_checkpoint_proof, verify_pre_prepare
from .messages import (
    PROVABLE,
    Batch,
    Checkpoint,
    Commit,
    FetchState,
    NewView,
    Payload,
    PBFTMessage,
    Prepare,
    PreparedProof,
    PrePrepare,
    Signed,
    StateReply,
    Status,
    ViewChange,
    decode_batch,
    decode_payload,
    encode,
    encode_batch,
)
from .messages import digest as sha256
from .settings import PBFTSettings
from .viewchange import CheckedViewChange, compute_new_view, verify_view_change

RequestKey = tuple[str, int]
#: Messages of a view we have not installed yet are kept (bounded) and replayed once we do.
FUTURE_BUFFER = 4096
#: Requests a replica keeps waiting for execution (beyond that, new ones are dropped; clients retry).
MAX_PENDING = 100_000


@dataclass(frozen=True)
class Executable:
    """A committed batch, handed to the host in sequence order."""

    seq: int
    view: int
    batch: Batch
    checkpoint: bool  #: the host must call :meth:`PBFTCore.checkpoint_reached` after executing it


@dataclass(frozen=True)
class Evidence:
    """Why we believe ``culprit`` is faulty, with the signed messages that show it."""

    culprit: str
    what: str
    messages: tuple[Signed, ...]


@dataclass(frozen=True)
class InstallState:
    """Event: replace the service state with ``state`` (a checked stable checkpoint)."""

    seq: int
    state: bytes


@dataclass(frozen=True)
class BecamePrimary:
    view: int


@dataclass(frozen=True)
class Misbehaviour:
    culprit: str
    what: str


Event = InstallState | BecamePrimary | Misbehaviour


def request_key(request: ClientRequest) -> RequestKey:
    return (request.client, request.seq)


class PBFTCore:
    """One replica's protocol state; see the module docstring for the interface."""

    def __init__(
        self,
        me: str,
        members: Sequence[str],
        settings: PBFTSettings,
        keyring: Keyring,
        *,
        view: int = 0,
        stable: tuple[int, bytes, tuple[Signed, ...], bytes] | None = None,
        request_check: Callable[[ClientRequest], str | None] | None = None,
    ) -> None:
        self.me = me
        self.quorum = Quorum(tuple(members))
        if me not in self.quorum.members:
            raise ValueError(f"{me!r} is not one of the PBFT members {list(members)}")
        self.settings = settings
        self.auth = Authenticator(keyring, me, self.quorum.members)
        #: extra validation of client requests (client signatures); returns a reason to reject
        self.request_check = request_check
        self.f = self.quorum.f
        self.view = view
        self.in_view_change = False
        self.checkpoints = CheckpointTracker(self.quorum)
        self.slots: dict[int, Slot] = {}
        #: the latest prepared certificate per sequence number (the P set of a VIEW-CHANGE)
        self.prepared_certs: dict[int, PreparedProof] = {}
        self.last_executed = 0
        self.next_seq = 1
        #: every request this replica knows of that has not executed yet (drives the view-change timer)
        self.pending: OrderedDict[RequestKey, ClientRequest] = OrderedDict()
        #: keys of requests in some slot above last_executed (the primary must not propose them again)
        self.inflight: set[RequestKey] = set()
        self.view_changes: dict[int, dict[str, CheckedViewChange]] = {}
        self.own_view_change: PBFTMessage | None = None
        self.new_view_message: PBFTMessage | None = None
        self._vc_timer_started_for = -1
        self.consecutive_view_changes = 0
        self._future: list[tuple[PBFTMessage, Payload]] = []
        self._peer_executed: dict[str, int] = {}
        self._fetching: tuple[int, str, int] | None = None  # (seq, peer, status ticks waited)
        self._timer_epoch = 0
        self._installing = False  # entering a new view: see _install_view
        self._stuck = False  # our view change timed out without a quorum: see on_timer
        self._timed_request: RequestKey | None = None
        #: (epoch, duration) while the view-change timer should run; a new epoch restarts it
        self.timer: tuple[int, float] | None = None
        self.outbox: list[tuple[str | None, Message]] = []
        self.events: list[Event] = []
        self.evidence: list[Evidence] = []
        self._reported: set[tuple[str, str]] = set()
        self.rejected: Counter[str] = Counter()
        self.persist_needed = False
        #: sequence numbers whose durable record (:meth:`durable_record`) changed since the host wrote it
        self.dirty: set[int] = set()
        if stable is not None:
            seq, digest, proof, state = stable
            self.checkpoints.stabilise(seq, digest, proof)
            self.checkpoints.states[seq] = (digest, state)
            self.last_executed = seq
            self.next_seq = seq + 1

    # -- introspection ----------------------------------------------------------------------------
    @property
    def primary(self) -> str:
        return self.quorum.primary(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.me and not self.in_view_change

    @property
    def low(self) -> int:
        return self.checkpoints.stable_seq

    @property
    def high(self) -> int:
        return self.checkpoints.stable_seq + self.settings.watermark_window

    def in_window(self, seq: int) -> bool:
        return self.low < seq <= self.high

    # -- durability (see the module docstring) ----------------------------------------------------
    def durable_record(self, seq: int) -> tuple[int, Signed | None, PreparedProof | None]:
        """What must survive a crash for ``seq``: (view of the pre-prepare, the pre-prepare with its
        batch, the latest prepared certificate); view -1 and None where there is none."""
        slot = self.slots.get(seq)
        pre_prepare = slot.pre_prepare if slot is not None else None
        view = slot.view if pre_prepare is not None and slot is not None else -1
        return view, pre_prepare, self.prepared_certs.get(seq)

    def restore_log(self, records: Iterable[tuple[int, int, Signed | None, PreparedProof | None]]) -> None:
        """Reload ``(seq, view, pre-prepare, prepared certificate)`` records written before a restart.

        Certificates come back whatever their view (they go into our VIEW-CHANGEs); a pre-prepare
        comes back as a slot only if it is of the current view, with our own PREPARE (and COMMIT,
        if it had prepared) rebuilt from it, so we answer exactly as before the crash. Call it right
        after construction, before any input.
        """
        for seq, view, signed, cert in sorted(records, key=lambda r: r[0]):
            if not self.in_window(seq):
                continue
            if cert is not None:
                self.prepared_certs[seq] = cert
            if signed is None or view != self.view:
                continue
            pp = decode_payload(signed.body)
            assert isinstance(pp, PrePrepare)
            slot = self._slot(seq)
            slot.pre_prepare, slot.digest, slot.batch = signed, pp.digest, decode_batch(signed.extra)
            self.inflight.update(request_key(r) for r in slot.batch.requests)
            primary = self.quorum.primary(view)
            if self.me == primary:
                self.next_seq = max(self.next_seq, seq + 1)
            else:
                prepare = self._make(Prepare(view, seq, pp.digest, pp_sig=signed.sig))
                slot.prepares[self.me] = (pp.digest, prepare.signed())
            if cert is not None and cert.pre_prepare == signed:
                for prepare_signed in cert.prepares:
                    slot.prepares.setdefault(prepare_signed.sender, (pp.digest, prepare_signed))
                slot.prepared = True
                commit = self._make(Commit(view, seq, pp.digest))
                slot.commits[self.me] = (pp.digest, commit.signed())

    # -- outputs -----------------------------------------------------------------------------------
    def _make(self, payload: Payload, extra: bytes = b"") -> PBFTMessage:
        """Encode and authenticate a payload: signed, or a MAC vector where the mode allows."""
        body = encode(payload)
        if self.settings.auth == "ed25519" or isinstance(payload, PROVABLE):
            return PBFTMessage(self.me, body, sig=self.auth.sign(body), extra=extra)
        return PBFTMessage(self.me, body, extra=extra, macs=self.auth.authenticator(body))

    def _broadcast(self, message: PBFTMessage) -> None:
        self.outbox.append((None, message))

    def _send(self, dst: str, message: PBFTMessage) -> None:
        if dst != self.me:
            self.outbox.append((dst, message))

    def _reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def _misbehaviour(self, culprit: str, what: str, *messages: Signed) -> None:
        if (culprit, what) in self._reported:
            return
        self._reported.add((culprit, what))
        self.evidence.append(Evidence(culprit, what, messages))
        self.events.append(Misbehaviour(culprit, what))

    def _restart_timer(self, duration: float) -> None:
        self._timer_epoch += 1
        self.timer = (self._timer_epoch, duration)

    def _update_request_timer(self, restart: bool = False) -> None:
        """Backups time the primary while requests wait (paper §4.4); the primary does not.

        The timer runs for the oldest waiting request and restarts only when *that* request
        executed, so a primary that orders everything but one request is still caught.
        """
        if self.in_view_change:
            return
        if self.pending and self.primary != self.me:
            oldest = next(iter(self.pending))
            if self.timer is None or (restart and oldest != self._timed_request):
                self._timed_request = oldest
                self._restart_timer(self._timeout())
        else:
            self.timer = None
            self._timed_request = None

    def _timeout(self) -> float:
        s = self.settings
        return min(
            s.view_change_timeout * 2 ** min(self.consecutive_view_changes, 20), s.max_view_change_timeout
        )

    # -- inputs: client requests -------------------------------------------------------------------
    def request(self, request: ClientRequest, *, from_client: bool) -> None:
        """A new (not yet executed) request arrived, from its client or relayed by a replica."""
        if self.request_check is not None:
            reason = self.request_check(request)
            if reason is not None:
                self._reject(f"client request: {reason}")
                return
        key = request_key(request)
        if key not in self.pending:
            if len(self.pending) >= MAX_PENDING:
                self._reject("too many pending requests")
                return
            self.pending[key] = request
        if self.is_primary:
            self._propose()
        elif not self.in_view_change:
            if from_client:  # relay to the primary, which may not have it (paper §4.1)
                self.outbox.append((self.primary, request))
            self._update_request_timer()

    def _propose(self) -> None:
        """Assign sequence numbers to waiting requests, a batch at a time, while the window allows."""
        s = self.settings
        if self._installing:
            return
        while self.is_primary and self.next_seq <= self.high:
            if self.next_seq - 1 - self.last_executed >= s.max_inflight_batches:
                return  # batch up what arrives meanwhile
            batch: list[ClientRequest] = []
            size = 0
            for key, req in self.pending.items():
                if key in self.inflight:
                    continue
                if batch and (len(batch) >= s.batch_max_requests or size + len(req.op) > s.batch_max_bytes):
                    break
                batch.append(req)
                size += len(req.op) + 32
            if not batch:
                return
            extra = encode_batch(batch)
            pp = PrePrepare(self.view, self.next_seq, sha256(extra))
            message = self._make(pp, extra)
            slot = self.slots[pp.seq] = Slot(pp.seq, self.view)
            slot.pre_prepare, slot.digest, slot.batch = message.signed(), pp.digest, Batch(tuple(batch))
            self.inflight.update(request_key(r) for r in batch)
            self.dirty.add(pp.seq)  # durable before it leaves: a restarted primary never reuses pp.seq
            self.next_seq += 1
            self._broadcast(message)

    # -- inputs: wire messages ---------------------------------------------------------------------
    def receive(self, src: str, message: PBFTMessage) -> None:
        """Authenticate a wire message and act on it; bad ones are counted in :attr:`rejected`."""
        try:
            payload = decode_payload(message.body)
        except ValueError as exc:
            self._reject(f"malformed: {exc}")
            return
        sender = message.sender
        if sender not in self.quorum.members or sender == self.me:
            self._reject(f"sender {sender!r} is not another member")
            return
        try:
            if self.settings.auth == "ed25519" or isinstance(payload, PROVABLE):
                self.auth.verify(sender, message.body, message.sig)
            else:
                self.auth.check_authenticator(sender, message.body, message.macs)
        except AuthError as exc:
            self._reject(f"{type(payload).__name__}: {exc}")
            return
        self._dispatch(message, payload)

    def _dispatch(self, message: PBFTMessage, payload: Payload) -> None:
        if isinstance(payload, PrePrepare | Prepare | Commit):
            if payload.view > self.view or (payload.view == self.view and self.in_view_change):
                if len(self._future) >= FUTURE_BUFFER:
                    self._future.pop(0)
                self._future.append((message, payload))
                return
            if payload.view < self.view or not self.in_window(payload.seq):
                return
            if isinstance(payload, PrePrepare):
                self._on_pre_prepare(message, payload)
            elif isinstance(payload, Prepare):
                self._on_prepare(message, payload)
            else:
                self._on_commit(message, payload)
        elif isinstance(payload, Checkpoint):
            self._on_checkpoint(message, payload)
        elif isinstance(payload, ViewChange):
            self._on_view_change(message, payload)
        elif isinstance(payload, NewView):
            self._on_new_view(message, payload)
        elif isinstance(payload, Status):
            self._on_status(message.sender, payload)
        elif isinstance(payload, FetchState):
            self._on_fetch_state(message.sender, payload)
        elif isinstance(payload, StateReply):
            self._on_state_reply(message.sender, payload)

    def _slot(self, seq: int) -> Slot:
        slot = self.slots.get(seq)
        if slot is None or slot.view != self.view:
            slot = self.slots[seq] = Slot(seq, self.view)
        return slot

    # -- normal case -------------------------------------------------------------------------------
    def _on_pre_prepare(self, message: PBFTMessage, pp: PrePrepare) -> None:
        if message.sender != self.primary:
            self._reject("pre-prepare from a replica that is not the primary")
            return
        if sha256(message.extra) != pp.digest:
            self._reject("pre-prepare batch does not match its digest")
            return
        try:
            batch = decode_batch(message.extra)
        except ValueError as exc:
            self._reject(f"pre-prepare: {exc}")
            return
        if self.request_check is not None:
            for req in batch.requests:
                reason = self.request_check(req)
                if reason is not None:
                    self._reject(f"pre-prepare carries a bad request: {reason}")
                    return
        slot = self._slot(pp.seq)
        if slot.pre_prepare is not None:
            if slot.digest != pp.digest:
                self._misbehaviour(
                    message.sender,
                    f"equivocation: two pre-prepares for view {pp.view} seq {pp.seq}",
                    slot.pre_prepare,
                    message.signed(),
                )
            return
        self._accept_pre_prepare(slot, message.signed(), pp, batch)

    def _accept_pre_prepare(self, slot: Slot, signed: Signed, pp: PrePrepare, batch: Batch) -> None:
        slot.pre_prepare, slot.digest, slot.batch = signed, pp.digest, batch
        self.dirty.add(pp.seq)  # it pins our PREPARE for (view, seq): never another digest after a restart
        if pp.seq > self.last_executed:
            self.inflight.update(request_key(r) for r in batch.requests)
        for sender, (digest, prepare) in list(slot.prepares.items()):
            if digest != pp.digest:
                self._prepare_conflict(slot, sender, prepare)
        if self.me != self.quorum.primary(pp.view):
            prepare_msg = self._make(Prepare(pp.view, pp.seq, pp.digest, pp_sig=signed.sig))
            slot.prepares[self.me] = (pp.digest, prepare_msg.signed())
            self._broadcast(prepare_msg)
        self._check_prepared(slot)

    def _prepare_conflict(self, slot: Slot, sender: str, prepare_signed: Signed) -> None:
        """A prepare names another digest than our pre-prepare: who lied? The prepare carries the
        primary's signature on its digest; if that verifies, the primary signed two digests."""
        prepare = decode_payload(prepare_signed.body)
        assert isinstance(prepare, Prepare) and slot.pre_prepare is not None
        primary = self.quorum.primary(prepare.view)
        other = Signed(primary, encode(PrePrepare(prepare.view, prepare.seq, prepare.digest)), prepare.pp_sig)
        if self.auth.valid(primary, other.body, other.sig):
            self._misbehaviour(
                primary,
                f"equivocation: two pre-prepares for view {prepare.view} seq {prepare.seq}",
                slot.pre_prepare,
                other,
            )
        else:
            self._misbehaviour(
                sender,
                f"prepare for a digest the primary never proposed (view {prepare.view} seq {prepare.seq})",
                slot.pre_prepare,
                prepare_signed,
            )

    def _on_prepare(self, message: PBFTMessage, prepare: Prepare) -> None:
        sender = message.sender
        if sender == self.primary:
            self._reject("prepare from the primary")
            return
        slot = self._slot(prepare.seq)
        previous = slot.prepares.get(sender)
        if previous is not None:
            if previous[0] != prepare.digest:
                self._misbehaviour(
                    sender,
                    f"equivocation: two prepares for view {prepare.view} seq {prepare.seq}",
                    previous[1],
                    message.signed(),
                )
            return
        slot.prepares[sender] = (prepare.digest, message.signed())
        if slot.digest is not None and prepare.digest != slot.digest:
            self._prepare_conflict(slot, sender, message.signed())
        self._check_prepared(slot)

    def _check_prepared(self, slot: Slot) -> None:
        if slot.prepared or slot.pre_prepare is None:
            return
        primary = self.quorum.primary(slot.view)
        matching = slot.matching_prepares(primary)
        if len(matching) < 2 * self.f:
            return
        slot.prepared = True
        self.prepared_certs[slot.seq] = PreparedProof(slot.pre_prepare, tuple(matching[: 2 * self.f]))
        self.dirty.add(slot.seq)  # durable before our COMMIT leaves, so our VIEW-CHANGEs always carry it
        assert slot.digest is not None
        commit = self._make(Commit(slot.view, slot.seq, slot.digest))
        slot.commits[self.me] = (slot.digest, commit.signed())
        self._broadcast(commit)
        self._check_committed(slot)

    def _on_commit(self, message: PBFTMessage, commit: Commit) -> None:
        slot = self._slot(commit.seq)
        previous = slot.commits.get(message.sender)
        if previous is not None:
            if previous[0] != commit.digest:
                self._misbehaviour(
                    message.sender,
                    f"equivocation: two commits for view {commit.view} seq {commit.seq}",
                    previous[1],
                    message.signed(),
                )
            return
        slot.commits[message.sender] = (commit.digest, message.signed())
        self._check_committed(slot)

    def _check_committed(self, slot: Slot) -> None:
        if slot.prepared and not slot.committed and slot.matching_commits() >= self.quorum.strong:
            slot.committed = True

    # -- execution ---------------------------------------------------------------------------------
    def take_executable(self) -> Executable | None:
        """The next committed batch in sequence order (and mark it executed), or None."""
        seq = self.last_executed + 1
        slot = self.slots.get(seq)
        if slot is None or not slot.committed or slot.batch is None:
            return None
        self.last_executed = seq
        keys = [request_key(r) for r in slot.batch.requests]
        for key in keys:
            self.pending.pop(key, None)
            self.inflight.discard(key)
        if keys and not self.in_view_change:
            self.consecutive_view_changes = 0  # progress: the next view change starts from the base timeout
            self._update_request_timer(restart=True)
        self.next_seq = max(self.next_seq, seq + 1)
        if self.is_primary:
            self._propose()
        return Executable(seq, slot.view, slot.batch, seq % self.settings.checkpoint_interval == 0)

    def forget_executed(self, executed: Callable[[ClientRequest], bool]) -> None:
        """Drop waiting requests the service state already covers (after a state transfer)."""
        for key in [k for k, r in self.pending.items() if executed(r)]:
            del self.pending[key]
        self._update_request_timer(restart=True)

    # -- checkpoints -------------------------------------------------------------------------------
    def checkpoint_reached(self, seq: int, state: bytes) -> None:
        """The host executed ``seq`` (a multiple of K) and its state is ``state``."""
        digest = sha256(state)
        self.checkpoints.states[seq] = (digest, state)
        message = self._make(Checkpoint(seq, digest))
        self._broadcast(message)
        self._add_checkpoint_vote(self.me, Checkpoint(seq, digest), message.signed())

    def _on_checkpoint(self, message: PBFTMessage, checkpoint: Checkpoint) -> None:
        if checkpoint.seq <= self.low or checkpoint.seq % self.settings.checkpoint_interval:
            return
        if checkpoint.seq > self.high + self.settings.watermark_window:
            return  # bounded memory against a faulty sender; a far-behind replica catches up by STATUS

        self._add_checkpoint_vote(message.sender, checkpoint, message.signed())

    def _add_checkpoint_vote(self, sender: str, checkpoint: Checkpoint, signed: Signed) -> None:
        conflict = self.checkpoints.add(sender, checkpoint, signed)
        if conflict is not None:
            self._misbehaviour(
                sender, f"equivocation: two checkpoints for seq {checkpoint.seq}", conflict, signed
            )
            return
        stable = self.checkpoints.newly_stable(checkpoint.seq)
        if stable is not None and not self._will_execute_up_to(checkpoint.seq):
            self._make_stable(checkpoint.seq, *stable)

    def _will_execute_up_to(self, seq: int) -> bool:
        """Whether everything up to ``seq`` is committed here but not executed yet: then executing
        is cheaper than fetching the state, and our own checkpoint re-checks stability."""
        if self.last_executed >= seq:
            return False
        slots = self.slots
        return all(s in slots and slots[s].committed for s in range(self.last_executed + 1, seq + 1))

    def _make_stable(self, seq: int, digest: bytes, proof: tuple[Signed, ...]) -> None:
        """Move the low watermark to ``seq`` and garbage-collect the log below it."""
        self.checkpoints.stabilise(seq, digest, proof)
        self.slots = {s: slot for s, slot in self.slots.items() if s > seq}
        self.prepared_certs = {s: c for s, c in self.prepared_certs.items() if s > seq}
        if self.last_executed >= seq:
            own = self.checkpoints.states.get(seq)
            if own is not None and own[0] != digest:
                # Our state differs from what 2f + 1 replicas agree on: we cannot be correct. Fetch it.
                self._reject("own checkpoint digest differs from the stable one")
                self._request_state(seq, [signed.sender for signed in proof])
            self.persist_needed = True
        else:
            self._request_state(seq, [signed.sender for signed in proof])
        self.next_seq = max(self.next_seq, seq + 1)
        if self.is_primary:
            self._propose()

    # -- state transfer ----------------------------------------------------------------------------
    def _request_state(self, seq: int, candidates: list[str]) -> None:
        if self._fetching is not None and self._fetching[0] >= seq:
            return
        others = [c for c in candidates if c != self.me]
        if not others:
            return
        peer = others[self.last_executed % len(others)]  # vary the peer across attempts
        self._fetching = (seq, peer, 0)
        self._send(peer, self._make(FetchState(seq)))

    def _on_fetch_state(self, sender: str, fetch: FetchState) -> None:
        state = self.checkpoints.stable_state()
        if state is None or self.checkpoints.stable_seq < fetch.seq:
            return
        cp = self.checkpoints
        self._send(sender, self._make(StateReply(cp.stable_seq, cp.stable_digest, cp.stable_proof, state)))

    def _on_state_reply(self, sender: str, reply: StateReply) -> None:
        if reply.seq <= self.last_executed or reply.seq % self.settings.checkpoint_interval:
            return
        if sha256(reply.state) != reply.digest:
            self._reject("state transfer: state does not match its digest")
            return
        try:
            verify_checkpoint_proof(self.auth, self.quorum, reply.seq, reply.digest, reply.proof)
        except ProofError as exc:
            self._reject(f"state transfer: {exc}")
            return
        self._fetching = None
        self.last_executed = reply.seq
        self.checkpoints.states[reply.seq] = (reply.digest, reply.state)
        if reply.seq > self.low:
            self._make_stable(reply.seq, reply.digest, reply.proof)
        self.persist_needed = True
        self.inflight = {
            request_key(r)
            for s, slot in self.slots.items()
            if s > reply.seq and slot.batch
            for r in slot.batch.requests
        }
        self.next_seq = max(self.next_seq, reply.seq + 1)
        self.events.append(InstallState(reply.seq, reply.state))

    # -- status: retransmission and catch-up -------------------------------------------------------
    def tick(self) -> None:
        """Called every ``status_interval``: advertise where we are; retry a stalled state fetch."""
        if self._fetching is not None:
            seq, peer, ticks = self._fetching
            self._fetching = None if ticks >= 4 else (seq, peer, ticks + 1)
        cp = self.checkpoints
        self._broadcast(self._make(Status(self.view, self.in_view_change, cp.stable_seq, self.last_executed)))

    def _on_status(self, sender: str, status: Status) -> None:
        previous = self._peer_executed.get(sender)
        self._peer_executed[sender] = status.last_executed
        behind_in_view = status.view < self.view or (status.view == self.view and status.in_view_change)
        if behind_in_view and not self.in_view_change and self.new_view_message is not None:
            self._send(sender, self.new_view_message)
        if (
            self.in_view_change
            and self.own_view_change is not None
            and (status.view < self.view or status.in_view_change)
        ):
            self._send(sender, self.own_view_change)
        if status.in_view_change and status.view < self.view:
            # It is stuck changing to a view we left: it may lack view-changes for it that we
            # hold (lost while partitioned). They are signed, so relay them; with 2f + 1 it
            # starts its timer and moves on to where we are (otherwise, with f replicas silent,
            # it and we could wait for each other forever).
            for checked in self.view_changes.get(status.view, {}).values():
                signed = checked.signed
                self._send(sender, PBFTMessage(signed.sender, signed.body, signed.sig, signed.extra))
        if status.stable_seq > self.last_executed:
            self._request_state(status.stable_seq, [sender])
        if status.stable_seq < self.low:  # help it stabilise: our proof is relayable (signed)
            for signed in self.checkpoints.stable_proof:
                msg = PBFTMessage(signed.sender, signed.body, signed.sig, signed.extra)
                self._send(sender, msg)
        stuck = previous is not None and previous == status.last_executed
        if (
            stuck
            and status.view == self.view
            and not status.in_view_change
            and not self.in_view_change
            and status.last_executed >= self.low
        ):
            self._retransmit(sender, status.last_executed)

    def _retransmit(self, dst: str, after: int) -> None:
        """Resend our own messages for the numbers a stalled peer has not executed."""
        for seq in sorted(s for s in self.slots if s > after):
            slot = self.slots[seq]
            if slot.view != self.view:
                continue
            if self.me == self.primary and slot.pre_prepare is not None:
                pp = slot.pre_prepare
                self._send(dst, PBFTMessage(pp.sender, pp.body, pp.sig, pp.extra))
            for table in (slot.prepares, slot.commits):
                own = table.get(self.me)
                if own is not None:
                    payload = decode_payload(own[1].body)
                    self._send(dst, self._make(payload))

    # -- view change -------------------------------------------------------------------------------
    def on_timer(self, epoch: int) -> None:
        """The view-change timer of ``epoch`` fired (stale epochs are ignored)."""
        if self.timer is None or self.timer[0] != epoch:
            return
        self.timer = None
        if self.in_view_change and len(self.view_changes.get(self.view, {})) < self.quorum.strong:
            # Our view change found no quorum in time. Moving on alone would only run ahead of
            # everyone; but if some replica already asks for a later view (it moved on while we
            # were cut off, say), follow it, or we and it may wait for each other forever.
            self._stuck = True
            self._follow_later_view()
            return
        self.consecutive_view_changes += 1
        self.start_view_change(self.view + 1)

    def _follow_later_view(self) -> None:
        later = [v for v, votes in self.view_changes.items() if v > self.view and votes]
        if later:
            self.consecutive_view_changes += 1
            self.start_view_change(min(later))

    def start_view_change(self, new_view: int) -> None:
        """Stop accepting normal-case messages and ask to move to ``new_view``."""
        if new_view <= self.view and self.in_view_change:
            return
        self.view = new_view
        self.in_view_change = True
        # A timer from the start too (the paper starts it once 2f + 1 joined): if no quorum
        # forms in time, on_timer lets this replica follow a later view others ask for.
        self._stuck = False
        self._restart_timer(self._timeout())
        self.persist_needed = True
        cp = self.checkpoints
        prepared = tuple(self.prepared_certs[s] for s in sorted(self.prepared_certs) if s > cp.stable_seq)
        vc = ViewChange(new_view, cp.stable_seq, cp.stable_digest, cp.stable_proof, prepared)
        message = self._make(vc)
        self.own_view_change = message
        self._broadcast(message)
        mine = {}
        for cert in prepared:
            pp = decode_payload(cert.pre_prepare.body)
            assert isinstance(pp, PrePrepare)
            mine[pp.seq] = (pp.view, pp.digest, cert.pre_prepare.extra)
        self.view_changes.setdefault(new_view, {})[self.me] = CheckedViewChange(message.signed(), vc, mine)
        self._after_view_change_vote(new_view)

    def _on_view_change(self, message: PBFTMessage, vc: ViewChange) -> None:
        if vc.new_view < self.view or (vc.new_view == self.view and not self.in_view_change):
            if self.new_view_message is not None and not self.in_view_change:
                self._send(message.sender, self.new_view_message)  # it is behind: show it the way
            return
        votes = self.view_changes.setdefault(vc.new_view, {})
        if message.sender in votes:
            return
        try:
            checked = verify_view_change(
                self.auth, self.quorum, message.signed(), self.settings.watermark_window
            )
        except ProofError as exc:
            self._reject(f"view-change: {exc}")
            return
        votes[message.sender] = checked
        if self._stuck and vc.new_view > self.view:
            self._follow_later_view()
            return
        # f + 1 replicas want a later view: at least one correct replica suspects the primary, join in.
        later = {r: v for v, vs in self.view_changes.items() if v > self.view for r in vs}
        if len(later) >= self.quorum.weak:
            self.start_view_change(
                min(v for v in self.view_changes if v > self.view and self.view_changes[v])
            )
            return
        self._after_view_change_vote(vc.new_view)

    def _after_view_change_vote(self, view: int) -> None:
        if view != self.view or not self.in_view_change:
            return
        votes = self.view_changes.get(view, {})
        if len(votes) < self.quorum.strong:
            return
        if self._vc_timer_started_for != view:  # 2f + 1 moved: give the new primary its time
            self._vc_timer_started_for = view
            self._restart_timer(self._timeout())
        if self.quorum.primary(view) == self.me and self.me in votes:
            self._send_new_view(view, votes)

    def _send_new_view(self, view: int, votes: dict[str, CheckedViewChange]) -> None:
        chosen = [votes[self.me]] + [votes[r] for r in sorted(votes) if r != self.me][
            : self.quorum.strong - 1
        ]
        plan = compute_new_view(view, chosen)
        pre_prepares = []
        for seq, digest, batch in plan.entries:
            pp = self._make(PrePrepare(view, seq, digest), batch)
            pre_prepares.append(pp.signed())
        nv = NewView(view, tuple(c.signed for c in chosen), tuple(pre_prepares))
        message = self._make(nv)
        self._broadcast(message)
        self._install_view(view, plan.min_s, plan.stable_digest, plan.stable_proof, pre_prepares, message)

    def _on_new_view(self, message: PBFTMessage, nv: NewView) -> None:
        if nv.view < self.view or (nv.view == self.view and not self.in_view_change):
            return
        if message.sender != self.quorum.primary(nv.view):
            self._reject("new-view from a replica that is not the new primary")
            return
        try:
            checked = []
            for signed in nv.view_changes:
                c = verify_view_change(self.auth, self.quorum, signed, self.settings.watermark_window)
                if c.message.new_view != nv.view:
                    raise ProofError(f"it carries a view-change for view {c.message.new_view}")
                checked.append(c)
            if len({c.signed.sender for c in checked}) != len(checked) or len(checked) < self.quorum.strong:
                raise ProofError("it needs 2f + 1 view-changes from distinct replicas")
            plan = compute_new_view(nv.view, checked)
            if len(nv.pre_prepares) != len(plan.entries):
                raise ProofError("its O set does not match the view-changes")
            for signed, (seq, digest, _) in zip(nv.pre_prepares, plan.entries, strict=True):
                pp, _ = verify_pre_prepare(self.auth, self.quorum, signed)
                if (pp.view, pp.seq, pp.digest) != (nv.view, seq, digest):
                    raise ProofError(f"its pre-prepare for {seq} does not match the view-changes")
        except ProofError as exc:
            self._reject(f"new-view: {exc}")
            return
        self._install_view(
            nv.view,
            plan.min_s,
            plan.stable_digest,
            plan.stable_proof,
            list(nv.pre_prepares),
            message,
        )

    def _install_view(
        self,
        view: int,
        min_s: int,
        stable_digest: bytes,
        stable_proof: tuple[Signed, ...],
        pre_prepares: list[Signed],
        message: PBFTMessage,
    ) -> None:
        """Enter ``view``: adopt its checkpoint, re-run the O set's pre-prepares, resume timing."""
        # No proposing until the O set has claimed its numbers (a stable checkpoint or an
        # execution on the way would otherwise let a new primary assign one of them twice:
        # a correct replica equivocating). The _propose() at the end picks up from there.
        self._installing = True
        try:
            self.view = view
            self.in_view_change = self._stuck = False
            self.new_view_message = message
            self.persist_needed = True
            self.timer = None
            self.view_changes = {v: vs for v, vs in self.view_changes.items() if v > view}
            if min_s > self.low:
                self._make_stable(min_s, stable_digest, stable_proof)  # fetches the state if we lack it
            self.slots = {s: slot for s, slot in self.slots.items() if s <= self.low}
            self.inflight = set()
            top = self.low
            for signed in pre_prepares:
                pp = decode_payload(signed.body)
                assert isinstance(pp, PrePrepare)
                top = max(top, pp.seq)
                if pp.seq <= self.low:
                    continue
                slot = self._slot(pp.seq)
                self._accept_pre_prepare(slot, signed, pp, decode_batch(signed.extra))
            self.next_seq = max(top, self.last_executed) + 1
        finally:
            self._installing = False
        if self.quorum.primary(view) == self.me:
            self.events.append(BecamePrimary(view))
            self._propose()
        else:
            for req in self.pending.values():
                if request_key(req) not in self.inflight:
                    self.outbox.append((self.primary, req))
        self._update_request_timer(restart=True)
        future, self._future = self._future, []
        for queued, payload in future:
            if payload.view >= view:  # type: ignore[union-attr]
                self._dispatch(queued, payload)
