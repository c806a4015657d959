"""novacron.placement: trace loading, the simulator core, heuristics and metrics."""

from __future__ import annotations

import numpy as np
import pytest

from novacron.placement.cluster import (
    DEFAULT_NODES,
    DEFAULT_PODS,
    INTRA_REGION_RTT_MS,
    MAX_GPUS,
    TraceError,
    build_cluster,
    load_hosts,
    load_tasks,
    make_workload,
    rtt_matrix_ms,
    split_tasks,
)
from novacron.placement.heuristics import DEFER, HEURISTICS, make_policy, run_episode
from novacron.placement.scenario import Scenario
from novacron.placement.state import PlacementSim

SMALL = Scenario(n_hosts=8, n_tasks=150, load=0.9)


def test_placement_loads_the_shipped_openb_trace():
    hosts = load_hosts(DEFAULT_NODES)
    tasks = load_tasks(DEFAULT_PODS)
    assert len(hosts) == 1523 and len(tasks) == 8152
    assert hosts.gpus.max() <= MAX_GPUS and (hosts.cpu > 0).all()
    assert np.all(np.diff(tasks.arrival) >= 0) and tasks.arrival[0] == 0
    assert (tasks.duration >= 1).all()
    assert ((tasks.num_gpu == 0) == (tasks.gpu_milli == 0)).all()


def test_placement_bad_rows_name_file_and_row(tmp_path):
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\na,1000,1024,2,T4\nb,lots,1024,0,\n")
    with pytest.raises(TraceError, match=r"nodes\.csv: row 2: column 'cpu_milli'"):
        load_hosts(nodes)
    pods = tmp_path / "pods.csv"
    header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time,deletion_time\n"
    pods.write_text(header + "p,1000,10,0,0,5,9\nq,1000,10,1,0,6,10\n")
    with pytest.raises(TraceError, match=r"pods\.csv: row 2: num_gpu > 0 needs gpu_milli"):
        load_tasks(pods)
    pods.write_text(header + "p,1000,10,0,0,9,5\n")
    with pytest.raises(TraceError, match="row 1: deletion_time"):
        load_tasks(pods)
    pods.write_text("name,cpu_milli\np,1\n")
    with pytest.raises(TraceError, match="missing column"):
        load_tasks(pods)
    with pytest.raises(TraceError, match="no such file"):
        load_tasks(tmp_path / "absent.csv")


def test_placement_cluster_sampling_and_regions_are_seeded():
    hosts = load_hosts()
    a = build_cluster(hosts, 12, seed=3)
    b = build_cluster(hosts, 12, seed=3)
    c = build_cluster(hosts, 12, seed=4)
    assert a.hosts.names == b.hosts.names and a.hosts.names != c.hosts.names
    assert np.bincount(a.hosts.region).tolist() == [3, 3, 3, 3]  # round robin over 4 regions
    r = build_cluster(hosts, 12, seed=3, assign="random")
    assert np.array_equal(r.hosts.region, build_cluster(hosts, 12, seed=3, assign="random").hosts.region)
    m = rtt_matrix_ms(a.regions)
    assert np.allclose(np.diag(m), INTRA_REGION_RTT_MS) and (m >= 1).all()
    assert np.allclose(m, m.T, rtol=0.1)  # directional, nearly symmetric
    with pytest.raises(ValueError, match="unknown region"):
        rtt_matrix_ms(["Atlantis"])


def test_placement_workload_load_knob_and_split():
    tasks = load_tasks()
    train, test = split_tasks(tasks, "train"), split_tasks(tasks, "test")
    assert len(train) + len(test) == len(tasks) and train.names[-1] != test.names[0]
    cluster = SMALL.cluster()
    low = make_workload(tasks, cluster, n_tasks=150, load=0.3, seed=1)
    high = make_workload(tasks, cluster, n_tasks=150, load=0.9, seed=1)
    assert low.names == high.names and np.array_equal(low.origin, high.origin)
    assert high.arrival[-1] < low.arrival[-1]  # higher load: arrivals compressed
    assert set(np.unique(low.origin)) <= set(range(len(cluster.regions)))


def test_placement_sim_conserves_resources_and_ends():
    sim = SMALL.episode(seed=0)
    cap_cpu = sim.cluster.hosts.cpu.copy()
    while not sim.done:
        mask = sim.mask()
        assert mask.any()
        sim.place(int(np.argmax(mask)))
        assert (sim.cpu_free >= -1e-9).all() and (sim.cpu_free <= cap_cpu + 1e-9).all()
        assert (sim.gpu_free[sim.gpu_free > -1] >= 0).all()
    out = sim.outcomes
    assert not (out.placed & out.rejected).any()
    assert (out.placed | out.rejected).all()  # every task decided
    assert (out.wait[out.placed] >= 0).all()


def test_placement_defer_forever_rejects_after_patience():
    sim = Scenario(n_hosts=4, n_tasks=20, load=0.5).episode(seed=0)
    while not sim.done:
        sim.defer()
    assert sim.outcomes.rejected.all() and not sim.outcomes.placed.any()


def test_placement_place_refuses_a_host_that_does_not_fit():
    sim = SMALL.episode(seed=0)
    with pytest.raises(ValueError):
        sim.place(sim.n_hosts)


@pytest.mark.parametrize("name", sorted(HEURISTICS))
def test_placement_heuristics_run_deterministically(name):
    a = run_episode(SMALL.episode(seed=4), make_policy(name), seed=4)
    b = run_episode(SMALL.episode(seed=4), make_policy(name), seed=4)
    assert a.as_dict().keys() == b.as_dict().keys()
    assert str(a) == str(b)  # nan-safe equality
    assert 0 < a.acceptance_rate <= 1 and 0 <= a.fragmentation <= 1
    # only admission control and waiting for a near host defer on purpose
    assert a.defers == 0 or name in ("admission_nearest_fit", "patient_nearest_fit", "stream_nearest_fit")
    assert 0 < a.accepted_work <= 1
    assert 0 < a.score <= a.acceptance_rate
    assert np.isnan(a.decision_latency_us)


def test_placement_heuristic_choices():
    sim = SMALL.episode(seed=2)
    mask = sim.mask()
    feasible = np.flatnonzero(mask)
    assert make_policy("first_fit").select(sim) == feasible[0]
    nearest = make_policy("nearest_fit").select(sim)
    rtt = sim.host_rtt_ms[sim.tasks.origin[sim.current]]
    assert rtt[nearest] == rtt[feasible].min()
    best, worst = make_policy("best_fit").select(sim), make_policy("worst_fit").select(sim)
    assert mask[best] and mask[worst]
    rr = make_policy("round_robin")
    rr.reset(sim)
    assert rr.select(sim) == feasible[0]


def test_placement_decision_latency_measured_with_injected_clock():
    ticks = iter(range(10**6))
    m = run_episode(SMALL.episode(seed=1), make_policy("best_fit"), clock=lambda: float(next(ticks)))
    assert m.decision_latency_us == pytest.approx(1e6)  # one tick per decision
    assert DEFER == -1


def test_placement_unknown_policy():
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("magic")


def test_placement_load_bites():
    """At high load a heuristic loses tasks; at low load it places (nearly) all."""
    low = run_episode(Scenario(load=0.3, n_hosts=8, n_tasks=300).episode(seed=0), make_policy("first_fit"))
    high = run_episode(Scenario(load=1.2, n_hosts=8, n_tasks=300).episode(seed=0), make_policy("first_fit"))
    assert low.acceptance_rate > 0.97 and high.acceptance_rate < low.acceptance_rate
    assert high.mean_wait_s > low.mean_wait_s
    assert isinstance(PlacementSim, type)
