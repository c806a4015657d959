"""The source side of one migration: pre-copy rounds, stop-and-copy, or post-copy's push.

Pre-copy (Clark et al., NSDI 2005; QEMU's precopy): round 0 sends every page; each later round
sends the pages dirtied while the previous one ran. After each round the engine predicts how long
the remaining dirty pages would take at the bandwidth it expects (PBA's predictor over the
per-batch throughput samples; QEMU uses the last measurement) and stops iterating once that is
within ``max_downtime``, or after ``max_rounds``. Auto-converge throttles a guest that dirties
faster than the rounds drain. Then the guest is paused, the last dirty pages go (the downtime),
the destination checks the memory digest and resumes.

Post-copy: ``postcopy_after`` pre-copy rounds (0 = none), then pause, tell the destination which
pages it still lacks, and let it resume at once; the missing pages are pushed in the background
while pages the guest faults on are sent first, on their own stream.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from typing import Any

import numpy as np

from novacron.prediction.predictors import HarmonicMean, LastValue, RobustMPC
from novacron.runtime import TransferError, first_completed, payload_size
from novacron.transport.amst import DEFAULT_CHUNK, MAX_CHUNK
from novacron.transport.dataplane import DEFAULT_LINK_BPS
from novacron.transport.policy import choose_congestion

from .autoconverge import AutoConverge
from .busy import BusyTime
from .driver import Pages, RealPages, SourceVM
from .messages import (
    MigrationAbort,
    MigrationAborted,
    MigrationBegin,
    MigrationDone,
    MigrationReady,
    MigrationSwitch,
    MigrationSwitched,
)
from .pages import OFFLOAD_MIN_BYTES, BatchEncoder, BatchError, BatchStats, EncodedBatch
from .report import MigrationReport, RoundReport
from .service import (
    CRITICAL_COPIES,
    RETRY_INTERVAL,
    RUN_TAG,
    TAG,
    MigrationError,
    MigrationInDoubt,
    Migrator,
    PeerRates,
    UrgentPages,
    run_meta,
)
from .settings import MigrationSettings
from .steering import StreamSteering

log = logging.getLogger(__name__)

_PREDICTORS = {"last": LastValue, "harmonic": HarmonicMean, "robust": RobustMPC}
#: Throughput samples the predictor is given (the MPC family looks at the last 5 of them).
_HISTORY = 20
#: AMST chunks per stream in one batch when batches are pipelined (see SourceRun._chunk_size)
_CHUNKS_PER_STREAM = 4
#: A batch of raw page runs lasts at least this long on the wire, up to _MAX_RUN_BATCH bytes
#: (see SourceRun._run_batch_pages).
_RUN_BATCH_SECONDS = 0.04
_MAX_RUN_BATCH = 128 << 20


_OUTCOMES = {
    "destination": "the guest runs at the destination",
    "source": "the destination never took over; the guest runs here again",
    "unresolved": "no answer, or one that cannot tell; the guest stays paused here for an operator to decide",
}


def _heeded(task: Any) -> None:
    """A done callback that marks a task's outcome as looked after (so that the simulator does not
    log its failure as unheeded: the code that spawned it takes the outcome)."""


def _most_used(bytes_by_streams: Counter[int], default: int) -> int:
    return bytes_by_streams.most_common(1)[0][0] if bytes_by_streams else default


class SourceRun:
    def __init__(
        self, svc: Migrator, vm: SourceVM, peer: str, settings: MigrationSettings, id: str, meta: bytes = b""
    ) -> None:
        self.svc, self.rt, self.vm, self.peer, self.settings, self.id = svc, svc.rt, vm, peer, settings, id
        self.meta = meta
        self.mode = svc.mode_of(peer)
        if settings.streams is None:  # DWCP: the mode's range, then each count's measured rate
            self.streams = svc.stream_counts.streams_for(peer, self.mode)
            self.steering: StreamSteering | None = StreamSteering(
                svc.stream_counts, peer, _PREDICTORS[settings.predictor](), self.streams
            )
            self.congestion: str | None = choose_congestion("adaptive", self.mode)
        else:
            self.steering, self.streams, self.congestion = None, settings.streams, None
        # Page bytes sent with each stream count, for the reports: the count that moved most
        # (self.streams is the next batch's, which may be a one-batch probe of another count).
        self.bytes_by_streams: Counter[int] = Counter()
        self._round_bytes_by_streams: Counter[int] = Counter()
        remembered = svc.peer_rates.get(peer)
        self.remembered = remembered if remembered is not None and remembered.mode == self.mode else None
        self.link_bps = max(DEFAULT_LINK_BPS[self.mode], self.remembered.link_bps if self.remembered else 0.0)
        self.encoder = BatchEncoder(settings, vm.page_count, vm.page_size, svc.cost_model, svc.batch_buffers)
        self.predictor = _PREDICTORS[settings.predictor]()
        self.page_rates: list[float] = []  # page bytes/s per completed batch
        self.rounds: list[RoundReport] = []
        self.totals = BatchStats()
        self.autoconverge = (
            AutoConverge(
                settings.throttle_trigger,
                settings.throttle_initial,
                settings.throttle_increment,
                settings.throttle_max,
            )
            if settings.auto_converge
            else None
        )
        self.started = self.rt.now()
        self.rtt = 0.0
        self.downtime = 0.0
        self.converged = False
        #: the last batch's wait for a free core (simulated hosts with a core count; else 0.0):
        #: the final round's first batch will wait about as long, and that is downtime
        self._cpu_wait = 0.0
        self._bucket = self.started  # bandwidth cap: when the next byte may go
        self._round_started = self.started
        self._round_done = BatchStats()
        self._round_busy = BusyTime()
        self._urgent: list[np.ndarray] = []
        self._urgent_wake: Any = None
        self._urgent_pages = 0
        self.postcopy_stats: dict[str, float] = {}
        #: the switch-over message, once sent: from then on the destination may run the guest,
        #: so this side must never resume it without the destination's definite "no"
        self.switch: MigrationSwitch | None = None
        self.switched = False  # the destination answered the switch-over: it runs the guest
        self.unknowable = False  # the destination forgot the migration: nobody here can tell
        self.given_up = ""  # the destination gave the migration up after switching (MigrationGivenUp)
        self.resolving = False  # in doubt, asking in the background (see MigrationInDoubt)

    # -- the whole migration -------------------------------------------------------------------
    async def run(self) -> MigrationReport:
        s = self.settings
        try:
            begin = MigrationBegin(
                self.id, self.vm.page_count, self.vm.page_size, s.engine, boot=self.rt.boot_id, meta=self.meta
            )
            ready: MigrationReady = await self.svc.ask(self.peer, begin, MigrationReady, self.id, s.timeout)
            if not ready.ok:
                raise MigrationError(f"{self.peer} refused the migration: {ready.reason}")
            # The first answer waited for the destination to allocate the VM; ask again (the
            # destination answers a repeated Begin at once) for the round-trip time itself.
            pinged = self.rt.now()
            await self.svc.ask(self.peer, begin, MigrationReady, self.id, s.timeout, copies=CRITICAL_COPIES)
            self.rtt = self.rt.now() - pinged
            if s.engine == "precopy":
                await self._precopy()
            else:
                await self._postcopy()
        except (TransferError, MigrationError, BatchError) as exc:
            if self.switch is not None:
                raise self._in_doubt(exc) from exc
            self._abort(str(exc))
            raise MigrationError(
                f"migration {self.id} to {self.peer} failed: {exc}", self._report(f"failed: {exc}")
            ) from exc
        return self._report("completed")

    async def _switch_over(self, switch: MigrationSwitch) -> None:
        """Hand the guest over: send ``switch`` until answered. A "no" is definite (the
        destination will never resume this migration's guest), so the source may run its own."""
        self.switch = switch
        answer: MigrationSwitched = await self.svc.ask(
            self.peer, switch, MigrationSwitched, self.id, self.settings.timeout, copies=CRITICAL_COPIES
        )
        if not answer.ok and not answer.known:
            self.unknowable = True  # it may have run the guest before it forgot: only an operator knows
            raise MigrationError(f"{self.peer} cannot say whether it took over the VM: {answer.reason}")
        if not answer.ok:
            self.switch = None
            raise MigrationError(f"{self.peer} did not take over the VM: {answer.reason}")
        self.switched = True

    def _in_doubt(self, exc: Exception) -> MigrationInDoubt:
        """The migration failed after the switch-over was sent: keep the guest paused and find
        out in the background who runs it (see :class:`MigrationInDoubt`)."""
        where = "after the switch-over" if self.switched else "waiting for the switch-over's answer"
        log.warning(
            "migration %s to %s: %s %s; the guest stays paused here until %s answers",
            self.id,
            self.peer,
            exc,
            where,
            self.peer,
        )
        resolution = self.rt.create_future()
        self.resolving = True
        self.rt.spawn(self._resolve(resolution))
        return MigrationInDoubt(
            f"migration {self.id} to {self.peer} is in doubt ({exc}, {where}): the guest stays paused "
            f"here until {self.peer} answers",
            self._report(f"in doubt: {exc}"),
            resolution,
        )

    async def _resolve(self, resolution: Any) -> None:
        """Ask the destination about the switch-over again (it answers a repeat with what it
        answered, or, if it has given this migration up meanwhile, with a definite no) and, after
        a post-copy switch, finish pushing the pages it lacks; until ``resolve_timeout``."""
        rt, s = self.rt, self.settings
        deadline = rt.now() + s.resolve_timeout
        outcome = "unresolved"
        while rt.now() < deadline:
            if self.given_up:  # it took the guest, then let it go: this copy is not the VM any more
                outcome = "destination"
                break
            try:
                if self.switched and self.given_up == "":
                    # (after a failed push: ask again, so that a destination that gave up says so)
                    await self.svc.ask(self.peer, self.switch, MigrationSwitched, self.id, s.timeout)
                if not self.switched:
                    assert self.switch is not None
                    await self._switch_over(self.switch)
                if s.engine == "postcopy":
                    await self._push_missing()
                outcome = "destination"
                break
            except (TransferError, MigrationError, BatchError) as exc:
                if self.switch is None:  # a definite no: the guest is the source's again
                    self.vm.set_throttle(0.0)
                    self.vm.resume()
                    outcome = "source"
                    break
                if self.unknowable:
                    break  # unresolved: asking again will not tell more
                log.info("migration %s still in doubt: %s", self.id, exc)
                await rt.sleep(min(4 * RETRY_INTERVAL, max(0.0, deadline - rt.now())))
        self.resolving = False
        self.svc._sources.pop(self.id, None)
        said = f"{self.peer} took the guest, then gave it up ({self.given_up})" if self.given_up else ""
        log.warning("migration %s to %s resolved: %s", self.id, self.peer, said or _OUTCOMES[outcome])
        resolution.set_result(outcome)

    def _abort(self, reason: str) -> None:
        """Leave the source as it was: guest running, unthrottled; tell the destination."""
        self.rt.spawn(self._tell_aborted(reason))
        self.vm.set_throttle(0.0)
        if not self.vm.running:
            self.vm.resume()

    async def _tell_aborted(self, reason: str) -> None:
        """Send the abort until the destination says it heard it (or the timeout passes: a
        destination that is gone has nothing to let go of)."""
        abort = MigrationAbort(self.id, reason)
        try:
            await self.svc.ask(self.peer, abort, MigrationAborted, self.id, self.settings.timeout)
        except MigrationError:
            log.info("migration %s: %s never confirmed the abort", self.id, self.peer)

    def _report(self, outcome: str) -> MigrationReport:
        return MigrationReport(
            migration=self.id,
            engine=self.settings.engine,
            peer=self.peer,
            outcome=outcome,
            converged=self.converged,
            total_time=self.rt.now() - self.started,
            downtime=self.downtime,
            bytes_sent=self.totals.bytes_out,
            pages_sent=self.totals.pages,
            memory_bytes=self.vm.page_count * self.vm.page_size,
            rounds=self.rounds,
            final_throttle=self.vm.throttle,
            streams=_most_used(self.bytes_by_streams, self.streams),
            postcopy=self.postcopy_stats,
        )

    # -- pre-copy -------------------------------------------------------------------------------
    async def _iterate(self, max_rounds: int, stop_early: bool) -> np.ndarray:
        """Pre-copy rounds; returns the pages dirty at the end (still to send)."""
        vm, s = self.vm, self.settings
        vm.sync_dirty_log()  # start the dirty log: round 0 sends everything anyway
        todo = np.arange(vm.page_count, dtype=np.int64)
        for index in range(max_rounds):
            round_started = self.rt.now()
            stats = await self._send_pages(todo)
            dirty = vm.sync_dirty_log()
            self._record(index, "precopy", round_started, stats, dirty)
            if index == 0 and self.page_rates:  # for the next migration's first batches
                self.svc.peer_rates[self.peer] = PeerRates(self.mode, self.page_rates[-1], self.link_bps)
            todo = dirty
            if stop_early and self._expected_downtime(len(dirty)) <= s.max_downtime:
                self.converged = True
                break
            if self.autoconverge is not None:
                throttle = self.autoconverge.observe(len(dirty) * vm.page_size, stats.bytes_out)
                if throttle != vm.throttle:
                    vm.set_throttle(throttle)
        return todo

    async def _precopy(self) -> None:
        vm = self.vm
        todo = await self._iterate(self.settings.max_rounds, stop_early=True)
        self.encoder.reserve(len(todo) + len(todo) // 4)  # (+ what the guest dirties meanwhile)
        paused_at = self.rt.now()
        vm.pause()
        final = np.union1d(todo, vm.sync_dirty_log())
        stats = await self._send_pages(final, paced=False)
        self._record(len(self.rounds), "stop-and-copy", paused_at, stats, final[:0])
        digest = await self.rt.offload(vm.digest) if self.settings.verify_memory else ""
        await self._switch_over(MigrationSwitch(self.id, digest))
        self.downtime = max(0.0, self.rt.now() - paused_at - self.rtt / 2)

    def _expected_downtime(self, dirty_pages: int) -> float:
        if not self.page_rates:
            return float("inf")
        rate = float(self.predictor.predict(np.asarray(self.page_rates[-_HISTORY:]), 1)[0])
        if rate <= 0:
            return float("inf")
        # + 1.5 RTT, the fixed part of the downtime: the last transfer's last chunk lands (1/2)
        # and the receiver's TransferDone comes back (1/2), then the switch-over message goes
        # (1/2) and the destination resumes. (Its streams are open already: AMST keeps them
        # between transfers. The reply's own 1/2 RTT is not downtime.) On a WAN that is half
        # of a 300 ms budget.
        return dirty_pages * self.vm.page_size / rate + 1.5 * self.rtt + self._cpu_wait

    def _record(self, index: int, phase: str, started: float, stats: BatchStats, dirty: np.ndarray) -> None:
        duration = self.rt.now() - started
        self.rounds.append(
            RoundReport(
                index=index,
                phase=phase,
                started=started - self.started,
                duration=duration,
                pages=stats.pages,
                bytes_in=stats.bytes_in,
                bytes_out=stats.bytes_out,
                dirtied_pages=len(dirty),
                dirty_rate_bps=len(dirty) * self.vm.page_size * 8 / duration if duration > 0 else 0.0,
                throttle=self.vm.throttle,
                zero=stats.zero,
                delta=stats.delta,
                full=stats.full,
                streams=_most_used(self._round_bytes_by_streams, self.streams),
            )
        )

    # -- sending pages ----------------------------------------------------------------------------
    def _encode(self, ids: np.ndarray, runs: bool = True) -> EncodedBatch:
        """``runs=False``: always the batch layout (urgent pages travel as one stream record,
        which the destination decodes as a batch)."""
        return self._encode_pages(self.vm.read(ids), runs)

    def _encode_pages(self, pages: Pages, runs: bool = True, bare_checked: bool = False) -> EncodedBatch:
        if isinstance(pages, RealPages):
            return self.encoder.encode_real(pages, self.link_bps, runs=runs, bare_checked=bare_checked)
        return self.encoder.encode_model(pages, self.link_bps, runs=runs)

    async def _encode_batch(self, ids: np.ndarray) -> EncodedBatch:
        """One batch of a round. A bare run of a real guest's memory (round 0 of incompressible
        memory on a fast link is all such runs) is settled here, on the event loop: the
        encoder's checks are cheap and nothing is copied, and handing these batches to a worker
        thread had cost more in thread hand-offs and GIL waits than the checks themselves (512
        MiB on loopback, one node per process, paired against AMST: idle guest 0.78-0.80x with
        the hand-off, 0.85-0.92x without; source CPU 0.40-0.44 -> 0.34-0.38 s/GiB; with both
        nodes on one loop, where the worker had a core to itself, no clear difference: -6% to
        +6% between runs). Any other big batch, whose pages get copied or compressed, is
        encoded off the loop where the runtime can, so that work uses another core."""
        pages = self.vm.read(ids)
        if isinstance(pages, RealPages):
            bare = self.encoder.bare_run(pages, self.link_bps)
            if bare is not None:
                return bare
        encode = functools.partial(self._encode_pages, pages, bare_checked=True)
        if len(ids) * self.vm.page_size >= OFFLOAD_MIN_BYTES:
            return await self.rt.offload(encode)
        return encode()

    async def _send_pages(
        self, ids: np.ndarray, per_batch: int | None = None, paced: bool = True
    ) -> BatchStats:
        """Send ``ids`` in batches, ``pipeline`` of them in flight (encoding overlaps sending).

        ``paced``: honour ``max_bandwidth_bps`` (QEMU lifts its rate limit for the stop-and-copy,
        where every millisecond is downtime)."""
        rt, s = self.rt, self.settings
        per = per_batch or max(1, s.batch_bytes // self.vm.page_size)
        round_stats = BatchStats()
        in_flight: list[Any] = []
        self._round_started = rt.now()
        self._round_done = BatchStats()
        self._round_bytes_by_streams = Counter()
        self._round_busy = BusyTime()
        if self.steering is not None:
            self.steering.new_round()
        start, size, index = 0, per, 0
        try:
            while start < len(ids):
                # Encode the next batch while earlier ones are on the wire, then wait for a slot.
                some = ids[start : start + self._staggered(size, index)]
                start, index = start + len(some), index + 1
                batch = await self._encode_batch(some)
                if batch.stats.cpu_seconds:
                    self._cpu_wait = await rt.compute(batch.stats.cpu_seconds)
                while len(in_flight) >= s.pipeline:  # the first to finish frees a slot
                    for task in await first_completed(rt, in_flight):  # (not the oldest: that
                        in_flight.remove(task)  # would launch two at once, ending the stagger)
                        task.result()  # a batch that failed fails the round
                if paced:
                    await self._pace(batch.stats.bytes_out)
                self._round_busy.start(rt.now())
                task = rt.spawn(self._send_batch(batch, round_stats, self.streams, rt.now()))
                task.add_done_callback(_heeded)  # its failure is the round's, raised below
                in_flight.append(task)
                size = per if per_batch or batch.run is None else self._run_batch_pages(per)
            while in_flight:
                await in_flight.pop(0)
        finally:
            for task in in_flight:  # a round that failed: the others' outcomes no longer matter
                if task.done():
                    if not task.cancelled():
                        task.exception()  # (taken, so the runtime does not log it as unheeded)
                else:
                    task.cancel()
        return round_stats

    def _staggered(self, pages: int, index: int) -> int:
        """Pages in a round's batch number ``index``: the first ``pipeline - 1`` batches are cut
        to 1/p, 2/p, ... of a batch (p = ``pipeline``), so that the batches in flight finish one
        after another. Batches of one size launched together share the link, finish together,
        and leave it idle while the next ones start (a round trip each time: on a 100 ms WAN,
        1 GiB took 9.43 s with two in flight, 9.09 s staggered; the link alone needs 8.6 s).
        The stagger then keeps itself: each batch starts as one in flight ends (whichever ends
        first, see _send_pages)."""
        p = self.settings.pipeline
        return pages if index >= p - 1 else max(1, pages * (index + 1) // p)

    def _run_batch_pages(self, per: int) -> int:
        """Pages in the next batch after one that went as a run of raw pages (the next
        probably will too: round 0 of incompressible memory is all runs). A run needs no
        batch buffer, so its size is set by time instead: at least ``_RUN_BATCH_SECONDS``
        at the rate this migration moves pages, so that the fixed work of a batch (encoding
        checks, an AMST transfer: ~2 ms of the source's CPU on loopback) stays a few percent
        of it. 32 MiB batches moved at ~25 Gbit/s took ~10 ms each.

        That rate is the round's running average, which starts low (it includes the round's
        start-up), so early in a round the rate the previous migration to this peer reached in
        its round 0 stands in where it is higher. On loopback, two processes, 16 interleaved
        repeats, 512 MiB: the first batches at 32 MiB moved 0.88x of a plain AMST transfer, at
        64 MiB 0.96x, at 128 MiB 1.0x; the source's CPU 0.288, 0.270 and 0.261 s/GiB (AMST
        0.251)."""
        rate = max(
            self.page_rates[-1] if self.page_rates else 0.0,
            self.remembered.page_bytes_per_s if self.remembered else 0.0,
        )
        pages = int(rate * _RUN_BATCH_SECONDS) // self.vm.page_size
        return max(per, min(pages, _MAX_RUN_BATCH // self.vm.page_size))

    async def _pace(self, nbytes: int) -> None:
        """QEMU's max-bandwidth: a token bucket over wire bytes."""
        cap = self.settings.max_bandwidth_bps
        if cap is None:
            return
        now = self.rt.now()
        self._bucket = max(self._bucket, now)
        wait = self._bucket - now
        self._bucket += nbytes * 8 / cap
        if wait > 0:
            await self.rt.sleep(wait)

    def _chunk_size(self, nbytes: int, streams: int) -> int | None:
        """AMST chunks for one batch: with ``pipeline`` batches in flight, a stream that ends a
        batch early takes up the next one, so a batch needs only a few chunks per stream to
        balance (AMST's own rule, 16 per stream, cut 32 MiB batches into 512 KiB chunks whose
        fixed work cost ~10% of the CPU on loopback). None: AMST's rule (no pipeline)."""
        if self.settings.pipeline < 2:
            return None
        per_stream = -(-nbytes // (streams * _CHUNKS_PER_STREAM))
        return min(MAX_CHUNK, max(DEFAULT_CHUNK, per_stream))

    async def _send_batch(
        self, batch: EncodedBatch, round_stats: BatchStats, streams: int, launched: float
    ) -> None:
        tag, meta = TAG, self.id.encode()  # the destination may be receiving several migrations
        if batch.run is not None:  # raw consecutive pages: the destination may take them in place
            tag, meta = RUN_TAG, run_meta(self.id, *batch.run)
        try:
            await self.svc.amst.send(
                self.peer,
                batch.payload,
                streams=streams,
                congestion=self.congestion,
                tag=tag,
                meta=meta,
                chunk_size=self._chunk_size(payload_size(batch.payload), streams),
                volatile=batch.volatile,
            )
        finally:
            self._round_busy.end(self.rt.now())
        self.encoder.release(batch.payload)
        for counter in (self.bytes_by_streams, self._round_bytes_by_streams):
            counter[streams] += batch.stats.bytes_in
        if self.steering is not None:
            self.streams = self.steering.delivered(
                streams, batch.stats.bytes_in, batch.stats.bytes_out, launched, self.rt.now()
            )
        round_stats.add(batch.stats)
        self.totals.add(batch.stats)
        # Throughput samples: what this round moved so far over how long it has run. (Per-batch
        # durations mislead when batches overlap: two that finish together would give one sample
        # of half the rate and one of nearly infinite rate.)
        done = self._round_done
        done.add(batch.stats)
        # Net of the fixed cost of a transfer (the receiver's answer: 1/2 RTT; streams stay
        # open between transfers), which the downtime estimate adds back once: a short last
        # round is mostly round trips, and counting them in the rate as well would count them
        # twice.
        elapsed = self.rt.now() - self._round_started
        elapsed = max(elapsed - 0.5 * self.rtt, 0.1 * elapsed)
        if elapsed > 0:
            self.page_rates.append(done.bytes_in / elapsed)
        # The link's rate for the codec selector: over the time it was busy (see .busy), and
        # at least the mode's nominal rate.
        moving = self._round_busy.moving(self.rt.now(), self.rtt)
        if moving > 0:
            self.link_bps = max(DEFAULT_LINK_BPS[self.mode], done.bytes_out * 8 / moving)

    # -- post-copy --------------------------------------------------------------------------------
    async def _postcopy(self) -> None:
        rt, vm, s = self.rt, self.vm, self.settings
        todo = (
            await self._iterate(s.postcopy_after, stop_early=False)
            if s.postcopy_after
            else np.arange(vm.page_count, dtype=np.int64)
        )
        paused_at = rt.now()
        vm.pause()
        missing = np.union1d(todo, vm.sync_dirty_log()) if s.postcopy_after else todo
        bitmap = np.zeros(vm.page_count, dtype=bool)
        bitmap[missing] = True
        switch = MigrationSwitch(self.id, "", postcopy=True, missing=np.packbits(bitmap).tobytes())
        self._sent = ~bitmap  # pages the destination holds (or that are on their way)
        self._missing = len(missing)
        await self._switch_over(switch)
        self.downtime = max(0.0, rt.now() - paused_at - self.rtt / 2)
        await self._push_missing()

    async def _push_missing(self) -> None:
        """Post-copy, after the switch: push the pages the destination lacks (those its guest
        faults on first, on their own stream) until it says it has them all. Called again after
        a failure (see _resolve): the pages of a batch that failed go again (the destination
        keeps any page its guest has written since, see DestinationVM.apply)."""
        rt, vm, s = self.rt, self.vm, self.settings
        assert self.switch is not None
        push_started = rt.now()
        stream = await rt.open_stream(self.peer, congestion=self.congestion)
        server = rt.spawn(self._serve_faults(stream))
        try:
            stats = BatchStats()
            per = max(1, s.postcopy_push_bytes // vm.page_size)
            while True:
                left = np.flatnonzero(~self._sent)
                if not len(left):
                    break
                chunk = left[:per]
                self._sent[chunk] = True
                try:
                    stats.add(await self._send_pages(chunk, per_batch=per))
                except BaseException:
                    self._sent[chunk] = False
                    raise
            self._record(len(self.rounds), "postcopy", push_started, stats, np.empty(0, dtype=np.int64))
            done: MigrationDone = await self.svc.ask(
                self.peer, self.switch, MigrationDone, self.id, s.timeout
            )
        finally:
            server.cancel()
            stream.close()
        self.postcopy_stats = {
            "missing_pages": float(self._missing),
            "urgent_pages": float(self._urgent_pages),
            "guest_faults": float(done.faults),
            "guest_stalled_s": done.stalled,
        }

    def on_fault(self, ids: np.ndarray) -> None:
        """The destination's guest faulted on ``ids``: send them next, on the urgent stream."""
        self._urgent.append(ids)
        if self._urgent_wake is not None and not self._urgent_wake.done():
            self._urgent_wake.set_result(None)

    async def _serve_faults(self, stream: Any) -> None:
        rt = self.rt
        while True:
            if not self._urgent:
                self._urgent_wake = rt.create_future()
                await self._urgent_wake
                continue
            ids = np.unique(np.concatenate(self._urgent))
            self._urgent.clear()
            ids = ids[(ids >= 0) & (ids < self.vm.page_count)]
            if not len(ids):
                continue
            self._sent[ids] = True
            batch = self._encode(ids, runs=False)
            if batch.stats.cpu_seconds:
                await rt.compute(batch.stats.cpu_seconds)
            await stream.send(UrgentPages(self.id), batch.payload)
            self._urgent_pages += len(ids)
            self.totals.add(batch.stats)
