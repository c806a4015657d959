"""Scenarios: a topology, heartbeats, a bulk workload and a fault schedule, run and reported.

``novacron simulate`` and ``make run`` are thin wrappers around this package::

    from novacron.sim.scenarios import load_scenario, run_scenario
    scenario = load_scenario("default")            # a built-in by name, or a YAML path
    result = run_scenario(scenario.with_overrides(seed=3, duration=20.0))
    print(result.summary())                        # tables per link class, fault log, trace hash
    result.save("results/default-seed3")           # CSV + Parquet per table, PNG plots

Built-in scenarios are the YAML files in this package (``builtin_names()``). Later components
(migration, consensus, ...) add their node apps and report sections with
:func:`register_component`; see :mod:`.components`.
"""

from .bulk_driver import BulkTransferDriver, TransferPlan
from .components import (
    Component,
    ScenarioRun,
    builtin_components,
    extra_component,
    register_component,
    registered_components,
    unregister_component,
)
from .errors import ScenarioError
from .loading import (
    builtin_names,
    load_scenario,
    parse_yaml,
    scenario_from_mapping,
    scenario_from_yaml,
    scenario_to_yaml,
)
from .model import (
    LINK_CLASSES,
    BulkTransfers,
    HeartbeatSpec,
    Scenario,
)
from .report import ScenarioResult, Section, new_figure
from .runner import check_scenario, prepare, run_scenario, run_seeds
from .units import parse_bandwidth, parse_size

__all__ = [
    "LINK_CLASSES",
    "BulkTransferDriver",
    "BulkTransfers",
    "Component",
    "HeartbeatSpec",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "ScenarioRun",
    "Section",
    "TransferPlan",
    "builtin_components",
    "builtin_names",
    "check_scenario",
    "extra_component",
    "load_scenario",
    "new_figure",
    "parse_bandwidth",
    "parse_size",
    "parse_yaml",
    "prepare",
    "register_component",
    "registered_components",
    "run_scenario",
    "run_seeds",
    "scenario_from_mapping",
    "scenario_from_yaml",
    "scenario_to_yaml",
    "unregister_component",
]
