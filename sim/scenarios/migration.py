"""Report component: live VM migrations (``novacron.migration``) inside the scenario.

Each ``migration`` entry migrates a simulated VM (its content mix and dirtying workload from the
entry) from ``source`` to ``destination`` at ``at``, with DWCP's settings or QEMU's defaults, over
whatever the topology and the scenario's other traffic and faults make of the path. Every node runs
a :class:`~novacron.migration.Migrator`; where the DWCP data plane runs too, the migrator shares its
AMST (one AMST per node). The report gives one row per migration and a plot of its rounds.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from novacron.migration import MigrationError, MigrationSettings, Migrator, ModelVM, UniformWorkload
from novacron.runtime import Runtime
from novacron.transport.dataplane import ContentMix

from .components import ScenarioRun
from .report import ScenarioResult, Section, new_figure


class MigrationComponent:
    name = "migration"

    def install(self, run: ScenarioRun) -> None:
        specs = run.scenario.migration
        if not specs:
            return
        specs = [
            spec
            for spec in specs
            if run.nodes.one(f"migration.{spec.name}.source", spec.source) is not None
            and run.nodes.one(f"migration.{spec.name}.destination", spec.destination) is not None
        ]
        reports: list[dict] = []
        rounds: list[dict] = []
        run.data[self.name] = (reports, rounds, specs)
        by_source: dict[str, list] = {}
        for spec in specs:
            by_source.setdefault(spec.source.removeprefix("node:"), []).append(spec)

        def app(rt: Runtime) -> Migrator:
            plane = run.parts.get(rt.node_id, {}).get("dwcp")
            amst = plane.plane.amst if plane is not None else None
            migrator = Migrator(rt, amst=amst, vm_factory=lambda b: ModelVM(rt, b.pages, empty=True))
            for spec in by_source.get(rt.node_id, []):
                rt.spawn(_migrate(rt, migrator, spec, reports, rounds))
            return migrator

        run.add_app(self.name, app)

    def sections(self, run: ScenarioRun) -> list[Section]:
        if self.name not in run.data:
            return []
        reports, rounds, specs = run.data[self.name]
        finished = {r["name"] for r in reports}
        unfinished = [
            {"name": s.name, "source": s.source, "destination": s.destination, "settings": s.settings,
             "engine": s.engine, "outcome": "still running at the end of the run"}
            for s in specs
            if s.name not in finished
        ]  # fmt: skip
        columns = [
            *("name", "source", "destination", "settings", "engine", "outcome", "total_time_s"),
            *("downtime_s", "sent_over_memory", "rounds", "converged", "final_throttle", "streams"),
        ]
        summary = pd.DataFrame([*reports, *unfinished], columns=columns)
        return [
            Section("migration", "Live migrations", summary, plot=plot_migrations),
            Section("migration_rounds", "Migration rounds", pd.DataFrame(rounds), in_summary=False),
        ]


async def _migrate(rt: Runtime, migrator: Migrator, spec, reports: list, rounds: list) -> None:
    await rt.sleep(spec.at)
    pages = max(1, spec.memory // 4096)
    workload = UniformWorkload(spec.dirty_rate, max(1, spec.working_set // 4096)) if spec.dirty_rate else None
    content = ContentMix(spec.content.zero, spec.content.text, spec.content.random)
    vm = ModelVM(rt, pages, mix=content, workload=workload)
    base = MigrationSettings.dwcp() if spec.settings == "dwcp" else MigrationSettings.qemu_defaults()
    settings = base.with_(engine=spec.engine)
    try:
        report = await migrator.migrate(vm, spec.destination.removeprefix("node:"), settings)
    except MigrationError as exc:
        report = exc.report
        if report is None:
            reports.append({"name": spec.name, "outcome": f"failed: {exc}"})
            return
    reports.append({"name": spec.name, "source": spec.source, "destination": spec.destination,
                    "settings": spec.settings, **report.summary()})  # fmt: skip
    for r in report.rounds:
        rounds.append({"name": spec.name, "at_s": spec.at + r.started, **r.__dict__})


def plot_migrations(result: ScenarioResult) -> Figure | None:
    """Pages sent per round, one line per migration (log scale: rounds shrink geometrically)."""
    frame = result.table("migration_rounds")
    if frame.empty:
        return None
    figure, (ax,) = new_figure(height=3.2)
    for name, group in frame.groupby("name"):
        ax.plot(group["index"], group["pages"], marker="o", label=str(name))
    ax.set_yscale("log")
    ax.set_xlabel("round")
    ax.set_ylabel("pages sent")
    ax.set_title("Live migrations: pages per round (last point: stop-and-copy)")
    ax.legend(fontsize="small")
    return figure
