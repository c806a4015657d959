"""Experiment: evacuating a host, several VMs migrated at once, on hosts with few or many cores.

DWCP compresses and delta-encodes pages when that makes the transfer faster; one migration
encodes one batch at a time, but several from the same host compete for its cores (the simulator
queues ``rt.compute()`` work for a node's cores, first come first served: ``novacron.sim.cpu``).
QEMU's default pre-copy (``qemu-uncapped``: no compression, no cap) does no such work and is the
baseline. Sweeps link (datacenter 10 Gbit/s 0.5 ms; WAN 1 Gbit/s 100 ms 0.1% loss), the number of
VMs started together (1 GiB each, 30% zero / 30% text-like / 40% random pages, 2,500 page
writes/s over a quarter of memory) and cores per host (unlimited = the simulator's default).

Writes ``results/migration/evacuation.csv`` (one row per case), ``evacuation.md`` (the table)
and ``evacuation.png`` (time to evacuate and worst downtime against cores).

    .venv/bin/python experiments/migration_evacuation.py            # the full sweep (~1 min)
    .venv/bin/python experiments/migration_evacuation.py --vms 1 4 --cores 1 0
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm import tqdm  # noqa: E402

from novacron.migration import MigrationSettings, UniformWorkload  # noqa: E402
from novacron.sim.migration import simulate_evacuation  # noqa: E402
from novacron.transport.dataplane import ContentMix  # noqa: E402

GiB = 1 << 30
MIX = ContentMix(0.3, 0.3, 0.4)
DIRTY_RATE = 2500  # page writes per second (10 MB/s)
CONFIGS = {
    "dwcp": MigrationSettings.dwcp(),
    "qemu-uncapped": MigrationSettings.qemu_defaults(max_bandwidth_bps=None),
}
UNLIMITED = 0  # on the command line and in the table: no core limit


def run(links, vms_list, cores_list, seed: int) -> pd.DataFrame:
    cases = list(itertools.product(links, vms_list, cores_list, CONFIGS))
    rows = []
    for link, vms, cores, config in tqdm(cases, desc="evacuations", unit="case"):
        reports = simulate_evacuation(
            CONFIGS[config],
            vms=vms,
            cores=cores or None,
            link=link,
            memory=GiB,
            mix=MIX,
            workload=UniformWorkload(DIRTY_RATE, GiB // 4096 // 4),
            seed=seed,
        )
        rows.append(
            {
                "link": link,
                "vms": vms,
                "cores": cores,
                "config": config,
                "evacuation_s": max(r.total_time for r in reports),
                "mean_total_s": sum(r.total_time for r in reports) / vms,
                "worst_downtime_s": max(r.downtime for r in reports),
                "sent_over_memory": sum(r.bytes_sent for r in reports) / (vms * GiB),
                "converged": all(r.converged for r in reports),
            }
        )
    return pd.DataFrame(rows)


def cores_label(cores: int) -> str:
    return str(cores) if cores else "unlimited"


def markdown(table: pd.DataFrame) -> str:
    shown = table.assign(cores=table["cores"].map(cores_label))
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += [
        "| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in shown.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, path: Path) -> None:
    links = list(dict.fromkeys(table["link"]))
    fig, axes = plt.subplots(len(links), 2, figsize=(12, 4 * len(links)), squeeze=False)
    order = sorted(table["cores"].unique(), key=lambda c: c or 10**9)  # unlimited last
    for row, link in enumerate(links):
        for col, metric in enumerate(("evacuation_s", "worst_downtime_s")):
            ax = axes[row][col]
            sub = table[table["link"] == link]
            for (config, vms), group in sub.groupby(["config", "vms"]):
                group = group.set_index("cores").loc[order]
                style = "-o" if config == "dwcp" else "--x"
                ax.plot([cores_label(c) for c in order], group[metric], style, label=f"{config}, {vms} VMs")
            ax.set_title(f"{link}: {metric}")
            ax.set_xlabel("cores per host")
            ax.set_yscale("log")
            ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--links", nargs="+", default=["wan", "datacenter"], choices=["wan", "datacenter"])
    parser.add_argument("--vms", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument(
        "--cores", nargs="+", type=int, default=[1, 2, 4, 8, UNLIMITED], help="cores per host; 0: unlimited"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/migration"))
    args = parser.parse_args(argv)
    if any(c < 0 for c in args.cores) or any(v < 1 for v in args.vms):
        parser.error("--cores must be >= 0 (0: unlimited) and --vms >= 1")
    table = run(args.links, args.vms, args.cores, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "evacuation.csv", index=False)
    (args.out / "evacuation.md").write_text(markdown(table))
    plot(table, args.out / "evacuation.png")
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
