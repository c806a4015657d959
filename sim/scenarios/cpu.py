"""Report component: how busy each node's cores were, when the topology gives nodes a core count.

Encoding, hashing and signatures are charged as CPU time (``rt.compute``); with ``cores`` set in
the scenario's topology that work queues for the cores (:mod:`novacron.sim.cpu`), and this table
shows where it queued. Without ``cores`` there is nothing to show and no section.
"""

from __future__ import annotations

import pandas as pd

from .components import ScenarioRun
from .report import Section

COLUMNS = ["node", "cores", "jobs", "busy_s", "utilisation", "waited_s", "mean_wait_ms"]


class CpuComponent:
    name = "cpu"

    def install(self, run: ScenarioRun) -> None:
        pass  # the simulator keeps each incarnation's Cpu (Simulation.cpus)

    def sections(self, run: ScenarioRun) -> list[Section]:
        cpus = run.sim.cpus
        if not cpus:
            return []
        elapsed = run.sim.now
        rows = []
        for node in sorted(cpus):
            incarnations = cpus[node]
            cores = incarnations[0].cores
            jobs = sum(c.jobs for c in incarnations)
            busy = sum(c.busy_by(elapsed) for c in incarnations)
            waited = sum(c.waited_seconds for c in incarnations)
            rows.append(
                {
                    "node": node,
                    "cores": cores,
                    "jobs": jobs,
                    "busy_s": busy,
                    "utilisation": busy / (cores * elapsed) if elapsed > 0 else 0.0,
                    "waited_s": waited,
                    "mean_wait_ms": waited / jobs * 1e3 if jobs else 0.0,
                }
            )
        table = pd.DataFrame(rows, columns=COLUMNS)
        note = (
            "busy: rt.compute() work done by the end of the run (a crashed incarnation's counted "
            "in full); waited: time work spent waiting for a free core"
        )
        return [Section("cpu", "CPU per node (cores from the topology)", table, note=note)]
