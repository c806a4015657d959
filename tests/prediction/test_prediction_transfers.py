"""PBA's allocator driving AMST: jobs with deadlines sent as pieces of a window, shared by plan."""

import hashlib

import msgspec
import numpy as np
import pandas as pd
import pytest

from novacron.prediction.allocation import Allocator, EarliestDeadlineFirst, EqualShare
from novacron.prediction.transfers import HEADROOM, WINDOW_STEPS, AllocatedReceiver, AllocatedSender, Segment
from novacron.runtime import TransferError, VirtualPayload
from novacron.sim import Simulation, topologies
from novacron.transport import AMST

MB = 1_000_000


class Link:
    """Two simulated nodes; ``x`` sends jobs to ``y`` over a link replaying ``mbps`` (one per second)."""

    def __init__(self, mbps, allocator=None, seed=0, receiver_options=None, rtt=0.01, **sender_options):
        self.sim = Simulation(topologies.pair(rtt=rtt, nic_bandwidth=10e9), seed=seed)
        self.received: dict[str, object] = {}
        times = np.arange(len(mbps), dtype=float)
        self.sim.faults.replay_bandwidth(self.sim.faults.links_between_sites("a", "b"), times, mbps)

        def app(rt):
            amst = AMST(rt)
            if rt.node_id == "y":
                return AllocatedReceiver(rt, amst, self._deliver, **(receiver_options or {}))
            options = {"initial_mbps": float(mbps[0]), **sender_options}  # may override it
            return AllocatedSender(rt, amst, "y", allocator or EarliestDeadlineFirst(), **options)

        self.sim.start(app)
        self.sender: AllocatedSender = self.sim.runtime("x").app
        self.receiver: AllocatedReceiver = self.sim.runtime("y").app

    def _deliver(self, src, name, payload):
        self.received[name] = payload if isinstance(payload, VirtualPayload) else bytes(payload)

    def run(self, jobs, timeout=600):
        """Submit ``jobs`` = [(name, payload, deadline, priority), ...] at t=0; outcomes by name."""

        async def go(rt):
            sender = rt.app
            runner = rt.spawn(sender.run())
            futures = [sender.submit(*job) for job in jobs]
            outcomes = [await f for f in futures]
            sender.close()
            await runner
            return {o.name: o for o in outcomes}

        return self.sim.run_until_complete("x", go, timeout=timeout)

    def run_in_turn(self, jobs, timeout=600):
        """Each of ``jobs`` = [(name, payload, seconds to deadline), ...] once the last has ended."""

        async def go(rt):
            sender = rt.app
            runner = rt.spawn(sender.run())
            outcomes = {}
            for name, payload, seconds in jobs:
                outcomes[name] = await sender.submit(name, payload, rt.now() + seconds)
                await rt.sleep(1.0)  # (a drop notice crosses the link)
            sender.close()
            await runner
            return outcomes

        return self.sim.run_until_complete("x", go, timeout=timeout)


def test_jobs_arrive_intact_and_each_is_handed_over_once():
    link = Link([8.0] * 30)
    rng = np.random.default_rng(0)
    a, b = rng.bytes(3 * MB + 17), rng.bytes(MB)
    outcomes = link.run([("a", a, 20.0, 1.0), ("b", b, 20.0, 0.5)])
    assert link.received == {"a": a, "b": b}
    assert all(o.met and o.delivered == o.nbytes for o in outcomes.values())
    assert link.receiver.partial_jobs == 0 and link.sender.in_flight == 0


def test_an_empty_job_is_delivered_as_an_empty_payload():
    link = Link([8.0] * 10)
    outcomes = link.run([("empty", b"", 5.0, 1.0), ("virtual", VirtualPayload(0), 5.0, 1.0)])
    assert all(o.met and o.delivered == 0 for o in outcomes.values())
    assert link.received == {"empty": b"", "virtual": VirtualPayload(0)}


def test_edf_serves_the_nearer_deadline_first_and_equal_share_serves_both_together():
    jobs = [("late", VirtualPayload(4 * MB), 20.0, 1.0), ("soon", VirtualPayload(4 * MB), 6.0, 1.0)]
    edf = Link([8.0] * 30, EarliestDeadlineFirst()).run(jobs)
    equal = Link([8.0] * 30, EqualShare()).run(jobs)
    # 1 MB/s: EDF sends "soon" alone (done at ~4.5 s, well before its 6 s deadline: its last
    # window shares the link with "late"), then "late"; equal shares give each 0.5 MB/s, so "soon"
    # has ~3 MB at 6 s and is dropped, and "late" (3 MB by then) gets the whole link for its last MB
    assert edf["soon"].met and edf["soon"].finished < 5.0 and edf["late"].finished > 7.5
    assert not equal["soon"].met and equal["soon"].delivered == pytest.approx(3 * MB, rel=0.1)
    assert equal["late"].met and 6.5 < equal["late"].finished < 7.5


class FixedShares(Allocator):
    """Shares in the jobs' order of submission, whatever their state."""

    name = "fixed"

    def __init__(self, *shares):
        super().__init__()
        self.fixed = shares

    def shares(self, forecast, transfers, dt):
        return np.array(self.fixed[: len(transfers)], dtype=float)


def delivered_by(link, at, jobs):
    """Bytes of each job acknowledged at time ``at`` (the sender's own count)."""

    async def go(rt):
        sender = rt.app
        runner = rt.spawn(sender.run())
        for job in jobs:
            sender.submit(*job)
        await rt.sleep(at)
        counts = {job.name: job.acknowledged for job in sender._jobs}
        sender.close()
        await runner
        return counts

    return link.sim.run_until_complete("x", go, timeout=at + 60)


def test_pieces_follow_the_shares():
    jobs = [("big", VirtualPayload(40 * MB), 60.0, 1.0), ("small", VirtualPayload(40 * MB), 60.0, 1.0)]
    counts = delivered_by(Link([8.0] * 30, FixedShares(0.75, 0.25)), 12.0, jobs)
    # ~11 MB in 12 s at 1 MB/s, handed out in pieces, each to the job furthest behind its share
    assert sum(counts.values()) == pytest.approx(11.5 * MB, rel=0.06)
    assert counts["big"] / sum(counts.values()) == pytest.approx(0.75, abs=0.03)


def test_the_window_is_filled_whatever_the_shares_sum_to():
    """Shares set proportions; a link left idle would help no deadline."""
    jobs = [("a", VirtualPayload(40 * MB), 60.0, 1.0), ("b", VirtualPayload(40 * MB), 60.0, 1.0)]
    counts = delivered_by(Link([8.0] * 30, FixedShares(0.3, 0.1)), 12.0, jobs)
    assert sum(counts.values()) == pytest.approx(11.5 * MB, rel=0.06)
    assert counts["a"] / sum(counts.values()) == pytest.approx(0.75, abs=0.03)


def test_a_job_without_a_share_gets_the_link_only_when_the_others_have_nothing_left():
    jobs = [("first", VirtualPayload(3 * MB), 60.0, 1.0), ("second", VirtualPayload(3 * MB), 60.0, 1.0)]
    outcomes = Link([8.0] * 30, FixedShares(1.0, 0.0)).run(jobs)
    # "second" never has a share, yet is sent once "first" has no bytes left to hand out
    assert outcomes["first"].finished < 3.8 and outcomes["second"].met
    assert outcomes["second"].finished < 6.8


def test_what_is_in_flight_stays_within_the_window():
    """The bound that lets an urgent job overtake: at most the window (here its floor, a tenth of a
    step of the forecast link, plus headroom) and one piece is ever handed out and unacknowledged."""
    link = Link([8.0] * 30)
    peaks = []

    async def go(rt):
        sender = rt.app
        runner = rt.spawn(sender.run())
        done = [sender.submit(f"j{i}", VirtualPayload(3 * MB), 30.0, 1.0) for i in range(3)]
        while not all(f.done() for f in done):
            peaks.append(sum(job.unacknowledged for job in sender._jobs))
            await rt.sleep(0.01)
        sender.close()
        await runner

    link.sim.run_until_complete("x", go, timeout=120)
    window = 1e6 / 8 * 8.0 * WINDOW_STEPS * (1 + HEADROOM)  # bytes
    assert max(peaks) <= window * 1.25 + 1 and max(peaks) > window * 0.9


@pytest.mark.parametrize(("round_trips", "window"), [(2.0, 0.1), (0.0, 0.6)])
def test_a_long_round_trip_does_not_leave_the_link_idle(round_trips, window):
    """Pieces are topped up as their chunks are acknowledged, not as they complete (pieces in
    flight side by side complete together, and the link idled a round trip each time), and the
    window holds at least ``round_trips`` round trips of the link (as AMST measures them)."""
    link = Link([8.0] * 60, rtt=0.3, window=window, round_trips=round_trips)
    outcomes = link.run([("job", VirtualPayload(20 * MB), 60.0, 1.0)])
    # 20 MB at 1 MB/s: 20 s, plus a round trip for the last acknowledgement and a step or so for
    # the forecast to climb from its first sample (which counts the first round trip and the
    # streams' handshakes as busy time)
    assert outcomes["job"].finished < 22.0
    windows = [s.window_s for s in link.sender.steps]
    assert windows[0] == window  # before the first probe's echo
    assert windows[1:] == pytest.approx([max(window, round_trips * 0.3)] * (len(windows) - 1), rel=0.01)


def test_a_window_short_of_the_round_trip_leaves_the_link_idle():
    """The other side of the test above: what the round trips are there for. A window of a sixth
    of the round trip carries a sixth of the link, measures that, and shrinks with the forecast."""
    link = Link([8.0] * 60, rtt=0.3, window=0.05, round_trips=0.0)
    outcomes = link.run([("job", VirtualPayload(20 * MB), 60.0, 1.0)])
    assert not outcomes["job"].met and outcomes["job"].delivered < 5 * MB


def test_a_failed_segment_is_sent_again_after_the_next_plan():
    """Not at once: a receiver that refuses (out of memory, say) would be asked again every round
    trip until the deadline."""
    link = Link([8.0] * 30)
    check, offered = link.receiver._check, []

    def refuse_once(src, meta, size, virtual):  # the receiver turns the first segment away
        offset = msgspec.msgpack.decode(meta, type=Segment).offset
        offered.append((link.sim.now, offset))
        return "not now" if len(offered) == 1 else check(src, meta, size, virtual)

    link.receiver._check = refuse_once
    payload = np.random.default_rng(1).bytes(2 * MB)
    outcomes = link.run([("job", payload, 20.0, 1.0)])
    assert outcomes["job"].met and link.received == {"job": payload} and link.receiver.refused == 1
    again = [at for at, offset in offered[1:] if offset == 0]
    assert again and min(again) >= 1.0  # at the plan of the second step (checked twice: place, end)


def test_a_job_that_cannot_make_its_deadline_is_dropped_and_the_receiver_frees_it():
    link = Link([8.0] * 30)
    outcomes = link.run([("big", VirtualPayload(10 * MB), 3.0, 1.0)])
    big = outcomes["big"]
    assert not big.met and big.finished is None
    assert 2 * MB <= big.delivered < 4 * MB  # what the link carried before the deadline
    link.sim.run(until=link.sim.now + 1.0)  # the drop notice crosses the link
    assert link.receiver.partial_jobs == 0 and "big" not in link.received


def test_steps_measure_the_link_and_follow_a_drop_in_capacity():
    link = Link([16.0] * 10 + [4.0] * 60, step=1.0)
    link.run([("job", VirtualPayload(30 * MB), 60.0, 1.0)])
    samples = pd.Series({s.at: s.measured_mbps for s in link.sender.steps if s.measured_mbps is not None})
    early, late = samples[(samples.index > 1.5) & (samples.index <= 10.0)], samples[samples.index > 14.0]
    assert len(early) >= 6 and len(late) >= 10
    # bytes are credited when their segment completes, so single steps are grainy; on average
    # the steps see the link's rate (not the forecast's), within 5 %
    assert early.mean() == pytest.approx(16.0, rel=0.05) and late.mean() == pytest.approx(4.0, rel=0.05)
    assert link.sender.forecast()[0] == pytest.approx(4.0, rel=0.1)


def test_a_forecast_that_starts_far_too_low_rises_to_the_link():
    """Budgets from a low forecast leave the link idle between segments; measured over the time
    segments were in flight, the rate is the link's, so the forecast climbs instead of sticking."""
    link = Link([8.0] * 60, initial_mbps=0.5)
    outcomes = link.run([("job", VirtualPayload(30 * MB), 60.0, 1.0)])
    assert outcomes["job"].met
    rising = [s.forecast_mbps for s in link.sender.steps]
    assert rising[0] == 0.5 and max(rising) == pytest.approx(8.0, rel=0.1)
    assert next(i for i, f in enumerate(rising) if f > 6.0) <= 8  # over the whole step: 11


def test_a_slow_link_is_measured_at_its_rate_not_in_bursts():
    """At 0.4 Mbit/s a one-step budget (50 kB) over the allocator's 16 streams would deliver its
    chunks all at once, a burst per second or two; fewer streams keep the samples near the rate."""
    link = Link([0.4] * 120)
    link.run([(f"j{i}", VirtualPayload(400_000), 10.0 * (i + 1), 1.0) for i in range(8)])
    samples = np.array(link.sender.samples)[2:]
    assert len(samples) >= 30 and np.all((samples > 0.25) & (samples < 0.6))
    assert np.median(samples) == pytest.approx(0.4, rel=0.1)


def test_a_step_that_leaves_the_link_idle_is_not_taken_for_its_rate():
    link = Link([8.0] * 30)
    link.run([("small", VirtualPayload(100_000), 20.0, 1.0)])  # a tenth of a 1 MB step
    assert [s.measured_mbps for s in link.sender.steps] == [None] and not link.sender.samples


def test_the_allocators_stream_counts_reach_amst():
    """Where pieces are large enough for them (a fast link with a long round trip: where streams
    pay, each connection's window capping it)."""
    link = Link([8000.0] * 30, rtt=0.3)
    link.run([("one", VirtualPayload(2000 * MB), 20.0, 1.0)])
    # a lone job gets the whole link: EDF's share 1 -> 16 streams, each with chunks of its own
    assert {s.streams for s in link.sender.steps if s.assigned_bytes} == {16}
    assert link.sim.runtime("x").app.amst.streams_opened >= 16


@pytest.mark.parametrize(
    ("mbps", "smallest", "largest"),
    [(2.0, 4096, 4096), (800.0, 90_000, 512 * 1024), (8000.0, 512 * 1024, 512 * 1024)],
)
def test_chunks_carry_at_least_a_millisecond_of_the_link(mbps, smallest, largest):
    """Every chunk costs the same fixed work at both ends: on a fast link small chunks make a
    transfer CPU-bound (the simulator does not show it; the real backend does)."""
    link = Link([mbps] * 30)
    chunks = []
    send = link.sender.amst.send

    def spy(*args, chunk_size, **kwargs):
        chunks.append(chunk_size)
        return send(*args, chunk_size=chunk_size, **kwargs)

    link.sender.amst.send = spy
    link.run([("job", VirtualPayload(int(mbps * 1e6 / 8 * 3)), 30.0, 1.0)])
    assert chunks and smallest <= min(chunks) and max(chunks) <= largest


def test_the_same_seed_gives_the_same_steps():
    def steps(seed):
        link = Link(list(np.linspace(2.0, 20.0, 40)), seed=seed)
        link.run([(f"j{i}", VirtualPayload((i + 1) * MB), 5.0 + 3 * i, 1.0) for i in range(5)])
        return [(s.at, s.assigned_bytes, s.measured_mbps) for s in link.sender.steps]

    assert steps(3) == steps(3)


def test_bad_jobs_are_refused_naming_what_is_wrong():
    sender = Link([8.0]).sender
    sender.submit("a", b"x", 10.0)
    with pytest.raises(ValueError, match="already in flight"):
        sender.submit("a", b"y", 10.0)
    with pytest.raises(ValueError, match="priority"):
        sender.submit("b", b"y", 10.0, priority=0.0)
    with pytest.raises(ValueError, match="name"):
        sender.submit("n" * 200, b"y", 10.0)
    with pytest.raises(ValueError, match="initial_mbps"):
        AllocatedSender(sender.rt, sender.amst, "y", EqualShare(), initial_mbps=0.0)


def test_a_finished_jobs_buffer_is_reused_for_the_next():
    """As AMST's own: a fresh buffer costs a page fault per 4 KiB as it is written."""
    link = Link([8.0] * 30)
    rng = np.random.default_rng(2)
    a, b = rng.bytes(2 * MB), rng.bytes(2 * MB)
    link.run_in_turn([("a", a, 10.0), ("b", b, 10.0)])
    assert link.received == {"a": a, "b": b}
    pool = link.receiver.amst.buffers
    assert pool.allocated == 1 and pool.reused == 1


def test_the_payload_handed_to_the_handler_is_valid_during_the_call_only():
    """Its buffer is reused, so a kept payload fails loudly instead of showing the next job's bytes
    (a handler copies what it keeps, as with AMST's own payloads)."""
    link = Link([8.0] * 30)
    kept, copies = [], []

    def handler(src, name, payload):
        kept.append(payload)
        copies.append(bytes(payload))

    link.receiver.handler = handler
    rng = np.random.default_rng(3)
    a, b = rng.bytes(2 * MB), rng.bytes(2 * MB)
    link.run_in_turn([("a", a, 10.0), ("b", b, 10.0)])
    assert copies == [a, b] and link.receiver.amst.buffers.reused == 1
    with pytest.raises(ValueError, match="released"):
        bytes(kept[0])


def test_a_dropped_jobs_buffer_is_not_reused():
    """A segment its sender abandoned may still be written into it."""
    link = Link([8.0] * 30)
    rng = np.random.default_rng(4)
    late, ok = rng.bytes(4 * MB), rng.bytes(4 * MB)
    outcomes = link.run_in_turn([("late", late, 2.0), ("ok", ok, 10.0)])
    assert not outcomes["late"].met and outcomes["ok"].met and link.received == {"ok": ok}
    assert link.receiver.amst.buffers.reused == 0


def test_a_malformed_segment_is_refused_and_later_jobs_still_arrive():
    link = Link([8.0] * 30)

    async def forge(rt):
        with pytest.raises(TransferError, match="undecodable segment header"):
            await rt.app.amst.send("y", b"junk", tag="pba", meta=b"\xc1not msgpack")

    link.sim.run_until_complete("x", forge, timeout=60)
    assert link.receiver.refused == 1 and link.receiver.partial_jobs == 0
    outcomes = link.run([("ok", b"payload", 10.0, 1.0)])
    assert outcomes["ok"].met and link.received == {"ok": b"payload"}


def test_a_job_bigger_than_the_receivers_buffer_budget_is_refused_and_others_still_arrive():
    link = Link([8.0] * 30, receiver_options={"max_buffered": MB})
    outcomes = link.run([("big", b"x" * (2 * MB), 10.0, 1.0), ("small", b"y" * 1000, 10.0, 1.0)])
    assert not outcomes["big"].met and outcomes["big"].delivered == 0
    assert outcomes["small"].met and link.received == {"small": b"y" * 1000}
    assert link.receiver.refused >= 1 and link.receiver.buffered == 0


def test_an_unfinished_job_nobody_sends_to_any_more_is_forgotten():
    link = Link([8.0] * 30, receiver_options={"stale_after": 5.0})

    async def orphan(rt):  # half of a job whose sender then goes silent (no drop notice)
        meta = msgspec.msgpack.encode(Segment("orphan", 0, 1000, 2000))
        await rt.app.amst.send("y", b"z" * 1000, tag="pba", meta=meta)

    link.sim.run_until_complete("x", orphan, timeout=60)
    assert link.receiver.partial_jobs == 1 and link.receiver.buffered == 2000
    link.sim.run(until=link.sim.now + 6.0)
    outcomes = link.run([("next", b"n" * 100, link.sim.now + 10.0, 1.0)])
    assert outcomes["next"].met and link.receiver.expired == 1
    assert link.receiver.partial_jobs == 0 and link.receiver.buffered == 0


def test_the_same_code_delivers_on_both_runtimes(harness):
    digests = {}

    def app(rt):
        amst = AMST(rt, query_interval=0.2)
        if rt.node_id == "n1":
            return AllocatedReceiver(
                rt, amst, lambda src, name, p: digests.update({name: hashlib.sha256(p).hexdigest()})
            )
        return AllocatedSender(rt, amst, "n1", EarliestDeadlineFirst(), initial_mbps=400.0, step=0.05)

    harness.start(["n0", "n1"], app)

    async def scenario(rt):
        sender = rt.app
        runner = rt.spawn(sender.run())
        payloads = {f"job{i}": rt.random.randbytes((i + 1) * MB) for i in range(3)}
        futures = [sender.submit(name, p, rt.now() + 60.0) for name, p in payloads.items()]
        outcomes = [await f for f in futures]
        sender.close()
        await runner
        return outcomes, {name: hashlib.sha256(p).hexdigest() for name, p in payloads.items()}

    outcomes, expected = harness.run("n0", scenario, timeout=60)
    assert digests == expected and all(o.met for o in outcomes)


def test_a_forecaster_from_outside_replaces_the_measured_forecast():
    link = Link(
        [16.0] * 5 + [4.0] * 30, initial_mbps=1.0, forecaster=lambda now, h: [16.0 if now < 5 else 4.0] * h
    )
    link.run([("job", VirtualPayload(12 * MB), 30.0, 1.0)])
    assert [s.forecast_mbps for s in list(link.sender.steps)[:8]] == [16.0] * 5 + [4.0] * 3
    assert link.sender.samples  # it still measures


def test_a_job_submitted_between_steps_starts_at_once():
    """The environment's transfers arrive at a step's start; one that waited for the sender's next
    planned step would lose up to a step of its deadline."""
    link = Link([8.0] * 30)

    async def go(rt):
        sender = rt.app
        runner = rt.spawn(sender.run())
        first = sender.submit("long", VirtualPayload(8 * MB), 20.0)
        await rt.sleep(0.5)
        second = sender.submit("short", VirtualPayload(MB), rt.now() + 4.0)
        outcomes = [await first, await second]
        sender.close()
        await runner
        return outcomes

    long, short = link.sim.run_until_complete("x", go, timeout=120)
    assert [(s.at, s.jobs) for s in list(link.sender.steps)[:2]] == [(0.0, 1), (0.5, 2)]
    assert long.met and short.met and short.finished < long.finished
