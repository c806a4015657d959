"""ACP's adaptive host: one protocol instance per epoch, switched by a committed decision.

Epoch 0 runs :func:`~.choice.choose_protocol`'s pick. A switch is a command
ordered by the *current* protocol (:meth:`AdaptiveConsensus.switch_to`): when
a replica applies it, at the same position as every other replica, it takes
the Sessions snapshot there (state and client table), retires the old
instance, persists ``{epoch + 1, protocol, snapshot}`` and, once that is
durable, starts the new protocol from the snapshot. Nothing ordered after
the switch in the old epoch is applied (the old Sessions freeze); clients
retry with the same sequence numbers and the carried-over client table
applies each command once (see :mod:`.handover`).

A member that missed the switch (down, partitioned, or a follower that never
learnt the switch was committed because the leader stopped right after it)
still runs the old epoch. It notices when it hears a newer epoch (an
envelope or an :class:`~.messages.EpochHint`; a member entering an epoch
hints everyone, a member hearing an older epoch hints the sender) and
fetches the new epoch's start record (:class:`~.messages.EpochStart`). Any
one peer is trusted when the cluster is Raft and not Byzantine-tolerant;
otherwise f + 1 members must send the same record, so one of them is correct.

Mode-driven switching: with ``protocol: auto`` the host follows the network
mode it is told (:meth:`AdaptiveConsensus.on_mode`, or a detector given to
:meth:`AdaptiveConsensus.follow`): only the current leader/primary asks for a
switch, so a mode change costs one switch, not n.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec

from novacron.config import ConsensusConfig
from novacron.runtime import Runtime, WireError, codec

from ..api import ClientRequest, NullObserver, Observer, StateMachine
from .choice import PROTOCOLS, choose_protocol
from .epoch_runtime import EpochRuntime, drop_epoch
from .handover import EpochSessions
from .messages import (
    RESERVED_CLIENT,
    EpochEnvelope,
    EpochHint,
    EpochRecord,
    EpochStart,
    EpochStartRequest,
    SwitchProtocol,
    encode_switch,
)
from .observer import EpochObserver

log = logging.getLogger(__name__)

EPOCH_KEY = "acp/epoch"
#: envelopes of the epoch being started, kept until its instance exists
MAX_BUFFERED = 1024

_record_decoder = msgspec.msgpack.Decoder(EpochRecord)


@dataclass
class _Epoch:
    """One epoch's running instance and what it ended with."""

    record: EpochRecord
    view: EpochRuntime
    sessions: EpochSessions | None = None
    instance: Any = None
    #: set when the switch command is applied (before its index is known)
    switch: tuple[SwitchProtocol, bytes] | None = None


class AdaptiveConsensus:
    """This node's consensus member across protocol switches (see the module docstring).

    ``raft_settings`` / ``pbft_settings`` override the settings derived from ``config``
    (or from ``mode`` without one). PBFT epochs need a ``keyring``.
    """

    def __init__(
        self,
        rt: Runtime,
        members: Sequence[str],
        state_machine: StateMachine,
        *,
        config: ConsensusConfig | None = None,
        mode: str = "datacenter",
        keyring: Any = None,
        observer: Observer | None = None,
        raft_settings: Any = None,
        pbft_settings: Any = None,
        max_sessions: int = 10_000,
        tick_interval: float = 0.25,
    ) -> None:
        self.rt = rt
        self.members = tuple(members)
        self.config = config if config is not None else ConsensusConfig(protocol="auto")
        self.keyring = keyring
        self.observer: Observer = observer if observer is not None else NullObserver()
        self._state_machine = state_machine
        self._max_sessions = max_sessions
        self._mode = mode
        self._raft_settings = raft_settings
        self._pbft_settings = pbft_settings
        self.tick_interval = tick_interval
        self.stopped = False
        self.switches = 0  #: epochs this incarnation entered by applying a switch
        self.jumps = 0  #: epochs this incarnation entered by fetching a start record
        self._current: _Epoch | None = None
        self._starting = False
        self._waiters: list[Any] = []
        self._last_hint: dict[str, float] = {}
        self._last_request: dict[str, float] = {}
        self._ahead: dict[str, int] = {}  # peer -> the newer epoch it spoke
        self._votes: dict[tuple[int, bytes], set[str]] = {}
        self._switching: Any = None  # the mode-driven switch task
        self._buffered: list[tuple[str, EpochEnvelope]] = []  # for the epoch being started
        self._config_given = config is not None

        storage = rt.storage
        raw = storage.get(EPOCH_KEY)
        if raw is not None:
            record = _record_decoder.decode(raw)
        else:
            # Epoch 0 must be the same on every member: for ``auto``, pass the configured mode,
            # not a detected one. Durable with the instance's first sync (and if that is lost,
            # the same config gives the same choice again).
            record = EpochRecord(0, choose_protocol(self.config, mode))
            storage.put(EPOCH_KEY, msgspec.msgpack.encode(record))
        self._record = record
        self.epoch = record.epoch
        self._drop_old_epochs()
        rt.on_message(EpochEnvelope, self._on_envelope)
        rt.on_message(EpochHint, self._on_hint)
        rt.on_message(EpochStartRequest, self._on_start_request)
        rt.on_message(EpochStart, self._on_start)
        rt.on_message(ClientRequest, self._on_client_request)
        if record.epoch > 0:
            self.observer.restored(rt.node_id, record.base)
        self._start_instance(record)
        self._timer = rt.call_later(tick_interval, self._tick)

    # == introspection ============================================================================
    @property
    def protocol(self) -> str:
        """The protocol of the epoch this member is in (or entering)."""
        return self._record.protocol

    @property
    def instance(self) -> Any:
        """The running RaftNode or PBFTReplica (None while an epoch is starting)."""
        return self._current.instance if self._current is not None else None

    @property
    def state_machine(self) -> EpochSessions | None:
        return self._current.sessions if self._current is not None else None

    @property
    def running(self) -> bool:
        return self._current is not None and not self._current.view.closed

    @property
    def is_leader(self) -> bool:
        """Raft leader or PBFT primary of the running epoch."""
        inst = self.instance
        if inst is None or not self.running:
            return False
        if self._record.protocol == "raft":
            return bool(inst.is_leader)
        return inst.primary == self.rt.node_id and not inst.in_view_change

    # == switching ================================================================================
    async def switch_to(self, protocol: str, *, timeout: float = 30.0, retry: float = 0.5) -> int:
        """Have the cluster switch to ``protocol``; returns the epoch that runs it here.

        Any member may call it: the switch command goes to every member (the leader or
        primary orders it). Returns at once if the current epoch already runs ``protocol``;
        raises :class:`TimeoutError` if no switch was applied here within ``timeout``.
        """
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}: choose one of {PROTOCOLS}")
        if not self._allowed(protocol):
            raise ValueError("byzantine_tolerance is on: the cluster may only run PBFT")
        rt = self.rt
        deadline = rt.now() + timeout
        while True:
            current = self._current
            if self._record.protocol == protocol and current is not None and not current.view.closed:
                return self.epoch
            if rt.now() >= deadline:
                raise TimeoutError(f"{rt.node_id}: no switch to {protocol} within {timeout:g}s")
            if current is not None and not current.view.closed:
                target = self.epoch + 1
                op = encode_switch(SwitchProtocol(target, protocol))
                request = ClientRequest(f"{RESERVED_CLIENT}{rt.node_id}", target, op)
                current.view.deliver(rt.node_id, request)
                for member in self.members:
                    if member != rt.node_id:
                        current.view.send(member, request)
            await self._wait_epoch_change(min(retry, max(0.0, deadline - rt.now())))

    def on_mode(self, mode: str) -> None:
        """The network mode changed (a stable, node-level decision): switch if ``auto`` says so."""
        self._mode = str(mode)
        self._check_mode()

    def follow(self, detector: Any) -> Callable[[], None]:
        """Subscribe to a :class:`~novacron.mode.ModeDetector`'s node-level changes."""
        return detector.subscribe(lambda change: change.node_level and self.on_mode(change.new))

    def stop(self) -> None:
        """Stop the running instance and the host (a clean shutdown; a crash needs none)."""
        self.stopped = True
        self._timer.cancel()
        self._retire()

    def _allowed(self, protocol: str) -> bool:
        """Whether an epoch may run ``protocol``: a pure function of the config, so every
        replica accepts or ignores a switch command alike."""
        return protocol in PROTOCOLS and (protocol == "pbft" or not self.config.byzantine_tolerance)

    def _check_mode(self) -> None:
        if self.config.protocol != "auto" or self.stopped or self._switching is not None:
            return
        want = choose_protocol(self.config, self._mode)
        if want != self._record.protocol and self.is_leader:
            self._switching = self.rt.spawn(self._mode_switch(want))

    async def _mode_switch(self, protocol: str) -> None:
        try:
            await self.switch_to(protocol)
        except TimeoutError:
            log.warning("%s: mode-driven switch to %s timed out", self.rt.node_id, protocol)
        finally:
            self._switching = None

    async def _wait_epoch_change(self, delay: float) -> None:
        future = self.rt.create_future()
        self._waiters.append(future)
        handle = self.rt.call_later(delay, _resolve, future)
        await future
        handle.cancel()

    # -- an epoch ends ----------------------------------------------------------------------------
    def _switch_decided(self, epoch: _Epoch, switch: SwitchProtocol, snapshot: bytes) -> None:
        epoch.switch = (switch, snapshot)

    def _switch_applied(self, epoch: _Epoch, index: int) -> None:
        assert epoch.switch is not None
        switch, snapshot = epoch.switch
        log.info(
            "%s: epoch %d -> %d (%s) at index %d",
            self.rt.node_id,
            epoch.record.epoch,
            switch.epoch,
            switch.protocol,
            index,
        )
        self.switches += 1
        self._enter(EpochRecord(switch.epoch, switch.protocol, index, snapshot))

    def _enter(self, record: EpochRecord) -> None:
        """Leave the current epoch for ``record``'s; its instance starts once the record is durable."""
        if record.epoch <= self.epoch or self.stopped:
            return
        self._retire()
        self._record = record
        self.epoch = record.epoch
        self._ahead = {p: e for p, e in self._ahead.items() if e > record.epoch}
        self._votes = {k: v for k, v in self._votes.items() if k[0] > record.epoch}
        self._current = None
        self.rt.storage.put(EPOCH_KEY, msgspec.msgpack.encode(record))
        if not self._starting:
            self._starting = True
            self.rt.spawn(self._start_when_durable())

    def _retire(self) -> None:
        current = self._current
        if current is None:
            return
        current.view.close()
        if current.instance is not None:
            current.instance.stop()

    async def _start_when_durable(self) -> None:
        """Start the new epoch only once its record is synced: a member that acted in an epoch
        (voted, accepted) must never restart in the epoch before it."""
        try:
            while True:
                record = self._record
                await self.rt.storage.sync()
                if self.stopped:
                    return
                if self._record is record:
                    break
            self._drop_old_epochs()
            self._start_instance(record)
        finally:
            self._starting = False

    # -- an epoch starts --------------------------------------------------------------------------
    def _start_instance(self, record: EpochRecord) -> None:
        buffered, self._buffered = self._buffered, []
        epoch = _Epoch(record, EpochRuntime(self.rt, record.epoch))
        sessions = EpochSessions(
            self._state_machine,
            epoch=record.epoch,
            accept=lambda switch: self._allowed(switch.protocol),
            on_switch=partial(self._switch_decided, epoch),
            max_sessions=self._max_sessions,
        )
        if record.snapshot:
            sessions.restore(record.snapshot)
        epoch.sessions = sessions
        observer = EpochObserver(
            self.observer,
            epoch=record.epoch,
            base=record.base,
            sessions=sessions,
            on_switch_applied=partial(self._switch_applied, epoch),
        )
        self._current = epoch
        epoch.instance = self._build(record.protocol, epoch.view, sessions, observer)
        if epoch.view.closed:  # it replayed its own switch while starting
            epoch.instance.stop()
            return
        for src, envelope in buffered:
            self._on_envelope(src, envelope)
        if record.epoch > 0:
            for member in self.members:
                if member != self.rt.node_id:
                    self.rt.send(member, EpochHint(record.epoch))
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            _resolve(future)

    def _build(self, protocol: str, view: EpochRuntime, sessions: EpochSessions, observer: Observer) -> Any:
        if protocol == "raft":
            from ..raft import RaftNode, RaftSettings

            if self._raft_settings is not None:
                settings = self._raft_settings
            elif self._config_given:
                settings = RaftSettings.from_config(self.config)
            else:
                settings = RaftSettings.for_mode(self._mode)
            return RaftNode(view, self.members, sessions, settings, observer=observer)
        from ..pbft import PBFTReplica, PBFTSettings

        if self.keyring is None:
            raise ValueError("a PBFT epoch needs a keyring (its signing key, the members' public keys)")
        settings = self._pbft_settings or (
            PBFTSettings.from_config(self.config) if self._config_given else PBFTSettings.for_mode(self._mode)
        )
        replica = PBFTReplica(
            view,
            members=self.members,
            state_machine=sessions,
            settings=settings,
            keyring=self.keyring,
            observer=observer,
        )
        if replica.state_machine is not sessions:
            replica.stop()
            raise RuntimeError("this PBFTReplica wraps the Sessions it is given: it cannot take over state")
        return replica

    def _drop_old_epochs(self) -> None:
        storage = self.rt.storage
        old = {int(key.split("/")[1]) for key in storage.keys("epoch/")}
        for epoch in sorted(e for e in old if e < self.epoch):
            drop_epoch(storage, epoch)

    # == messages =================================================================================
    def _on_envelope(self, src: str, envelope: EpochEnvelope) -> None:
        if src not in self.members or self.stopped:
            return
        if envelope.epoch < self.epoch:
            self._hint(src)
        elif envelope.epoch > self.epoch:
            self._behind(src, envelope.epoch)
        elif self._current is None:  # starting this epoch: keep it for the instance
            if len(self._buffered) < MAX_BUFFERED:
                self._buffered.append((src, envelope))
        else:
            try:
                message = codec.decode(envelope.frame)
            except WireError as exc:
                log.warning("%s: dropped an undecodable envelope from %s: %s", self.rt.node_id, src, exc)
                return
            self._current.view.deliver(src, message)

    def _on_client_request(self, src: str, request: ClientRequest) -> None:
        if self.stopped or (request.client.startswith(RESERVED_CLIENT) and src not in self.members):
            return  # only members may ask for a switch
        if self._current is not None:
            self._current.view.deliver(src, request)

    def _on_hint(self, src: str, hint: EpochHint) -> None:
        if src not in self.members or self.stopped:
            return
        if hint.epoch > self.epoch:
            self._behind(src, hint.epoch)
        elif hint.epoch < self.epoch:
            self._hint(src)

    def _hint(self, dst: str) -> None:
        now = self.rt.now()
        if now - self._last_hint.get(dst, -1e9) >= self.tick_interval:
            self._last_hint[dst] = now
            self.rt.send(dst, EpochHint(self.epoch))

    def _behind(self, src: str, epoch: int) -> None:
        self._ahead[src] = max(epoch, self._ahead.get(src, 0))
        targets = [src] if self._needed() == 1 else [m for m in self.members if m != self.rt.node_id]
        for dst in targets:
            self._request_start(dst)

    def _request_start(self, dst: str) -> None:
        now = self.rt.now()
        if now - self._last_request.get(dst, -1e9) >= self.tick_interval:
            self._last_request[dst] = now
            self.rt.send(dst, EpochStartRequest(self.epoch))

    def _on_start_request(self, src: str, request: EpochStartRequest) -> None:
        if src in self.members and not self.stopped and request.epoch < self.epoch:
            self.rt.send(src, self._record.to_message())

    def _on_start(self, src: str, start: EpochStart) -> None:
        if src not in self.members or self.stopped or start.epoch <= self.epoch:
            return
        if not self._allowed(start.protocol):
            log.warning(
                "%s: %s offered epoch %d running %r: refused",
                self.rt.node_id,
                src,
                start.epoch,
                start.protocol,
            )
            return
        record = EpochRecord.from_message(start)
        voters = self._votes.setdefault((record.epoch, record.digest()), set())
        voters.add(src)
        if len(voters) >= self._needed(start.protocol):
            log.info(
                "%s: caught up from epoch %d to %d (%s)",
                self.rt.node_id,
                self.epoch,
                record.epoch,
                record.protocol,
            )
            self.jumps += 1
            self.observer.restored(self.rt.node_id, record.base)
            self._enter(record)

    def _needed(self, offered: str = "raft") -> int:
        """Matching start records to trust: one among trusted (Raft, crash-only) members, else f + 1."""
        f = (len(self.members) - 1) // 3
        byzantine = self.config.byzantine_tolerance or "pbft" in (self._record.protocol, offered)
        return f + 1 if byzantine else 1

    def _tick(self) -> None:
        if self.stopped:
            return
        self._timer = self.rt.call_later(self.tick_interval, self._tick)
        for peer, epoch in list(self._ahead.items()):
            if epoch > self.epoch:
                self._behind(peer, epoch)
        self._check_mode()

    def __repr__(self) -> str:
        return f"<AdaptiveConsensus {self.rt.node_id} epoch {self.epoch} {self._record.protocol}>"


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(None)
