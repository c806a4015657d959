"""PBA in the protocol stack: an allocator sharing the link among AMST transfers with deadlines.

The allocators of :mod:`.allocation` answer one question: given a forecast of the link and the
transfers in flight (remaining megabits, time to deadline, priority), what share of the link
should each get now, and over how many AMST streams? The gymnasium environment
(:mod:`novacron.sim.envs.bandwidth`) replays traces against that answer in steps of ``dt``.
:class:`AllocatedSender` applies the same answer to real AMST transfers, on either runtime.

At every *step* (``step`` seconds, the environment's ``dt``) it

1. measures the link: the bytes the receiver acknowledged (chunk by chunk, AMST's ``progress``)
   over the time segments were in flight since the last sample (see ``AllocatedSender._measure``);
2. forecasts the link for ``horizon`` steps (Mbit/s) with the allocator's predictor, or its own,
   from those samples;
3. asks the allocator for shares and stream counts for the jobs in flight.

Between steps it keeps a *window* of data in flight: ``round_trips`` round trips of the forecast
link (the round trip AMST measures with its probes, ``AMST.round_trip``), or ``window`` seconds of
it when that is more, times ``1 + headroom``, handed out in pieces of a quarter of the window. It
is topped up as acknowledgements arrive, each new piece going to the job furthest behind its share
(deficit round robin: every piece handed out credits each job its share of it, the job with the
largest credit gets the piece and pays for it). Each piece is one AMST transfer (a *segment*) over
the job's stream count.

Why a window of pieces, not rates or per-step budgets: streams share a bottleneck by flow fairness,
not by weight, and a rate per transfer would need pacing inside every runtime's streams; handing
out pieces in proportion to the shares enforces them over a few pieces on both runtimes. Why round
trips: with less than a round trip of the link in flight, the link idles while acknowledgements
travel, and the measurement, which sees only what is delivered, takes the window's rate for the
link's, so the forecast and the window shrink together (a window of a sixth of the round trip
carried a sixth of the link, and fell from there); with more, data is committed that a re-plan
cannot take back and an urgent job cannot overtake. Why topped up by acknowledgements, not as
pieces complete: pieces in flight side by side complete together, and the link idled for a round
trip each time. (The first window was half a step whatever the round trip, topped up as pieces
completed: better than per-step budgets at 30-100 ms round trips, worse at 300 ms;
``results/pba/amst``.) The sender is work-conserving: shares set the proportions among the jobs
that have bytes left to hand out, the window is filled whatever the shares sum to, and when no job
with a share has bytes left the others are served earliest deadline first (an idle link helps no
deadline).

A job whose deadline passes before its last byte is confirmed is *missed*: its segments in
flight are cancelled, its outcome says how much was delivered, and the receiver is told to free
its partial copy (the environment drops it the same way; a late result is worth nothing to the
callers this is for). A failed segment is sent again after the next plan. A job submitted between
steps starts a step at once, as a transfer arrives at a step's start in the environment.

:class:`AllocatedReceiver` reassembles each job from its segments (placed straight into one
buffer per job, taken from AMST's pool and given back after the handler: as with AMST's own
payloads, the payload is valid during the handler's call only) and hands it over once.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from novacron.runtime import Payload, Runtime, TransferError, VirtualPayload, payload_size
from novacron.runtime.contract import FutureLike, TaskLike
from novacron.runtime.messages import Message
from novacron.transport import AMST, DEFAULT_CHUNK, TransferRefused

from .allocation import Allocator, Transfer
from .predictors import EWMA, FLOOR_MBPS, Predictor

log = logging.getLogger(__name__)

#: the AMST tag of segments unless told otherwise
DEFAULT_TAG = "pba"
#: segments smaller than this are not worth a transfer's fixed cost (the last one of a job may be)
MIN_SEGMENT = 16 * 1024
#: the window in flight is this many round trips of the forecast link (AMST's measure,
#: ``AMST.round_trip``; with less, the link idles while acknowledgements travel) ...
ROUND_TRIPS = 2.0
#: ... or this many steps of it, when that is more (a floor for short round trips, where a window
#: of a few round trips would cut each job into pieces too small for a transfer's fixed costs).
#: Both chosen with PIECES on the validation files of ``experiments/pba_allocation.py``'s split at
#: 30, 100 and 300 ms round trips and 1 s steps (``experiments/pba_amst.py --split val``,
#: ``results/pba/amst/val``)
WINDOW_STEPS = 0.1
#: ... exceeds the forecast by this share, so that a link faster than forecast gets noticed
HEADROOM = 0.25
#: ... and is handed out in this many pieces (fewer: shares enforced more coarsely; more: each
#: piece pays AMST's per-transfer costs for less data)
PIECES = 4
#: chunks per stream of a segment, as AMST's own default: its streams progress side by side and
#: acknowledge chunk by chunk, so a segment's bytes are seen arriving as they go (a segment too
#: small for the allocator's stream count gets fewer streams: on a slow link many streams would
#: each wait for their first chunk, and the acknowledgements would come in bursts) ...
CHUNKS_PER_STREAM = 16
#: ... chunks of at least this size (a slow link's segments are small) ...
MIN_CHUNK = 4096
#: ... and at least this many seconds of the forecast link, up to AMST's own chunk size: every
#: chunk costs the same fixed work at both ends (microseconds), so on a fast link small chunks make
#: the transfer CPU-bound (``benchmarks/bench_backend_allocated.py``: 8 KiB chunks held a loopback
#: link at a tenth of what AMST moves alone)
CHUNK_SECONDS = 1e-3
MAX_CHUNK = DEFAULT_CHUNK
#: a throughput sample spans at least this many steps of time with segments in flight (shorter
#: windows see chunk bursts; longer ones are slow to notice a link faster than forecast. Chosen on
#: the validation files of ``experiments/pba_allocation.py``'s split: 0.25-1 within 3 % of each other)
MIN_BUSY_STEPS = 0.5
#: throughput samples kept for the predictors, and entries kept in each log
MAX_SAMPLES = 1024
MAX_LOG = 100_000
#: job names travel in every segment's meta (at most 256 bytes with the offsets)
MAX_NAME_BYTES = 128


class Segment(msgspec.Struct, array_like=True, frozen=True):
    """Where a segment belongs: ``length`` bytes at ``offset`` of job ``job`` of ``total`` bytes."""

    job: str
    offset: int
    length: int
    total: int


class JobDropped(Message, tag="PBAJobDropped", frozen=True):
    """The sender gave up on ``job`` (its deadline passed): the receiver frees its partial copy."""

    job: str


_encode_segment = msgspec.msgpack.Encoder().encode
_decode_segment = msgspec.msgpack.Decoder(Segment).decode


@dataclass(frozen=True)
class JobOutcome:
    """What became of one job: ``finished`` is when its last byte was confirmed (None: missed)."""

    name: str
    nbytes: int
    priority: float
    submitted: float
    deadline: float
    finished: float | None
    delivered: int

    @property
    def met(self) -> bool:
        return self.finished is not None and self.finished <= self.deadline


@dataclass(eq=False)
class _Job:
    name: str
    payload: Payload
    deadline: float
    priority: float
    submitted: float
    done: FutureLike[JobOutcome]
    nbytes: int
    confirmed: int = 0  # bytes the receiver has
    assigned: int = 0  # bytes handed to segments, from the start (failed ones go to `retry`)
    retry: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) to send again
    failed: list[tuple[int, int]] = field(default_factory=list)  # ... after the next plan
    outstanding: dict[int, TaskLike[None] | None] = field(default_factory=dict)  # segments by offset
    unacknowledged: int = 0  # bytes of its segments in flight that the receiver has not acknowledged
    acknowledged: int = 0  # bytes the receiver has, in whole segments or acknowledged chunks
    share: float = 0.0  # the current plan's share and stream count
    streams: int = 0
    credit: float = 0.0  # bytes it is owed by its shares, less the bytes it was handed (see _fill)

    @property
    def unassigned(self) -> int:
        return self.nbytes - self.assigned + sum(length for _, length in self.retry)

    def next_range(self, budget: int) -> tuple[int, int]:
        """The next ``(offset, length)`` to send, at most ``budget`` bytes: failed ranges first."""
        if self.retry:
            offset, length = self.retry.pop(0)
            if length > budget:
                self.retry.insert(0, (offset + budget, length - budget))
                length = budget
            return offset, length
        length = min(budget, self.nbytes - self.assigned)
        self.assigned += length
        return self.assigned - length, length

    def outcome(self, finished: float | None) -> JobOutcome:
        return JobOutcome(
            self.name, self.nbytes, self.priority, self.submitted, self.deadline, finished, self.acknowledged
        )


@dataclass
class StepLog:
    """One step: the throughput sample taken at its start (None: the measurement window goes on),
    the forecast it planned with, the streams the allocator asked for (summed over jobs; a small
    segment uses fewer, see ``AllocatedSender._send``), and the bytes handed out while its plan
    was in force (counted until the next step), and the window it planned with."""

    at: float
    forecast_mbps: float
    jobs: int
    assigned_bytes: int
    streams: int
    measured_mbps: float | None
    #: the window in seconds of the forecast link (before the headroom) when the step was planned
    #: (the sender follows a new round-trip measurement at once, mid-step)
    window_s: float = 0.0


def _segment_of(payload: Payload, offset: int, length: int) -> Payload:
    if isinstance(payload, VirtualPayload):
        return VirtualPayload(length)
    return memoryview(payload)[offset : offset + length]


class AllocatedSender:
    """Sends jobs (payloads with deadlines and priorities) to ``peer`` over ``amst``, shared by
    ``allocator`` (see the module doc).

    ``initial_mbps``: the link's rate before anything was measured (say, the network mode's
    nominal rate). ``predictor`` forecasts when the allocator names none (default EWMA, as the
    environment). ``step`` is the planning step in seconds (the environment's ``dt``): deadlines
    are counted in steps. What is kept in flight: ``round_trips`` round trips of the forecast link,
    or ``window`` seconds of it (default :data:`WINDOW_STEPS` steps) when that is more, in
    ``pieces`` segments. Spawn :meth:`run` to start sending, :meth:`submit` jobs, :meth:`close` to
    stop.
    """

    def __init__(
        self,
        rt: Runtime,
        amst: AMST,
        peer: str,
        allocator: Allocator,
        *,
        initial_mbps: float,
        predictor: Predictor | None = None,
        step: float = 1.0,
        horizon: int = 5,
        headroom: float = HEADROOM,
        window: float | None = None,
        round_trips: float = ROUND_TRIPS,
        pieces: int | None = None,
        tag: str = DEFAULT_TAG,
        min_segment: int = MIN_SEGMENT,
        forecaster: Callable[[float, int], Sequence[float]] | None = None,
    ) -> None:
        if not (initial_mbps > 0 and math.isfinite(initial_mbps)):
            raise ValueError(f"initial_mbps must be a positive rate, got {initial_mbps}")
        window = step * WINDOW_STEPS if window is None else window
        pieces = PIECES if pieces is None else pieces
        if not (
            step > 0
            and horizon >= 1
            and headroom >= 0
            and window > 0
            and round_trips >= 0
            and pieces >= 1
            and min_segment >= 1
        ):
            raise ValueError(
                "need step > 0, horizon >= 1, headroom >= 0, window > 0, round_trips >= 0, pieces >= 1, "
                f"min_segment >= 1; got {step}, {horizon}, {headroom}, {window}, {round_trips}, {pieces}, "
                f"{min_segment}"
            )
        self.rt, self.amst, self.peer, self.allocator = rt, amst, peer, allocator
        self.initial_mbps = float(initial_mbps)
        self.predictor = allocator.predictor or predictor or EWMA()
        self.forecaster = forecaster
        self.step, self.horizon, self.headroom = float(step), int(horizon), float(headroom)
        self.window, self.round_trips, self.pieces = float(window), float(round_trips), int(pieces)
        self.tag, self.min_segment = tag, int(min_segment)
        # what a sender that runs for days keeps is bounded: the predictors look at recent samples,
        # and the two logs (for analysis) keep their latest entries
        self.samples: deque[float] = deque(maxlen=MAX_SAMPLES)  # measured Mbit/s, oldest first
        self.steps: deque[StepLog] = deque(maxlen=MAX_LOG)
        self.outcomes: deque[JobOutcome] = deque(maxlen=MAX_LOG)
        self._jobs: list[_Job] = []
        self._plan: StepLog | None = None  # the plan in force (None: none yet)
        self._wake: FutureLike[None] | None = None
        self._closed = False
        # the measurement: bytes acknowledged, and time with segments in flight, since the last sample
        self._sample_bytes = 0
        self._busy_time = 0.0
        self._busy_since: float | None = None  # when segments went in flight (None: none is)
        self._in_flight = 0  # segments in flight, all jobs

    # -- the caller's side ----------------------------------------------------------------------
    def submit(
        self, name: str, payload: Payload, deadline: float, priority: float = 1.0
    ) -> FutureLike[JobOutcome]:
        """Queue ``payload`` for the next step; the future resolves with its :class:`JobOutcome`.

        ``deadline`` is absolute, on the runtime's clock; ``priority`` in (0, 1].
        """
        if self._closed:
            raise RuntimeError("the sender is closed")
        if not name or len(name.encode()) > MAX_NAME_BYTES:
            raise ValueError(f"a job name must have 1-{MAX_NAME_BYTES} bytes, got {name!r}")
        if any(job.name == name for job in self._jobs):
            raise ValueError(f"a job named {name!r} is already in flight")
        if not 0 < priority <= 1:
            raise ValueError(f"priority must be in (0, 1], got {priority}")
        now = self.rt.now()
        job = _Job(
            name,
            payload,
            float(deadline),
            float(priority),
            now,
            self.rt.create_future(),
            payload_size(payload),
        )
        self._jobs.append(job)
        self._wake_up()
        return job.done

    def close(self) -> None:
        """Stop: segments in flight are cancelled, jobs not finished end as missed."""
        self._closed = True
        self._wake_up()

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not yet finished or dropped."""
        return len(self._jobs)

    # -- steps ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Plan a step every ``step`` seconds while there are jobs, wait for jobs otherwise; a job
        submitted meanwhile starts a step at once (in the environment transfers arrive at a
        step's start: one that waited for the next planned step would lose up to a step of its
        deadline)."""
        while not self._closed:
            if not self._jobs:
                await self._sleep(None)
                continue
            self.plan_step()
            await self._sleep(self.step)
        for job in list(self._jobs):
            self._settle(job, None)

    async def _sleep(self, seconds: float | None) -> None:
        """Wait ``seconds`` (None: for ever), or until a job is submitted or the sender closed."""
        self._wake = self.rt.create_future()
        timer = None if seconds is None else self.rt.call_later(seconds, self._wake_up)
        try:
            await self._wake
        finally:
            self._wake = None
            if timer is not None:
                timer.cancel()

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def forecast(self) -> np.ndarray:
        """Mbit/s for the next ``horizon`` steps, from the steps measured so far (or, given a
        ``forecaster``, its ``forecaster(now, horizon)``: a diagnostic, e.g. the simulator's true
        trace, to tell what forecasting costs from what the transport costs)."""
        if self.forecaster is not None:
            given = np.asarray(self.forecaster(self.rt.now(), self.horizon), dtype=float).reshape(-1)
            return np.maximum(given, FLOOR_MBPS)
        if not self.samples:
            return np.full(self.horizon, self.initial_mbps)
        history = np.asarray(self.samples, dtype=float)
        return np.maximum(np.asarray(self.predictor.predict(history, self.horizon), dtype=float), FLOOR_MBPS)

    def plan_step(self) -> None:
        """One step: measure, drop what is late, plan shares and streams, top up the window."""
        now = self.rt.now()
        measured = self._measure(now)
        for job in [j for j in self._jobs if j.deadline <= now]:
            self._settle(job, None)
        forecast = self.forecast()
        jobs = list(self._jobs)
        if not jobs:
            return
        self.amst.probe_round_trip(self.peer)  # for the window of the steps to come
        transfers = [
            Transfer(
                (job.nbytes - job.acknowledged) * 8 / 1e6,
                max(1, math.ceil((job.deadline - now) / self.step)),
                job.priority,
            )
            for job in jobs
        ]
        plan = self.allocator.allocate(forecast, transfers, self.step, history=np.asarray(self.samples))
        for job, share, streams in zip(jobs, plan.shares, plan.streams, strict=True):
            job.share, job.streams = float(share), int(streams)
            job.retry.extend(job.failed)
            job.failed.clear()
        self._plan = StepLog(
            now, float(forecast[0]), len(jobs), 0, int(np.sum(plan.streams)), measured, self.window_seconds()
        )
        self.steps.append(self._plan)
        self._fill()

    def window_seconds(self) -> float:
        """The window, in seconds of the forecast link: ``window``, or ``round_trips`` round trips
        when that is more (before AMST has measured one: ``window``)."""
        rtt = self.amst.round_trip(self.peer)
        return self.window if rtt is None else max(self.window, self.round_trips * rtt)

    def _fill(self) -> None:
        """Top up the window in flight with pieces, each to the job furthest behind its share."""
        if self._closed or self._plan is None:
            return
        window = self._plan.forecast_mbps * 1e6 / 8 * self.window_seconds() * (1.0 + self.headroom)
        piece = max(self.min_segment, int(window / self.pieces))
        for job in self._jobs:  # an empty job is one empty segment (a share of nothing is nothing)
            if job.nbytes == 0 and not job.outstanding and not job.failed:
                job.retry.clear()
                self._start(job, 0, 0, 1)
        in_flight = sum(job.unacknowledged for job in self._jobs)
        while in_flight < window:
            chosen = self._next_job(piece)
            if chosen is None:
                return
            offset, length = chosen.next_range(piece)
            chosen.credit -= length
            self._start(chosen, offset, length, chosen.streams or max(job.streams for job in self._jobs) or 1)
            in_flight += length

    def _next_job(self, piece: int) -> _Job | None:
        """Who gets the next piece: of the jobs with a share and bytes to send, the one owed most
        after each is credited its share of the piece (normalised, so that the window is filled
        whatever the shares sum to; the first submitted, of equals). When those have nothing left
        to send before the next plan, the earliest deadline of the others: the link would idle."""
        left = [job for job in self._jobs if job.unassigned > 0]
        due = [job for job in left if job.share > 0 and job.streams > 0]
        if not due:
            return min(left, key=lambda job: job.deadline, default=None)
        total = sum(job.share for job in due)
        for job in due:
            job.credit += job.share / total * piece
        return max(due, key=lambda job: job.credit)

    def _start(self, job: _Job, offset: int, length: int, streams: int) -> None:
        job.outstanding[offset] = None  # before the spawn: a runtime may start it at once
        job.unacknowledged += length
        if self._in_flight == 0:
            self._busy_since = self.rt.now()
        self._in_flight += 1
        assert self._plan is not None
        self._plan.assigned_bytes += length
        job.outstanding[offset] = self.rt.spawn(self._send(job, offset, length, streams))

    def _measure(self, now: float) -> float | None:
        """The link's rate since the last sample: bytes acknowledged over the time segments were in
        flight (None, and the window goes on, until that time is a step and something was
        acknowledged: streams side by side deliver their chunks in bursts, and a short window
        would see a burst or nothing).

        Over busy time, not the whole step: when the forecast is low the link idles between
        segments, and bytes over the step would measure the forecast, which would then never rise.
        Busy time starts when segments go out, so it counts the first round trip (and new streams'
        handshakes) of each busy spell, with nothing delivered yet: a sample low by up to a round
        trip's share, which errs on the safe side. (Clocking it from the first acknowledgement, as
        TCP's delivery rate, measured the link better and did worse on the validation files: a
        little better for the EDF-like allocators, much worse for RobustMPC, whose just-in-time
        plans need the slack; ``results/pba/amst``.) A busy step without acknowledgements happens
        on a slow link with many streams (each stream's first chunk arrives late): a 0 there would
        throw the forecast to the floor."""
        busy = self._busy_time + (now - self._busy_since if self._busy_since is not None else 0.0)
        if self._sample_bytes <= 0 or busy < self.step * MIN_BUSY_STEPS:
            return None
        measured = self._sample_bytes * 8 / 1e6 / busy
        self.samples.append(measured)
        self._sample_bytes, self._busy_time = 0, 0.0
        self._busy_since = now if self._busy_since is not None else None
        return measured

    async def _send(self, job: _Job, offset: int, length: int, streams: int) -> None:
        """One segment of ``job``; a failed one goes back to the job's queue."""
        meta = _encode_segment(Segment(job.name, offset, length, job.nbytes))
        # several chunks per stream, so that the acknowledgements measure the link as it goes, and
        # chunks large enough not to be the bottleneck (see CHUNKS_PER_STREAM, CHUNK_SECONDS)
        rate = (self._plan.forecast_mbps if self._plan is not None else self.initial_mbps) * 1e6 / 8
        least = int(min(MAX_CHUNK, max(MIN_CHUNK, rate * CHUNK_SECONDS)))
        streams = max(1, min(streams, length // (CHUNKS_PER_STREAM * least)))
        chunk = min(MAX_CHUNK, max(least, -(-length // (streams * CHUNKS_PER_STREAM))))
        acknowledged = 0

        def progress(nbytes: int) -> None:
            nonlocal acknowledged
            acknowledged += nbytes
            self._credit(job, nbytes)
            self._fill()

        ok = False
        try:
            await self.amst.send(
                self.peer,
                _segment_of(job.payload, offset, length),
                streams=streams,
                tag=self.tag,
                meta=meta,
                chunk_size=chunk,
                progress=progress,
            )
            ok = True
        except TransferError as exc:
            log.warning(
                "%s: segment %d+%d of job %r failed: %s", self.rt.node_id, offset, length, job.name, exc
            )
            job.failed.append((offset, length))  # sent again after the next plan, not at once
            job.unacknowledged -= length - acknowledged
            job.acknowledged -= acknowledged  # sent again in full
        finally:
            job.outstanding.pop(offset, None)
            self._in_flight -= 1
            if self._in_flight == 0 and self._busy_since is not None:
                self._busy_time += self.rt.now() - self._busy_since
                self._busy_since = None
        if ok:
            # the last chunks may be confirmed by the TransferDone alone, not acknowledged one by one
            self._credit(job, max(0, length - acknowledged))
            job.confirmed += length
            if job.confirmed >= job.nbytes and job in self._jobs:
                self._settle(job, self.rt.now())
        self._fill()

    def _credit(self, job: _Job, nbytes: int) -> None:
        job.unacknowledged -= nbytes
        job.acknowledged += nbytes
        self._sample_bytes += nbytes

    def _settle(self, job: _Job, finished: float | None) -> None:
        self._jobs.remove(job)
        for task in list(job.outstanding.values()):
            if task is not None:
                task.cancel()
        if finished is None:
            self.rt.send(self.peer, JobDropped(job.name))
        outcome = job.outcome(finished)
        self.outcomes.append(outcome)
        if not job.done.done():
            job.done.set_result(outcome)


#: ``handler(src, name, payload)`` for each complete job (the payload is valid during the call)
JobHandler = Callable[[str, str, Payload], Any]


@dataclass
class _Partial:
    total: int
    buffer: bytearray | None  # None for a simulated (virtual) job
    touched: float  # when a segment of it last arrived
    covered: list[tuple[int, int]] = field(default_factory=list)  # disjoint [start, end), sorted

    def add(self, start: int, end: int) -> None:
        """Mark ``[start, end)`` received (a segment sent again after a failure may overlap)."""
        merged: list[tuple[int, int]] = []
        for a, b in self.covered:
            if b < start or a > end:
                merged.append((a, b))
            else:
                start, end = min(a, start), max(b, end)
        merged.append((start, end))
        self.covered = sorted(merged)

    @property
    def complete(self) -> bool:
        return self.covered == [(0, self.total)]


class AllocatedReceiver:
    """Reassembles the jobs an :class:`AllocatedSender` sends with ``tag``; calls ``handler`` once
    per complete job.

    A segment whose placement data is malformed, or whose job would take the buffers of unfinished
    jobs past ``max_buffered`` bytes, is refused at its first chunk: logged here, and its transfer
    fails on the sender's side with the reason. An unfinished job that no segment has reached for
    ``stale_after`` seconds is forgotten (its sender dropped it and the notice was lost, or the
    sender is gone), so that neither a forged header nor a lost message can hold memory for ever.
    """

    def __init__(
        self,
        rt: Runtime,
        amst: AMST,
        handler: JobHandler,
        *,
        tag: str = DEFAULT_TAG,
        max_buffered: int = 1 << 30,
        stale_after: float = 600.0,
    ) -> None:
        if max_buffered < 0 or not stale_after > 0:
            raise ValueError(f"need max_buffered >= 0 and stale_after > 0, got {max_buffered}, {stale_after}")
        self.rt, self.amst, self.handler, self.tag = rt, amst, handler, tag
        self.max_buffered, self.stale_after = int(max_buffered), float(stale_after)
        self._partial: dict[tuple[str, str], _Partial] = {}
        #: segments AMST is receiving straight into a job's buffer (no copy when they complete), by
        #: (source, job, offset): a count, as a segment sent again may be in flight twice
        self._placed: Counter[tuple[str, str, int]] = Counter()
        self.buffered = 0  # bytes of the unfinished jobs' buffers
        self.refused = 0
        self.expired = 0
        amst.on_placed(tag, self._place, self._on_segment)
        rt.on_message(JobDropped, self._on_dropped)

    @property
    def partial_jobs(self) -> int:
        return len(self._partial)

    def _check(self, src: str, meta: bytes, size: int, virtual: bool) -> Segment | str:
        """The segment ``meta`` describes, or what is wrong with it."""
        try:
            seg = _decode_segment(meta)
        except msgspec.DecodeError as exc:
            return f"undecodable segment header: {exc}"
        if not (0 <= seg.offset and seg.length == size and seg.offset + size <= seg.total):
            return f"segment {seg.offset}+{size} of job {seg.job!r} lies outside its {seg.total} bytes"
        if seg.total > self.amst.max_payload:
            return f"job {seg.job!r} of {seg.total} bytes (at most {self.amst.max_payload})"
        partial = self._partial.get((src, seg.job))
        if partial is not None and partial.total != seg.total:
            return f"job {seg.job!r} changed size from {partial.total} to {seg.total} bytes"
        if partial is None and not virtual:
            self._expire()
            if self.buffered + seg.total > self.max_buffered:
                return (
                    f"job {seg.job!r} of {seg.total} bytes would take the unfinished jobs' buffers to "
                    f"{self.buffered + seg.total} bytes (at most {self.max_buffered})"
                )
        return seg

    def _expire(self) -> None:
        """Forget unfinished jobs no segment has reached for ``stale_after`` seconds."""
        oldest = self.rt.now() - self.stale_after
        for key in [key for key, partial in self._partial.items() if partial.touched < oldest]:
            log.warning(
                "%s: forgot job %r from %s: no segment for %gs",
                self.rt.node_id,
                key[1],
                key[0],
                self.stale_after,
            )
            self.expired += 1
            self._forget(*key)

    def _partial_for(self, src: str, seg: Segment, virtual: bool) -> _Partial:
        key = (src, seg.job)
        partial = self._partial.get(key)
        if partial is None:
            # AMST's pool: a fresh buffer costs a page fault per 4 KiB as it is written
            buffer = None if virtual else self.amst.buffers.take(seg.total)
            partial = self._partial[key] = _Partial(seg.total, buffer, self.rt.now())
            self.buffered += 0 if virtual else seg.total
        partial.touched = self.rt.now()
        return partial

    def _place(self, src: str, size: int, meta: bytes) -> memoryview | None:
        seg = self._check(src, meta, size, virtual=False)
        if isinstance(seg, str):
            self._refuse(src, seg)
            raise TransferRefused(seg)  # at its first chunk: the sender's transfer fails at once
        partial = self._partial_for(src, seg, virtual=False)
        assert partial.buffer is not None
        self._placed[(src, seg.job, seg.offset)] += 1
        return memoryview(partial.buffer)[seg.offset : seg.offset + size]

    def _on_segment(self, src: str, meta: bytes, payload: Payload) -> Awaitable[None] | None:
        virtual = not isinstance(payload, (bytes, bytearray, memoryview))  # the simulator's sizes
        size = _decode_length(meta) if virtual else payload_size(payload)
        seg = self._check(src, meta, size, virtual)
        if isinstance(seg, str):  # a simulated one (never placed), or a header only this reads
            self._refuse(src, seg)
            return _refuse(seg)  # AMST fails the transfer with this reason, on the sender's side too
        partial = self._partial_for(src, seg, virtual)
        placed = (src, seg.job, seg.offset)
        if self._placed[placed] > 0:
            self._placed[placed] -= 1
        elif partial.buffer is not None:  # AMST received it in a buffer of its own
            partial.buffer[seg.offset : seg.offset + size] = payload
        partial.add(seg.offset, seg.offset + size)
        if not partial.complete:
            return None
        reusable = self._forget(src, seg.job)
        if partial.buffer is None:
            self.handler(src, seg.job, VirtualPayload(seg.total))
            return None
        whole = memoryview(partial.buffer)[: seg.total]
        try:
            self.handler(src, seg.job, whole)
        finally:
            try:
                whole.release()  # valid during the call only, as AMST's own payloads
            except BufferError:  # the handler kept a view of it: the buffer is its now
                reusable = False
            if reusable:
                self.amst.buffers.give_back(partial.buffer)
        return None

    def _refuse(self, src: str, problem: str) -> None:
        self.refused += 1
        log.warning("%s: refused a segment from %s: %s", self.rt.node_id, src, problem)

    def _on_dropped(self, src: str, message: JobDropped) -> None:
        self._forget(src, message.job)

    def _forget(self, src: str, job: str) -> bool:
        """Drop ``job``'s state; True when no segment of it is still being placed in its buffer
        (then the buffer may go back to the pool: a dropped or expired job's may still be written
        by a transfer its sender abandoned, and is left to the garbage collector)."""
        partial = self._partial.pop((src, job), None)
        if partial is not None and partial.buffer is not None:
            self.buffered -= partial.total
        placing = [key for key, count in self._placed.items() if key[:2] == (src, job) and count > 0]
        for key in [key for key in self._placed if key[:2] == (src, job)]:
            del self._placed[key]
        return not placing


async def _refuse(problem: str) -> None:
    raise ValueError(problem)


def _decode_length(meta: bytes) -> int:
    try:
        return _decode_segment(meta).length
    except msgspec.DecodeError:
        return -1
