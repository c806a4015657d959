"""Running a scenario: build the simulation, install the components, run, collect the report.

::

    from novacron.sim.scenarios import load_scenario, run_scenario
    result = run_scenario(load_scenario("default").with_overrides(seed=7))
    print(result.summary())
    result.save("results/default-seed7")

Everything random in a run comes from generators derived from the scenario's seed (the
simulation's network and nodes, each node's ``rt.random``), so the same scenario and seed give
the same trace hash and the same tables. Wall-clock time is measured for the report only and
never reaches the simulation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pandas as pd

from novacron.sim import Simulation

from .build import NodeResolver
from .components import Component, ScenarioRun, registered_components
from .model import Scenario
from .report import ScenarioResult


def prepare(
    scenario: Scenario, *, components: Sequence[Component] | None = None, source: str | None = None
) -> ScenarioRun:
    """A simulation with every component installed, not yet started.

    Raises :class:`ScenarioError` listing every selector or workload that does not fit the
    topology.
    """
    topology = scenario.topology.build()
    sim = Simulation(topology, seed=scenario.seed, stream_timeout=scenario.stream_timeout)
    run = ScenarioRun(scenario, sim, NodeResolver(topology, source=source))
    for component in registered_components() if components is None else components:
        component.install(run)
    run.nodes.raise_problems()
    return run


def check_scenario(
    scenario: Scenario, *, components: Sequence[Component] | None = None, source: str | None = None
) -> None:
    """Raise :class:`ScenarioError` if the scenario cannot be set up (it is not run)."""
    prepare(scenario, components=components, source=source)


def run_scenario(
    scenario: Scenario, *, progress: bool = False, components: Sequence[Component] | None = None
) -> ScenarioResult:
    """Run ``scenario`` for its duration and report on it.

    ``progress`` shows a progress bar (on stderr) in simulated seconds; ``components`` replaces
    the registered ones (default: :func:`registered_components`).
    """
    chosen = list(registered_components() if components is None else components)
    run = prepare(scenario, components=chosen)
    run.start_apps()
    started = time.perf_counter()
    run.sim.run(until=scenario.duration, progress=progress)
    wall = time.perf_counter() - started
    trace_hash = run.sim.trace_hash()  # flushes the trace, so the event count is complete
    sections = [section for component in chosen for section in component.sections(run)]
    return ScenarioResult(
        scenario=scenario,
        topology=run.sim.topology.summary(),
        trace_hash=trace_hash,
        trace_events=run.sim.tracer.count,
        wall_seconds=wall,
        sections=sections,
    )


def seed_row(scenario: Scenario, seed: int) -> dict:
    """:meth:`ScenarioResult.row` of ``scenario`` run with ``seed`` (one point of :func:`run_seeds`)."""
    return run_scenario(scenario.with_overrides(seed=seed)).row()


def run_seeds(
    scenario: Scenario,
    seeds: Sequence[int],
    *,
    workers: int | None = None,
    ray: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """The scenario once per seed, side by side (:mod:`novacron.sim.sweep`): one row of headline
    figures per seed, in the seeds' order, the same for any number of workers. A figure from one
    seed is one draw; this shows how much of it is the seed."""
    from functools import partial

    from novacron.sim.sweep import grid, sweep

    points = grid(seed=list(seeds))
    return sweep(
        partial(seed_row, scenario), points, workers=workers, ray=ray, progress=progress, desc=scenario.name
    )
