"""novacron.placement.fgd and the ``fgd`` heuristic: fragmentation gradient descent (Weng et al. 2023)."""

from __future__ import annotations

import numpy as np
import pytest
from hand_episodes import hand_episode

from novacron.placement.fgd import (
    FragmentTracker,
    KindCounter,
    TaskKinds,
    _holdings,
    _whole_milli_holdings,
    expected_fragment,
    fragment_increase,
    free_after_placing,
)
from novacron.placement.heuristics import best_fit_scores, make_policy, run_episode
from novacron.placement.scenario import Scenario
from novacron.placement.state import gpu_allocation

WHOLE_AND_HALF = TaskKinds(
    cpu=np.array([1000.0, 1000.0]),
    mem=np.array([1.0, 1.0]),
    num_gpu=np.array([1.0, 1.0]),
    gpu_milli=np.array([1000.0, 500.0]),
    weight=np.array([0.5, 0.5]),
)


def _sim(host_cpu, host_gpus, tasks):
    """Hosts in one region; ``tasks`` = (cpu, num_gpu, gpu_milli, arrival) rows, each running 100 s."""
    hosts = [(cpu, gpus, 0) for cpu, gpus in zip(host_cpu, host_gpus, strict=True)]
    rows = [(*task, 100, 0) for task in tasks]
    return hand_episode(hosts, rows, rtt_ms=[[1.0]], max_wait=10)


def _fragment(cpu: float, gpus: list[float], kinds: TaskKinds = WHOLE_AND_HALF) -> float:
    """The expected fragment of one host with this much CPU and these GPUs free."""
    return float(expected_fragment(np.array([cpu]), np.array([1e6]), np.array([gpus]), kinds)[0])


def test_fragment_is_the_free_gpu_a_kind_cannot_use_weighted_by_its_share():
    whole_and_sliver = [1000.0, 300.0, -1.0]  # two GPUs (the third is absent), one 30 % free
    # both kinds fit; neither can use the 300 milli sliver
    assert _fragment(8000, whole_and_sliver) == pytest.approx(300)
    # too little CPU for either kind: all 1300 milli are stranded
    assert _fragment(500, whole_and_sliver) == pytest.approx(1300)
    # a sliver of 600 serves the half-GPU kind: only the whole-GPU kind is stranded on it
    assert _fragment(8000, [1000.0, 600.0]) == pytest.approx(300)
    # no GPU kinds seen yet: nothing to measure against
    assert _fragment(1, whole_and_sliver, TaskKinds.empty()) == 0


def test_fgd_prefers_the_sliver_over_breaking_a_whole_gpu():
    # three hosts with one GPU each. Seen so far: a 400-milli task (on host 1: 600 left), a
    # whole-GPU task (filling host 2) and the current 500-milli one, a third each.
    tasks = [(1000, 1, 400, 0), (1000, 1, 1000, 0), (1000, 1, 500, 1)]
    sim = _sim([8000, 8000, 8000], [1, 1, 1], tasks)
    sim.place(1)  # the 400-milli task: host 1 has 600 left
    sim.place(2)  # the whole-GPU task fills host 2
    assert sim.current == 2
    fgd = make_policy("fgd")
    fgd.reset(sim)
    increase = fragment_increase(sim, fgd.fragments.kinds.update(sim))
    # host 0: its whole GPU (no fragment) keeps 500, stranded for the whole-GPU third: +500/3.
    # host 1: its 600 (stranded for the whole-GPU third: 200) keeps 100, stranded for all: -100.
    assert increase[:2] == pytest.approx([500 / 3, -100])
    assert fgd.select(sim) == 1
    assert make_policy("worst_fit").select(sim) == 0  # which breaks the only whole GPU
    nearest = make_policy("nearest_fgd")  # one region: the same choice
    nearest.reset(sim)
    assert nearest.select(sim) == 1


def test_fgd_keeps_cpu_only_tasks_from_starving_gpu_hosts_of_cpu():
    # host 0: CPU-only with room; hosts 1 and 2: a GPU host with CPU for one GPU task. The mix so
    # far is one whole-GPU task, placed on host 2.
    tasks = [(1000, 1, 1000, 0), (1000, 0, 0, 1)]
    sim = _sim([4000, 1500, 1500], [0, 1, 1], tasks)
    sim.place(2)
    assert sim.current == 1 and sim.mask().tolist() == [True, True, False]
    fgd = make_policy("fgd")
    fgd.reset(sim)
    # on host 1 the CPU-only task would leave 500 milli-CPU: its whole GPU is stranded
    increase = fragment_increase(sim, fgd.fragments.kinds.update(sim))
    assert increase.tolist() == pytest.approx([0.0, 1000.0, 0.0])
    assert fgd.select(sim) == 0


@pytest.mark.parametrize("seed", [0, 3])
def test_free_after_placing_and_the_increase_match_placing_for_real(seed):
    sim = Scenario(n_hosts=16, n_tasks=160, load=0.9).episode(seed)
    counter, checked, shared = KindCounter(), 0, 0
    while not sim.done:
        kinds = counter.update(sim)
        feasible = np.flatnonzero(sim.mask())
        cpu, mem, gpu = free_after_placing(sim, sim.current)
        increase = fragment_increase(sim, kinds)
        assert np.array_equal(fragment_increase(sim, kinds, feasible), increase[feasible])  # exactly
        before = expected_fragment(sim.cpu_free, sim.mem_free, sim.gpu_free, kinds)
        running = sim.releases()
        for host in feasible:
            fork = sim.fork()
            fork.place(int(host))  # then the clock runs to the next event: skip hosts a task left
            left = running.host[running.end <= fork.clock]
            if host in left or fork.clock >= sim.clock + sim.tasks.duration[sim.current]:
                continue
            assert cpu[host] == fork.cpu_free[host] and mem[host] == fork.mem_free[host]
            assert np.array_equal(gpu[host], fork.gpu_free[host])
            row = slice(host, host + 1)
            after = expected_fragment(fork.cpu_free[row], fork.mem_free[row], fork.gpu_free[row], kinds)
            assert increase[host] == pytest.approx(after[0] - before[host])
            checked += 1
            shared += bool(((sim.gpu_free[host] > 0) & (sim.gpu_free[host] < 1000)).any())
        sim.place(int(feasible[0]))
    assert checked > 100 and shared > 20  # (hosts with a shared GPU: where the GPU choice matters)


@pytest.mark.parametrize("load,seed,rows_per_host", [(0.9, 0, 8), (1.2, 5, 1)])
def test_the_tracker_gives_exactly_the_plain_increase_through_whole_episodes(load, seed, rows_per_host):
    sim = Scenario(n_hosts=16, n_tasks=300, load=load).episode(seed)
    tracker, counter = FragmentTracker(), KindCounter()
    tracker.max_rows_per_host = rows_per_host  # 1: its table of rows starts afresh every few decisions
    while not sim.done:
        feasible = np.flatnonzero(sim.mask())
        expected = fragment_increase(sim, counter.update(sim), feasible)
        assert np.array_equal(tracker.increase(sim, feasible), expected)
        sim.place(int(feasible[-1]))
    # kinds kept arriving (new columns) and tasks left (rows recomputed) along the way
    assert len(counter.update(sim).weight) > 10 and sim.outcomes.placed.sum() > 2 * sim.n_hosts


def test_fgd_decides_as_the_plain_increase_does_on_the_whole_openb_cluster():
    """All 1,523 hosts of openb, where most hosts share their row with others (the tracker computes
    each distinct row once): the tracker's values are the plain function's, bit for bit, and so
    are fgd's and nearest_fgd's choices (the least increase, then best fit, then the lowest index)."""
    sim = Scenario(n_hosts=1523, n_tasks=128, load=0.9, split="test").episode(0)
    fgd, nearest, counter = make_policy("fgd"), make_policy("nearest_fgd"), KindCounter()
    fgd.reset(sim)
    nearest.reset(sim)
    decisions = shared = 0
    while not sim.done:
        feasible = np.flatnonzero(sim.mask())
        plain = fragment_increase(sim, counter.update(sim), feasible)
        best_fit = best_fit_scores(sim)[feasible]
        choice = fgd.select(sim)
        assert choice == feasible[np.lexsort((best_fit, plain))[0]]
        assert np.array_equal(fgd.fragments.increase(sim, feasible), plain)
        rtt = sim.host_rtt_ms[sim.tasks.origin[sim.current]][feasible]
        near = rtt == rtt.min()
        assert nearest.select(sim) == feasible[near][np.lexsort((best_fit[near], plain[near]))[0]]
        rows = np.column_stack((sim.cpu_free, sim.mem_free, sim.gpu_free))[feasible]
        shared += len(np.unique(rows, axis=0)) < len(feasible) / 10
        decisions += 1
        sim.place(choice)
    assert decisions > 100 and shared > decisions / 2


def test_the_tracker_gives_the_plain_increase_with_gpu_milli_that_are_not_whole():
    # the fast sums over GPUs hold for whole milli only (openb's); other milli take the plain way
    rng = np.random.default_rng(3)
    hosts = [(16000, 4, 0), (16000, 4, 0), (8000, 2, 0), (32000, 8, 0), (16000, 4, 0)]
    milli = rng.choice([1000.0, 500.0, 333.3, 250.5, 120.25, 75.0], size=120)
    tasks = [
        (int(rng.integers(1, 8)) * 500, int(rng.choice([0, 1, 1, 1, 2])), m, i, int(rng.integers(5, 60)), 0)
        for i, m in enumerate(milli)
    ]
    sim = hand_episode(hosts, tasks, rtt_ms=[[1.0]], max_wait=30)
    tracker, counter, checked = FragmentTracker(), KindCounter(), 0
    while not sim.done:
        feasible = np.flatnonzero(sim.mask())
        assert np.array_equal(
            tracker.increase(sim, feasible), fragment_increase(sim, counter.update(sim), feasible)
        )
        checked += not tracker._whole
        sim.place(int(feasible[0]))
    assert checked > 20


def test_a_hosts_fragment_does_not_depend_on_the_other_rows():
    # the weighted sum over kinds (fractional weights) is row-wise: a row's value is the same alone,
    # among others, in any order (the tracker relies on it: it computes each distinct row once)
    rng = np.random.default_rng(11)
    rows = 300
    gpu = rng.choice([-1.0, 0.0, 120.0, 250.0, 500.0, 730.0, 1000.0], size=(rows, 8))
    cpu, mem = rng.choice([0.0, 2000.0, 8000.0, 64000.0], size=rows), rng.choice([0.0, 1e4, 1e6], size=rows)
    for n_kinds in (3, 9, 40, 130):  # (numpy sums 8 or more terms pairwise, differently from left to right)
        count = rng.integers(1, 50, size=n_kinds).astype(float)
        kinds = TaskKinds(
            cpu=rng.choice([1000.0, 4000.0, 16000.0], size=n_kinds),
            mem=rng.choice([1.0, 5e3], size=n_kinds),
            num_gpu=rng.choice([1.0, 2.0, 8.0], size=n_kinds),
            gpu_milli=rng.choice([100.0, 250.0, 500.0, 1000.0], size=n_kinds),
            weight=count / count.sum(),
        )
        every = expected_fragment(cpu, mem, gpu, kinds)
        alone = [
            expected_fragment(cpu[i : i + 1], mem[i : i + 1], gpu[i : i + 1], kinds)[0] for i in range(rows)
        ]
        assert every.tobytes() == np.array(alone).tobytes()
        some = rng.permutation(rows)[:37]
        assert expected_fragment(cpu[some], mem[some], gpu[some], kinds).tobytes() == every[some].tobytes()


def test_the_whole_milli_holdings_are_the_plain_ones():
    rng = np.random.default_rng(5)
    gpu = rng.choice([-1.0, 0.0, 50.0, 300.0, 530.0, 999.0, 1000.0], size=(500, 8))
    milli = np.array([50.0, 100.0, 250.0, 300.0, 500.0, 531.0, 1000.0])
    holding, unusable, free = _whole_milli_holdings(gpu, milli)
    plain_holding, plain_unusable = _holdings(gpu, milli)
    assert np.array_equal(holding, plain_holding) and np.array_equal(unusable, plain_unusable)
    assert np.array_equal(free, np.clip(gpu, 0.0, None).sum(axis=1))


def test_the_tracker_refuses_hosts_where_the_task_does_not_fit():
    sim = Scenario(n_hosts=16, n_tasks=300, load=1.2).episode(1)
    while sim.mask().all() or sim.tasks.num_gpu[sim.current] == 0:
        sim.place(int(np.flatnonzero(sim.mask())[0]))
    with pytest.raises(ValueError, match="does not fit"):
        FragmentTracker().increase(sim, np.arange(sim.n_hosts))


def test_kind_counter_sees_only_the_tasks_that_have_arrived():
    sim = Scenario(n_hosts=8, n_tasks=120, load=0.8).episode(1)
    counter = KindCounter()
    for _ in range(40):
        kinds = counter.update(sim)
        t, n = sim.tasks, sim.arrived
        gpu = t.num_gpu[:n] > 0
        assert kinds.weight.sum() == pytest.approx(1.0 if gpu.any() else 0.0)
        # the weight of each kind is its share among the GPU tasks arrived so far
        demands = zip(kinds.cpu, kinds.mem, kinds.num_gpu, kinds.gpu_milli, kinds.weight, strict=True)
        for cpu, mem, k, g, w in demands:
            same = (t.cpu[:n] == cpu) & (t.mem[:n] == mem) & (t.num_gpu[:n] == k) & (t.gpu_milli[:n] == g)
            assert w == pytest.approx((gpu & same).sum() / gpu.sum())
        sim.place(int(np.flatnonzero(sim.mask())[0]))


def test_nearest_fgd_goes_to_the_nearest_region_first_and_uses_fgd_inside_it():
    sim = Scenario(n_hosts=16, n_tasks=300, load=1.0).episode(2)
    policy = make_policy("nearest_fgd")
    policy.reset(sim)
    differs = 0
    while not sim.done:
        choice = policy.select(sim)
        feasible = np.flatnonzero(sim.mask())
        rtt = sim.host_rtt_ms[sim.tasks.origin[sim.current]]
        assert rtt[choice] == rtt[feasible].min()
        nearest = feasible[rtt[feasible] == rtt[feasible].min()]
        increase = fragment_increase(sim, policy.fragments.kinds.update(sim))
        assert increase[choice] == increase[nearest].min()
        differs += choice != make_policy("nearest_fit").select(sim)
        sim.place(choice)
    assert differs > 10  # not nearest_fit under another name


def test_fgd_strands_less_gpu_than_best_fit_and_accepts_more_on_openb():
    """The paper's claim, on this benchmark: at high load, FGD leaves less GPU stranded and so turns
    fewer tasks away than best fit (same episodes; fragmentation as the simulator measures it)."""
    scenario = Scenario(n_hosts=16, n_tasks=512, load=0.9, split="val")
    cluster = scenario.cluster()
    fgd = [run_episode(scenario.episode(s, cluster), make_policy("fgd"), seed=s) for s in range(3)]
    best = [run_episode(scenario.episode(s, cluster), make_policy("best_fit"), seed=s) for s in range(3)]
    assert np.mean([m.acceptance_rate for m in fgd]) > np.mean([m.acceptance_rate for m in best])
    assert np.mean([m.fragmentation for m in fgd]) < np.mean([m.fragmentation for m in best])


def test_without_gpu_tasks_fgd_is_best_fit():
    # nothing to fragment: every host's increase is 0 and the tie-break decides
    tasks = [(cpu, 0, 0, i) for i, cpu in enumerate([700, 300, 900, 200, 500, 400])]
    sim = _sim([2000, 1500, 1000], [0, 1, 0], tasks)
    fgd, best = make_policy("fgd"), make_policy("best_fit")
    fgd.reset(sim)
    while not sim.done:
        assert not fragment_increase(sim, fgd.fragments.kinds.update(sim)).any()
        choice = fgd.select(sim)
        assert choice == best.select(sim)
        sim.place(choice)


def test_gpu_allocation_takes_the_same_gpus_for_one_host_and_for_many():
    rng = np.random.default_rng(7)
    gpu_free = rng.choice([-1.0, 0.0, 150.0, 300.0, 530.0, 1000.0], size=(200, 8))
    for milli, count in [(300.0, 1), (150.0, 2), (1000.0, 1), (1000.0, 4), (50.0, 8)]:
        many = gpu_allocation(gpu_free, milli, count)
        assert np.array_equal(many, np.array([gpu_allocation(row, milli, count) for row in gpu_free]))
        full = (gpu_free >= milli).sum(axis=1) >= count
        assert ((many > 0).sum(axis=1)[full] == count).all()
