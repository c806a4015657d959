"""Raft leader election after a leader crash: Figure 16 of the Raft paper, in the simulator.

Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm" (USENIX ATC 2014),
§9.3: five servers, a broadcast time of about 15 ms, the leader crashed at a uniformly random
point within its heartbeat interval (half the minimum election timeout in every run), and the
time from the crash until a new leader is elected, over many trials, for several election
timeout ranges (top graph: the randomness, 150-150 ... 150-300 ms; bottom graph: the scale,
12-24 ... 150-300 ms).

Set-up here:

* five nodes, one per site, every pair of sites joined by a link of 12 ms base RTT with up to
  2 ms of uniform jitter each way; with site fabric and NICs that makes a mean RTT of ~14 ms
  and a mean *broadcast time* (RPCs in parallel to the four others, until the last answer) of
  ~15 ms; both are measured from the topology and printed;
* Raft as in the paper: ``pre_vote=False, check_quorum=False`` (the paper's Raft had neither;
  our defaults enable both, see ``--with-defaults``); timeouts drawn uniformly in [min, max]
  (``RaftSettings.election_timeout_max``); ticks of 1 ms, or a tenth of the range width when
  that is smaller (0.1 ms for 150-151 ms), and each node's tick phase random, so timers are
  close to the paper's continuous ones; storage sync takes no simulated time;
* a trial: wait until the current leader has led for four heartbeat intervals (the node
  crashed in the previous trial has been restarted when the new leader was elected), crash the
  leader at a uniformly random point of one more heartbeat interval, and measure until the
  first ``observer.leader`` call of a higher term (only live nodes make one). Trials that need
  more than ``--cap`` simulated seconds are cut there and counted as "> cap";
* split votes: a trial whose new leader's term is more than one above the crashed leader's
  needed more than one election (a split vote, or votes lost to a crash-time race); without
  pre-vote every election round bumps the term, so the count is exact.

Output: one table per graph (trials, median, mean, p90, p99, max, share with a split vote,
and the paper's figures where its text gives them) and a CDF plot in the paper's style
(fraction of trials that elected a leader within x ms; log x) at
``benchmarks/figures/raft_election_cdf.png``.

Run: .venv/bin/python benchmarks/bench_sim_election.py [--trials 1000] [--with-defaults]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from common import report  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from novacron.consensus.api import Command  # noqa: E402
from novacron.consensus.kv import KVStore  # noqa: E402
from novacron.consensus.raft import RaftNode, RaftSettings  # noqa: E402
from novacron.sim import Simulation, Topology, derive_seed  # noqa: E402

HERE = Path(__file__).resolve().parent
FIGURE = HERE / "figures" / "raft_election_cdf.png"
NODES = [f"s{i}" for i in range(5)]
BASE_RTT = 12e-3  # site-to-site; plus fabric and NICs (~0.2 ms) and jitter
JITTER = 2e-3  # uniform extra delay per direction
TOP = [(150, 150), (150, 151), (150, 155), (150, 175), (150, 200), (150, 300)]
BOTTOM = [(12, 24), (25, 50), (50, 100), (100, 200), (150, 300)]
#: What the paper's text says about its Figure 16 (the figure itself has only curves).
PAPER = {
    (150, 150): "> 10 s consistently (100 trials): split votes",
    (150, 155): "median 287 ms",
    (150, 200): "max 513 ms (1000 trials)",
    (12, 24): "mean 35 ms, max 152 ms",
    (150, 300): "recommended (conservative)",
}


def topology(rtt: float = BASE_RTT, jitter: float = JITTER) -> Topology:
    topo = Topology("raft-paper-9.3")
    for i, node in enumerate(NODES):
        topo.add_site(f"site{i}", f"r{i}")
        topo.add_node(node, f"site{i}")
    for i in range(len(NODES)):
        for j in range(i + 1, len(NODES)):
            topo.connect_sites(f"site{i}", f"site{j}", rtt=rtt, bandwidth=10e9, jitter=jitter)
    return topo


def broadcast_time(topo: Topology, samples: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """Mean RTT and mean broadcast time (RPCs to the 4 others, until the last reply), from the
    routes' latency and jitter (what the simulator draws), in seconds."""
    sim = Simulation(topo, seed=seed, trace=False)
    rng = random.Random(seed)
    rtts, bcasts = [], []
    src = NODES[0]
    for _ in range(samples):
        round_trips = []
        for dst in NODES[1:]:
            there, back = sim.network.route(src, dst), sim.network.route(dst, src)
            rtt = there.latency + back.latency + rng.random() * there.jitter + rng.random() * back.jitter
            round_trips.append(rtt)
        rtts += round_trips
        bcasts.append(max(round_trips))
    return statistics.fmean(rtts), statistics.fmean(bcasts)


class Watch:
    """The observer: the first leadership of a term above ``after`` ends the trial."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.after = -1
        self.won: tuple[float, str, int] | None = None
        self.done = sim.env.event()

    def arm(self, after: int) -> None:
        self.after, self.won, self.done = after, None, self.sim.env.event()

    def leader(self, node: str, term: int) -> None:
        if term > self.after and self.won is None:
            self.won = (self.sim.now, node, term)
            if not self.done.triggered:
                self.done.succeed()

    def applied(self, node: str, index: int, command: Command, result: bytes) -> None:
        pass

    def restored(self, node: str, index: int) -> None:
        pass

    def misbehaviour(self, node: str, culprit: str, what: str) -> None:
        pass


@dataclass
class Result:
    label: str
    lo_ms: int
    hi_ms: int
    times_ms: list[float] = field(default_factory=list)  # cut trials appear as the cap
    elections: list[int] = field(default_factory=list)  # election rounds (terms) per trial
    cut: int = 0


def settings_for(lo_ms: int, hi_ms: int, paper: bool) -> RaftSettings:
    lo, hi = lo_ms / 1e3, hi_ms / 1e3
    tick = min(1e-3, (hi - lo) / 10) if hi > lo else 1e-3
    return RaftSettings(
        heartbeat_interval=lo / 2,
        election_timeout=lo,
        election_timeout_max=hi,
        tick=tick,
        pre_vote=not paper,
        check_quorum=not paper,
        snapshot_every=0,
    )


def run_range(
    lo_ms: int, hi_ms: int, trials: int, cap: float, seed: int, paper: bool, bar, topo: Topology
) -> Result:
    settings = settings_for(lo_ms, hi_ms, paper)
    sim = Simulation(topo, seed=seed, trace=False)
    watch = Watch(sim)
    rng = random.Random(derive_seed(seed, "crash-times"))

    def app(rt):
        return RaftNode(rt, NODES, KVStore(), settings, observer=watch)

    for node in NODES:  # random tick phases, as unsynchronised servers have
        sim.call_at(rng.random() * settings.tick_interval, sim.start, app, [node])

    def nodes() -> list[RaftNode]:
        return [sim.runtime(n).app for n in NODES if sim.runtime(n).alive]

    def run_until_leader(after: int, limit: float) -> bool:
        watch.arm(after)
        stop = sim.call_at(sim.now + limit, lambda: watch.done.triggered or watch.done.succeed())
        sim.env.run(until=watch.done)
        stop.cancel()
        return watch.won is not None

    label = f"{lo_ms}-{hi_ms} ms" + ("" if paper else " (pre-vote, check-quorum)")
    result = Result(label, lo_ms, hi_ms)
    if not run_until_leader(-1, 60.0):
        raise RuntimeError(f"{label}: no first leader within 60 simulated s")
    crashed: str | None = None
    hb = settings.heartbeat_interval
    while len(result.times_ms) < trials:
        if crashed is not None:
            sim.restart(crashed)
        # Steady state: four heartbeats under one leader that every live node follows (short
        # timeouts can depose a fresh leader: then wait more), then a crash uniform in the next
        # heartbeat interval.
        sim.run(until=sim.now + 4 * hb)
        for _wait in range(10_000):
            live = nodes()
            leaders = [n for n in live if n.is_leader]
            top = max(n.term for n in live)
            if (
                len(leaders) == 1
                and leaders[0].term == top
                and all(n.leader_id == leaders[0].node_id for n in live)
            ):
                break
            sim.run(until=sim.now + hb)
        else:
            raise RuntimeError(f"{label}: no stable leader at t={sim.now:.3f}")
        sim.run(until=sim.now + rng.random() * hb)
        if not leaders[0].is_leader:
            continue  # deposed in that last fraction of an interval: try again
        leader, term = leaders[0].node_id, leaders[0].term
        crash_at = sim.now
        sim.crash(leader)
        crashed = leader
        if run_until_leader(term, cap):
            won_at, _, new_term = watch.won  # type: ignore[misc]
            result.times_ms.append((won_at - crash_at) * 1e3)
            result.elections.append(new_term - term)
        else:
            result.cut += 1
            result.times_ms.append(cap * 1e3)
            result.elections.append(max(n.term for n in nodes()) - term)
            if not run_until_leader(term, 600.0):
                raise RuntimeError(f"{label}: no leader within 600 simulated s after a crash")
        bar.update(1)
    return result


def row(r: Result, cap: float) -> dict:
    t = np.array(r.times_ms)
    split = sum(1 for e in r.elections if e > 1) / len(r.elections)

    def ms(v: float) -> str:
        return f"> {cap * 1e3:.0f}" if v >= cap * 1e3 else f"{v:.0f}"

    return {
        "timeouts": r.label,
        "trials": len(t),
        "median_ms": ms(float(np.median(t))),
        "mean_ms": ms(float(t.mean())),
        "p90_ms": ms(float(np.percentile(t, 90))),
        "p99_ms": ms(float(np.percentile(t, 99))),
        "max_ms": ms(float(t.max())),
        "split_vote_share": round(split, 3),
        "mean_elections": round(statistics.fmean(r.elections), 2),
        "cut_at_cap": r.cut,
        "paper (§9.3 text)": PAPER.get((r.lo_ms, r.hi_ms), "") if "pre-vote" not in r.label else "",
    }


def plot(top: list[Result], bottom: list[Result], cap: float, bcast: float, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 1, figsize=(6.5, 7.5))
    for ax, results, title in (
        (axes[0], top, "randomness of the election timeout"),
        (axes[1], bottom, "scale of the election timeout"),
    ):
        for r in results:
            t = np.sort(np.array(r.times_ms))
            frac = np.arange(1, len(t) + 1) / len(t)
            done = t < cap * 1e3  # cut trials never reach the curve
            ax.step(t[done], frac[done], where="post", label=r.label)
        ax.set_xscale("log")
        ax.set_xlim(10, max(cap * 1e3, 1000))
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("time without leader (ms)")
        ax.set_ylabel("cumulative percent")
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_title(f"Raft leader election after a crash: {title}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"5 servers, broadcast {bcast * 1e3:.1f} ms, no pre-vote / check-quorum (cf. Raft paper Fig. 16)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500, help="trials per timeout range (paper: 1000)")
    parser.add_argument("--trials-narrow", type=int, default=100, help="trials for 150-151 ms (0.1 ms ticks)")
    parser.add_argument("--trials-fixed", type=int, default=20, help="trials for 150-150 ms (paper: 100)")
    parser.add_argument("--rtt-ms", type=float, default=BASE_RTT * 1e3, help="site-to-site base RTT")
    parser.add_argument("--jitter-ms", type=float, default=JITTER * 1e3, help="uniform jitter per direction")
    parser.add_argument("--only", nargs="+", default=None, help="run only these ranges, e.g. 150-155")
    parser.add_argument("--cap", type=float, default=10.0, help="simulated s after which a trial is cut")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--with-defaults", action="store_true", help="also 150-300 ms with pre-vote on")
    parser.add_argument("--out", type=Path, default=FIGURE)
    args = parser.parse_args(argv)

    topo = topology(args.rtt_ms / 1e3, args.jitter_ms / 1e3)
    mean_rtt, bcast = broadcast_time(topo)
    print(
        f"network: mean RTT {mean_rtt * 1e3:.1f} ms, mean broadcast time {bcast * 1e3:.1f} ms (paper: ~15 ms)"
    )
    plan = [("top", lo, hi, True) for lo, hi in TOP] + [("bottom", lo, hi, True) for lo, hi in BOTTOM[:-1]]
    if args.with_defaults:
        plan.append(("defaults", 150, 300, False))
    if args.only:
        plan = [p for p in plan if f"{p[1]}-{p[2]}" in args.only]

    def trials_for(lo: int, hi: int) -> int:
        return args.trials_fixed if lo == hi else args.trials_narrow if hi - lo < 5 else args.trials

    total = sum(trials_for(lo, hi) for _, lo, hi, _ in plan)
    results: dict[tuple[str, int, int, bool], Result] = {}
    start = time.perf_counter()
    with tqdm(total=total, unit="trial", desc="elections", disable=None, file=sys.stderr) as bar:
        for k, (graph, lo, hi, paper) in enumerate(plan):
            bar.set_postfix_str(f"{lo}-{hi} ms")
            results[(graph, lo, hi, paper)] = run_range(
                lo, hi, trials_for(lo, hi), args.cap, args.seed + k, paper, bar, topo
            )
    wall = time.perf_counter() - start
    top = [results[k] for k in results if k[0] == "top"]
    bottom = [results[k] for k in results if k[0] == "bottom"] + [
        r for r in top if r.lo_ms == 150 and r.hi_ms == 300
    ]
    report("Raft paper Fig. 16 (top): randomness, 5 servers, no pre-vote", [row(r, args.cap) for r in top])
    report("Raft paper Fig. 16 (bottom): scale, 5 servers, no pre-vote", [row(r, args.cap) for r in bottom])
    if ("defaults", 150, 300, False) in results:
        report(
            "150-300 ms with our defaults (pre-vote, check-quorum)",
            [row(r, args.cap) for k, r in results.items() if (k[1], k[2]) == (150, 300)],
        )
    plot(top, bottom, args.cap, bcast, args.out)
    print(f"\nplot: {args.out}  ({wall:.0f} s wall, seeds {args.seed}..{args.seed + len(plan) - 1})")


if __name__ == "__main__":
    main()
