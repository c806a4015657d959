"""Mode detection: time to detect a change (simulated) and time to switch (wall clock).

**Time to detect.** Two sites joined by a datacenter-like link (2 ms RTT, 10 Gbit/s); at
T the link changes (``sim.faults.degrade``) and we measure, in simulated seconds, how long
until node a reports the new mode for node b. Baseline: the bound proved in
``novacron.mode.detector``, ``K * interval + m`` (m: the longest detection round), which is
within ``(K + 1) * interval``. The detection interval is the configuration default (30 s);
``SEEDS`` seeds give different round phases relative to T.

**Time to switch.** The wall-clock time to deliver one round's changes to the subscribed
components, i.e. to reconfigure them (measured by the detector with ``time.perf_counter``).
Three realistic subscribers: AMST picks a per-peer stream range and congestion control, HDE
builds the peer's compressor at the mode's codec and level, consensus re-derives its
protocol and timeouts and validates them as a ``ConsensusConfig``. Baseline: the original
NovaCron design's reported 3.4 ms per mode switch. Two cases: a link that switches on its
own (one peer event + one node event), and a node whose 16 WAN peers switch in the same round.

Run: .venv/bin/python benchmarks/bench_mode.py
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import lz4.frame
import zstandard
from common import report

from novacron.config import ConsensusConfig, TransportConfig, load_config
from novacron.mode import DetectionSettings, Mode, ModeChange, ModeDetector
from novacron.runtime import VirtualPayload
from novacron.sim import Simulation, Topology

ORIGINAL_SWITCH_MS = 3.4  # the original NovaCron design's reported mode-switch time
SEEDS = 20
CHANGE_AT = 200.37
PAGE = (b"novacron page " * 300)[:4096]

# -- time to detect -------------------------------------------------------------------------


def two_sites() -> Topology:
    topo = Topology("two-sites")
    topo.add_site("A", "r1")
    topo.add_site("B", "r1")
    topo.add_node("a", "A")
    topo.add_node("b", "B")
    topo.connect_sites("A", "B", rtt=2e-3, bandwidth=10e9, jitter=4e-5)
    return topo


SCENARIOS = {
    "datacenter -> internet (+60 ms RTT)": (dict(extra_latency=0.03), Mode.INTERNET),
    "datacenter -> internet (bandwidth x0.05)": (dict(bandwidth_factor=0.05), Mode.INTERNET),
    "datacenter -> hybrid (+20 ms RTT)": (dict(extra_latency=0.01), Mode.HYBRID),
}


def detect_once(interval: float, k: int, fault: dict, expected: Mode, seed: int) -> tuple[float, float]:
    """(detection delay, longest round) in simulated seconds, for one seed."""
    settings = DetectionSettings(interval=interval, hysteresis=k)
    sim = Simulation(two_sites(), seed=seed, trace=False)
    sim.start(lambda rt: ModeDetector(rt, settings, payload=VirtualPayload))
    sim.faults.degrade(sim.faults.links_between_sites("A", "B"), at=CHANGE_AT, **fault)
    sim.run(until=CHANGE_AT + (k + 2) * interval)
    det: ModeDetector = sim.runtime("a").app
    change = next(c for c in det.changes if c.peer == "b" and c.old is not None)
    assert change.new == expected, change
    return change.at - CHANGE_AT, max(w.ended - w.started for w in det.windows["b"])


def time_to_detect() -> None:
    interval = load_config(env={}).dwcp.detection_interval
    rows = []
    for name, (fault, expected) in SCENARIOS.items():
        for k in (1, 3, 5):
            runs = [detect_once(interval, k, fault, expected, seed) for seed in range(SEEDS)]
            delays = [d for d, _ in runs]
            m = max(r for _, r in runs)
            rows.append(
                {
                    "change": name,
                    "K": k,
                    "mean_s": round(statistics.fmean(delays), 2),
                    "max_s": round(max(delays), 2),
                    "bound K*I+m (s)": round(k * interval + m, 2),
                    "bound (K+1)*I (s)": (k + 1) * interval,
                    "within": all(d <= k * interval + m for d in delays),
                }
            )
    report(f"time to detect, simulated seconds (interval I = {interval:g} s, {SEEDS} seeds)", rows)


# -- time to switch: three realistic subscribers ---------------------------------------------


@dataclass(frozen=True)
class StreamPlan:
    initial: int
    minimum: int
    maximum: int
    congestion: str


class TransportTuner:
    """AMST: a per-peer stream range by mode (issue 3 section 2), within the config's min/max."""

    RANGES = {Mode.DATACENTER: (32, 512), Mode.HYBRID: (16, 64), Mode.INTERNET: (4, 16)}

    def __init__(self, config: TransportConfig) -> None:
        self.config = config
        self.plans: dict[str, StreamPlan] = {}

    def __call__(self, change: ModeChange) -> None:
        if change.peer is None:
            return
        lo, hi = self.RANGES[change.new]
        lo = min(max(lo, self.config.min_streams), self.config.max_streams)
        hi = max(min(hi, self.config.max_streams), lo)
        congestion = "bbr" if change.new is Mode.INTERNET else self.config.congestion_algo
        self.plans[change.peer] = StreamPlan(lo, lo, hi, congestion)


class CodecSelector:
    """HDE: the peer's compressor, rebuilt at the mode's codec and level, checked on one page."""

    CODECS = {Mode.DATACENTER: ("lz4", 0), Mode.HYBRID: ("zstd", 3), Mode.INTERNET: ("zstd", 9)}

    def __init__(self) -> None:
        self.compressors: dict[str, object] = {}

    def __call__(self, change: ModeChange) -> None:
        if change.peer is None:
            return
        codec, level = self.CODECS[change.new]
        if codec == "zstd":
            compressor = zstandard.ZstdCompressor(level=level)
            assert compressor.compress(PAGE)
        else:
            assert lz4.frame.compress(PAGE, compression_level=level)
            compressor = ("lz4", level)
        self.compressors[change.peer] = compressor


class ConsensusTuner:
    """ACP: protocol and timeouts from the node-level mode and the RTT, validated as config."""

    def __init__(self) -> None:
        self.config = ConsensusConfig()

    def __call__(self, change: ModeChange) -> None:
        if change.peer is not None:
            return
        rtt = change.measurements.rtt if change.measurements and change.measurements.rtt else 0.001
        heartbeat = max(0.05, 4 * rtt)
        self.config = ConsensusConfig(
            protocol="pbft" if change.new is Mode.INTERNET else "raft",
            heartbeat_interval=heartbeat,
            election_timeout=10 * heartbeat,
            byzantine_tolerance=change.new is Mode.INTERNET,
        )


def subscribe_components(det: ModeDetector) -> None:
    transport = load_config(env={}).dwcp.transport
    for component in (TransportTuner(transport), CodecSelector(), ConsensusTuner()):
        det.subscribe(component, replay=False)


def toggle_between_rounds(sim: Simulation, det: ModeDetector, links, extra: float, rounds: int) -> float:
    """Add ``extra`` one-way latency for every other round, changing it halfway between rounds
    (never while a round measures); returns when the last round is over."""
    interval = det.settings.interval
    first = next(iter(det.windows.values()))[0].started  # the rounds' phase
    t0 = first + (int((sim.now - first) / interval) + 1) * interval + interval / 2
    for i in range(0, rounds + 1, 2):
        sim.faults.degrade(links, extra_latency=extra, at=t0 + i * interval, duration=interval)
    return t0 + rounds * interval


def switch_records_one_link(rounds: int) -> list:
    """A link toggling across 10 ms RTT (datacenter <-> hybrid) every round, K = 1."""
    settings = DetectionSettings(interval=1.0, hysteresis=1)
    sim = Simulation(two_sites(), seed=1, trace=False)
    sim.start(lambda rt: ModeDetector(rt, settings, payload=VirtualPayload, perf_counter=time.perf_counter))
    det: ModeDetector = sim.runtime("a").app
    sim.run(until=2.0)  # the first decision, before anyone subscribed
    subscribe_components(det)
    det.switch_records.clear()
    sim.run(until=toggle_between_rounds(sim, det, sim.faults.links_between_sites("A", "B"), 0.005, rounds))
    return list(det.switch_records)


def switch_records_fanout(peers: int, rounds: int) -> list:
    """Node a and ``peers`` nodes behind one 30 ms, 10 Gbit/s link (hybrid), toggled to 60 ms
    (internet) every round, K = 1: each switch is ``peers`` peer events plus a node event."""
    topo = Topology("fan-out")
    topo.add_site("A", "r1")
    topo.add_site("B", "r2")
    topo.add_node("a", "A")
    for i in range(peers):
        topo.add_node(f"b{i}", "B")
    topo.connect_sites("A", "B", rtt=30e-3, bandwidth=10e9)
    settings = DetectionSettings(interval=10.0, hysteresis=1)
    answer_only = DetectionSettings(forced_mode=Mode.HYBRID)  # answers probes, probes nothing
    sim = Simulation(topo, seed=1, trace=False)
    apps = {n: (lambda rt: ModeDetector(rt, answer_only)) for n in topo.nodes if n != "a"}
    apps["a"] = lambda rt: ModeDetector(rt, settings, payload=VirtualPayload, perf_counter=time.perf_counter)
    sim.start(apps)
    det: ModeDetector = sim.runtime("a").app
    sim.run(until=12.0)
    assert det.node_mode is Mode.HYBRID, det.modes
    subscribe_components(det)
    det.switch_records.clear()
    sim.run(until=toggle_between_rounds(sim, det, sim.faults.links_between_sites("A", "B"), 0.015, rounds))
    return list(det.switch_records)


def summarise(name: str, records: list) -> dict:
    ms = sorted(r.seconds * 1e3 for r in records)
    events = statistics.fmean(len(r.events) for r in records)
    return {
        "case": name,
        "switches": len(ms),
        "events/switch": round(events, 1),
        "subscribers": records[0].subscribers,
        "median_ms": round(statistics.median(ms), 4),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 4),
        "max_ms": round(ms[-1], 4),
        "original_ms": ORIGINAL_SWITCH_MS,
        "ratio_median": round(statistics.median(ms) / ORIGINAL_SWITCH_MS, 4),
    }


def time_to_switch() -> None:
    rows = [
        summarise("one link switches (1 peer + node event)", switch_records_one_link(400)),
        summarise("16 peers switch together (16 peer + node event)", switch_records_fanout(16, 100)),
    ]
    report("time to switch: reconfiguring 3 subscribed components, wall clock", rows)
    print(f"baseline: the original NovaCron design reports {ORIGINAL_SWITCH_MS} ms per switch; aim lower")


def main() -> None:
    time_to_detect()
    time_to_switch()


if __name__ == "__main__":
    main()
