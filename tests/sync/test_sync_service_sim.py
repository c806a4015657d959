"""ASS in the simulator: replicas across regions written concurrently through partitions, loss,
duplication, reordering, crashes and clock skew converge to one map once the faults heal, and no
acknowledged write is lost unless a write that read it replaced it."""

from dataclasses import dataclass, field

import pytest

from novacron.sim import Simulation, topologies
from novacron.sim.dst.sync_target import check_replicas
from novacron.sim.faults import Nemesis
from novacron.sync import StateSync, SyncPush, SyncSettings, VersionSet, VersionVector, Writer
from novacron.sync.service import STORAGE_PREFIX

REGIONS = ("East US", "West Europe", "Southeast Asia", "Brazil South", "Australia East")
KEYS = [f"vm/{i}" for i in range(6)]


@dataclass
class Run:
    sim: Simulation
    replicas: list[str]
    services: dict[str, StateSync] = field(default_factory=dict)
    acked: list[tuple[str, tuple[str, int], VersionVector, bytes]] = field(default_factory=list)

    def states(self, node: str) -> dict[str, VersionSet]:
        store = self.services[node].store
        return {key: store.get(key) for key in sorted(store.keys())}


def run_cluster(
    seed: int,
    *,
    mode: str = "internet",
    faults: tuple[str, ...] = ("partition", "one_way", "crash", "loss", "duplicate", "reorder", "skew"),
    writes: int = 25,
    until: float = 40.0,
    faults_stop: float = 20.0,
) -> Run:
    """Five replicas, one per region, each with a client writing ``writes`` times to a few keys
    (half of the writes read first, half blind) while a nemesis strikes; then calm."""
    sim = Simulation(topologies.wan(REGIONS), seed=seed)
    run = Run(sim, sim.node_ids)

    def app(rt):
        service = StateSync(rt, peers=run.replicas, settings=SyncSettings.for_mode(mode))
        run.services[rt.node_id] = service
        rt.spawn(client(rt, service))
        return service

    async def client(rt, service):
        for i in range(writes):
            await rt.sleep(rt.random.uniform(0.05, 0.6))
            key = rt.random.choice(KEYS)
            context = service.get(key).context if rt.random.random() < 0.5 else None
            value = f"{rt.node_id}/{rt.boot_id}/{i}".encode()
            state = await service.put(key, value, context)
            dot = (rt.node_id, state.context.get(rt.node_id))
            run.acked.append((key, dot, context or VersionVector(), value))

    sim.start(app, nodes=run.replicas)
    if faults:
        Nemesis(kinds=faults, mean_interval=1.0, max_duration=3.0, start=0.5, stop=faults_stop).schedule(sim)
    sim.run(until=until)
    return run


def assert_converged_and_nothing_lost(run: Run) -> None:
    """The campaign's checks (``novacron dst --protocol ass``): one map everywhere, every
    acknowledged write held or replaced by a write that read it, no replaced write held."""
    maps = {node: run.states(node) for node in run.replicas}
    assert set(maps[run.replicas[0]]) <= set(KEYS)
    assert check_replicas(maps, run.acked) == []


@pytest.mark.parametrize("seed", range(100))
def test_replicas_converge_after_faults_and_lose_no_acknowledged_write(seed):
    run = run_cluster(seed)
    assert len(run.acked) >= 80  # most writes were acknowledged despite the faults
    assert_converged_and_nothing_lost(run)


@pytest.mark.parametrize("mode", ["datacenter", "hybrid", "internet"])
def test_every_mode_converges_without_faults_and_keeps_concurrent_writes(mode):
    run = run_cluster(1, mode=mode, faults=(), until=30.0)
    assert_converged_and_nothing_lost(run)
    siblings = max(len(s.values) for s in run.states(run.replicas[0]).values())
    assert siblings >= 2  # blind writes from different regions met


def test_a_write_spreads_by_pushes_alone_when_nothing_is_lost():
    """With anti-entropy slowed to once a minute, a datacenter-mode push reaches every replica
    within one WAN delay, and a rumour (internet mode) within a few hops."""
    for mode, within in (("datacenter", 0.5), ("internet", 1.5)):
        sim = Simulation(topologies.wan(REGIONS), seed=5)
        settings = SyncSettings.for_mode(mode)
        services = {}

        def app(rt, settings=settings, services=services):
            services[rt.node_id] = StateSync(
                rt, settings=SyncSettings(settings.fanout, settings.forward, 60.0)
            )
            return services[rt.node_id]

        sim.start(app)
        writer = sim.node_ids[0]
        sim.runtime(writer).spawn(services[writer].put("k", b"v"))
        sim.run(until=within)
        assert all(s.get("k").values == [b"v"] for s in services.values()), mode


def test_anti_entropy_repairs_what_the_pushes_lost():
    """Every push dropped (a one-way partition during the writes): after it heals, the replicas
    learn the writes by comparing digests."""
    sim = Simulation(topologies.wan(REGIONS), seed=2)
    services = {}
    sim.start(
        lambda rt: services.setdefault(rt.node_id, StateSync(rt, settings=SyncSettings.for_mode("internet")))
    )
    writer, others = sim.node_ids[0], sim.node_ids[1:]
    sim.faults.partition([writer], others, one_way=True, at=0.0, duration=5.0)  # writer -> others cut
    for i in range(20):
        sim.runtime(writer).spawn(services[writer].put(f"k{i}", b"v"))
    sim.run(until=4.0)
    assert all(not s.get("k0").values for n, s in services.items() if n != writer)
    sim.run(until=30.0)
    assert all(s.get(f"k{i}").values == [b"v"] for s in services.values() for i in range(20))
    stats = [s.stats for s in services.values()]
    assert sum(st.rounds_in_sync for st in stats) > 0  # and once equal, rounds cost one digest


def test_a_restarted_replica_keeps_its_acknowledged_writes_and_catches_up():
    sim = Simulation(topologies.wan(REGIONS), seed=4)
    services = {}

    def app(rt):
        services[rt.node_id] = StateSync(rt, settings=SyncSettings.for_mode("internet"))
        return services[rt.node_id]

    sim.start(app)
    node, other = sim.node_ids[0], sim.node_ids[1]
    sim.faults.isolate(node, at=0.0, duration=10.0)  # nobody else hears of its write
    sim.runtime(node).spawn(services[node].put("mine", b"durable"))
    sim.call_at(1.0, lambda: sim.runtime(other).spawn(services[other].put("theirs", b"x")))
    sim.run(until=2.0)
    sim.crash(node)
    sim.restart(node)
    assert services[node].get("mine").values == [b"durable"]  # from its storage
    sim.run(until=40.0)
    assert all(
        s.get("mine").values == [b"durable"] and s.get("theirs").values == [b"x"] for s in services.values()
    )


def test_malformed_states_from_a_peer_are_refused_and_the_replica_keeps_serving(caplog):
    sim = Simulation(topologies.wan(REGIONS[:2]), seed=0)
    services = {}
    sim.start(lambda rt: services.setdefault(rt.node_id, StateSync(rt)))
    a, b = sim.node_ids
    bad = VersionSet((Writer("z", 1, (b"x", b"y")),))  # two values for one write
    unsorted = VersionSet((Writer("z", 1, (b"x",)), Writer("a", 1, (b"y",))))
    sim.runtime(a).send(b, SyncPush((("k", bad), ("j", unsorted), ("ok", VersionSet().write("a", b"fine")))))
    sim.run(until=1.0)
    assert services[b].stats.rejected == 2
    assert "refused the state of key 'k'" in caplog.text and "2 values but only 1 writes" in caplog.text
    assert services[b].get("ok").values == [b"fine"] and "k" not in services[b].store
    sim.runtime(a).spawn(services[a].put("after", b"still"))
    sim.run(until=3.0)
    assert services[b].get("after").values == [b"still"]


def test_an_unreadable_stored_entry_is_skipped_with_a_logged_reason(caplog):
    sim = Simulation(topologies.wan(REGIONS[:2]), seed=0)
    node = sim.node_ids[0]
    sim.storage(node).put(STORAGE_PREFIX + "broken", b"\xff\x00not msgpack")
    services = {}
    sim.start(lambda rt: services.setdefault(rt.node_id, StateSync(rt)))
    assert "broken" not in services[node].store
    assert "unreadable" in caplog.text


def test_the_same_seed_gives_the_same_run():
    first, again = run_cluster(3, until=25.0), run_cluster(3, until=25.0)
    assert first.sim.trace_hash() == again.sim.trace_hash()
    assert first.acked == again.acked


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fanout": 0}, "fanout must be >= 1"),
        ({"interval": 0.0}, "interval must be > 0"),
        ({"width": 0}, "width must be >= 1"),
    ],
)
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        SyncSettings(**settings)


def test_an_unknown_mode_is_named():
    with pytest.raises(ValueError, match="unknown mode 'lan'"):
        SyncSettings.for_mode("lan")


def test_bad_writes_are_refused_before_anything_changes():
    sim = Simulation(topologies.wan(REGIONS[:2]), seed=0)
    services = {}
    sim.start(lambda rt: services.setdefault(rt.node_id, StateSync(rt)))
    node = sim.node_ids[0]
    service = services[node]
    for key, value, error, message in (
        ("", b"x", ValueError, "non-empty string"),
        ("k" * 1025, b"x", ValueError, "at most 1024 bytes"),
        ("k", "text", TypeError, "a value is bytes"),
        ("k", b"x" * ((1 << 20) + 1), ValueError, "at most 1048576 bytes"),
    ):
        with pytest.raises(error, match=message):
            sim.run_until_complete(node, lambda rt, key=key, value=value: service.put(key, value))
    assert len(service.store) == 0


@pytest.mark.parametrize(
    ("topology", "mode"),
    [(lambda: topologies.wan(REGIONS[:3]), "internet"), (lambda: topologies.datacenter(3), "datacenter")],
)
def test_the_settings_follow_the_detected_network_mode(topology, mode):
    from novacron.mode import ModeDetector
    from novacron.runtime import VirtualPayload

    sim = Simulation(topology(), seed=1)
    services = {}

    def app(rt):
        detector = ModeDetector(rt, payload=VirtualPayload)
        services[rt.node_id] = StateSync(rt, detector=detector, settings=SyncSettings(interval=0.5))
        return services[rt.node_id]

    sim.start(app)
    sim.run(until=60.0)
    assert all(s.settings == SyncSettings.for_mode(mode) for s in services.values())
    sim.runtime(sim.node_ids[0]).spawn(services[sim.node_ids[0]].put("k", b"v"))
    sim.run(until=70.0)
    assert all(s.get("k").values == [b"v"] for s in services.values())


def test_a_new_replica_catches_up_on_a_large_map_in_bounded_messages():
    """An empty replica joining 20,000 keys: every leaf differs, and the exchange goes in messages
    of at most 4,096 keys (or 1 MiB of values) each, whatever the size of the map."""
    from novacron.runtime import encoded_size

    sim = Simulation(topologies.wan(REGIONS[:2]), seed=0)
    old, new = sim.node_ids
    largest = {"bytes": 0}
    services = {}

    def app(rt):
        send = rt.send

        def measured(dst, msg):
            largest["bytes"] = max(largest["bytes"], encoded_size(msg))
            send(dst, msg)

        rt.send = measured
        services[rt.node_id] = StateSync(rt, settings=SyncSettings(interval=1.0))
        return services[rt.node_id]

    sim.start(app)
    for i in range(20_000):
        services[old].store.write(f"vm/{i:05d}", b"x")
    sim.run(until=30.0)
    assert len(services[new].store) == 20_000
    assert services[new].store.top_hashes() == services[old].store.top_hashes()
    # 4,096 keys' states or summaries are ~150 kB; all 20,000 in one message would be ~700 kB
    assert largest["bytes"] < 250_000, largest


def test_a_write_lost_in_a_crash_before_it_was_durable_never_reaches_a_peer():
    """A replica's next write to a key takes the next number of its own writes there; if a write
    that was not yet durable had reached a peer, a crash would let the replica reuse its number
    for another value, and the two would never reconcile. Here anti-entropy asks the writer for
    the key while its disk is slow, the writer crashes before the sync, restarts and writes again."""
    sim = Simulation(topologies.wan(REGIONS[:2]), seed=0)
    services = {}

    def app(rt):
        services[rt.node_id] = StateSync(rt, settings=SyncSettings(interval=0.05))
        return services[rt.node_id]

    sim.start(app)
    writer, peer = sim.node_ids
    sim.faults.slow_disk(writer, 2.0, at=0.0, duration=3.0)
    sim.runtime(writer).spawn(services[writer].put("k", b"lost in the crash"))
    sim.run(until=1.5)  # many anti-entropy rounds while the write waits for the disk
    sim.crash(writer)
    sim.faults.slow_disk(writer, 0.0)
    sim.restart(writer)
    sim.runtime(writer).spawn(services[writer].put("k", b"after the restart"))  # before any round
    sim.run(until=10.0)
    assert services[peer].get("k").values == [b"after the restart"]
    assert services[writer].get("k") == services[peer].get("k")


def test_concurrent_writes_share_syncs_and_a_failed_sync_fails_only_its_writes():
    """Group commit: writes that arrive together share one sync, and those that arrive while it is
    on its way share the next; a sync that fails fails its writes, and nothing else."""
    sim = Simulation(topologies.wan(REGIONS[:2]), seed=0)
    services = {}
    sim.start(lambda rt: services.setdefault(rt.node_id, StateSync(rt)))
    node = sim.node_ids[0]
    storage = sim.storage(node)
    storage.fsync_latency = 0.01
    real_sync, calls = storage.sync, []

    def counted_sync():
        calls.append(sim.now)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_sync()

    storage.sync = counted_sync
    rt, service = sim.runtime(node), services[node]
    first = [rt.spawn(service.put(f"k{i}", b"v")) for i in range(50)]
    later = []
    sim.call_at(0.005, lambda: later.extend(rt.spawn(service.put(f"j{i}", b"v")) for i in range(10)))
    sim.run(until=1.0)
    assert all(t.done() and not t.exception() for t in first + later)
    assert calls == [0.0, 0.01]  # one sync for the first 50; the 10 that came during it, the next
    failing = [rt.spawn(service.put(f"f{i}", b"v")) for i in range(5)]
    sim.run(until=2.0)
    assert all(isinstance(t.exception(), OSError) for t in failing)
    assert all(not service.get(f"f{i}").values for i in range(5))  # not applied
    assert sim.run_until_complete(node, lambda rt: service.put("after", b"ok")).values == [b"ok"]


def test_states_from_outside_the_group_are_ignored_with_a_logged_reason(caplog):
    sim = Simulation(topologies.wan(REGIONS[:3]), seed=0)
    a, b, outsider = sim.node_ids
    services = {}
    sim.start(lambda rt: services.setdefault(rt.node_id, StateSync(rt, peers=[a, b])), nodes=[a, b])
    sim.runtime(outsider).send(a, SyncPush((("k", VersionSet().write(outsider, b"injected")),)))
    sim.run(until=1.0)
    assert "k" not in services[a].store and services[a].stats.rejected == 1
    assert "not a replica of this group" in caplog.text
