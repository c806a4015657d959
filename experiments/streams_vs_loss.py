"""Experiment: how many parallel streams a long lossy path needs, per congestion control.

Sweeps random loss and stream count for CUBIC and BBR over a 1 Gbit/s WAN link (RTT from the
command line), moving a simulated 256 MiB payload with AMST, and writes a table (CSV, Parquet)
and a plot (PNG) under ``results/streams_vs_loss/``. Each point is one seeded simulation, so the
sweep replays exactly.

    .venv/bin/python experiments/streams_vs_loss.py [--rtt-ms 100] [--out results/streams_vs_loss]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from novacron.runtime import VirtualPayload  # noqa: E402
from novacron.sim import Simulation, Topology  # noqa: E402
from novacron.transport import AMST  # noqa: E402


def link(rtt: float, loss: float) -> Topology:
    topo = Topology("wan-pair")
    topo.add_site("a", "ra", fabric_latency=0.0)
    topo.add_site("b", "rb", fabric_latency=0.0)
    topo.add_node("x", "a", nic_bandwidth=10e9)
    topo.add_node("y", "b", nic_bandwidth=10e9)
    topo.connect_sites("a", "b", rtt=rtt, bandwidth=1e9, loss=loss)
    return topo


def goodput_gbps(rtt: float, loss: float, streams: int, congestion: str, size: int, seed: int) -> float:
    sim = Simulation(link(rtt, loss), seed=seed)

    def app(rt):
        amst = AMST(rt)
        amst.on_receive("x", lambda src, payload: None)
        return amst

    sim.start(app)

    async def send(rt):
        report = await rt.app.send("y", VirtualPayload(size), streams=streams, congestion=congestion, tag="x")
        return report.goodput_bps / 1e9

    return sim.run_until_complete("x", send, timeout=1e6)


def sweep(rtt: float, losses, streams, algorithms, size: int, seed: int) -> pd.DataFrame:
    points = list(itertools.product(algorithms, losses, streams))
    rows = [
        {
            "congestion": cc,
            "loss": loss,
            "streams": n,
            "goodput_gbps": goodput_gbps(rtt, loss, n, cc, size, seed),
        }
        for cc, loss, n in tqdm(points, desc="simulating", disable=None)
    ]
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, rtt: float, path: Path) -> None:
    algorithms = sorted(table["congestion"].unique())
    width = 5 * len(algorithms)
    fig, grid = plt.subplots(1, len(algorithms), figsize=(width, 3.5), sharey=True, squeeze=False)
    axes = list(grid[0])
    for ax, cc in zip(axes, algorithms, strict=True):
        for loss, part in table[table["congestion"] == cc].groupby("loss"):
            ax.plot(part["streams"], part["goodput_gbps"], marker="o", label=f"loss {loss:g}")
        ax.set(xscale="log", yscale="log", xlabel="streams", title=f"{cc}, RTT {rtt * 1e3:g} ms, 1 Gbit/s")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("goodput (Gbit/s)")
    axes[-1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", type=float, default=100.0)
    parser.add_argument("--losses", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--congestion", nargs="+", default=["cubic", "bbr"])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/streams_vs_loss"))
    args = parser.parse_args(argv)
    rtt = args.rtt_ms / 1e3
    table = sweep(rtt, args.losses, args.streams, args.congestion, args.size_mib << 20, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "goodput.csv", index=False)
    table.to_parquet(args.out / "goodput.parquet", index=False)
    plot(table, rtt, args.out / "goodput.png")
    print(table.pivot_table(index=["congestion", "loss"], columns="streams", values="goodput_gbps").round(3))
    print(f"results in {args.out}/")
    return table


if __name__ == "__main__":
    main()
