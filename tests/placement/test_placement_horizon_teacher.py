"""``horizon_nearest_fit``: end-of-episode admission and GPU-aware packing, checked decision by decision."""

from __future__ import annotations

import numpy as np
import pytest

from novacron.placement.cluster import GPU_MILLI
from novacron.placement.heuristics import (
    DEFER,
    HEURISTICS,
    HORIZON_HEURISTICS,
    HorizonNearestFitPolicy,
    PatientNearestFitPolicy,
    make_policy,
    resource_times,
    run_episode,
)
from novacron.placement.scenario import Scenario

SMALL = Scenario(n_hosts=8, n_tasks=150, load=0.9, split="val")


def test_placement_horizon_teacher_is_known_by_name_but_kept_apart_from_the_deployable_heuristics():
    assert isinstance(make_policy("horizon_nearest_fit"), HorizonNearestFitPolicy)
    assert "horizon_nearest_fit" in HORIZON_HEURISTICS and "horizon_nearest_fit" not in HEURISTICS
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("no_such_policy")


def test_placement_horizon_admits_big_tasks_only_in_the_tail_and_with_room():
    """Every decision: a big task is deferred before the tail or when the cluster is busy, and is
    otherwise treated exactly as patient_nearest_fit would treat an admitted task."""
    sim = SMALL.episode(seed=3)
    policy = HorizonNearestFitPolicy(tail=0.5, utilisation=0.9, cpu_on_gpu=0.0, gpu_break=0.0)
    patient = PatientNearestFitPolicy(threshold=np.inf, patience=policy.patience)
    times = resource_times(sim)
    h = sim.cluster.hosts
    seen = {"early": 0, "tail_admitted": 0, "small": 0}
    while not sim.done:
        task = sim.current
        action = policy.select(sim)
        big = times[task] > policy.threshold
        tail = sim.arrived >= 0.5 * len(sim.tasks)
        cpu = 1.0 - sim.cpu_free.sum() / h.cpu.sum()
        gpu = 1.0 - np.clip(sim.gpu_free, 0.0, None).sum() / (h.gpus.sum() * GPU_MILLI)
        if big and not (tail and max(cpu, gpu) <= 0.9):
            assert action == DEFER
            seen["early"] += not tail
        else:
            # with no packing penalties, an admitted task is placed (or waits) as patient_nearest_fit does
            assert action == patient.select(sim)
            seen["tail_admitted" if big else "small"] += 1
        sim.defer() if action == DEFER else sim.place(action)
    assert seen["early"] > 0 and seen["tail_admitted"] > 0 and seen["small"] > 0


def test_placement_horizon_with_no_tail_and_no_penalties_is_patient_nearest_fit():
    # tail=0 admits no big task at all, not even after the last arrival
    for seed in (5, 6):
        policy = HorizonNearestFitPolicy(threshold=0.35, tail=0.0, cpu_on_gpu=0.0, gpu_break=0.0)
        a = run_episode(SMALL.episode(seed=seed), policy)
        b = run_episode(SMALL.episode(seed=seed), PatientNearestFitPolicy())
        assert str(a) == str(b)


def test_placement_horizon_packing_keeps_cpu_tasks_off_gpu_hosts_and_whole_gpus_whole():
    sim = Scenario(n_hosts=16, n_tasks=300, load=0.8, split="val").episode(seed=1)
    policy = HorizonNearestFitPolicy(threshold=np.inf, patience=1.0)
    t, h = sim.tasks, sim.cluster.hosts
    cpu_only = fractional = 0
    while not sim.done:
        task = sim.current
        action = policy.select(sim)
        rtt = sim.host_rtt_ms[t.origin[task]]
        if action != DEFER:
            same_rtt = sim.mask() & (rtt == rtt[action])
            if t.num_gpu[task] == 0 and (same_rtt & (h.gpus == 0)).any():
                assert h.gpus[action] == 0  # a GPU-less host at the same RTT always wins
                cpu_only += 1
            if 0 < t.gpu_milli[task] < GPU_MILLI and t.num_gpu[task] == 1:
                partial = (sim.gpu_free >= t.gpu_milli[task]) & (sim.gpu_free < GPU_MILLI)
                if (same_rtt & partial.any(axis=1)).any():
                    assert partial[action].any()  # a partly used GPU at the same RTT always wins
                    fractional += 1
        sim.defer() if action == DEFER else sim.place(action)
    assert cpu_only > 0 and fractional > 0
