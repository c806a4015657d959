"""Report component: the DWCP v3 data plane (mode detection, HDE, AMST) under the scenario.

Every node runs a :class:`~novacron.mode.ModeDetector` and a :class:`~novacron.transport.DataPlane`;
each ``dwcp.transfers`` entry becomes a :class:`~.dataplane_driver.DataPlaneDriver` plan. The report
shows, per link class, the mode the data plane saw, the streams, congestion control and codec it
chose, the wire/payload ratio and the goodput, and how the detected modes settled.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from novacron.config import CompressionConfig, DWCPConfig, TransportConfig
from novacron.mode import DetectionSettings, ModeDetector
from novacron.runtime import Runtime, VirtualPayload
from novacron.transport import ContentMix, DataPlane

from .bulk import TransferLedger
from .bulk_driver import TransferPlan
from .components import ScenarioRun
from .dataplane_driver import DataPlaneDriver
from .report import Section, ordered_classes

TAG_PREFIX = "dwcp/"
RESULT_COLUMNS = [
    "finished", "workload", "src", "dst", "link_class", "mode", "streams", "congestion", "codec",
    "bytes_in", "bytes_out", "ratio", "encode_s", "duration_s", "goodput_gbps",
]  # fmt: skip


def _most_common(values: pd.Series) -> str:
    return Counter(values).most_common(1)[0][0] if len(values) else ""


def _one_node_per_site(run: ScenarioRun):
    """For each node: the first node of every site, and a neighbour in its own site."""
    topo = run.sim.topology
    by_site: dict[str, list[str]] = {}
    for node in sorted(topo.nodes):
        by_site.setdefault(topo.nodes[node].site, []).append(node)

    def representatives(node: str) -> list[str]:
        own = topo.nodes[node].site
        picks = [nodes[0] for site, nodes in by_site.items() if site != own]
        neighbours = [n for n in by_site[own] if n != node]
        return picks + neighbours[:1]

    return representatives


class DWCPComponent:
    name = "dwcp"

    def install(self, run: ScenarioRun) -> None:
        spec = run.scenario.dwcp
        if spec is None:
            return
        dwcp = DWCPConfig(
            detection_interval=spec.detection_interval,
            transport=TransportConfig(
                min_streams=spec.min_streams, max_streams=spec.max_streams, congestion_algo=spec.congestion
            ),
            compression=CompressionConfig(algorithm=spec.compression),
        )
        settings = DetectionSettings.from_config(dwcp, hysteresis=spec.hysteresis)
        plans, contents = [], {}
        for i, work in enumerate(spec.transfers):
            sources = run.nodes.sources_for(work.link_class)
            if not sources:
                run.nodes.problem(f"dwcp.transfers[{i}].link_class", f"no pair of nodes is {work.link_class}")
                continue
            tag = f"{TAG_PREFIX}{work.name}"
            low, high = work.size_range
            plans.append(
                TransferPlan(tag, work.link_class, work.every * len(sources), low, high, start=work.start)
            )
            contents[tag] = ContentMix(work.content.zero, work.content.text, work.content.random)
        sim = run.sim
        data = run.data[self.name] = {"ledger": TransferLedger(sim), "results": [], "detectors": {}}

        def record(src: str, plan: TransferPlan, result) -> None:
            data["results"].append((sim.now, plan.tag.removeprefix(TAG_PREFIX), src, result))

        representatives = _one_node_per_site(run)

        def app(rt: Runtime) -> DataPlaneDriver:
            # Probe one node per site (the data plane reuses a site's mode for its other nodes).
            peers = [p for p in representatives(rt.node_id) if p != rt.node_id]
            detector = ModeDetector(rt, settings, peers=peers, payload=VirtualPayload)
            data["detectors"][rt.node_id] = detector
            plane = DataPlane(rt, dwcp, detector=detector)
            return DataPlaneDriver(rt, plane, plans, contents, observer=data["ledger"], on_result=record)

        run.add_app(self.name, app)

    def sections(self, run: ScenarioRun) -> list[Section]:
        data = run.data.get(self.name)
        if data is None:
            return []
        topo = run.sim.topology
        rows = [
            (
                t, workload, src, r.peer, topo.link_class(src, r.peer), r.mode, r.streams, r.congestion,
                r.codec, r.bytes_in, r.bytes_out, r.ratio, r.encode_seconds, r.duration, r.goodput_bps / 1e9,
            )
            for t, workload, src, r in data["results"]
        ]  # fmt: skip
        results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        failures = Counter(topo.link_class(s, d) for _, _, s, d, _ in data["ledger"].failures)
        summary = []
        for link_class in ordered_classes(dict.fromkeys(results["link_class"])):
            part = results[results["link_class"] == link_class]
            summary.append(
                {
                    "link_class": link_class,
                    "transfers": len(part),
                    "failed": failures.get(link_class, 0),
                    "mode": _most_common(part["mode"]),
                    "streams_mean": round(part["streams"].mean(), 1),
                    "congestion": _most_common(part["congestion"]),
                    "codec": _most_common(part["codec"]),
                    "ratio_mean": round(part["ratio"].mean(), 3),
                    "goodput_gbps_mean": round(part["goodput_gbps"].mean(), 3),
                    "goodput_gbps_p50": round(part["goodput_gbps"].median(), 3),
                }
            )
        table = pd.DataFrame(summary)
        modes = Counter()
        for node, detector in data["detectors"].items():
            for peer, mode in detector.modes.items():
                modes[(topo.link_class(node, peer), str(mode))] += 1
        mode_rows = [{"link_class": c, "mode": m, "peer_pairs": n} for (c, m), n in sorted(modes.items())]
        return [
            Section("dwcp", "DWCP data plane by link class (mode -> streams, CC, codec)", table),
            Section("dwcp_transfers", "DWCP data-plane transfers", results, in_summary=False),
            Section(
                "dwcp_modes",
                "Detected network modes at the end (node -> peer pairs)",
                pd.DataFrame(mode_rows),
            ),
        ]
