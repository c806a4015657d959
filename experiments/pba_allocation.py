"""Experiment: can a learned (SB3) bandwidth allocator match or beat the baselines on held-out traces?

Setup
    The Norway HSDPA files are split *by file* (seeded, ``--seed``): 20% are the **test** files,
    never looked at while choosing anything; of the rest, 20% are **validation** files and the
    others are **training** files.

    Learned allocator (defaults = the reported run): PPO through
    :class:`~novacron.sim.envs.bandwidth.ScoredAllocationWrapper` on
    ``novacron/BandwidthAllocation-v0`` (same dynamics and reward as the raw env; transfers shown in
    EDF order with extra features; the action is a residual on EDF: position ``j`` asks for EDF's
    share times ``exp(ln 4 * a_j)``, a zero action *is* EDF), observations normalised
    (VecNormalize). It trains with :class:`~novacron.sim.envs.bandwidth.PairedBaselineReward`: the
    training reward is the env's reward minus EDF's reward on the same episode (trace and arrivals do
    not depend on the actions, so this is a pure variance reduction: same optimum). Every
    ``--eval-every`` steps the deterministic policy is scored, with the env's own reward, on the
    validation files (fixed seeds): these are the learning curves, and the checkpoint with the best
    validation return is the one tested. Other options: ``--mode reorder|softmax``, ``--algo
    sac|td3``, ``--residual-base edf_margin``, ``--no-paired-baseline``.

    Baselines: equal share, proportional to remaining bytes, EDF, RobustMPC-style, and
    ``edf_margin``: EDF asking a margin times the share it needs, the margin chosen from
    :data:`MARGINS` on the validation files (a stronger baseline than the four asked for).

    How the settings were chosen (validation files only, ``--no-test`` runs; see
    ``allocation_selection.csv``): raw continuous shares (the env's own action) lost to EDF by ~18%;
    softmax shares and reordering EDF did not beat EDF; the residual on EDF learned EDF with a
    margin but no more until the paired baseline reward was added; SAC (random start) was unstable.

    Evaluation: each learned policy (one per training seed, ``--train-seeds``) and the baselines run
    on every test file with ``--eval-seeds`` arrival seeds each: identical episodes for every
    policy. The table gives, per policy, mean and 95% CI (normal approximation, over episodes) of the
    episode return, goodput over capacity (utilisation) and deadline misses, and the *paired*
    difference in return against EDF (same episodes) with its 95% CI; the learned row pools the
    training seeds (per-seed rows are in ``allocation.json``). Writes ``allocation.csv`` (test
    table), ``allocation.json`` (everything), ``allocation_episodes.csv``, ``allocation_curves.csv``
    (learning curves) and ``allocation.png`` under ``results/pba/``, and the chosen policy of each
    training seed under ``results/pba/models/`` (``LearnedAllocator.load`` reads them).

    nice -n 10 .venv/bin/python experiments/pba_allocation.py                # the reported run
    nice -n 10 .venv/bin/python experiments/pba_allocation.py --no-test --algo sac --train-seeds 0
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from novacron.prediction.allocation import EarliestDeadlineFirst, baselines  # noqa: E402
from novacron.prediction.traces import data_dir, load_traces, split_by_file  # noqa: E402
from novacron.sim.envs.bandwidth import (  # noqa: E402
    BandwidthAllocationEnv,
    PairedBaselineReward,
    ScoredAllocationWrapper,
    run_episode,
)

METRICS = ("return", "goodput_over_capacity", "misses")
REFERENCE = "edf"
#: EDF safety margins tried on the validation files (the best one is the ``edf_margin`` baseline)
MARGINS = (1.0, 1.1, 1.2, 1.3, 1.5, 1.75, 2.0)


def splits(seed: int):
    """(training, validation, test) trace lists, split by file."""
    traces = load_traces([data_dir("norway_hsdpa")])
    rest, test = split_by_file(traces, 0.2, np.random.default_rng(seed))
    train, val = split_by_file(rest, 0.2, np.random.default_rng(seed + 1))
    return train, val, test


def wrapped(traces, args) -> ScoredAllocationWrapper:
    return ScoredAllocationWrapper(
        BandwidthAllocationEnv(traces=traces),
        mode=args.mode,
        demand_scale=args.demand_scale,
        margin=args.base_margin,
        reorder=args.reorder,
        logit_scale=args.logit_scale,
    )


def episode_seeds(n_traces: int, per_trace: int, base: int) -> list[tuple[int, int]]:
    return [(i, base + 100 * i + s) for i in range(n_traces) for s in range(per_trace)]


def evaluate(policies: dict, traces, args, per_trace: int, base: int) -> pd.DataFrame:
    """Every policy on the same episodes. Allocators run on the raw env, learned ones wrapped."""
    raw, learned = BandwidthAllocationEnv(traces=traces), wrapped(traces, args)
    rows = []
    for name, policy in policies.items():
        env = learned if callable(policy) and not hasattr(policy, "allocate") else raw
        for trace_index, seed in episode_seeds(len(traces), per_trace, base):
            result = run_episode(env, policy, seed=seed, options={"trace_index": trace_index})
            rows.append({"policy": name, "trace": traces[trace_index].attrs["name"], "seed": seed, **result})
    return pd.DataFrame(rows)


def make_model(args, venv, seed: int):
    from stable_baselines3 import PPO, SAC, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    net = [args.width, args.width]
    if args.algo == "ppo":
        return PPO(
            "MlpPolicy",
            venv,
            n_steps=args.n_steps,
            batch_size=256,
            n_epochs=args.n_epochs,
            learning_rate=args.lr,
            gamma=args.gamma,
            ent_coef=0.0,
            policy_kwargs=dict(net_arch=net, log_std_init=args.log_std_init),
            seed=seed,
            verbose=0,
        )
    common = dict(
        learning_rate=args.lr,
        gamma=args.gamma,
        buffer_size=200_000,
        batch_size=256,
        learning_starts=2_000,
        train_freq=args.train_freq,
        gradient_steps=1,
        policy_kwargs=dict(net_arch=net),
        seed=seed,
        verbose=0,
    )
    if args.algo == "sac":
        return SAC("MlpPolicy", venv, **common)
    k = venv.action_space.shape[0]
    return TD3("MlpPolicy", venv, action_noise=NormalActionNoise(np.zeros(k), 0.2 * np.ones(k)), **common)


def train(args, train_traces, val_traces, seed: int):
    """Train one policy; return (policy fn at the best validation checkpoint, learning curve)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    n_envs = args.n_envs if args.algo == "ppo" else 1

    def make_env():
        env = wrapped(train_traces, args)
        if args.paired_baseline:  # training-time control variate; evaluation uses the env's reward
            env = PairedBaselineReward(env, EarliestDeadlineFirst(margin=args.base_margin))
        return env

    venv = make_vec_env(make_env, n_envs=n_envs, seed=seed)
    if args.normalize:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False, gamma=args.gamma)
    model = make_model(args, venv, seed)
    val_env = wrapped(val_traces, args)
    episodes = episode_seeds(len(val_traces), args.val_seeds, 5000)

    def snapshot():
        rms = copy.deepcopy(venv.obs_rms) if args.normalize else None
        return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}, rms

    def policy_fn():
        return make_act(model.policy, copy.deepcopy(venv.obs_rms) if args.normalize else None)

    def val_return() -> float:
        act = policy_fn()
        return float(
            np.mean(
                [run_episode(val_env, act, seed=s, options={"trace_index": i})["return"] for i, s in episodes]
            )
        )

    curve: list[dict] = []
    best = {"return": -np.inf, "state": None, "step": 0}
    start = time.time()

    class Curve(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_eval = 0

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval += args.eval_every
                r = val_return()
                curve.append(
                    {
                        "seed": seed,
                        "timesteps": self.num_timesteps,
                        "val_return": r,
                        "wall_s": time.time() - start,
                    }
                )
                if r > best["return"]:
                    best.update({"return": r, "state": snapshot(), "step": self.num_timesteps})
                print(
                    f"  seed {seed} step {self.num_timesteps:>7d} val return {r:7.2f}"
                    f" (best {best['return']:.2f} @ {best['step']})",
                    flush=True,
                )
            return True

    model.learn(total_timesteps=args.timesteps, callback=Curve())
    r = val_return()
    curve.append(
        {"seed": seed, "timesteps": model.num_timesteps, "val_return": r, "wall_s": time.time() - start}
    )
    if r > best["return"]:
        best.update({"return": r, "state": snapshot(), "step": model.num_timesteps})
    info = {
        "seed": seed,
        "best_step": best["step"],
        "best_val_return": best["return"],
        "train_wall_s": time.time() - start,
    }
    return best["state"], curve, info


def make_act(policy, rms):
    """Deterministic ``obs -> action`` of an SB3 policy, with frozen VecNormalize statistics."""
    policy.set_training_mode(False)  # SB3 switches it back on when it trains

    def act(obs):
        if rms is not None:
            obs = np.clip((obs - rms.mean) / np.sqrt(rms.var + 1e-8), -10, 10).astype(np.float32)
        return policy.predict(obs, deterministic=True)[0]

    return act


def load_act(args, traces, state):
    """Rebuild a trained policy from its (state dict, observation statistics)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    model = make_model(args, DummyVecEnv([lambda: wrapped(traces, args)]), 0)
    model.policy.load_state_dict(state[0])
    return make_act(model.policy, state[1])


def save_models(args, traces, trained, runs, label: str) -> list[Path]:
    """Each training seed's chosen policy as ``<out>/models/<label>_s<seed>``: the SB3 policy
    (``.zip``, ``ActorCriticPolicy.load``), its observation statistics and the wrapper's settings
    (``.json``), which is what :class:`~novacron.sim.envs.bandwidth.LearnedAllocator` loads."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    folder = args.out / "models"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for (state, _, _), info in zip(trained, runs, strict=True):
        model = make_model(args, DummyVecEnv([lambda: wrapped(traces, args)]), 0)
        model.policy.load_state_dict(state[0])
        path = folder / f"{label}_s{info['seed']}"
        model.policy.save(str(path.with_suffix(".zip")))
        rms = state[1]
        settings = {
            "mode": args.mode,
            "demand_scale": args.demand_scale,
            "margin": args.base_margin,
            "reorder": args.reorder,
            "logit_scale": args.logit_scale,
            "obs_mean": None if rms is None else rms.mean.tolist(),
            "obs_var": None if rms is None else rms.var.tolist(),
            "trained_on": "novacron/BandwidthAllocation-v0 defaults, ScoredAllocationWrapper",
            "seed": info["seed"],
        }
        path.with_suffix(".json").write_text(json.dumps(settings, indent=2))
        paths.append(path)
    return paths


def _train_worker(payload):
    args, seed = payload
    torch.set_num_threads(1)
    train_traces, val_traces, _ = splits(args.seed)
    return train(args, train_traces, val_traces, seed)


def summarise(episodes: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI per policy over episodes, and paired differences against EDF (and the tuned
    EDF margin, when present) on the same episodes."""
    refs = [r for r in (REFERENCE, "edf_margin") if (episodes["policy"] == r).any()]
    ref_returns = {r: episodes[episodes["policy"] == r].set_index(["trace", "seed"])["return"] for r in refs}
    rows = []
    for name, group in episodes.groupby("policy", sort=False):
        row = {"policy": name, "episodes": len(group)}
        for m in METRICS:
            values = group[m].to_numpy(dtype=float)
            row[m] = values.mean()
            row[f"{m}_ci95"] = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
        returns = group.set_index(["trace", "seed"])["return"]
        for r in refs:
            diff = (returns - ref_returns[r].reindex(returns.index)).to_numpy(dtype=float)
            row[f"return_minus_{r}"] = diff.mean()
            row[f"return_minus_{r}_ci95"] = (
                1.96 * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
            )
        rows.append(row)
    return pd.DataFrame(rows)


def pooled(episodes: pd.DataFrame, label: str) -> pd.DataFrame:
    """The learned policies of all training seeds as one policy: per episode, the mean over seeds
    (so the CI is over distinct episodes, not over copies of them)."""
    is_rl = episodes["policy"].str.startswith(label)
    rl = episodes[is_rl].groupby(["trace", "seed"], sort=False).mean(numeric_only=True).reset_index()
    rl.insert(0, "policy", label)
    return pd.concat([rl, episodes[~is_rl]], ignore_index=True)


def seed_spread(episodes: pd.DataFrame, label: str) -> dict:
    """Mean return of each training seed's policy, and their standard deviation across seeds."""
    rl = episodes[episodes["policy"].str.startswith(label)]
    means = rl.groupby("policy")["return"].mean()
    return {"per_seed_mean_return": means.to_dict(), "std_across_seeds": float(means.std(ddof=1))}


def plot(table: pd.DataFrame, curves: pd.DataFrame, references: dict, path: Path, title: str) -> None:
    panels = [*METRICS, f"return_minus_{REFERENCE}"]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 3.8))
    colours = ["tab:orange" if p.startswith("rl") else "tab:blue" for p in table["policy"]]
    for ax, m in zip(axes, panels, strict=False):
        ax.bar(table["policy"], table[m], yerr=table[f"{m}_ci95"], capsize=3, color=colours)
        ax.set_title(m.replace("_", " "))
        ax.tick_params(axis="x", rotation=45)
    ax = axes[-1]
    for seed, c in curves.groupby("seed"):
        ax.plot(c["timesteps"], c["val_return"], label=f"seed {seed}")
    for (name, value), style in zip(references.items(), ("--", ":"), strict=False):
        ax.axhline(value, color="k", ls=style, label=name)
    ax.set_title("learning curve (validation return)")
    ax.set_xlabel("training steps")
    ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--algo", choices=("ppo", "sac", "td3"), default="ppo")
    parser.add_argument("--mode", choices=ScoredAllocationWrapper.MODES, default="residual")
    parser.add_argument("--demand-scale", type=float, default=float(np.log(4.0)))
    parser.add_argument(
        "--residual-base",
        choices=("edf", "edf_margin"),
        default="edf",
        help="what a zero action is: plain EDF or EDF with the margin tuned on validation",
    )
    parser.add_argument("--reorder", type=float, default=4.0)
    parser.add_argument("--logit-scale", type=float, default=3.0)
    parser.add_argument("--timesteps", type=int, default=150_000)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--n-steps", type=int, default=512)
    parser.add_argument("--n-epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--log-std-init", type=float, default=-1.0)
    parser.add_argument("--train-freq", type=int, default=4)
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--paired-baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train on reward minus the residual base's reward on the same episode (PairedBaselineReward)",
    )
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--val-seeds", type=int, default=2)
    parser.add_argument("--eval-seeds", type=int, default=5)
    parser.add_argument("--no-test", action="store_true", help="validation only (for choosing settings)")
    parser.add_argument("--out", type=Path, default=Path("results/pba"))
    args = parser.parse_args(argv)
    args.base_margin = 1.0
    torch.set_num_threads(1)
    start = time.time()

    train_traces, val_traces, test_traces = splits(args.seed)
    print(f"{len(train_traces)} training, {len(val_traces)} validation, {len(test_traces)} test files")
    margin_returns = {
        m: float(
            evaluate({"edf": EarliestDeadlineFirst(margin=m)}, val_traces, args, args.val_seeds, 5000)[
                "return"
            ].mean()
        )
        for m in MARGINS
    }
    best_margin = max(margin_returns, key=margin_returns.get)
    print("EDF margin on validation:", {m: round(r, 2) for m, r in margin_returns.items()}, "->", best_margin)
    args.base_margin = best_margin if args.residual_base == "edf_margin" else 1.0
    payloads = [(args, s) for s in args.train_seeds]
    if args.workers > 1 and len(payloads) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(args.workers, len(payloads))) as pool:
            trained = pool.map(_train_worker, payloads)
    else:
        trained = [_train_worker(p) for p in payloads]
    curves = pd.DataFrame([row for _, curve, _ in trained for row in curve])
    runs = [info for _, _, info in trained]
    label = f"rl_{args.algo}_{args.mode}"
    allocators = {b.name: b for b in baselines()}
    if best_margin != 1.0:
        allocators["edf_margin"] = EarliestDeadlineFirst(margin=best_margin)
    learned = {
        f"{label}_s{info['seed']}": load_act(args, val_traces, state)
        for (state, _, _), info in zip(trained, runs, strict=True)
    }

    val_episodes = evaluate({**learned, **allocators}, val_traces, args, args.eval_seeds, 7000)
    val_table = summarise(pooled(val_episodes, label))
    references = {"EDF": margin_returns[1.0], f"EDF margin {best_margin}": margin_returns[best_margin]}
    summary = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "train_files": [t.attrs["name"] for t in train_traces],
        "validation_files": [t.attrs["name"] for t in val_traces],
        "test_files": [t.attrs["name"] for t in test_traces],
        "runs": runs,
        "edf_margin_validation_returns": {str(m): r for m, r in margin_returns.items()},
        "edf_margin": best_margin,
        "validation_curve_references": references,
        "validation_table": val_table.to_dict(orient="records"),
        "validation_seed_spread": seed_spread(val_episodes, label),
    }
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format
    ):
        print("validation:\n" + val_table.to_string(index=False))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "allocation" if not args.no_test else f"validation_{label}_{int(time.time())}"
    if args.no_test:
        summary["wall_s"] = time.time() - start
        (args.out / f"{stem}.json").write_text(json.dumps(summary, indent=2))
        curves.to_csv(args.out / f"{stem}_curves.csv", index=False)
        return val_table

    save_models(args, val_traces, trained, runs, label)
    test_episodes = evaluate({**learned, **allocators}, test_traces, args, args.eval_seeds, 1000)
    per_seed = summarise(test_episodes)
    table = summarise(pooled(test_episodes, label))
    summary["test_table"] = table.to_dict(orient="records")
    summary["test_table_per_training_seed"] = per_seed.to_dict(orient="records")
    summary["test_seed_spread"] = seed_spread(test_episodes, label)
    summary["wall_s"] = time.time() - start
    table.to_csv(args.out / "allocation.csv", index=False)
    pd.concat([val_episodes.assign(split="validation"), test_episodes.assign(split="test")]).to_csv(
        args.out / "allocation_episodes.csv", index=False
    )
    curves.to_csv(args.out / "allocation_curves.csv", index=False)
    (args.out / "allocation.json").write_text(json.dumps(summary, indent=2))
    plot(
        table,
        curves,
        references,
        args.out / "allocation.png",
        f"Bandwidth allocation on held-out HSDPA traces ({len(test_traces)} files x {args.eval_seeds} seeds;"
        f" {label}: {len(args.train_seeds)} training seeds x {args.timesteps} steps; mean, 95% CI)",
    )
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format
    ):
        print("test:\n" + table.to_string(index=False))
        print("test, per training seed:\n" + per_seed.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
