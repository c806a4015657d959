"""The asyncio runtime honours the contract: clock, tasks, messages, queues, crashes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from _backend_testkit import Orphan, Ping, PingPong, port_is_closed, wait_until

from novacron.backends import AsyncioRuntime, LocalCluster, PeerDirectory, RuntimeOptions
from novacron.monitoring import HeartbeatService
from novacron.runtime import Cancellable, NodeInfo, Runtime, Storage


async def test_runtime_satisfies_the_contract(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"], region="eu", zone="eu-1")
        assert isinstance(a, Runtime)
        # Storage is not @runtime_checkable, so check its members by hand.
        storage_api = {
            "get",
            "put",
            "delete",
            "keys",
            "first_index",
            "last_index",
            "append",
            "entries",
            "truncate",
            "compact",
            "sync",
        }
        assert storage_api <= set(dir(a.storage)) and storage_api <= set(dir(Storage))
        assert a.node_id == "a"
        assert a.info == NodeInfo("a", "eu", "eu-1")
        assert a.peers == ("b",)
        assert a.peer_info("b") == NodeInfo("b", "eu", "eu-1")
        with pytest.raises(KeyError, match="nobody"):
            a.peer_info("nobody")
        c = await cluster.add_node("c")
        assert a.peers == ("b", "c"), "peers are stable, sorted, and include later nodes"
        assert c.peers == ("a", "b")


async def test_timers_fire_in_order_and_cancelled_ones_never_do(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path) as cluster:
        rt = await cluster.add_node("a")
        fired: list[str] = []
        done = asyncio.Event()
        rt.call_later(0.03, fired.append, "third")
        rt.call_later(0.01, fired.append, "first")
        rt.call_later(0.02, fired.append, "second")
        doomed = rt.call_later(0.015, fired.append, "cancelled")
        assert isinstance(doomed, Cancellable)
        doomed.cancel()
        rt.call_later(0.05, done.set)
        await asyncio.wait_for(done.wait(), 5)
        assert fired == ["first", "second", "third"]
        assert doomed.cancelled()


async def test_clock_and_sleep(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path) as cluster:
        rt = await cluster.add_node("a")
        t0 = rt.now()
        await rt.sleep(0.05)
        assert rt.now() - t0 >= 0.05
        with pytest.raises(ValueError, match="delay"):
            rt.call_later(-1, print)
        fut = rt.create_future()
        rt.call_later(0.01, fut.set_result, 42)
        assert await asyncio.wait_for(fut, 5) == 42


async def test_random_is_seeded(tmp_path: Path) -> None:
    first = AsyncioRuntime("x", seed=7)
    second = AsyncioRuntime("x", seed=7)
    assert [first.random.random() for _ in range(5)] == [second.random.random() for _ in range(5)]
    async with LocalCluster(tmp_path / "1", seed=3) as c1, LocalCluster(tmp_path / "2", seed=3) as c2:
        r1, r2 = await c1.add_node("n"), await c2.add_node("n")
        assert r1.random.random() == r2.random.random(), "a cluster seed gives reproducible nodes"


async def test_failing_spawned_task_is_logged_with_the_node_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with LocalCluster(tmp_path) as cluster:
        rt = await cluster.add_node("node-7")

        async def broken() -> None:
            raise RuntimeError("boom in protocol code")

        task = rt.spawn(broken())
        await asyncio.wait({task}, timeout=5)  # type: ignore[arg-type]
        await wait_until(lambda: rt.stats.task_errors == 1)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("node-7" in m and "boom in protocol code" in m for m in messages), messages


async def test_messages_flow_between_three_nodes(tmp_path: Path) -> None:
    apps: dict[str, PingPong] = {}
    async with LocalCluster(tmp_path) as cluster:
        nodes = await cluster.add_nodes(["a", "b", "c"], lambda rt: apps.setdefault(rt.node_id, PingPong(rt)))
        for rt in nodes:
            for peer in rt.peers:
                rt.send(peer, Ping(ord(rt.node_id)))
        await wait_until(lambda: all(len(app.pongs) == 2 for app in apps.values()))
        for name, app in apps.items():
            assert sorted(app.pings) == sorted((p, ord(p)) for p in "abc" if p != name)
            assert sorted(app.pongs) == sorted((p, ord(name)) for p in "abc" if p != name)
        assert nodes[0].stats.sent == 2 + 2 and nodes[0].stats.received == 4


async def test_message_to_self_is_delivered(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path) as cluster:
        app: list[PingPong] = []
        rt = await cluster.add_node("a", lambda rt: app.append(PingPong(rt)))
        rt.send("a", Ping(5))
        await wait_until(lambda: app[0].pongs == [("a", 5)])


async def test_unknown_type_and_unknown_peer_are_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"], PingPong)
        a.send("b", Orphan("nobody handles me"))
        a.send("b", Ping(1))  # sent after, so once answered the orphan was processed
        a.send("nobody", Ping(2))
        await wait_until(lambda: b.stats.received == 1)
        assert b.stats.unhandled == 1
        assert a.stats.dropped_unknown_peer == 1
    text = caplog.text
    assert "no handler for Orphan" in text and "unknown peer 'nobody'" in text


async def test_a_raising_handler_does_not_stop_delivery(tmp_path: Path) -> None:
    got: list[int] = []

    def app(rt: Runtime) -> None:
        def on_ping(src: str, msg: Ping) -> None:
            if msg.n == 1:
                raise ValueError("handler bug")
            got.append(msg.n)

        rt.on_message(Ping, on_ping)

    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"], app)
        a.send("b", Ping(1))
        a.send("b", Ping(2))
        await wait_until(lambda: got == [2])
        assert b.stats.handler_errors == 1


async def test_send_rejects_non_messages_and_oversized_messages(tmp_path: Path) -> None:
    options = RuntimeOptions(max_frame_size=100)
    async with LocalCluster(tmp_path, options=options) as cluster:
        a, _ = await cluster.add_nodes(["a", "b"])
        with pytest.raises(TypeError, match="Message"):
            a.send("b", {"n": 1})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="transfer"):
            a.send("b", Orphan("x" * 200))


async def test_send_queue_to_a_dead_peer_is_bounded(tmp_path: Path) -> None:
    options = RuntimeOptions(queue_max_frames=100, backoff_max=0.05)
    async with LocalCluster(tmp_path, options=options) as cluster:
        a, _ = await cluster.add_nodes(["a", "b"])
        await cluster.crash("b")  # before a ever connects: nothing leaves the queue
        for n in range(1000):
            a.send("b", Ping(n))
        assert a.queue_length("b") == 100
        assert a.stats.dropped_queue_full == 900
        await wait_until(lambda: a.stats.connect_failures >= 2, what="reconnect attempts")
        assert a.queue_length("b") == 100, "retrying does not lose or grow the queue"


async def test_send_queue_is_bounded_in_bytes_too(tmp_path: Path) -> None:
    options = RuntimeOptions(queue_max_bytes=10_000)
    async with LocalCluster(tmp_path, options=options) as cluster:
        a, _ = await cluster.add_nodes(["a", "b"])
        await cluster.crash("b")
        for _ in range(100):
            a.send("b", Orphan("x" * 500))
        assert 0 < a.queue_length("b") <= 20
        assert a.stats.dropped_queue_full == 100 - a.queue_length("b")


async def test_messages_flow_again_after_the_peer_restarts(tmp_path: Path) -> None:
    apps: dict[str, PingPong] = {}

    def app(rt: Runtime) -> None:
        apps[rt.node_id] = PingPong(rt)

    options = RuntimeOptions(backoff_initial=0.01, backoff_max=0.1)
    async with LocalCluster(tmp_path, options=options) as cluster:
        a, b = await cluster.add_nodes(["a", "b"], app)
        a.send("b", Ping(1))
        await wait_until(lambda: apps["a"].pongs == [("b", 1)])
        port = b.address[1]

        await cluster.crash("b")
        b2 = await cluster.restart("b")
        assert b2 is not b and b2.address[1] == port, "same address after restart"
        assert apps["b"].rt is b2, "the app ran again on the new runtime"

        # Pings written into the dead connection before `a` noticed are lost
        # (best effort), so keep pinging until one is answered.
        n = 2
        while len(apps["a"].pongs) < 2:
            assert n < 200, "no pong from the restarted peer"
            apps["a"].changed.clear()
            a.send("b", Ping(n))
            n += 1
            try:
                await asyncio.wait_for(apps["a"].changed.wait(), 0.1)
            except TimeoutError:
                pass
        assert apps["a"].pongs[1][0] == "b"
        assert a.stats.reconnects >= 1


async def test_crash_cancels_the_nodes_tasks_and_timers(tmp_path: Path) -> None:
    ticks: dict[str, int] = {"a": 0, "b": 0}
    fired: list[str] = []
    tasks: dict[str, asyncio.Future[None]] = {}

    def app(rt: Runtime) -> None:
        async def ticker() -> None:
            while True:
                ticks[rt.node_id] += 1
                await rt.sleep(0.005)

        tasks[rt.node_id] = rt.spawn(ticker())  # type: ignore[assignment]
        rt.call_later(0.1, fired.append, rt.node_id)

    async with LocalCluster(tmp_path) as cluster:
        await cluster.add_nodes(["a", "b"], app)
        await wait_until(lambda: ticks["a"] >= 3)
        await cluster.crash("a")
        assert tasks["a"].cancelled()
        frozen = ticks["a"]
        await wait_until(lambda: fired == ["b"], what="b's timer")
        assert ticks["a"] == frozen, "nothing of the crashed node runs again"
        assert not tasks["b"].done()
        rt = cluster.runtime("a")
        assert rt.spawn(asyncio.sleep(0)).cancelled(), "a crashed runtime starts nothing"
        rt.send("b", Ping(1))
        assert rt.stats.dropped_not_running == 1


async def test_close_stops_every_server(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    nodes = await cluster.add_nodes(["a", "b", "c"], PingPong)
    nodes[0].send("b", Ping(1))
    ports = [rt.address[1] for rt in nodes]
    await cluster.close()
    assert all(port_is_closed(p) for p in ports)
    assert not any(rt.running for rt in nodes)


async def test_restart_keeps_synced_storage_and_loses_the_rest(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path) as cluster:
        rt = await cluster.add_node("a")
        rt.storage.put("kept", b"1")
        rt.storage.append([b"entry-1"])
        await rt.storage.sync()
        rt.storage.put("lost", b"2")
        rt.storage.append([b"entry-2"])
        await cluster.crash("a")
        rt = await cluster.restart("a")
        assert rt.storage.get("kept") == b"1"
        assert rt.storage.get("lost") is None
        assert rt.storage.entries(1) == [b"entry-1"]


async def test_standalone_runtime_with_a_static_peer_list() -> None:
    """What a multi-process deployment does: each node gets the same static directory."""
    first = AsyncioRuntime("n1", directory=PeerDirectory())
    await first.start()
    static = PeerDirectory.parse(f"n1=127.0.0.1:{first.address[1]}")
    second = AsyncioRuntime("n2", directory=static)
    await second.start()
    first.directory.register("n2", *second.address)
    try:
        got = PingPong(first), PingPong(second)
        second.send("n1", Ping(9))
        await wait_until(lambda: got[1].pongs == [("n1", 9)])
    finally:
        await first.close()
        await second.close()


def test_peer_list_parsing() -> None:
    directory = PeerDirectory.parse(" n1=10.0.0.1:9090, n2=[::1]:7000 ,")
    assert directory.ids() == ("n1", "n2")
    assert (directory.get("n2").host, directory.get("n2").port) == ("::1", 7000)  # type: ignore[union-attr]
    for bad in ("n1", "n1=host", "n1=host:x", "n1=host:70000", "n1=h:1,n1=h:2", "=h:1"):
        with pytest.raises(ValueError):
            PeerDirectory.parse(bad)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_runs_on_uvloop(tmp_path: Path, tls: bool) -> None:
    """`novacron node` runs on uvloop, whose transports differ from asyncio's in details."""
    uvloop = pytest.importorskip("uvloop")

    async def exercise() -> None:
        apps: dict[str, PingPong] = {}
        async with LocalCluster(tmp_path, tls=tls) as cluster:
            a, b = await cluster.add_nodes(["a", "b"], lambda rt: apps.setdefault(rt.node_id, PingPong(rt)))
            got: list[bytes] = []
            b.on_transfer("blob", lambda src, payload: got.append(bytes(payload)))
            a.send("b", Ping(1))
            report = await a.transfer("b", b"z" * 3_000_000, streams=2, tag="blob")
            await wait_until(lambda: apps["a"].pongs == [("b", 1)])
            assert got == [b"z" * 3_000_000] and report.nbytes == 3_000_000
            await cluster.crash("b")
            await cluster.restart("b")
            while len(apps["a"].pongs) < 2:
                a.send("b", Ping(2))
                await asyncio.sleep(0.02)
            assert sum(cluster.runtime("b").stats.rejected.values()) == 0

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(exercise(), 30))


async def test_graceful_close_flushes_queued_messages(tmp_path: Path) -> None:
    apps: dict[str, PingPong] = {}
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"], lambda rt: apps.setdefault(rt.node_id, PingPong(rt)))
        a.send("b", Ping(0))
        await wait_until(lambda: apps["a"].pongs == [("b", 0)], what="a connection")
        for n in range(1, 51):
            a.send("b", Ping(n))
        await cluster.stop("a")
        await wait_until(lambda: len(apps["b"].pings) == 51, what="every queued ping")
        assert [n for _, n in apps["b"].pings] == list(range(51)), "in order, on one connection"


async def test_heartbeat_protocol_detects_a_crash_and_the_recovery(tmp_path: Path) -> None:
    """The monitoring protocol runs unchanged on real sockets, crashes included."""
    services: dict[str, HeartbeatService] = {}

    def app(rt: Runtime) -> None:
        services[rt.node_id] = HeartbeatService(rt, interval=0.02, suspect_after=10)

    options = RuntimeOptions(backoff_initial=0.01, backoff_max=0.05)
    async with LocalCluster(tmp_path, options=options) as cluster:
        await cluster.add_nodes(["a", "b", "c"], app)
        await wait_until(lambda: all(s.peers[p].acks for s in services.values() for p in s.peers))
        watcher = services["a"]
        await cluster.crash("c")
        await wait_until(lambda: "c" in watcher.suspected(), what="a to suspect c")
        acks = watcher.peers["c"].acks
        await cluster.restart("c")
        await wait_until(lambda: watcher.peers["c"].acks > acks and "c" not in watcher.suspected())
        assert all(rtt < 1.0 for rtt in watcher.peers["b"].rtts)


async def test_a_clean_stop_commits_what_was_not_synced(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path) as cluster:
        rt = await cluster.add_node("a")
        rt.storage.put("written", b"before a clean stop")
        await cluster.stop("a")
        rt = await cluster.restart("a")
        assert rt.storage.get("written") == b"before a clean stop"


def test_worker_pool_is_never_capped_and_retires_idle_threads() -> None:
    import threading

    from _backend_testkit import wait_until_sync

    from novacron.backends.tcp.streams import WorkerPool

    pool = WorkerPool(idle_timeout=0.05)
    everyone = threading.Barrier(40, timeout=10)  # only passes if all 40 jobs run at once
    done = threading.Semaphore(0)

    def job() -> None:
        everyone.wait()
        done.release()

    before = threading.active_count()
    for _ in range(40):
        pool.submit(job)
    for _ in range(40):
        assert done.acquire(timeout=10)
    wait_until_sync(lambda: threading.active_count() <= before, what="idle workers to retire")
