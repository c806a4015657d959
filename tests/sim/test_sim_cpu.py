"""A node's cores: rt.compute() work queues for them, first come, first served."""

import pytest

from novacron.sim import Simulation, Topology, topologies
from novacron.sim.cpu import Cpu
from novacron.sim.scenarios.model import DatacenterTopology, HybridTopology, WanTopology


def run_jobs(cores: int | None, jobs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """``(finished at, seconds waited)`` for each ``(asked at, CPU seconds)`` job on node n0."""
    sim = Simulation(topologies.datacenter(1, cores=cores), seed=0)
    rt = sim.runtime("n0")
    done: list[tuple[float, float]] = [(0.0, 0.0)] * len(jobs)

    async def job(i: int, at: float, seconds: float) -> None:
        await rt.sleep(at)
        waited = await rt.compute(seconds)
        done[i] = (sim.now, waited)

    for i, (at, seconds) in enumerate(jobs):
        rt.spawn(job(i, at, seconds))
    sim.run()
    return done


def finish_times(cores: int | None, jobs: list[tuple[float, float]]) -> list[float]:
    return [finished for finished, _ in run_jobs(cores, jobs)]


def test_compute_returns_how_long_the_work_waited_for_a_core():
    assert run_jobs(1, [(0.0, 1.0), (0.0, 2.0), (0.5, 1.0)]) == [(1.0, 0.0), (3.0, 1.0), (4.0, 2.5)]
    assert run_jobs(None, [(0.0, 1.0), (0.0, 2.0)]) == [(1.0, 0.0), (2.0, 0.0)]


def test_without_a_core_count_work_overlaps_freely():
    assert finish_times(None, [(0.0, 1.0), (0.0, 1.0), (0.0, 1.0)]) == [1.0, 1.0, 1.0]


def test_one_core_does_one_thing_at_a_time_in_the_order_asked():
    assert finish_times(1, [(0.0, 1.0), (0.0, 2.0), (0.5, 1.0)]) == [1.0, 3.0, 4.0]


def test_work_takes_the_core_that_frees_up_first():
    # two cores: jobs 0 and 1 start at once; job 2 waits for job 0's core, job 3 for job 1's
    assert finish_times(2, [(0.0, 1.0), (0.0, 3.0), (0.0, 1.0), (0.0, 1.0)]) == [1.0, 3.0, 2.0, 3.0]


def test_an_idle_core_starts_work_at_once():
    assert finish_times(1, [(0.0, 1.0), (5.0, 1.0)]) == [1.0, 6.0]


def test_zero_work_does_not_wait_for_a_core():
    assert finish_times(1, [(0.0, 5.0), (1.0, 0.0)]) == [5.0, 1.0]


def test_the_cpu_counts_its_work_and_the_waiting():
    cpu = Cpu(2)
    assert [cpu.book(0.0, 1.0) for _ in range(3)] == [(0.0, 1.0), (0.0, 1.0), (1.0, 2.0)]
    assert (cpu.jobs, cpu.busy_seconds, cpu.waited_seconds) == (3, 3.0, 1.0)
    assert [cpu.busy_by(t) for t in (1.0, 1.5, 2.0, 5.0)] == [2.0, 2.5, 3.0, 3.0]


def test_a_crash_ends_the_work_booked_by_the_old_incarnation():
    sim = Simulation(topologies.datacenter(1, cores=1), seed=0)
    sim.runtime("n0").spawn(sim.runtime("n0").compute(100.0))
    sim.faults.crash("n0", at=1.0, restart_after=1.0)
    sim.run(until=2.5)
    rt = sim.runtime("n0")
    assert rt.incarnation == 2 and rt.cpu is not None and rt.cpu.jobs == 0

    async def job(rt):
        await rt.compute(1.0)
        return rt.now()

    assert sim.run_until_complete("n0", job) == 3.5  # not after the dead incarnation's 100 s


def test_work_on_a_fast_clock_takes_what_sleep_would():
    sim = Simulation(topologies.datacenter(1, cores=1), seed=0)
    sim.clock("n0").set_drift(0.0, 1.0)  # as in test_timers_run_on_the_nodes_own_clock

    async def job(rt):
        await rt.compute(2.0)
        return sim.now

    assert sim.run_until_complete("n0", job) == pytest.approx(1.0)


@pytest.mark.parametrize("cores", [0, -1, 1.5, True, "2"])
def test_a_core_count_that_is_not_a_whole_positive_number_is_refused(cores):
    topo = Topology()
    topo.add_site("a", "ra")
    with pytest.raises(ValueError, match=f"node 'x': cores must be a whole number >= 1, got {cores!r}"):
        topo.add_node("x", "a", cores=cores)
    with pytest.raises(ValueError, match="cores must be a whole number"):
        Cpu(cores)


@pytest.mark.parametrize("spec", [DatacenterTopology, WanTopology, HybridTopology])
def test_scenarios_give_every_node_the_same_core_count(spec):
    assert {n.cores for n in spec(cores=4).build().nodes.values()} == {4}
    assert {n.cores for n in spec().build().nodes.values()} == {None}
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        spec(cores=0)
