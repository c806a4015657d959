"""ModeDetector in the simulator: detection time after a change, no flapping, topologies, events.

The detection bound proved in :mod:`novacron.mode.detector`: after conditions change at T,
the new mode is reported by ``T + K * interval + m`` (m: the longest round), which is at most
``T + (K + 1) * interval`` (one interval to align with the rounds plus the K hysteresis
windows), and not before ``T + (K - 1) * interval - m`` (K windows must see the change).
"""

import pytest

from novacron.config import load_config
from novacron.mode import DetectionSettings, Mode, ModeChange, ModeDetector, classify, detector_app
from novacron.runtime import VirtualPayload
from novacron.sim import Simulation, Topology, topologies

DC, HY, NET = Mode.DATACENTER, Mode.HYBRID, Mode.INTERNET
INTERVAL, K = 1.0, 3
SETTINGS = DetectionSettings(interval=INTERVAL, hysteresis=K)


def two_sites(rtt: float = 2e-3, bandwidth: float = 10e9) -> Topology:
    """Node a in site A, node b in site B, one full-duplex link between the sites."""
    topo = Topology("two-sites")
    topo.add_site("A", "r1")
    topo.add_site("B", "r1")
    topo.add_node("a", "A")
    topo.add_node("b", "B")
    topo.connect_sites("A", "B", rtt=rtt, bandwidth=bandwidth, jitter=rtt * 0.02)
    return topo


def simulate(topo: Topology, settings: DetectionSettings = SETTINGS, seed: int = 0, **kwargs) -> Simulation:
    sim = Simulation(topo, seed=seed)
    sim.start(detector_app(settings, payload=VirtualPayload, **kwargs))
    return sim


def detector(sim: Simulation, node: str) -> ModeDetector:
    return sim.runtime(node).app


def link(sim: Simulation):
    return sim.faults.links_between_sites("A", "B")


def latency(extra):
    return lambda sim, t: sim.faults.degrade(link(sim), extra_latency=extra, at=t)


def bandwidth(factor):
    return lambda sim, t: sim.faults.degrade(link(sim), bandwidth_factor=factor, at=t)


def healed_at(sim, t):
    """Degraded from the start, healed at T."""
    return sim.faults.degrade(link(sim), extra_latency=0.03, at=0.0, duration=t)


# name, the fault (given the sim and T), mode before T, mode after
CHANGES = [
    ("latency to internet", latency(0.03), DC, NET),
    ("bandwidth to internet", bandwidth(0.05), DC, NET),
    ("latency to hybrid", latency(0.01), DC, HY),
    ("recovery to datacenter", healed_at, NET, DC),
]


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("name", "fault", "before", "after"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_change_is_reported_within_one_interval_plus_the_hysteresis_windows(
    name, fault, before, after, seed, k
):
    change_at = 20.37
    sim = simulate(two_sites(), DetectionSettings(interval=INTERVAL, hysteresis=k), seed=seed)
    fault(sim, change_at)
    sim.run(until=change_at)
    for node, peer in (("a", "b"), ("b", "a")):
        assert detector(sim, node).mode_of(peer) == before
    sim.run(until=change_at + 10 * INTERVAL)
    for node, peer in (("a", "b"), ("b", "a")):
        det = detector(sim, node)
        changes = [c for c in det.changes if c.peer == peer and c.old is not None]
        reached = next(c for c in changes if c.new == after)
        delay = reached.at - change_at
        longest_round = max(w.ended - w.started for w in det.windows[peer])
        assert delay <= k * INTERVAL + longest_round <= (k + 1) * INTERVAL, name
        assert delay >= (k - 1) * INTERVAL - longest_round, name
        assert det.mode_of(peer) == after
        if k > 1:  # a window straddling the change cannot cause a detour
            assert [(c.old, c.new) for c in changes] == [(before, after)]
        else:  # with K = 1 it may, once, and the next window corrects it
            assert len(changes) <= 2 and changes[-1] is reached


@pytest.mark.parametrize(
    ("rtt", "extra", "modes"),
    [(8.6e-3, 1e-3, {DC, HY}), (47.6e-3, 2e-3, {HY, NET})],
    ids=["around 10 ms", "around 50 ms"],
)
def test_a_link_oscillating_across_a_threshold_does_not_flap(rtt, extra, modes):
    """The RTT flips across the threshold every 1.5 intervals for a minute: windows
    alternate, never K alike in a row, so after its first decision the mode stays put."""
    half_period = 1.5 * INTERVAL

    def oscillate(sim):
        for k in range(20):
            sim.faults.degrade(link(sim), extra_latency=extra, at=2 * k * half_period, duration=half_period)

    sim = simulate(two_sites(rtt=rtt))
    oscillate(sim)
    sim.run(until=60.0)
    det = detector(sim, "a")
    seen = {classify(w.rtt, w.bandwidth_bps) for w in det.windows["b"]}
    assert seen == modes  # the windows really do straddle the threshold
    assert [c.old for c in det.changes if c.peer == "b"] == [None]  # one decision, no change after

    flappy = simulate(two_sites(rtt=rtt), DetectionSettings(interval=INTERVAL, hysteresis=1))
    oscillate(flappy)
    flappy.run(until=60.0)
    assert len([c for c in detector(flappy, "a").changes if c.peer == "b"]) > 10  # K = 1 would flap


def expected_mode(topo: Topology, a: str, b: str) -> Mode:
    return NET if topo.link_class(a, b) == "inter-region" else DC


@pytest.mark.parametrize(
    ("name", "build", "node_mode"),
    [
        ("wan", lambda: topologies.wan(), NET),
        ("datacenter", lambda: topologies.datacenter(4), DC),
        ("hybrid", lambda: topologies.hybrid(nodes_per_datacenter=2), NET),
    ],
)
def test_topologies_classify_as_their_links_are(name, build, node_mode):
    """WAN regions are internet; a datacenter fabric, and the hybrid topology's metro links
    (1.5 ms RTT, 100 Gbit/s) between datacenters of one region, are datacenter."""
    topo = build()
    sim = simulate(topo, DetectionSettings(interval=10.0))
    sim.run(until=25.0)
    for node in sim.node_ids:
        det = detector(sim, node)
        assert det.modes == {peer: expected_mode(topo, node, peer) for peer in sim.runtime(node).peers}
        assert det.node_mode == node_mode
    if name == "hybrid":
        metro = detector(sim, "eastus-dc0-n0").latest("eastus-dc1-n0")
        assert 1.5e-3 < metro.rtt < 2e-3 and metro.bandwidth_bps > 20e9


def test_subscribers_get_each_change_per_peer_then_for_the_node():
    sim = simulate(two_sites(), seed=3)
    sim.run(until=5.0)
    det = detector(sim, "a")
    got: list[ModeChange] = []
    late: list[ModeChange] = []
    failures = []

    def broken(change):
        failures.append(change)
        raise RuntimeError("a subscriber bug")

    det.subscribe(broken)  # raises on every call: logged, never stops the others
    unsubscribe = det.subscribe(got.append)
    assert [(c.peer, c.old, c.new) for c in got] == [("b", None, DC), (None, None, DC)]  # replayed state
    got.clear()
    slow = sim.faults.degrade(link(sim), extra_latency=0.03, at=10.0)
    sim.run(until=20.0)
    assert [(c.peer, c.old, c.new) for c in got] == [("b", DC, NET), (None, DC, NET)]
    peer_change, node_change = got
    assert peer_change.at == node_change.at
    assert peer_change.measurements.peer == "b" and peer_change.measurements.rtt > 0.050
    assert node_change.node_level and node_change.measurements is peer_change.measurements
    record = det.switch_records[-1]
    assert record.events == tuple(got) and record.subscribers == 2 and record.seconds >= 0
    assert len(failures) == 4  # two replayed, two real: each failed alone

    det.subscribe(late.append, replay=True)  # a late subscriber learns the current state
    assert [(c.peer, c.old, c.new) for c in late] == [("b", None, NET), (None, None, NET)]
    unsubscribe()
    unsubscribe()  # idempotent
    slow.heal()
    sim.run(until=30.0)
    assert [(c.peer, c.old, c.new) for c in late[2:]] == [("b", NET, DC), (None, NET, DC)]
    assert len(got) == 2  # unsubscribed: heard nothing more
    assert len(det.switch_records) == 3  # first decision, the switch, the way back


def test_forced_mode_from_the_environment_disables_detection(monkeypatch):
    monkeypatch.setenv("NOVACRON_DWCP_MODE", "internet")
    dwcp = load_config().dwcp
    sim = Simulation(two_sites(), seed=0)
    sim.start(lambda rt: ModeDetector.from_config(rt, dwcp))
    sim.run(until=120.0)
    assert sim.network.delivered == 0 and not sim.network.transfer_log  # no probe at all
    det = detector(sim, "a")
    assert det.mode_of("b") == NET and det.node_mode == NET and det.modes == {"b": NET}
    got = []
    det.subscribe(got.append)
    assert [(c.peer, c.new) for c in got] == [("b", NET), (None, NET)]


def test_a_forced_node_still_answers_the_probes_of_a_detecting_one():
    forced = DetectionSettings(interval=INTERVAL, forced_mode="hybrid")
    sim = Simulation(two_sites(), seed=0)
    sim.start({"a": detector_app(SETTINGS, payload=VirtualPayload), "b": detector_app(forced)})
    sim.run(until=10.0)
    assert detector(sim, "a").mode_of("b") == DC
    assert detector(sim, "b").mode_of("a") == HY and not detector(sim, "b").changes


def test_loss_is_measured_and_heavy_loss_makes_a_link_internet():
    """50% loss each way: 75% of the probes' round trips fail, and TCP's throughput on such a
    path collapses (the flow model's CUBIC cap), so the link is internet until the burst ends."""
    sim = simulate(two_sites())
    sim.faults.burst(loss=0.5, src="a", dst="b", at=10.0, duration=10.0)
    sim.run(until=30.0)
    det = detector(sim, "a")
    lossy = [w.loss for w in det.windows["b"] if 11.0 <= w.started < 19.0]
    assert 0.55 < sum(lossy) / len(lossy) < 0.95
    assert all(w.loss == 0.0 for w in det.windows["b"] if w.started < 10.0 or w.started > 21.0)
    assert [(c.old, c.new) for c in det.changes if c.peer == "b"] == [(None, DC), (DC, NET), (NET, DC)]


def test_a_probe_too_slow_for_the_transfer_timeout_is_an_upper_bound():
    """4 MiB cannot cross a 50 Mbit/s link within the timeout: the path is slower than
    size / timeout, which is itself evidence (internet), not a missing sample."""
    sim = simulate(two_sites(bandwidth=50e6))
    sim.run(until=5.0)
    det = detector(sim, "a")
    window = det.latest("b")
    assert window.bandwidth_bps == SETTINGS.bandwidth_probe_bytes * 8 / SETTINGS.transfer_timeout
    assert det.mode_of("b") == NET


def test_an_unreachable_peer_keeps_its_mode():
    """A partition answers nothing: the windows are inconclusive (no RTT), no bandwidth probe
    is sent into the void, and the mode stays what it was."""
    sim = simulate(two_sites())
    sim.faults.partition(["a"], ["b"], at=10.0, duration=10.0)
    sim.run(until=30.0)
    det = detector(sim, "a")
    cut = [w for w in det.windows["b"] if 11.0 <= w.started < 19.0]
    assert cut and all(w.loss == 1.0 and w.rtt is None and w.bandwidth_source == "carried" for w in cut)
    assert all(w.ended - w.started < INTERVAL for w in cut)
    assert not sim.network.transfer_failures
    assert [c.old for c in det.changes if c.peer == "b"] == [None]
    assert det.mode_of("b") == DC


def test_clock_skew_does_not_enter_the_rtt():
    sim = simulate(two_sites())
    sim.faults.skew("b", jump=5.0, drift=1e-4, at=3.0)
    sim.run(until=10.0)
    rtts = [w.rtt for w in detector(sim, "a").windows["b"]]
    assert all(2e-3 < rtt < 2.5e-3 for rtt in rtts)


def test_passive_samples_from_real_transfers_decide_without_bandwidth_probes():
    passive_only = DetectionSettings(interval=INTERVAL, hysteresis=K, bandwidth_probe_bytes=0)
    sim = simulate(two_sites(), passive_only)
    sim.run(until=5.0)
    det = detector(sim, "a")
    assert det.mode_of("b") is None  # 2 ms RTT alone cannot tell datacenter from hybrid
    assert det.latest("b").bandwidth_bps is None

    async def migrate(rt):
        report = await rt.transfer("b", VirtualPayload(256 << 20), streams=4, tag="vm-memory")
        det.observe_transfer(report)
        det.observe_transfer(await rt.transfer("b", VirtualPayload(1024), tag="tiny"))  # ignored
        return report

    report = sim.run_until_complete("a", migrate)
    sim.run(until=sim.now + 2 * INTERVAL)
    assert det.mode_of("b") == DC
    window = next(w for w in det.windows["b"] if w.bandwidth_source == "passive")
    assert window.bandwidth_bps == report.goodput_bps and window.bandwidth_samples == 1
    assert det.latest("b").bandwidth_source == "carried"


def test_same_seed_same_decisions():
    def run(seed):
        sim = simulate(topologies.hybrid(nodes_per_datacenter=1), DetectionSettings(interval=5.0), seed=seed)
        metro = sim.faults.links_between_sites("eastus-dc0", "eastus-dc1")
        sim.faults.degrade(metro, extra_latency=0.02, at=12.0)
        sim.run(until=40.0)
        changes = [(n, c.peer, c.old, c.new, c.at) for n in sim.node_ids for c in detector(sim, n).changes]
        return changes, sim.trace_hash()

    assert run(5) == run(5)


def test_close_finishes_the_round_in_progress_then_probing_stops():
    sim = simulate(two_sites(), start_delay=1.0)
    sim.run(until=1.01)  # inside the first round (a round lasts about 50 ms here)
    det = detector(sim, "a")
    with pytest.raises(RuntimeError, match="already running"):
        sim.run_until_complete("a", lambda rt: det.detect_once())  # rounds never overlap
    sim.run_until_complete("a", lambda rt: det.close())
    assert det.rounds == 1 and len(det.windows["b"]) == 1  # the round completed, not cut
    sim.run(until=10.0)
    assert det.rounds == 1
    assert detector(sim, "b").rounds == 9  # b still probes, and a still answers it
    assert detector(sim, "b").latest("a").loss == 0.0
