"""The migration service of one node: migrates VMs away, and receives VMs migrated to it.

One :class:`Migrator` per node, like AMST: it owns the control-message handlers for both roles.
``await migrator.migrate(vm, peer, settings)`` runs a whole migration and returns its
:class:`~.report.MigrationReport` (or raises :class:`MigrationError`, which carries the report of
what happened before the failure; the source VM is left running). The destination side needs a
``vm_factory(begin) -> DestinationVM`` to build the VM that pages are written into; the
destination VMs it built stay in :attr:`Migrator.incoming` keyed by migration id.

Control messages may be lost (the simulator drops them on lossy links), so every request is
re-sent until answered and every handler is idempotent. Page data travels over AMST (reliable,
multi-stream); post-copy's urgent pages go on one dedicated stream (QEMU's "preempt" channel),
so a faulting vCPU never waits behind a background batch or a stream handshake.
"""

from __future__ import annotations

import functools
import itertools
import logging
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from novacron.encoding import CostModel
from novacron.runtime import (
    Message,
    Payload,
    Runtime,
    VirtualPayload,
    node_scoped_id,
    payload_size,
    wait_done,
)
from novacron.transport import AMST
from novacron.transport.amst import TransferRefused
from novacron.transport.policy import StreamController

from .driver import DestinationVM, ModelPages, RealPages, SourceVM
from .messages import (
    MigrationAbort,
    MigrationAborted,
    MigrationBegin,
    MigrationDone,
    MigrationGivenUp,
    MigrationReady,
    MigrationSwitch,
    MigrationSwitched,
    PageRequest,
)
from .pages import OFFLOAD_MIN_BYTES, BatchError, decode_real
from .report import MigrationReport
from .settings import MigrationSettings

log = logging.getLogger(__name__)

TAG = "mig"
#: AMST tag of page runs (batches that are nothing but consecutive raw pages, see EncodedBatch.run),
#: received straight into guest memory where the destination VM offers it.
RUN_TAG = "mig-run"
_RUN_META = struct.Struct("<QI")  # first page, count; then the migration id


def run_meta(migration: str, first: int, count: int) -> bytes:
    """What a page run's AMST transfer carries about itself (see :data:`RUN_TAG`)."""
    return _RUN_META.pack(first, count) + migration.encode()


def parse_run_meta(meta: bytes) -> tuple[str, int, int]:
    """``(migration, first, count)``; raises BatchError for meta that does not parse."""
    if len(meta) < _RUN_META.size:
        raise BatchError(f"page run meta of {len(meta)} bytes is shorter than {_RUN_META.size}")
    first, count = _RUN_META.unpack_from(meta)
    try:
        migration = meta[_RUN_META.size :].decode()
    except UnicodeDecodeError:
        raise BatchError("page run meta names no valid migration id") from None
    return migration, first, count


#: How often an unanswered control message is sent again.
RETRY_INTERVAL = 0.25
#: Copies of each message whose delay is downtime: the switch-over, sent while the guest is paused,
#: and the round-trip ping whose result the stop rule counts 1.5 times in every downtime estimate.
#: A lost switch-over message or reply used to cost a whole RETRY_INTERVAL of downtime (one of 8 VMs
#: evacuated over the simulated WAN link, 0.1% loss, was paused 0.408 s instead of 0.158 s, over
#: the 0.3 s limit), and a lost ping reply made the RTT look 0.25 s longer (the limit then looked
#: unreachable and the migration ran to its round limit, the guest throttled). With two copies each
#: way, both must be lost (about p^2). The copies go back to back: on a link whose losses come in
#: bursts they may be lost together, and the retry still covers that.
CRITICAL_COPIES = 2


class MigrationError(Exception):
    """A migration that did not complete; ``report`` says how far it got and why."""

    def __init__(self, message: str, report: MigrationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class MigrationInDoubt(MigrationError):
    """The switch-over was sent and no answer came: the destination may be running the VM.

    So the source's guest stays paused (two running copies of one VM would diverge, each taking
    writes the other never sees; QEMU's source likewise stays paused after an unconfirmed
    hand-over). The source keeps asking in the background: ``resolution`` completes with
    ``"destination"`` (it took over, and a post-copy VM has since received every page: discard
    the source's copy), ``"source"`` (it did not, and never will: the source's guest was
    resumed) or ``"unresolved"`` (no answer within ``MigrationSettings.resolve_timeout``, or an
    answer that cannot tell: a destination that restarted, or forgot the migration long after, may
    or may not have run the guest; it stays paused, for an operator to decide)."""

    def __init__(self, message: str, report: MigrationReport, resolution: Any) -> None:
        super().__init__(message, report)
        self.resolution = resolution


class UrgentPages(Message, tag="mig-urgent"):
    """Header of a record on the post-copy preempt stream: faulted pages, one batch."""

    migration: str


#: Finished incoming migrations remembered (without their VM) to answer repeated messages.
FINISHED_MEMORY = 256


@dataclass
class Incoming:
    """A VM arriving on this node.

    Once the migration is over (``state`` finished, aborted or failed) the record lets go of
    the VM (``vm`` is None): the VM belongs to the node from then on, or is discarded, and
    the record, kept to answer a repeated switch-over, must not keep 512 MiB of guest memory
    alive (it did, for every migration a node ever received)."""

    id: str
    src: str
    vm: DestinationVM | None
    begin: MigrationBegin
    state: str = "receiving"  # receiving, running (post-copy), then finished, aborted or failed
    switched: MigrationSwitched | None = None
    done_reply: MigrationDone | None = None  # post-copy: every page is here
    batches: int = 0
    rejected: list[str] = field(default_factory=list)
    pending_faults: set[int] = field(default_factory=set)
    retry: Any = None
    placed_runs: set[tuple[int, int]] = field(default_factory=set)  # page runs landing in place
    pages_in_place: int = 0  # pages received straight into guest memory (no copy)
    heard: float = 0.0  # when the source last said anything about this migration
    watchdog: Any = None  # gives up a migration whose source went quiet (Migrator.receive_timeout)

    @property
    def done(self) -> bool:
        return self.done_reply is not None


@dataclass(frozen=True)
class PeerRates:
    """What a migration measured towards a peer by the end of its round 0, for the next
    migration there to start from instead of guesses: its first batches of raw pages are sized by
    ``page_bytes_per_s`` (see ``SourceRun._run_batch_pages``) and its codec is chosen for
    ``link_bps`` (rather than the mode's nominal rate) until it measures the link itself.
    Kept per mode: a peer whose mode changed is a different link."""

    mode: str
    page_bytes_per_s: float
    link_bps: float


class Migrator:
    """Migration for one node (module docstring)."""

    def __init__(
        self,
        rt: Runtime,
        *,
        amst: AMST | None = None,
        vm_factory: Callable[[MigrationBegin], DestinationVM] | None = None,
        on_settled: Callable[[Incoming, DestinationVM], None] | None = None,
        mode_of: Callable[[str], str] | None = None,
        cost_model: CostModel | None = None,
        receive_timeout: float = 600.0,
    ) -> None:
        """``on_settled(incoming, vm)`` is called once per incoming migration when it is over
        (``incoming.state``: finished, aborted or failed), with the VM ``vm_factory`` built for
        it, which belongs to the callee from then on: to run (finished) or to discard. Without
        it, the VM is only dropped from the record (whoever built it may still hold it).

        ``receive_timeout``: an incoming migration not yet switched over whose source says
        nothing for this long (no batch, no control message) is aborted here, its VM and memory
        let go: its source crashed or gave up behind a partition and its abort never came. A
        switch-over arriving after that is refused, so the source resumes its own guest."""
        if not receive_timeout > 0:
            raise ValueError(f"receive_timeout must be > 0 seconds, got {receive_timeout}")
        self.receive_timeout = receive_timeout
        self.rt = rt
        self.amst = amst or AMST(rt, query_interval=0.5)
        self.vm_factory = vm_factory
        self.on_settled = on_settled
        self.mode_of = mode_of or self._mode_from_labels
        self.cost_model = cost_model or CostModel.load()
        self.incoming: dict[str, Incoming] = {}
        self._finished: deque[str] = deque()  # ids of finished records in self.incoming, oldest first
        self.batch_buffers: list[bytearray] = []  # reused by every migration from this node
        #: stream counts learnt per peer (DWCP settings: the mode's range, then hill climbing on
        #: each count's measured rate, see .steering)
        self.stream_counts = StreamController(1, 512, gain=0.15)
        #: per peer: what the last migration to it measured in round 0 (see PeerRates)
        self.peer_rates: dict[str, PeerRates] = {}
        self._ids = itertools.count(1)
        self._waiters: dict[tuple[type, str], Any] = {}
        self._sources: dict[str, Any] = {}  # migration id -> running source (post-copy faults)
        self.amst.on_receive_meta(TAG, self._on_batch)
        self.amst.on_placed(RUN_TAG, self._place_run, self._on_run)
        rt.on_stream(UrgentPages, self._on_urgent)
        for cls, handler in (
            (MigrationBegin, self._on_begin),
            (MigrationSwitch, self._on_switch),
            (MigrationAbort, self._on_abort),
            (MigrationReady, self._on_reply),
            (MigrationSwitched, self._on_reply),
            (MigrationDone, self._on_reply),
            (MigrationAborted, self._on_reply),
            (PageRequest, self._on_page_request),
            (MigrationGivenUp, self._on_given_up),
        ):
            rt.on_message(cls, handler)

    # -- source role --------------------------------------------------------------------------
    async def migrate(
        self, vm: SourceVM, peer: str, settings: MigrationSettings | None = None, *, meta: bytes = b""
    ) -> MigrationReport:
        """Move ``vm`` to ``peer``; see :mod:`.precopy` and :mod:`.postcopy` for the engines.
        ``meta`` reaches the destination's ``vm_factory`` in :attr:`MigrationBegin.meta`."""
        from .source import SourceRun  # the engines import this module's helpers

        settings = settings or MigrationSettings.dwcp()
        run = SourceRun(self, vm, peer, settings, node_scoped_id(self.rt, str(next(self._ids))), meta)
        self._sources[run.id] = run
        try:
            return await run.run()
        finally:
            if not run.resolving:  # (an in-doubt run still serves the destination's page faults)
                self._sources.pop(run.id, None)

    def _mode_from_labels(self, peer: str) -> str:
        """Without a mode detector: same site is a datacenter link, same region hybrid, else
        internet (what the detector would find on the topologies NovaCron builds); nodes without
        region labels are ``hybrid``, the data plane's assumption before it knows."""
        me, other = self.rt.info, self.rt.peer_info(peer)
        if not me.region or not other.region:
            return "hybrid"
        if me.site == other.site:
            return "datacenter"
        return "hybrid" if me.region and me.region == other.region else "internet"

    async def ask(
        self,
        peer: str,
        request: Message,
        reply_type: type,
        migration: str,
        timeout: float,
        copies: int = 1,
    ) -> Any:
        """Send ``request`` until a ``reply_type`` for ``migration`` arrives (or time runs out).

        ``copies``: how many times each attempt is sent, back to back. The receivers of these
        requests answer every copy (with the same reply), so the replies are duplicated too, and
        one loss each way no longer costs a :data:`RETRY_INTERVAL`; for the exchanges whose delay
        is downtime (see :data:`CRITICAL_COPIES`)."""
        rt = self.rt
        key = (reply_type, migration)
        future = self._waiters.get(key)
        if future is None or future.done():
            future = self._waiters[key] = rt.create_future()
        deadline = rt.now() + timeout
        try:
            while not future.done():
                for _ in range(copies):
                    rt.send(peer, request)
                if rt.now() >= deadline:
                    raise MigrationError(
                        f"{peer} did not answer {type(request).__name__} within {timeout:g}s"
                    )
                wait = min(RETRY_INTERVAL, max(0.0, deadline - rt.now())) or RETRY_INTERVAL
                await wait_done(rt, future, wait)
            return future.result()
        finally:
            self._waiters.pop(key, None)

    def expect(self, reply_type: type, migration: str) -> Any:
        """A future for a reply that comes unasked (post-copy's MigrationDone)."""
        key = (reply_type, migration)
        future = self._waiters.get(key)
        if future is None:
            future = self._waiters[key] = self.rt.create_future()
        return future

    def _on_reply(self, src: str, reply: Message) -> None:
        future = self._waiters.get((type(reply), reply.migration))  # type: ignore[attr-defined]
        if future is not None and not future.done():
            future.set_result(reply)

    def _on_given_up(self, src: str, msg: MigrationGivenUp) -> None:
        run = self._sources.get(msg.migration)
        if run is not None and run.peer == src:
            run.given_up = msg.state

    def _on_page_request(self, src: str, request: PageRequest) -> None:
        run = self._sources.get(request.migration)
        if run is not None:
            run.on_fault(np.frombuffer(request.ids, dtype="<u4").astype(np.int64))

    # -- destination role ---------------------------------------------------------------------
    def _on_begin(self, src: str, begin: MigrationBegin) -> None:
        known = self.incoming.get(begin.migration)
        if known is None:
            problem = self._refuse(begin)
            if problem:
                self.rt.send(src, MigrationReady(begin.migration, False, problem))
                return
            try:
                vm = self.vm_factory(begin)  # type: ignore[misc]
            except Exception as exc:  # a factory that cannot build this VM refuses the migration
                self.rt.send(src, MigrationReady(begin.migration, False, f"cannot create the VM: {exc}"))
                return
            for other in list(self.incoming.values()):  # a restarted source's earlier ones are over
                if other.src == src and other.state == "receiving" and other.begin.boot != begin.boot:
                    self._retire(other, "aborted")
            known = self.incoming[begin.migration] = Incoming(begin.migration, src, vm, begin)
            self._watch(known)
        self._heard(known)
        self.rt.send(src, MigrationReady(begin.migration, True))

    def _heard(self, incoming: Incoming) -> None:
        incoming.heard = self.rt.now()

    def _watch(self, incoming: Incoming) -> None:
        """Check, ``receive_timeout`` after the source was last heard, that it still speaks."""
        incoming.watchdog = None
        if incoming.state != "receiving":
            return
        heard = max(incoming.heard, self.amst.last_chunk_from.get(incoming.src, 0.0))
        quiet = self.rt.now() - heard
        if quiet >= self.receive_timeout * (1 - 1e-9):  # (the timer may land a rounding short)
            log.warning(
                "migration %s: nothing from %s for %.1fs: aborted here", incoming.id, incoming.src, quiet
            )
            self._retire(incoming, "aborted")
            return
        incoming.watchdog = self.rt.call_later(self.receive_timeout - quiet, self._watch, incoming)

    def _refuse(self, begin: MigrationBegin) -> str:
        if self.vm_factory is None:
            return f"{self.rt.node_id} accepts no migrations (no vm_factory)"
        if begin.pages < 1 or begin.page_size < 1:
            return f"invalid VM shape: {begin.pages} pages of {begin.page_size} bytes"
        return ""

    def _apply(self, incoming: Incoming, payload: Payload) -> None:
        vm = incoming.vm
        if isinstance(payload, VirtualPayload):
            if not isinstance(payload.meta, ModelPages):
                raise BatchError("a simulated batch must carry ModelPages")
            vm.apply(payload.meta)
            return
        for pages in decode_real(payload, vm.page_count, vm.page_size, vm.read_rows):  # type: ignore[attr-defined]
            if len(pages):
                vm.apply(pages)

    def _on_batch(self, src: str, meta: bytes, payload: Payload) -> Awaitable[None] | None:
        """A batch from AMST; its meta names the migration (a node may receive several at once)."""
        migration = meta.decode(errors="replace")
        incoming = self.incoming.get(migration)
        if incoming is None or incoming.src != src or incoming.state not in ("receiving", "running"):
            raise TransferRefused(_not_in_progress(migration, incoming))  # the source stops sending
        self._heard(incoming)
        return self._take_batch(incoming, src, payload)

    def _take_batch(self, incoming: Incoming, src: str, payload: Payload) -> Awaitable[None] | None:
        """Real pages are decoded and written (see _take_real_batch); AMST holds the payload
        until that is done, and only then tells the source the batch arrived."""
        if isinstance(payload, VirtualPayload):
            try:
                self._apply(incoming, payload)
            except BatchError as exc:
                self._reject_batch(incoming, src, exc)
            else:
                self._accept_batch(incoming)
            return None
        apply = functools.partial(self._apply, incoming, payload)
        return self._take_real_batch(incoming, src, apply, payload_size(payload))

    def _place_run(self, src: str, size: int, meta: bytes) -> memoryview | None:
        """Where a page run lands: straight in the destination VM's memory, if it offers it."""
        try:
            migration, first, count = parse_run_meta(meta)
        except BatchError:
            return None  # _on_run says why
        incoming = self.incoming.get(migration)
        if incoming is None or incoming.src != src or incoming.state != "receiving":
            return None
        self._heard(incoming)  # (a long run on a slow link must not look like a silent source)
        if size != count * incoming.vm.page_size or first + count > incoming.vm.page_count:
            return None
        where = incoming.vm.memory(first, count)
        if where is not None:
            incoming.placed_runs.add((first, count))
        return where

    def _on_run(self, src: str, meta: bytes, payload: Payload) -> Awaitable[None] | None:
        """A page run is in: written in place already, or to apply as a batch of full pages."""
        try:
            migration, first, count = parse_run_meta(meta)
        except BatchError as exc:
            log.error("dropping a page run from %s: %s", src, exc)
            return None
        incoming = self.incoming.get(migration)
        if incoming is None or incoming.src != src or incoming.state not in ("receiving", "running"):
            raise TransferRefused(_not_in_progress(migration, incoming))
        self._heard(incoming)
        vm = incoming.vm
        if isinstance(payload, VirtualPayload):
            return self._take_batch(incoming, src, payload)  # (its meta holds the simulated pages)
        if (first, count) in incoming.placed_runs:
            incoming.placed_runs.discard((first, count))
            vm.arrived(first, count)
            incoming.pages_in_place += count
            self._accept_batch(incoming)
            return None
        if payload_size(payload) != count * vm.page_size or first + count > vm.page_count:
            self._reject_batch(incoming, src, BatchError(f"page run {first}+{count} does not fit the VM"))
            return None
        ids = np.arange(first, first + count, dtype=np.int64)
        rows = np.frombuffer(payload, np.uint8).reshape(count, vm.page_size)
        apply = functools.partial(vm.apply, RealPages(ids, rows))
        return self._take_real_batch(incoming, src, apply, payload_size(payload))

    def _take_real_batch(
        self, incoming: Incoming, src: str, apply: Callable[[], None], nbytes: int
    ) -> Awaitable[None] | None:
        """Decode and write a batch, then account for it on the loop. A big one goes to a
        worker thread (the copies into guest memory then use another core while the loop
        keeps receiving); a small one is done here (see OFFLOAD_MIN_BYTES)."""
        if nbytes >= OFFLOAD_MIN_BYTES:
            return self._take_offloaded(incoming, src, apply)
        self._settle(incoming, src, _attempt(apply))
        return None

    async def _take_offloaded(self, incoming: Incoming, src: str, apply: Callable[[], None]) -> None:
        self._settle(incoming, src, await self.rt.offload(_attempt, apply))

    def _settle(self, incoming: Incoming, src: str, error: BatchError | None) -> None:
        if error is None:
            self._accept_batch(incoming)
        else:
            self._reject_batch(incoming, src, error)

    def _accept_batch(self, incoming: Incoming) -> None:
        incoming.batches += 1
        self.note_pages_arrived(incoming)

    @staticmethod
    def _reject_batch(incoming: Incoming, src: str, exc: BatchError) -> None:
        # Keep running; the source learns at switch-over (digest mismatch) and fails cleanly.
        incoming.rejected.append(str(exc))
        log.error("migration %s: rejected a batch from %s: %s", incoming.id, src, exc)

    def _on_urgent(self, src: str, header: UrgentPages, data: Payload) -> None:
        incoming = self.incoming.get(header.migration)
        if incoming is not None and incoming.state == "running":
            try:
                self._apply(incoming, data)
                self.note_pages_arrived(incoming)
            except BatchError as exc:
                incoming.rejected.append(str(exc))

    def _on_switch(self, src: str, switch: MigrationSwitch) -> None:
        incoming = self.incoming.get(switch.migration)
        if incoming is None:
            unknown = "unknown migration (this node restarted since, or forgot it long ago)"
            self.rt.send(src, MigrationSwitched(switch.migration, False, unknown, known=False))
            return
        self._heard(incoming)
        if incoming.switched is None:
            incoming.switched = self._switch(incoming, switch)
            if incoming.state in ("finished", "failed", "aborted"):
                self._retire(incoming, incoming.state)
        self.rt.send(src, incoming.switched)
        if incoming.done_reply is not None:  # post-copy finished: say so again (it may be lost)
            self.rt.send(src, incoming.done_reply)
        self._tell_if_given_up(incoming)

    def _tell_if_given_up(self, incoming: Incoming) -> None:
        """A migration given up here after the switch-over: the source must hear it (its copy is
        stale, see MigrationGivenUp)."""
        if incoming.state in ("failed", "aborted") and incoming.switched is not None and incoming.switched.ok:
            self.rt.send(incoming.src, MigrationGivenUp(incoming.id, incoming.state))

    def _switch(self, incoming: Incoming, switch: MigrationSwitch) -> MigrationSwitched:
        vm = incoming.vm
        if incoming.state != "receiving" or vm is None:
            return MigrationSwitched(switch.migration, False, f"the migration is {incoming.state}")
        if incoming.rejected:
            incoming.state = "failed"
            return MigrationSwitched(switch.migration, False, f"rejected batches: {incoming.rejected[0]}")
        if switch.postcopy:
            bitmap = np.unpackbits(np.frombuffer(switch.missing, np.uint8), count=vm.page_count).astype(bool)
            incoming.state = "running"
            vm.start_postcopy(np.flatnonzero(bitmap), lambda ids: self._fault(incoming, ids))
            if vm.missing_count() == 0:
                self._finish_postcopy(incoming)
            return MigrationSwitched(switch.migration, True)
        if switch.digest and vm.digest() != switch.digest:
            incoming.state = "failed"
            return MigrationSwitched(switch.migration, False, "memory digest differs from the source's")
        vm.resume()
        incoming.state = "finished"
        return MigrationSwitched(switch.migration, True)

    def _fault(self, incoming: Incoming, ids: np.ndarray) -> None:
        """The guest wants pages that are not here: ask the source, and ask again until they come."""
        incoming.pending_faults.update(int(i) for i in ids)
        self._request_faults(incoming)

    def _request_faults(self, incoming: Incoming) -> None:
        vm = incoming.vm
        if vm is None or incoming.state != "running":
            return
        wanted = np.fromiter(incoming.pending_faults, dtype=np.int64, count=len(incoming.pending_faults))
        wanted = wanted[~vm.present[wanted]] if len(wanted) else wanted  # type: ignore[attr-defined]
        incoming.pending_faults = set(int(i) for i in wanted)
        if incoming.retry is not None:
            incoming.retry.cancel()
            incoming.retry = None
        if not len(wanted) or incoming.state != "running":
            return
        self.rt.send(incoming.src, PageRequest(incoming.id, wanted.astype("<u4").tobytes()))
        incoming.retry = self.rt.call_later(4 * RETRY_INTERVAL, self._request_faults, incoming)

    def note_pages_arrived(self, incoming: Incoming) -> None:
        if incoming.state == "running" and incoming.vm.missing_count() == 0:
            self._finish_postcopy(incoming)

    def _finish_postcopy(self, incoming: Incoming) -> None:
        if incoming.done_reply is None and incoming.vm is not None:
            stats = incoming.vm.stats()
            faults, stalled = int(stats.get("faults", 0)), float(stats.get("stalled_s", 0.0))
            incoming.done_reply = MigrationDone(incoming.id, faults, stalled)
            self._retire(incoming, "finished")
        if incoming.done_reply is not None:
            self.rt.send(incoming.src, incoming.done_reply)

    def _retire(self, incoming: Incoming, state: str) -> None:
        """The migration is over: keep its record (answers to repeats), not its VM; forget
        the oldest records beyond FINISHED_MEMORY."""
        vm = incoming.vm
        if vm is None:
            return  # retired already
        incoming.state, incoming.vm = state, None
        if self.on_settled is not None:
            try:
                self.on_settled(incoming, vm)
            except Exception:  # the host's bug must not break the migration protocol's answers
                log.exception("on_settled failed for migration %s", incoming.id)
        for timer in (incoming.retry, incoming.watchdog):
            if timer is not None:
                timer.cancel()
        incoming.retry = incoming.watchdog = None
        self._tell_if_given_up(incoming)
        self._finished.append(incoming.id)
        while len(self._finished) > FINISHED_MEMORY:
            self.incoming.pop(self._finished.popleft(), None)

    def abandon(self, migration: str) -> None:
        """Give up an incoming migration here (an operator stopping a post-copy guest whose
        source is gone with the pages it still lacks); its VM goes to ``on_settled`` as failed."""
        incoming = self.incoming.get(migration)
        if incoming is not None:
            log.warning("migration %s from %s abandoned here (%s)", migration, incoming.src, incoming.state)
            self._retire(incoming, "failed")

    def _on_abort(self, src: str, abort: MigrationAbort) -> None:
        incoming = self.incoming.get(abort.migration)
        if incoming is not None and incoming.src == src and incoming.state == "receiving":
            self._retire(incoming, "aborted")
            log.info("migration %s aborted by %s: %s", abort.migration, src, abort.reason)
        self.rt.send(src, MigrationAborted(abort.migration))  # (every time: the answer may be lost)


def _not_in_progress(migration: str, incoming: Incoming | None) -> str:
    state = "unknown here" if incoming is None else incoming.state
    return f"no migration {migration!r} in progress from this source ({state})"


def _attempt(apply: Callable[[], None]) -> BatchError | None:
    """Run ``apply``; a batch it finds malformed is returned, not raised (it may run on a
    worker thread, and the verdict is the event loop's to act on)."""
    try:
        apply()
    except BatchError as exc:
        return exc
    return None
