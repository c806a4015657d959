"""A link whose capacity follows a measured bandwidth trace (``sim.faults.replay_bandwidth``)."""

import pytest

from novacron.runtime import VirtualPayload
from novacron.sim import Simulation, topologies
from novacron.sim.faults import MIN_REPLAY_MBPS
from novacron.transport import AMST

MB = 1_000_000


def simulation():
    sim = Simulation(topologies.pair(rtt=0.002, nic_bandwidth=10e9), seed=0)

    def app(rt):
        amst = AMST(rt)
        amst.on_receive("blob", lambda src, p: None)
        return amst

    sim.start(app)
    return sim


def seconds_to_send(sim, nbytes):
    async def go(rt):
        report = await rt.app.send("y", VirtualPayload(nbytes), streams=1, tag="blob", congestion="bbr")
        return report.duration

    return sim.run_until_complete("x", go, timeout=600)


def test_a_transfer_runs_at_the_rate_of_each_trace_sample_in_turn():
    sim = simulation()
    # 80 Mbit/s for 1 s (10 MB), then 8 Mbit/s: 12 MB take 1 s + 2 MB / 1 MB/s = 3 s
    sim.faults.replay_bandwidth(sim.faults.links_between_sites("a", "b"), [0.0, 1.0], [80.0, 8.0])
    assert seconds_to_send(sim, 12 * MB) == pytest.approx(3.0, abs=0.05)


def test_the_trace_times_count_from_when_it_starts():
    sim = simulation()
    sim.faults.replay_bandwidth(sim.faults.links_between_sites("a", "b"), [100.0, 101.0], [80.0, 8.0], at=0.0)
    assert seconds_to_send(sim, 12 * MB) == pytest.approx(3.0, abs=0.05)


def test_a_degrade_multiplies_on_top_and_healing_restores_the_link():
    sim = simulation()
    links = sim.faults.links_between_sites("a", "b")
    replay = sim.faults.replay_bandwidth(links, [0.0], [80.0])
    sim.faults.degrade(links, bandwidth_factor=0.5)
    assert seconds_to_send(sim, 5 * MB) == pytest.approx(1.0, abs=0.05)  # 40 Mbit/s
    replay.heal()
    assert all(link.capacity == pytest.approx(0.5e9 / 8) for link in links)
    assert [entry for _, entry in sim.faults.log if "replay" in entry] == [
        "apply replay-bandwidth [a->b,b->a] 1 samples over 0s",
        "heal replay-bandwidth [a->b,b->a] 1 samples over 0s",
    ]


def test_samples_of_zero_leave_a_trickle_rather_than_stalling_forever():
    sim = simulation()
    links = sim.faults.links_between_sites("a", "b")
    sim.faults.replay_bandwidth(links, [0.0, 1.0], [0.0, 80.0])
    assert links[0].capacity == pytest.approx(MIN_REPLAY_MBPS * 1e6 / 8)
    assert seconds_to_send(sim, 10 * MB) == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(
    "times, mbps, problem",
    [([], [], "non-empty"), ([0.0, 1.0], [1.0], "equally long"), ([1.0, 1.0], [1.0, 2.0], "increasing")],
)
def test_a_malformed_trace_is_refused_naming_what_is_wrong(times, mbps, problem):
    sim = simulation()
    with pytest.raises(ValueError, match=problem):
        sim.faults.replay_bandwidth(sim.faults.links_between_sites("a", "b"), times, mbps)
