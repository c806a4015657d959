"""How a scenario run is assembled from components, and how new components plug in.

A *component* is one concern of a run (heartbeats, the bulk workload, the fault schedule, later
migration or consensus): it **installs** itself before the run (node apps, harness events, probes)
and contributes **sections** to the report afterwards (a table, optionally a plot). The runner
knows none of them by name; it runs whatever is registered, in registration order, which is also
the order of the report. A later component plugs in with::

    @register_component
    class MigrationComponent:
        name = "migration"
        def install(self, run: ScenarioRun) -> None:
            run.add_app("migration", lambda rt: MigrationAgent(rt, ...))
        def sections(self, run: ScenarioRun) -> list[Section]:
            return [Section("migrations", "Live migrations", table, plot=plot_migrations)]

Node apps are composed (``Simulation.start`` takes one app per node, and a restart re-runs it):
each component adds its part with :meth:`ScenarioRun.add_app`, and every node runs all parts, in
order, on start and after every restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from novacron.runtime import Runtime
from novacron.sim import Simulation

from .build import NodeResolver
from .model import Scenario

if TYPE_CHECKING:
    from .report import Section


@dataclass
class ScenarioRun:
    """A run being assembled or just finished: what components install into and report from.

    ``data`` is where components keep what they collect during the run (keyed by component
    name), so that their ``sections`` can find it afterwards.
    """

    scenario: Scenario
    sim: Simulation
    nodes: NodeResolver
    apps: dict[str, Callable[[Runtime], Any]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    #: per node, the parts of its app built so far (a later app may use an earlier one's objects)
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_app(self, name: str, app: Callable[[Runtime], Any]) -> None:
        """Run ``app(rt)`` on every node (after the apps added before it), now and after restarts."""
        if name in self.apps:
            raise ValueError(f"an app called {name!r} is already installed")
        self.apps[name] = app

    def start_apps(self) -> None:
        """Start the composed app on every node; ``sim.runtime(n).app[name]`` is each part."""
        if not self.apps:
            return
        parts = list(self.apps.items())

        def composed(rt: Runtime) -> dict[str, Any]:
            built: dict[str, Any] = {}
            self.parts[rt.node_id] = built
            for name, app in parts:
                built[name] = app(rt)
            return built

        self.sim.start(composed)


class Component(Protocol):
    """One concern of a scenario run; see the module docstring."""

    name: str

    def install(self, run: ScenarioRun) -> None: ...

    def sections(self, run: ScenarioRun) -> list[Section]: ...


_EXTRA: dict[str, Component] = {}


def builtin_components() -> list[Component]:
    """The components of every run, in report order: network first, the fault log last."""
    from .bulk import BulkComponent
    from .consensus import ConsensusComponent
    from .cpu import CpuComponent
    from .dwcp import DWCPComponent
    from .fault_schedule import FaultComponent
    from .heartbeats import HeartbeatComponent
    from .latency import LatencyComponent
    from .migration import MigrationComponent
    from .sync import SyncComponent

    return [
        LatencyComponent(),
        BulkComponent(),
        DWCPComponent(),
        HeartbeatComponent(),
        ConsensusComponent(),
        SyncComponent(),
        MigrationComponent(),
        CpuComponent(),
        FaultComponent(),
    ]


def register_component(component: Any) -> Any:
    """Add ``component`` (an instance, or a class to instantiate) to every run; usable as a decorator.

    It reports after the built-ins; one with a built-in's name replaces that built-in in place.
    """
    instance = component() if isinstance(component, type) else component
    if not getattr(instance, "name", ""):
        raise ValueError(f"{component!r} needs a non-empty 'name'")
    _EXTRA[instance.name] = instance
    return component


def unregister_component(name: str) -> None:
    _EXTRA.pop(name, None)


def registered_components() -> list[Component]:
    """The components a run uses by default: the built-ins, then the registered ones."""
    by_name: dict[str, Component] = {c.name: c for c in builtin_components()}
    by_name.update(_EXTRA)
    return list(by_name.values())


@contextmanager
def extra_component(component: Component) -> Iterator[Component]:
    """Register ``component`` for the duration of a ``with`` block (tests, notebooks)."""
    register_component(component)
    try:
        yield component
    finally:
        unregister_component(component.name)
