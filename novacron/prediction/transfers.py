"""PBA in the protocol stack: an allocator sharing the link among AMST transfers with deadlines.

The allocators of :mod:`.allocation` answer one question: given a forecast of the link and the
transfers in flight (remaining megabits, time to deadline, priority), what share of the link
should each get now, and over how many AMST streams? The gymnasium environment
(:mod:`novacron.sim.envs.bandwidth`) replays traces against that answer in steps of ``dt``.
:class:`AllocatedSender` applies the same answer to real AMST transfers, on either runtime, in
*rounds*. Each round it

1. forecasts the link for ``horizon`` steps of ``step`` seconds (Mbit/s) with the allocator's
   predictor, or its own, from the throughput measured in earlier rounds;
2. asks the allocator for shares and stream counts for the jobs in flight;
3. sends each job its share of what the forecast link carries in one step, as one AMST transfer
   (a *segment*) over the allocator's stream count, all jobs at once;
4. waits for every segment, and records the bytes moved over the round's duration as a new
   throughput sample when the round was sized to fill the link.

Why byte budgets per round, not rates: streams share a bottleneck by flow fairness, not by
weight, and a rate per transfer would need pacing inside every runtime's streams. A budget per
round enforces the shares over the round whatever the stream counts, on both runtimes; the cost
is one round trip per round (the barrier at step 4), which the measured throughput includes, so
the forecasts are of what the sender can actually move per round. When the link turns out
faster than forecast the round ends early and the next one starts at once (no idling); when it
is slower the round runs long and the next plan sees the missed bytes and the nearer deadlines.

A job whose deadline passes before its last byte is confirmed is *missed*: it is dropped (its
outcome says how much was delivered) and the receiver is told to free its partial copy, as the
environment drops it; a late result is worth nothing to the callers this is for (say, the
pre-copy rounds of a migration window). Jobs submitted during a round join the next one.

:class:`AllocatedReceiver` reassembles each job from its segments (placed straight into one
buffer per job) and hands the complete payload to its handler once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from novacron.runtime import Payload, Runtime, TransferError, VirtualPayload, payload_size
from novacron.runtime.contract import FutureLike
from novacron.runtime.messages import Message
from novacron.transport import AMST

from .allocation import Allocator, Transfer
from .predictors import EWMA, FLOOR_MBPS, Predictor

log = logging.getLogger(__name__)

#: the AMST tag of segments unless told otherwise
DEFAULT_TAG = "pba"
#: segments smaller than this are not worth a transfer's fixed cost (the last one of a job may be)
MIN_SEGMENT = 16 * 1024
#: a round whose segments add up to at least this share of the forecast step fills the link,
#: so its bytes over its duration measure the link (a round of a few small leftovers does not)
FILL_SHARE = 0.9
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
    sent: int = 0  # bytes confirmed by the receiver (segments are sent in order)

    @property
    def nbytes(self) -> int:
        return payload_size(self.payload)

    def outcome(self, finished: float | None) -> JobOutcome:
        return JobOutcome(
            self.name, self.nbytes, self.priority, self.submitted, self.deadline, finished, self.sent
        )


@dataclass
class RoundLog:
    """One round: when, the forecast it planned with, what it sent and the throughput it measured."""

    started: float
    duration: float
    forecast_mbps: float
    jobs: int
    sent_bytes: int
    streams: int
    measured_mbps: float | None


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
    are counted in steps and a round sends about one step's worth. Call :meth:`run` (spawned) to
    start sending, :meth:`submit` to add jobs, :meth:`close` to stop.
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
        tag: str = DEFAULT_TAG,
        min_segment: int = MIN_SEGMENT,
    ) -> None:
        if not (initial_mbps > 0 and math.isfinite(initial_mbps)):
            raise ValueError(f"initial_mbps must be a positive rate, got {initial_mbps}")
        if not step > 0 or horizon < 1 or min_segment < 1:
            raise ValueError(
                f"need step > 0, horizon >= 1, min_segment >= 1; got {step}, {horizon}, {min_segment}"
            )
        self.rt, self.amst, self.peer, self.allocator = rt, amst, peer, allocator
        self.initial_mbps = float(initial_mbps)
        self.predictor = allocator.predictor or predictor or EWMA()
        self.step, self.horizon, self.tag, self.min_segment = float(step), int(horizon), tag, int(min_segment)
        self.samples: list[float] = []  # measured Mbit/s, one per round that filled the link
        self.rounds: list[RoundLog] = []
        self.outcomes: list[JobOutcome] = []
        self._jobs: list[_Job] = []
        self._names: set[str] = set()
        self._wake: FutureLike[None] | None = None
        self._closed = False

    # -- the caller's side ----------------------------------------------------------------------
    def submit(
        self, name: str, payload: Payload, deadline: float, priority: float = 1.0
    ) -> FutureLike[JobOutcome]:
        """Queue ``payload`` for the next round; the future resolves with its :class:`JobOutcome`.

        ``deadline`` is absolute, on the runtime's clock; ``priority`` in (0, 1].
        """
        if self._closed:
            raise RuntimeError("the sender is closed")
        if not name or len(name.encode()) > MAX_NAME_BYTES:
            raise ValueError(f"a job name must have 1-{MAX_NAME_BYTES} bytes, got {name!r}")
        if name in self._names:
            raise ValueError(f"a job named {name!r} is already in flight")
        if not 0 < priority <= 1:
            raise ValueError(f"priority must be in (0, 1], got {priority}")
        now = self.rt.now()
        job = _Job(name, payload, float(deadline), float(priority), now, self.rt.create_future())
        self._jobs.append(job)
        self._names.add(name)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        return job.done

    def close(self) -> None:
        """Stop after the current round; jobs still queued end as missed."""
        self._closed = True
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    # -- rounds ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Send rounds while there are jobs, wait for jobs otherwise, until :meth:`close`."""
        while not self._closed:
            if not self._jobs:
                self._wake = self.rt.create_future()
                await self._wake
                self._wake = None
                continue
            await self.round()
        for job in list(self._jobs):
            self._settle(job, None)

    def forecast(self) -> np.ndarray:
        """Mbit/s for the next ``horizon`` steps, from the rounds measured so far."""
        if not self.samples:
            return np.full(self.horizon, self.initial_mbps)
        history = np.asarray(self.samples, dtype=float)
        return np.maximum(np.asarray(self.predictor.predict(history, self.horizon), dtype=float), FLOOR_MBPS)

    async def round(self) -> None:
        """One round: drop what is late, plan, send every job its segment, measure."""
        now = self.rt.now()
        for job in [j for j in self._jobs if j.deadline <= now]:
            self._settle(job, None)
        if not self._jobs:
            return
        forecast = self.forecast()
        jobs = list(self._jobs)
        transfers = [
            Transfer(
                (job.nbytes - job.sent) * 8 / 1e6,
                max(1, math.ceil((job.deadline - now) / self.step)),
                job.priority,
            )
            for job in jobs
        ]
        plan = self.allocator.allocate(forecast, transfers, self.step)
        step_bytes = float(forecast[0]) * 1e6 / 8 * self.step
        sends = []
        for job, share, streams in zip(jobs, plan.shares, plan.streams, strict=True):
            left = job.nbytes - job.sent
            if share <= 0 or streams <= 0:
                continue
            length = min(left, max(self.min_segment, int(share * step_bytes)))
            sends.append((job, length, int(streams)))
        if not sends:  # nothing to send this step (an allocator may pause everyone)
            await self.rt.sleep(self.step)
            return
        tasks = [self.rt.spawn(self._send(job, length, streams)) for job, length, streams in sends]
        moved = 0
        for task in tasks:
            moved += await task
        duration = self.rt.now() - now
        planned = sum(length for _, length, _ in sends)
        measured = None
        if planned >= FILL_SHARE * step_bytes and duration > 0:
            measured = moved * 8 / 1e6 / duration
            self.samples.append(measured)
        self.rounds.append(
            RoundLog(now, duration, float(forecast[0]), len(jobs), moved, sum(s for *_, s in sends), measured)
        )

    async def _send(self, job: _Job, length: int, streams: int) -> int:
        """One segment of ``job``; returns the bytes delivered (0 if the transfer failed)."""
        offset = job.sent
        meta = _encode_segment(Segment(job.name, offset, length, job.nbytes))
        chunk = max(self.min_segment, -(-length // streams))
        try:
            await self.amst.send(
                self.peer,
                _segment_of(job.payload, offset, length),
                streams=streams,
                tag=self.tag,
                meta=meta,
                chunk_size=chunk,
            )
        except TransferError as exc:  # the bytes stay queued: the next round sends them again
            log.warning(
                "%s: segment %d+%d of job %r failed: %s", self.rt.node_id, offset, length, job.name, exc
            )
            return 0
        job.sent = offset + length
        if job.sent >= job.nbytes and job in self._jobs:
            self._settle(job, self.rt.now())
        return length

    def _settle(self, job: _Job, finished: float | None) -> None:
        self._jobs.remove(job)
        self._names.discard(job.name)
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
    per complete job. A segment whose placement data is malformed is refused: logged here, and its
    transfer fails on the sender's side with the reason."""

    def __init__(self, rt: Runtime, amst: AMST, handler: JobHandler, *, tag: str = DEFAULT_TAG) -> None:
        self.rt, self.amst, self.handler, self.tag = rt, amst, handler, tag
        self._partial: dict[tuple[str, str], _Partial] = {}
        #: segments AMST is receiving straight into a job's buffer (no copy when they complete)
        self._placed: set[tuple[str, str, int]] = set()
        self.refused = 0
        amst.on_placed(tag, self._place, self._on_segment)
        rt.on_message(JobDropped, self._on_dropped)

    @property
    def partial_jobs(self) -> int:
        return len(self._partial)

    def _check(self, src: str, meta: bytes, size: int) -> Segment | str:
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
        return seg

    def _partial_for(self, src: str, seg: Segment, virtual: bool) -> _Partial:
        key = (src, seg.job)
        partial = self._partial.get(key)
        if partial is None:
            partial = self._partial[key] = _Partial(seg.total, None if virtual else bytearray(seg.total))
        return partial

    def _place(self, src: str, size: int, meta: bytes) -> memoryview | None:
        seg = self._check(src, meta, size)
        if isinstance(seg, str):
            return None  # AMST buffers it; _on_segment refuses it
        partial = self._partial_for(src, seg, virtual=False)
        assert partial.buffer is not None
        self._placed.add((src, seg.job, seg.offset))
        return memoryview(partial.buffer)[seg.offset : seg.offset + size]

    def _on_segment(self, src: str, meta: bytes, payload: Payload) -> Awaitable[None] | None:
        virtual = not isinstance(payload, (bytes, bytearray, memoryview))  # the simulator's sizes
        size = _decode_length(meta) if virtual else payload_size(payload)
        seg = self._check(src, meta, size)
        if isinstance(seg, str):
            self.refused += 1
            log.warning("%s: refused a segment from %s: %s", self.rt.node_id, src, seg)
            return _refuse(seg)  # AMST fails the transfer with this reason, on the sender's side too
        partial = self._partial_for(src, seg, virtual)
        placed = (src, seg.job, seg.offset)
        if placed in self._placed:
            self._placed.discard(placed)
        elif partial.buffer is not None:  # AMST received it in a buffer of its own
            partial.buffer[seg.offset : seg.offset + size] = payload
        partial.add(seg.offset, seg.offset + size)
        if not partial.complete:
            return
        del self._partial[(src, seg.job)]
        whole: Payload = VirtualPayload(seg.total) if partial.buffer is None else memoryview(partial.buffer)
        self.handler(src, seg.job, whole)

    def _on_dropped(self, src: str, message: JobDropped) -> None:
        self._partial.pop((src, message.job), None)
        self._placed = {key for key in self._placed if key[:2] != (src, message.job)}


async def _refuse(problem: str) -> None:
    raise ValueError(problem)


def _decode_length(meta: bytes) -> int:
    try:
        return _decode_segment(meta).length
    except msgspec.DecodeError:
        return -1
