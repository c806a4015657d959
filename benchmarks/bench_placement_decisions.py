"""Placement decisions: wall-clock time per decision, against the 1 ms budget and nearest_fit.

Issue 5 asks for a decision latency under 1 ms per placement. ``itp_compare.py`` reports each
policy's mean; this times every decision one by one (``time.perf_counter`` around
``policy.select`` or the model's ``predict``, the simulator's own work excluded) and gives the
median, the 99th percentile and the worst, over ``--episodes`` test episodes at load 0.9
(the simulator offers a decision for every queued task that fits somewhere, so high load means
long queues and many decisions). Heuristics run on clusters of 16, 64 and 256 hosts: their cost
grows with the host count, FGD's also with GPUs per host and task kinds seen. The shipped learned
policies (``results/itp/runs/<name>/best.zip``) run at the size they were trained for (16 hosts),
through :class:`novacron.placement.rl.FastMaskedPolicy` as the evaluate command does.

Baselines in the same run: ``nearest_fit`` (the cheapest geographic heuristic) and the 1 ms budget.
``--fgd-baseline FILE`` also times ``fgd`` and ``nearest_fgd`` with the ``FragmentTracker`` of another
copy of ``novacron/placement/fgd.py`` (``git show REV:novacron/placement/fgd.py > FILE``), in the
same run, and checks that they make the same decisions: a before/after on a noisy machine.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_placement_decisions.py   (~2 min)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import report

from novacron.placement.heuristics import DEFER, Policy, make_policy
from novacron.placement.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
BUDGET_US = 1000.0
HEURISTICS = ("nearest_fit", "stream_nearest_fit", "horizon_nearest_fit", "fgd", "nearest_fgd")
MODELS = {"bchor": "results/itp/runs/bchor_s0/best.zip", "bcstream": "results/itp/runs/bcstream_s0/best.zip"}


def heuristic_times(
    name: str, hosts: int, load: float, episodes: int, make: Callable[[], Policy] | None = None
) -> tuple[np.ndarray, list[int]]:
    """Seconds per decision of heuristic ``name`` (or of the policies ``make`` returns), every
    decision of the test episodes; and the decisions."""
    scenario = Scenario(n_hosts=hosts, n_tasks=512, load=load, split="test")
    cluster = scenario.cluster()
    times, actions = [], []
    for seed in range(episodes):
        sim = scenario.episode(seed, cluster)
        policy = make() if make else make_policy(name)
        policy.reset(sim, seed)
        while not sim.done:
            start = time.perf_counter()
            action = policy.select(sim)
            times.append(time.perf_counter() - start)
            actions.append(action)
            sim.defer() if action == DEFER else sim.place(action)
    return np.asarray(times), actions


def fgd_baseline(path: Path) -> Callable[[str], Callable[[], Policy]]:
    """Policies ``fgd`` and ``nearest_fgd`` with the ``FragmentTracker`` of the fgd.py at ``path``."""
    name = "novacron.placement._fgd_baseline"  # beside fgd.py, for its relative imports
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)

    def make(policy: str) -> Callable[[], Policy]:
        class Baseline(type(make_policy(policy))):
            def reset(self, sim, seed=None) -> None:
                self.fragments = module.FragmentTracker()

        return Baseline

    return make


def model_times(path: Path, load: float, episodes: int) -> np.ndarray:
    """Seconds per decision of a shipped MaskablePPO model (fast masked inference)."""
    import torch

    from novacron.cli.itp_cmd import load_predictor
    from novacron.sim.envs.placement import PlacementEnv

    torch.set_num_threads(1)
    model = load_predictor("maskable_ppo", path)
    env = PlacementEnv(scenario=Scenario(n_hosts=16, n_tasks=512, load=load, split="test"))
    times = []
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            start = time.perf_counter()
            action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
            times.append(time.perf_counter() - start)
            obs, _, done, _, _ = env.step(int(action))
    return np.asarray(times)


def row(policy: str, hosts: int, seconds: np.ndarray, baseline_median: float | None) -> dict:
    us = seconds * 1e6
    median = float(np.median(us))
    return {
        "policy": policy,
        "hosts": hosts,
        "decisions": len(us),
        "median_us": round(median, 1),
        "p99_us": round(float(np.percentile(us, 99)), 1),
        "max_us": round(float(us.max()), 1),
        "x_nearest_fit": round(median / baseline_median, 2) if baseline_median else 1.0,
        "within_1ms_p99": bool(np.percentile(us, 99) < BUDGET_US),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="16,64,256", help="cluster sizes for the heuristics")
    parser.add_argument("--load", type=float, default=0.9)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--no-models", action="store_true", help="heuristics only")
    parser.add_argument(
        "--fgd-baseline", type=Path, metavar="FILE", help="also fgd, nearest_fgd with this fgd.py's tracker"
    )
    args = parser.parse_args(argv)
    previous = fgd_baseline(args.fgd_baseline) if args.fgd_baseline else None
    rows = []
    for hosts in (int(h) for h in args.hosts.split(",")):
        baseline = None
        for name in HEURISTICS:
            seconds, actions = heuristic_times(name, hosts, args.load, args.episodes)
            baseline = baseline or float(np.median(seconds * 1e6))  # nearest_fit comes first
            rows.append(row(name, hosts, seconds, baseline))
            print(f"{hosts} hosts: {name} done", flush=True)
            if previous and name in ("fgd", "nearest_fgd"):
                before, same = heuristic_times(name, hosts, args.load, args.episodes, previous(name))
                rows.append(row(f"{name} ({args.fgd_baseline.name})", hosts, before, baseline))
                ratio = np.median(before) / np.median(seconds)
                print(
                    f"{hosts} hosts: {name} with {args.fgd_baseline}: median x{ratio:.2f} of this one's,"
                    f" same decisions: {same == actions}",
                    flush=True,
                )
        if hosts == 16 and not args.no_models:
            for name, path in MODELS.items():
                if (ROOT / path).exists():
                    rows.append(row(name, 16, model_times(ROOT / path, args.load, args.episodes), baseline))
                else:
                    print(f"{path} not found: {name} skipped")
    report(f"Placement: wall time per decision, load {args.load:g}, budget {BUDGET_US:.0f} µs", rows)


if __name__ == "__main__":
    main()
