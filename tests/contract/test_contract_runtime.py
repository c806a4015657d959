"""The contract, proven alike on the simulator and the asyncio backend.

Every test here runs twice (``harness`` is parametrized over both runtimes)
and the protocol code inside each test is the same for both: it uses only
``novacron.runtime``.
"""

import hashlib
from asyncio import CancelledError

import pytest

from novacron.monitoring import HeartbeatService
from novacron.runtime import Message, Runtime, TransferError, first_completed, wait_for

NODES = ["n0", "n1", "n2"]


class Ping(Message):
    seq: int
    sent_at: float


class Pong(Message):
    seq: int
    sent_at: float


class Digest(Message):
    hexdigest: str


def echo_app(rt: Runtime):
    """The smallest protocol: answer every Ping with a Pong."""
    rt.on_message(Ping, lambda src, m: rt.send(src, Pong(m.seq, m.sent_at)))


def test_runtimes_satisfy_the_protocol(harness):
    harness.start(NODES)
    rt = harness.runtime("n0")
    assert isinstance(rt, Runtime)
    assert rt.node_id == "n0"
    assert rt.peers == ("n1", "n2")
    assert rt.peer_info("n1").node_id == "n1"


def test_timers_fire_in_deadline_order_and_cancelled_ones_never(harness):
    harness.start(NODES[:1])

    async def scenario(rt):
        fired = []
        rt.call_later(0.03, fired.append, "c")
        rt.call_later(0.01, fired.append, "a")
        cancelled = rt.call_later(0.02, fired.append, "never")
        rt.call_later(0.02, fired.append, "b")
        cancelled.cancel()
        start = rt.now()
        await rt.sleep(0.1)
        return fired, rt.now() - start, cancelled.cancelled()

    fired, elapsed, was_cancelled = harness.run("n0", scenario)
    assert fired == ["a", "b", "c"]
    assert elapsed >= 0.1
    assert was_cancelled


def test_no_timer_or_sleep_ends_before_its_delay_on_the_runtimes_clock(harness):
    """Sub-millisecond delays included: uvloop's own clock counts whole milliseconds, and read
    through it a 0.3 ms sleep took 0 s and a 0.4 ms timer fired at once."""
    harness.start(NODES[:1])
    delays = [0.0001, 0.0003, 0.0004, 0.0006, 0.0013, 0.0025]

    async def scenario(rt):
        slept, fired = [], []
        for delay in delays:
            start = rt.now()
            await rt.sleep(delay)
            slept.append(rt.now() - start)
        for delay in delays:
            done = rt.create_future()
            start = rt.now()
            rt.call_later(delay, lambda start=start, done=done: done.set_result(rt.now() - start))
            fired.append(await done)
        return slept, fired

    slept, fired = harness.run("n0", scenario)
    tolerance = 1e-9  # float rounding of the simulator's exact virtual times
    for delay, took in zip(delays, slept, strict=True):
        assert took >= delay - tolerance, f"sleep({delay}) returned after {took}"
    for delay, took in zip(delays, fired, strict=True):
        assert took >= delay - tolerance, f"call_later({delay}) fired after {took}"
    if harness.kind != "sim":  # and real timers are not wildly late either
        assert max(t - d for d, t in zip(delays * 2, slept + fired, strict=True)) < 0.5


def test_wait_for_times_out_and_cancels(harness):
    harness.start(NODES[:1])

    async def scenario(rt):
        async def slow():
            await rt.sleep(10)
            return "late"

        async def quick():
            await rt.sleep(0.01)
            return "soon"

        with pytest.raises(TimeoutError):
            await wait_for(rt, slow(), 0.05)
        return await wait_for(rt, quick(), 5.0)

    assert harness.run("n0", scenario) == "soon"


def test_first_completed_returns_the_tasks_done_first_whatever_their_order(harness):
    harness.start(NODES[:1])

    async def scenario(rt):
        async def after(delay, value):
            await rt.sleep(delay)
            return value

        slow, quick = rt.spawn(after(0.2, "slow")), rt.spawn(after(0.02, "quick"))
        first = await first_completed(rt, [slow, quick])
        still_running = not slow.done()
        again = await first_completed(rt, [slow, quick])  # one is done already: no wait
        await slow
        return [t.result() for t in first], still_running, [t.result() for t in again]

    assert harness.run("n0", scenario) == (["quick"], True, ["quick"])


def test_a_cancelled_task_raises_cancelled_error_to_its_awaiter(harness):
    harness.start(NODES[:1])

    async def scenario(rt):
        task = rt.spawn(rt.sleep(5))
        await rt.sleep(0.01)
        task.cancel()
        with pytest.raises(CancelledError):
            await task
        return task.cancelled()

    assert harness.run("n0", scenario) is True


def test_futures_carry_results_between_callbacks_and_coroutines(harness):
    harness.start(NODES[:1])

    async def scenario(rt):
        fut = rt.create_future()
        rt.call_later(0.01, fut.set_result, 42)
        return await fut

    assert harness.run("n0", scenario) == 42


def test_offloaded_work_returns_its_result_and_raises_its_errors(harness):
    harness.start(NODES[:1])

    def fail():
        raise ValueError("bad input")

    async def scenario(rt):
        total = await rt.offload(sum, range(1000))
        try:
            await rt.offload(fail)
        except ValueError as exc:
            return total, str(exc)
        return total, None

    assert harness.run("n0", scenario) == (499500, "bad input")


def test_compute_accounts_for_cpu_work_and_says_how_long_it_waited(harness):
    """The simulator's clock moves by the work; the real node's work already took its time.
    Neither node here has a core count, so nothing waits; negative work is refused."""
    harness.start(NODES[:1])

    async def scenario(rt):
        before = rt.now()
        waited = await rt.compute(0.002)
        took = rt.now() - before
        try:
            await rt.compute(-1.0)
        except ValueError as exc:
            return waited, took, str(exc)
        return waited, took, None

    waited, took, refused = harness.run("n0", scenario)
    assert waited == 0.0 and refused is not None and "-1" in refused
    if harness.kind == "sim":
        assert took == pytest.approx(0.002)


def test_messages_reach_every_peer_in_order(harness):
    received = {n: [] for n in NODES}

    def app(rt):
        rt.on_message(Ping, lambda src, m: received[rt.node_id].append((src, m.seq)))

    harness.start(NODES, app)

    async def scenario(rt):
        for node in NODES:
            for seq in range(50):
                harness.runtime(node).send(*[p for p in NODES if p != node][:1], Ping(seq, 0.0))
                for peer in harness.runtime(node).peers:
                    harness.runtime(node).send(peer, Ping(100 + seq, 0.0))
        for _ in range(500):
            if sum(len(v) for v in received.values()) >= 3 * 50 + 3 * 2 * 50:
                break
            await rt.sleep(0.01)

    harness.run("n0", scenario)
    for node in NODES:
        for src in NODES:
            if src == node:
                continue
            seqs = [s for s_, s in received[node] if s_ == src and s >= 100]
            assert seqs == list(range(100, 150)), f"{src}->{node} lost or reordered messages"


def test_ping_round_trip_time_is_measured_on_the_senders_clock(harness):
    harness.start(NODES[:2], echo_app)

    async def scenario(rt):
        reply = rt.create_future()
        rt.on_message(Pong, lambda src, m: reply.done() or reply.set_result((src, m, rt.now())))
        sent = rt.now()
        rt.send("n1", Ping(7, sent))
        src, pong, arrived = await wait_for(rt, reply, 5.0)
        return src, pong.seq, arrived - pong.sent_at

    src, seq, rtt = harness.run("n0", scenario)
    assert (src, seq) == ("n1", 7)
    assert 0 < rtt < 0.5


def test_a_64_mib_transfer_arrives_intact_over_parallel_streams(harness):
    def app(rt):
        def received(src, payload):
            rt.send(src, Digest(hashlib.blake2b(payload).hexdigest()))

        rt.on_transfer("blob", received)

    harness.start(NODES[:2], app)

    async def scenario(rt):
        payload = rt.random.randbytes(64 << 20)
        digest = rt.create_future()
        rt.on_message(Digest, lambda src, m: digest.done() or digest.set_result(m.hexdigest))
        report = await rt.transfer("n1", payload, streams=4, tag="blob")
        remote = await wait_for(rt, digest, 10.0)
        return report, remote, hashlib.blake2b(payload).hexdigest()

    report, remote, local = harness.run("n0", scenario, timeout=60.0)
    assert remote == local
    assert (report.src, report.dst, report.tag) == ("n0", "n1", "blob")
    assert report.nbytes == 64 << 20 and report.streams == 4
    assert report.duration > 0 and report.goodput_bps > 0


def test_a_transfer_to_a_crashed_peer_fails_cleanly(harness):
    harness.start(NODES[:2])
    harness.crash("n1")

    async def scenario(rt):
        with pytest.raises(TransferError):
            await rt.transfer("n1", b"x" * 1024)
        return True

    assert harness.run("n0", scenario, timeout=120.0)


def test_synced_storage_survives_a_crash_and_unsynced_does_not(harness):
    harness.start(NODES[:1])

    async def write(rt):
        rt.storage.put("term", b"5")
        rt.storage.append([b"e1", b"e2"])
        await rt.storage.sync()
        rt.storage.put("term", b"6")
        rt.storage.append([b"e3"])
        return rt.storage.last_index

    assert harness.run("n0", write) == 3
    harness.crash("n0")
    harness.restart("n0")

    async def read(rt):
        return rt.storage.get("term"), rt.storage.entries(rt.storage.first_index)

    assert harness.run("n0", read) == (b"5", [b"e1", b"e2"])


def test_heartbeat_protocol_runs_unchanged_on_both_runtimes(harness):
    harness.start(NODES, lambda rt: HeartbeatService(rt, interval=0.05, suspect_after=4))

    async def settle(rt):
        await rt.sleep(1.0)
        return {n: harness.runtime(n).app for n in NODES}

    services = harness.run("n0", settle, timeout=30.0)
    for node, service in services.items():
        assert service.suspected() == [], f"{node} suspects {service.suspected()}"
        for peer, stats in service.peers.items():
            assert stats.acks >= 5, f"{node} heard too few acks from {peer}"
            assert 0 < stats.last_rtt < 0.5

    harness.crash("n2")

    async def later(rt):
        await rt.sleep(1.0)
        return harness.runtime("n0").app.suspected()

    assert harness.run("n0", later, timeout=30.0) == ["n2"]
