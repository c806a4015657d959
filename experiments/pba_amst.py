"""Experiment: do the bandwidth allocators keep their ranking over real AMST transfers?

``novacron/BandwidthAllocation-v0`` scores allocators on an idealised link: shares are paced
exactly, a step's capacity is known once it is over, and nothing costs a round trip. This runs the
*same episodes* through the protocol stack in the simulator instead (:mod:`novacron.sim.allocation`):
node ``x`` sends each transfer to ``y`` as a job of
:class:`~novacron.prediction.transfers.AllocatedSender` (pieces of a window over AMST, the
forecast made from the throughput it measures itself), over a link whose capacity replays the
episode's trace (``sim.faults.replay_bandwidth``), with a round trip of ``--rtt`` (3G-like by
default); and once more with the sender told the true trace as its forecast
(``amst_true_forecast``), to separate what forecasting costs from what the transport costs.

Same episodes: the test files and arrival seeds of ``experiments/pba_allocation.py``'s test table
(Norway HSDPA, split by file with seed 0; 5 arrival seeds per file). From the environment's episode
comes the trace from its first scored step on, the transfers (arrival step, size, deadline,
priority: ``arrival_log``, which does not depend on the actions) and the initial rate (mean of the
``history`` samples the environment shows before its first step). As in the environment, at most
``max_transfers`` (8) are in flight (an arrival that finds 8 is dropped and counts as a miss),
and the run ends with the trace: transfers whose deadline falls later are not counted.

Reported per allocator (mean over episodes, 95 % CI), in the environment and over AMST: deadline
misses, priority-weighted misses (the reward's penalty term) and goodput over capacity; and the
rank of each allocator in both (by weighted misses), and the paired difference in weighted misses
against ``edf_margin``. Baselines in the same run: the environment's own numbers for every
allocator. ``edf_margin`` uses the margin chosen on validation files by ``pba_allocation.py``
(``results/pba/allocation.json``); the learned allocators are the policies it saved
(``results/pba/models``, one per training seed, pooled per episode as in its test table).

Writes ``results/pba/amst/{amst.csv, amst_episodes.csv, amst.png}``. ``--split val`` runs the
validation files instead (other arrival seeds), where the sender's settings are chosen
(``--window``, ``--round-trips``, ``--pieces``; ``results/pba/amst/val``). ``--paired-with`` compares
the run, episode by episode, with another sender's ``amst_episodes.csv`` (``vs_previous.csv``).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/pba_amst.py               # 80 episodes, ~12 min
    .venv/bin/python experiments/pba_amst.py --episodes-per-trace 1 --rtt 0.03
    .venv/bin/python experiments/pba_amst.py --split val --window 0.35 --pieces 2 --out /tmp/w035
    .venv/bin/python experiments/pba_amst.py --rtt 0.3 --out /tmp/r03 \
        --paired-with results/pba/amst/rtt/amst_episodes_rtt0.3.csv       # against another sender
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pba_allocation import episode_seeds, splits  # noqa: E402

from novacron.prediction.allocation import Allocator, EarliestDeadlineFirst, baselines  # noqa: E402
from novacron.sim.allocation import in_env, over_amst  # noqa: E402
from novacron.sim.envs.bandwidth import BandwidthAllocationEnv, LearnedAllocator  # noqa: E402
from novacron.sim.sweep import run_points  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: arrival seeds of pba_allocation.py's test table, and of the validation runs here
TEST_SEED_BASE = 1000
VAL_SEED_BASE = 7000


def allocators(models: Path | None = None) -> dict[str, Allocator]:
    """The four baselines, EDF with the validation-chosen margin, and the learned allocators saved
    in ``models`` (one per training seed, ``pba_allocation.py``), if any."""
    chosen = json.loads((ROOT / "results/pba/allocation.json").read_text())["edf_margin"]
    found = {a.name: a for a in baselines()}
    found["edf_margin"] = EarliestDeadlineFirst(margin=chosen)
    for path in sorted(models.glob("*.zip")) if models is not None and models.is_dir() else []:
        found[path.stem] = LearnedAllocator.load(path.with_suffix(""))
    return found


def _episode(
    traces: list,
    rtt: float,
    models: Path | None,
    window_steps: float | None,
    round_trips: float | None,
    pieces: int | None,
    *,
    trace_index: int,
    seed: int,
) -> list[dict]:
    """Every allocator on one episode: in the environment, and over AMST with the sender's own
    forecast and with the true one."""
    env = BandwidthAllocationEnv(traces=traces)
    episode = env.episode(seed, trace_index)
    sender_options = {} if pieces is None else {"pieces": pieces}
    if window_steps is not None:
        sender_options["window"] = window_steps * episode.dt
    if round_trips is not None:
        sender_options["round_trips"] = round_trips
    rows = []
    for name, allocator in allocators(models).items():
        base = {"policy": name, "trace": traces[trace_index].attrs["name"], "seed": seed}
        rows.append({**base, "where": "env", **in_env(env, allocator, seed, trace_index)})
        for where, true_forecast in (("amst", False), ("amst_true_forecast", True)):
            result = over_amst(
                episode,
                allocator,
                rtt=rtt,
                seed=seed,
                true_forecast=true_forecast,
                sender_options=sender_options,
            )
            rows.append({**base, "where": where, **result})
    return rows


def pooled(episodes: pd.DataFrame) -> pd.DataFrame:
    """Learned rows (``rl_..._s<seed>``) averaged over training seeds per episode, one ``rl_...`` row
    (so that a confidence interval is over episodes, not over copies of them)."""
    learned = episodes["policy"].str.match(r"rl_.*_s\d+$")
    if not learned.any():
        return episodes
    rl = episodes[learned].assign(
        policy=episodes.loc[learned, "policy"].str.replace(r"_s\d+$", "", regex=True)
    )
    rl = rl.groupby(["policy", "where", "trace", "seed"], sort=False).mean(numeric_only=True).reset_index()
    return pd.concat([episodes[~learned], rl], ignore_index=True)


def summarise(episodes: pd.DataFrame, reference: str = "edf_margin") -> pd.DataFrame:
    """Mean and 95 % CI per (policy, where); each one's weighted misses minus ``reference``'s on the
    same episode (paired); and its rank by weighted misses."""
    episodes = pooled(episodes)
    ref = episodes[episodes["policy"] == reference].set_index(["where", "trace", "seed"])["weighted_misses"]
    key = pd.MultiIndex.from_frame(episodes[["where", "trace", "seed"]])
    episodes = episodes.assign(
        minus_reference=episodes["weighted_misses"].to_numpy() - ref.reindex(key).to_numpy()
    )
    grouped = episodes.groupby(["where", "policy"], sort=False)
    metrics = ["misses", "weighted_misses", "goodput_over_capacity", "misses_nearly_done", "minus_reference"]
    table = grouped[metrics].agg(["mean", "sem"])
    table.columns = [f"{m}_{'ci95' if s == 'sem' else 'mean'}" for m, s in table.columns]
    for col in [c for c in table.columns if c.endswith("_ci95")]:
        table[col] *= 1.96
    table = table.rename(
        columns={
            "minus_reference_mean": f"weighted_misses_minus_{reference}",
            "minus_reference_ci95": f"weighted_misses_minus_{reference}_ci95",
        }
    ).reset_index()
    table["rank"] = table.groupby("where")["weighted_misses_mean"].rank(method="min").astype(int)
    return table


def paired_with(episodes: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Each (where, policy) against ``previous``, another sender's run of the same episodes (its
    ``amst_episodes.csv``): means of both, the paired difference in weighted misses (this run minus
    the previous, 95 % CI), goodput and nearly-done misses of both. The environment's rows are left
    out (they do not depend on the sender)."""
    key = ["where", "policy", "trace", "seed"]
    both = pooled(episodes).merge(pooled(previous), on=key, suffixes=("", "_previous"), validate="1:1")
    both = both[both["where"] != "env"]
    both["difference"] = both["weighted_misses"] - both["weighted_misses_previous"]
    grouped = both.groupby(["where", "policy"])
    table = grouped[
        [
            "weighted_misses",
            "weighted_misses_previous",
            "difference",
            "goodput_over_capacity",
            "goodput_over_capacity_previous",
            "misses_nearly_done",
            "misses_nearly_done_previous",
        ]
    ].mean()
    table.insert(3, "difference_ci95", 1.96 * grouped["difference"].sem())
    table.insert(0, "episodes", grouped.size())
    return table.reset_index()


def plot(table: pd.DataFrame, path: Path, rtt: float) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, label in (
        (axes[0], "weighted_misses", "priority-weighted deadline misses per episode"),
        (axes[1], "goodput_over_capacity", "goodput over capacity"),
    ):
        wide = table.pivot(index="policy", columns="where", values=f"{metric}_mean")[
            ["env", "amst_true_forecast", "amst"]
        ]
        err = table.pivot(index="policy", columns="where", values=f"{metric}_ci95")[
            ["env", "amst_true_forecast", "amst"]
        ]
        wide.plot.bar(ax=ax, yerr=err, rot=20, capsize=3)
        ax.set_title(label)
        ax.set_xlabel("")
    fig.suptitle(f"Allocators in the environment vs over AMST (RTT {rtt * 1000:g} ms), HSDPA test files")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes-per-trace", type=int, default=5)
    parser.add_argument("--rtt", type=float, default=0.1, help="WAN round trip in seconds (default 0.1)")
    parser.add_argument("--traces", type=int, default=None, help="only the first N test files")
    parser.add_argument(
        "--models",
        type=Path,
        default=ROOT / "results/pba/models",
        help="learned allocators to include (pba_allocation.py saves them; skipped if absent)",
    )
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--window", type=float, help="the sender's window, in steps (default: its own)")
    parser.add_argument(
        "--round-trips", type=float, help="the least window, in round trips (default: the sender's own)"
    )
    parser.add_argument("--pieces", type=int, help="pieces per window (default: the sender's own)")
    parser.add_argument(
        "--paired-with",
        type=Path,
        help="another sender's amst_episodes.csv of the same episodes: writes vs_previous.csv",
    )
    parser.add_argument("--workers", type=int, help="processes (default: one per core; 1: this one)")
    parser.add_argument("--out", type=Path, default=ROOT / "results/pba/amst")
    args = parser.parse_args(argv)
    _, val, test = splits(0)
    traces = (test if args.split == "test" else val)[: args.traces]
    base = TEST_SEED_BASE if args.split == "test" else VAL_SEED_BASE
    one = functools.partial(
        _episode, traces, args.rtt, args.models, args.window, args.round_trips, args.pieces
    )
    points = [
        {"trace_index": i, "seed": s} for i, s in episode_seeds(len(traces), args.episodes_per_trace, base)
    ]
    outcomes = run_points(
        one, points, workers=args.workers, progress=True, desc="episodes", stop_on_error=True
    )
    episodes = pd.DataFrame([row for outcome in outcomes for row in outcome.value])
    table = summarise(episodes)
    args.out.mkdir(parents=True, exist_ok=True)
    episodes.to_csv(args.out / "amst_episodes.csv", index=False)
    table.to_csv(args.out / "amst.csv", index=False)
    plot(table, args.out / "amst.png", args.rtt)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
        if args.paired_with is not None:
            versus = paired_with(episodes, pd.read_csv(args.paired_with))
            versus.to_csv(args.out / "vs_previous.csv", index=False)
            print(f"\nagainst {args.paired_with}:\n{versus.round(3).to_string(index=False)}")
    return table


if __name__ == "__main__":
    main()
