"""The FGD paper's two GPU baselines: ``gpu_packing`` and ``gpu_clustering``."""

from __future__ import annotations

import numpy as np
from hand_episodes import hand_episode

from novacron.placement.heuristics import best_fit_scores, gpu_shape, make_policy
from novacron.placement.scenario import Scenario


def test_gpu_packing_prefers_used_gpus_then_used_hosts_then_idle_ones():
    # hosts: A with one GPU, B and C with two; all in one region
    hosts = [(8000, 1, 0), (8000, 2, 0), (8000, 2, 0)]
    tasks = [  # (cpu, GPUs, milli per GPU, arrival, duration, origin)
        (1000, 1, 400, 0, 100, 0),  # set-up: on A, which keeps 600
        (1000, 1, 500, 0, 100, 0),  # set-up: on B's first GPU, which keeps 500
        (1000, 1, 300, 1, 100, 0),  # fits on a used GPU of A (600 left) and of B (500 left)
        (1000, 1, 1000, 2, 100, 0),  # a whole GPU: B has one free, C is idle
        (1000, 0, 0, 3, 100, 0),  # no GPU: best fit
    ]
    sim = hand_episode(hosts, tasks, rtt_ms=[[1.0]], max_wait=10)
    packing = make_policy("gpu_packing")
    sim.place(0)
    sim.place(1)
    assert packing.select(sim) == 1  # the used GPU with the least left
    sim.place(1)
    assert packing.select(sim) == 1  # a used host before the idle one
    sim.place(1)
    feasible = np.flatnonzero(sim.mask())
    assert packing.select(sim) == feasible[np.argmin(best_fit_scores(sim)[feasible])]


def test_gpu_packing_opens_an_idle_host_only_when_no_used_one_fits():
    sim = Scenario(n_hosts=16, n_tasks=300, load=1.0).episode(4)
    packing, opened = make_policy("gpu_packing"), 0
    while not sim.done:
        choice = packing.select(sim)
        feasible = np.flatnonzero(sim.mask())
        gpu_free = sim.gpu_free[feasible]
        idle = ((gpu_free >= 1000) | (gpu_free < 0)).all(axis=1) & (gpu_free >= 0).any(axis=1)
        if sim.tasks.num_gpu[sim.current] > 0 and idle[feasible == choice][0]:
            assert idle.all()  # every host where the task fits was idle
            opened += 1
        sim.place(choice)
    assert opened > 0


def test_gpu_shapes_are_a_share_of_one_gpu_or_whole_gpus():
    assert gpu_shape(np.array([0, 300, 999, 1000, 2000, 8000])).tolist() == [-1, 0, 0, 1, 2, 8]


def test_gpu_clustering_keeps_shapes_together_and_opens_idle_hosts_before_mixing():
    hosts = [(8000, 2, 0)] * 4  # A, B, C, D: two GPUs each
    tasks = [  # (cpu, GPUs, milli per GPU, arrival, duration, origin)
        (1000, 1, 300, 0, 100, 0),  # set-up: a share on A
        (1000, 1, 300, 0, 100, 0),  # set-up: a share on B ...
        (1000, 1, 1000, 0, 100, 0),  # ... and a whole GPU on B
        (1000, 1, 1000, 0, 100, 0),  # set-up: a whole GPU on D
        (1000, 1, 200, 1, 100, 0),  # a share: A runs only shares, B shares among others
        (1000, 1, 1000, 2, 100, 0),  # a whole GPU: D runs only whole GPUs and has one left
        (1000, 1, 1000, 3, 100, 0),  # D is full, B has no whole GPU: C (idle) before A (shares)
    ]
    sim = hand_episode(hosts, tasks, rtt_ms=[[1.0]], max_wait=10)
    clustering = make_policy("gpu_clustering")
    for host in (0, 1, 1, 3):
        sim.place(host)
    assert clustering.select(sim) == 0
    sim.place(0)
    assert clustering.select(sim) == 3
    sim.place(3)
    assert np.flatnonzero(sim.mask()).tolist() == [0, 2]
    assert clustering.select(sim) == 2
