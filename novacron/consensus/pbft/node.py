"""The PBFT replica on a runtime: the host around :class:`~.core.PBFTCore`.

The core decides; this class does the I/O: it registers the message
handlers, runs the view-change and status timers with ``rt.call_later``,
executes committed batches on :class:`~novacron.consensus.sessions.Sessions`
(exactly-once for retried requests), answers clients, makes the protocol
state durable before the messages that depend on it leave, and reports to
the observer.

Start it as an app::

    sim.start(lambda rt: PBFTReplica(rt, members=ids, state_machine=KVStore(),
                                     settings=PBFTSettings.for_mode("datacenter"),
                                     keyring=Keyring.generate(ids, seed=1)))

Clients: send ``ClientRequest`` to the primary (to every replica on a
retry) and accept a result once f + 1 replicas replied the same (seq,
result). Read-only requests are ordered like writes (no read-only
optimisation), so f + 1 replies are enough for them too.

Client authentication: a request is accepted from its client (the runtime
sender ``src`` must be the node the client id names, see
:func:`~novacron.consensus.api.client_node`) or relayed by a member. If
the keyring holds a public key for the client, the request must also carry
its Ed25519 signature in ``auth`` (:func:`~.auth.sign_request`) and every
replica checks it, also inside pre-prepares: then even a faulty primary
cannot forge that client's requests. Without a client key, a faulty primary
or relaying replica could inject requests in a client's name; deployments
that face Byzantine replicas should give clients keys.

Execution indexes (``observer.applied``): every request of every executed
batch gets the next integer, starting at 1, in sequence-number order and
batch order. A retried request that was ordered twice gets an index each
time (Sessions returns the first result for the second). The index reached
is part of each checkpoint, so it survives state transfer.

Durability (see *Durability* in :mod:`.core` for why): written to
``rt.storage`` kv are the view (and whether a view change is under way),
the stable checkpoint (with its proof and state), and per sequence number
above it the pre-prepare accepted in the current view and the latest
prepared certificate (``pbft/slot/<seq>``). Every processing round (one
input, :meth:`PBFTReplica._flush`) writes what changed; the round's
outgoing protocol messages are held until a sync covering those writes
completes (one sync for the round, and while one is in flight later rounds
queue behind it: group commit). Client replies are not held: a result is
only sent for a committed batch, which 2f + 1 replicas hold durably.

A restarted replica reloads all of it, resumes from the stored checkpoint
and re-executes from there (so it reports the same execution indexes for
the same sequence numbers), and its VIEW-CHANGEs carry its prepared
certificates. If it was changing views, it sends its VIEW-CHANGE for the
same view again (and, as that view's primary, still gathers them and sends
the NEW-VIEW); otherwise, if it was the primary of its stored view, it asks
for a view change instead of proposing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import msgspec

from novacron.consensus.api import (
    ClientReply,
    ClientRequest,
    Command,
    NullObserver,
    Observer,
    StateMachine,
    client_node,
)
from novacron.consensus.sessions import Sessions
from novacron.runtime import Cancellable, Message, Runtime

from .auth import AuthError, Keyring, request_body
from .byzantine import Byzantine
from .core import BecamePrimary, InstallState, Misbehaviour, PBFTCore
from .messages import CheckpointState, PBFTMessage, PreparedProof, Signed, decode_state, encode_state
from .settings import PBFTSettings

log = logging.getLogger(__name__)

VIEW_KEY = "pbft/view"
VIEW_CHANGE_KEY = "pbft/in-view-change"
CHECKPOINT_KEY = "pbft/checkpoint"
SLOT_PREFIX = "pbft/slot/"


def slot_key(seq: int) -> str:
    return f"{SLOT_PREFIX}{seq:020d}"


class _StoredCheckpoint(msgspec.Struct, array_like=True):
    seq: int
    digest: bytes
    proof: tuple[Signed, ...]
    state: bytes


class _StoredSlot(msgspec.Struct, array_like=True):
    """One sequence number's durable record (see :meth:`PBFTCore.durable_record`)."""

    view: int  #: view of the pre-prepare accepted here; -1: none
    pre_prepare: Signed | None  #: None if none, or if it is the certificate's own (stored once)
    cert: PreparedProof | None


class PBFTReplica:
    """One PBFT replica bound to a runtime (the same class for correct and Byzantine replicas)."""

    def __init__(
        self,
        rt: Runtime,
        *,
        members: Sequence[str],
        state_machine: StateMachine,
        keyring: Keyring,
        settings: PBFTSettings | None = None,
        observer: Observer | None = None,
        byzantine: Byzantine | str | None = None,
    ) -> None:
        self.rt = rt
        self.node_id = rt.node_id
        self.members = tuple(members)
        self.settings = settings or PBFTSettings()
        self.keyring = keyring
        self.observer: Observer = observer or NullObserver()
        #: a :class:`~.byzantine.Byzantine` behaviour (or its kind's name), None for a correct replica
        self.byzantine = Byzantine(byzantine) if isinstance(byzantine, str) else byzantine
        # A ready-made Sessions (handed over from another protocol, with its client table)
        # is used as it is; a bare state machine gets a fresh one.
        self.sessions = state_machine if isinstance(state_machine, Sessions) else Sessions(state_machine)
        self.exec_index = 0
        self.stopped = False

        # durability: writes are counted in generations; outgoing messages wait for theirs to sync
        self._written = 0  #: generation of the latest storage writes
        self._synced = 0  #: the latest generation known durable
        self._syncing = False
        self._held: list[tuple[int, list[tuple[str | None, Message]]]] = []
        self._stored_cp = 0  #: the stable checkpoint in storage; slot records at or below it are dropped

        storage = rt.storage
        stored_view = storage.get(VIEW_KEY)
        stored_cp = storage.get(CHECKPOINT_KEY)
        stable = None
        if stored_cp is not None:
            cp = msgspec.msgpack.decode(stored_cp, type=_StoredCheckpoint)
            stable = (cp.seq, cp.digest, cp.proof, cp.state)
            self._stored_cp = cp.seq
            self._restore(cp.state)
        view = int(stored_view.decode()) if stored_view is not None else 0
        was_changing_view = storage.get(VIEW_CHANGE_KEY) == b"1"
        self._stored_seqs: set[int] = set()
        records = []
        for key in storage.keys(SLOT_PREFIX):
            seq = int(key[len(SLOT_PREFIX) :])
            self._stored_seqs.add(seq)
            value = storage.get(key)
            assert value is not None
            rec = msgspec.msgpack.decode(value, type=_StoredSlot)
            pre_prepare = rec.pre_prepare
            if pre_prepare is None and rec.view >= 0 and rec.cert is not None:
                pre_prepare = rec.cert.pre_prepare
            records.append((seq, rec.view, pre_prepare, rec.cert))
        self.core = PBFTCore(
            self.node_id,
            self.members,
            self.settings,
            keyring,
            view=view,
            stable=stable,
            request_check=self._check_client_auth,
        )
        self.core.restore_log(records)
        self._timer: Cancellable | None = None
        self._timer_epoch = -1
        rt.on_message(PBFTMessage, self._on_message)
        rt.on_message(ClientRequest, self._on_request)
        if was_changing_view:
            # never back to the view we voted to leave, and not on to the next one either: as its
            # new primary we never sent its NEW-VIEW (that is synced first), the others wait for it
            self.core.start_view_change(view)
        elif stored_view is not None and self.core.primary == self.node_id:
            # hand over: our pending requests are gone and peers moved on while we were down (the
            # pre-prepares we sent are reloaded, so we could not reuse a number anyway)
            self.core.start_view_change(view + 1)
        elif self.core.primary == self.node_id:
            self.observer.leader(self.node_id, view)
        interval = self.settings.status_interval
        self._status_timer: Cancellable | None = rt.call_later(
            interval * (0.5 + rt.random.random()), self._tick
        )
        self._flush()

    # -- introspection (for checkers) --------------------------------------------------------------
    @property
    def view(self) -> int:
        return self.core.view

    @property
    def primary(self) -> str:
        return self.core.primary

    @property
    def last_executed(self) -> int:
        return self.core.last_executed

    @property
    def stable_checkpoint(self) -> int:
        return self.core.checkpoints.stable_seq

    @property
    def state_machine(self) -> Sessions:
        return self.sessions

    @property
    def is_byzantine(self) -> bool:
        return self.byzantine is not None

    @property
    def in_view_change(self) -> bool:
        return self.core.in_view_change

    @property
    def rejected(self) -> dict[str, int]:
        """Rejected messages by reason (forged, tampered, malformed, ...)."""
        return dict(self.core.rejected)

    def stop(self) -> None:
        """Cancel timers and ignore further messages."""
        self.stopped = True
        for timer in (self._timer, self._status_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._status_timer = None

    # -- sending: the one place every outgoing message passes (Byzantine behaviours hook here) -----
    def transmit(self, dst: str, message: Message) -> None:
        if self.byzantine is None:
            self.rt.send(dst, message)
            return
        for real_dst, real_message in self.byzantine.outgoing(self, dst, message):
            self.rt.send(real_dst, real_message)

    # -- inputs ------------------------------------------------------------------------------------
    def _on_message(self, src: str, message: PBFTMessage) -> None:
        if self.stopped:
            return
        if self.byzantine is not None:
            self.byzantine.incoming(self, src, message)
        before = sum(self.core.rejected.values())
        self.core.receive(src, message)
        if sum(self.core.rejected.values()) != before:
            log.debug("%s rejected a message from %s: %s", self.node_id, src, self.core.rejected)
        self._flush()

    def _on_request(self, src: str, request: ClientRequest) -> None:
        if self.stopped:
            return
        from_client = src not in self.members
        if from_client and src != client_node(request.client):
            self.core.rejected[f"request from {src} in the name of {request.client}"] += 1
            return
        cached = self.sessions.duplicate(Command(request.client, request.seq, request.op))
        if cached is not None:  # a retry of an executed request: answer it again
            self._reply(request, cached)
            return
        self.core.request(request, from_client=from_client)
        self._flush()

    def _check_client_auth(self, request: ClientRequest) -> str | None:
        if not self.keyring.knows(request.client):
            return None
        try:
            body = request_body(request.client, request.seq, request.op, request.read)
            self.core.auth.verify(request.client, body, request.auth)
        except AuthError as exc:
            return str(exc)
        return None

    def _on_timer(self, epoch: int) -> None:
        if self.stopped:
            return
        self._timer = None
        self.core.on_timer(epoch)
        self._flush()

    def _tick(self) -> None:
        if self.stopped:
            return
        self.core.tick()
        self._status_timer = self.rt.call_later(self.settings.status_interval, self._tick)
        self._flush()

    # -- outputs -----------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Move everything the core produced out: sends, events, executions, timer, storage."""
        core = self.core
        outgoing: list[tuple[str | None, Message]] = []
        while True:
            busy = False
            if core.outbox:
                outgoing += core.outbox
                core.outbox = []
                busy = True
            if core.events:
                events, core.events = core.events, []
                for event in events:
                    self._handle(event)
                busy = True
            executable = core.take_executable()
            if executable is not None:
                self._execute(executable)
                busy = True
            if not busy:
                break
        self._sync_timer()
        self._write_durable()
        if outgoing:
            if self._written == self._synced:
                self._send_all(outgoing)  # nothing they depend on is unsynced
            else:
                self._held.append((self._written, outgoing))
                if not self._syncing:
                    self._start_sync()

    def _send_all(self, outgoing: list[tuple[str | None, Message]]) -> None:
        for dst, message in outgoing:
            if dst is None:
                for member in self.members:
                    if member != self.node_id:
                        self.transmit(member, message)
            else:
                self.transmit(dst, message)

    def _handle(self, event: object) -> None:
        if isinstance(event, InstallState):
            self._restore(event.state)
            self.observer.restored(self.node_id, self.exec_index)
            self.core.forget_executed(
                lambda r: self.sessions.duplicate(Command(r.client, r.seq, r.op)) is not None
            )
            log.info("%s installed the stable checkpoint %d by state transfer", self.node_id, event.seq)
        elif isinstance(event, BecamePrimary):
            self.observer.leader(self.node_id, event.view)
        elif isinstance(event, Misbehaviour):
            log.debug("%s: %s misbehaved: %s", self.node_id, event.culprit, event.what)
            self.observer.misbehaviour(self.node_id, event.culprit, event.what)

    def _restore(self, state: bytes) -> None:
        checkpoint = decode_state(state)
        self.sessions.restore(checkpoint.snapshot)
        self.exec_index = checkpoint.exec_index

    def _execute(self, executable: Any) -> None:
        for request in executable.batch.requests:
            self.exec_index += 1
            command = Command(request.client, request.seq, request.op)
            result = self.sessions.apply(command)
            self.observer.applied(self.node_id, self.exec_index, command, result)
            self._reply(request, result)
        if executable.checkpoint:
            state = encode_state(CheckpointState(self.exec_index, self.sessions.snapshot()))
            self.core.checkpoint_reached(executable.seq, state)

    def _reply(self, request: ClientRequest, result: bytes) -> None:
        reply = ClientReply(
            request.client,
            request.seq,
            self.node_id,
            ok=True,
            result=result,
            leader=self.core.primary,
            view=self.core.view,
        )
        self.transmit(client_node(request.client), reply)

    def _sync_timer(self) -> None:
        want = self.core.timer
        if want is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        epoch, duration = want
        if epoch != self._timer_epoch or self._timer is None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_epoch = epoch
            self._timer = self.rt.call_later(duration, self._on_timer, epoch)

    def _write_durable(self) -> None:
        """Write what changed this round (records of :attr:`PBFTCore.dirty`, view, checkpoint)."""
        core = self.core
        if not core.dirty and not core.persist_needed:
            return
        storage = self.rt.storage
        for seq in sorted(core.dirty):
            if seq <= self._stored_cp:
                continue
            view, pre_prepare, cert = core.durable_record(seq)
            if pre_prepare is None and cert is None:
                continue  # below the stable checkpoint by now: kept until a stored checkpoint covers it
            if cert is not None and cert.pre_prepare == pre_prepare:
                pre_prepare = None
            storage.put(slot_key(seq), msgspec.msgpack.encode(_StoredSlot(view, pre_prepare, cert)))
            self._stored_seqs.add(seq)
        core.dirty.clear()
        if core.persist_needed:
            core.persist_needed = False
            storage.put(VIEW_KEY, str(core.view).encode())
            storage.put(VIEW_CHANGE_KEY, b"1" if core.in_view_change else b"0")
            cp = core.checkpoints
            state = cp.stable_state()
            if state is not None and cp.stable_seq > self._stored_cp:
                stored = _StoredCheckpoint(cp.stable_seq, cp.stable_digest, cp.stable_proof, state)
                storage.put(CHECKPOINT_KEY, msgspec.msgpack.encode(stored))
                self._stored_cp = cp.stable_seq
                # only now, in the same sync: records the stored checkpoint does not cover stay
                for seq in sorted(s for s in self._stored_seqs if s <= cp.stable_seq):
                    storage.delete(slot_key(seq))
                    self._stored_seqs.discard(seq)
        self._written += 1

    def _start_sync(self) -> None:
        """Sync everything written so far; the messages held for it leave when it completes."""
        self._syncing = True
        generation = self._written
        done = self.rt.storage.sync()
        is_done = getattr(done, "done", None)
        if callable(is_done) and is_done():  # already durable (a disk without latency)
            self._synced_up_to(generation)
        else:
            self.rt.spawn(self._await_sync(done, generation))

    async def _await_sync(self, done: Any, generation: int) -> None:
        await done
        self._synced_up_to(generation)

    def _synced_up_to(self, generation: int) -> None:
        self._syncing = False
        self._synced = max(self._synced, generation)
        while self._held and self._held[0][0] <= self._synced:
            _, outgoing = self._held.pop(0)
            if not self.stopped:
                self._send_all(outgoing)
        if self._held:
            self._start_sync()
