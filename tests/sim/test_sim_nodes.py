"""Node lifecycle in the simulator: apps, crash/restart, clocks and randomness."""

import pytest

from novacron.monitoring import HeartbeatService
from novacron.sim import Simulation, topologies


def test_an_app_runs_again_on_restart_with_fresh_volatile_state():
    sim = Simulation(topologies.datacenter(3), seed=0)
    starts = []
    sim.start(lambda rt: starts.append((rt.node_id, rt.incarnation)))
    sim.faults.crash("n1", at=1.0, restart_after=1.0)
    sim.run(until=3.0)
    assert starts == [("n0", 1), ("n1", 1), ("n2", 1), ("n1", 2)]


def test_timers_of_a_crashed_incarnation_never_fire():
    sim = Simulation(topologies.datacenter(2), seed=0)
    fired = []
    sim.runtime("n0").call_later(2.0, fired.append, "old")
    sim.faults.crash("n0", at=1.0, restart_after=0.5)
    sim.run(until=5.0)
    assert fired == []


def test_heartbeats_suspect_a_crashed_peer_and_recover_after_restart():
    sim = Simulation(topologies.datacenter(3), seed=0)
    sim.start(lambda rt: HeartbeatService(rt, interval=0.1, suspect_after=3))
    sim.faults.crash("n2", at=1.0, restart_after=2.0)
    sim.run(until=2.0)
    assert sim.runtime("n0").app.suspected() == ["n2"]
    sim.run(until=4.0)
    assert sim.runtime("n0").app.suspected() == []


def test_clock_skew_changes_a_nodes_time_but_never_backwards():
    sim = Simulation(topologies.datacenter(2), seed=0)
    sim.faults.skew("n1", jump=0.5, drift=1e-3, at=1.0)
    sim.run(until=1.0)
    before = sim.runtime("n1").now()
    sim.run(until=11.0)
    assert sim.runtime("n0").now() == pytest.approx(11.0)
    assert sim.runtime("n1").now() == pytest.approx(1.0 + 0.5 + 10.0 * 1.001)
    assert sim.runtime("n1").now() > before
    with pytest.raises(ValueError, match="forward"):
        sim.clock("n1").jump(-1.0)


def test_timers_run_on_the_nodes_own_clock():
    sim = Simulation(topologies.datacenter(1), seed=0)
    sim.clock("n0").set_drift(0.0, 1.0)  # this node's clock runs twice as fast
    fired = []
    sim.runtime("n0").call_later(10.0, lambda: fired.append(sim.now))
    sim.run()
    assert fired == [pytest.approx(5.0)]


def test_each_node_gets_its_own_reproducible_random_stream():
    def draws(seed):
        sim = Simulation(topologies.datacenter(2), seed=seed)
        return [sim.runtime(n).random.random() for n in sim.node_ids]

    assert draws(1) == draws(1)
    a, b = draws(1)
    assert a != b
    assert draws(1) != draws(2)


def test_slow_disk_delays_sync():
    sim = Simulation(topologies.datacenter(1), seed=0)
    sim.faults.slow_disk("n0", 0.25)

    async def write(rt):
        rt.storage.put("k", b"v")
        await rt.storage.sync()
        return rt.now()

    assert sim.run_until_complete("n0", write) == pytest.approx(0.25)


def test_run_until_complete_times_out_in_virtual_time():
    sim = Simulation(topologies.datacenter(1), seed=0)

    async def forever(rt):
        await rt.create_future()

    with pytest.raises(TimeoutError, match="5 simulated s"):
        sim.run_until_complete("n0", forever, timeout=5.0)
    assert sim.now == pytest.approx(5.0)


def test_cancelling_a_sleeping_task_leaves_the_simulation_running():
    sim = Simulation(topologies.datacenter(1), seed=0)
    rt = sim.runtime("n0")
    task = rt.spawn(rt.sleep(1.0))
    sim.run(until=0.5)
    task.cancel()
    sim.run(until=2.0)
    assert task.cancelled()
