"""Experiment: train a masked DQN placement policy (DQfD-style warm start), selecting on the validation split.

Same conventions as ``experiments/itp_train.py``: training episodes come from the
``fit`` part of the pod list (first 55 %) at a load drawn per episode from
``--loads``; the greedy policy is scored on fixed ``val`` episodes (55-70 %,
seeds ``0..--val-seeds-1``) at each of ``--val-loads``, and the checkpoint with
the best mean validation score is kept as ``best.zip``. The test split is never
touched (it is for ``experiments/itp_compare.py --dqn-model``).

The agent and its training are :mod:`novacron.placement.dqfd` (shared with
``novacron itp train --algo masked_dqn``): :class:`novacron.placement.rl.MaskedDQN`
(masking in the action choice, in exploration and in the target's max; double-DQN
target) with the dueling host-scoring Q-network (``arch="host_scoring"``), trained
after Hester et al. (2018, "Deep Q-learning from Demonstrations"):

1. ``--init``: the advantage part of the Q-network starts from a trained
   host-scoring MaskablePPO actor (e.g. ``runs/bcpat_s0/best.zip``); the state
   value part starts from scratch;
2. ``--demo-teacher`` is rolled out on ``--demo-episodes`` fit episodes; its
   transitions are the demonstrations;
3. ``--pretrain-steps`` gradient steps on demonstrations only (TD + large-margin loss);
4. ``--timesteps`` online steps (epsilon-greedy among allowed actions), each
   batch mixing ``--demo-fraction`` demonstrations (margin loss on those rows).

Only checkpoints with at least one TD update are candidates for ``best.zip`` (so
the selected model is a trained DQN, not the copied actor); the warm start's own
validation score is logged as ``policy=init`` for reference. Writes
``best.zip`` (a ``torch.save`` file; the name follows the other runs),
``last.zip``, ``learning_curve.csv`` (same columns as ``itp_train.py``),
``config.json``, ``summary.json``. This script adds only the run folder, the
validation checkpoints and the selection; ``--max-seconds`` (wall time from the
start) ends the online phase. The defaults are the reported run's settings
(:class:`novacron.placement.dqfd.DQfDSettings`; gamma 0.999).

    nice -n 19 .venv/bin/python experiments/itp_train_dqn.py --init results/itp/runs/bcpat_s0/best.zip \\
        --seed 0 --timesteps 600000 --max-seconds 1800 --out results/itp/runs/dqn_s0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from itp_common import RecipeRun, parse_recipe_args, recipe_parser  # noqa: E402

from novacron.placement.dqfd import DQfDSettings  # noqa: E402

DEFAULTS = DQfDSettings()


def settings_from(args: argparse.Namespace) -> DQfDSettings:
    """The shared recipe's settings from this script's arguments."""
    return DQfDSettings(
        seed=args.seed,
        hidden=args.hidden,
        gamma=args.gamma,
        lr=args.lr,
        batch_size=args.batch_size,
        buffer_size=args.buffer_size,
        train_freq=args.train_freq,
        target_update=args.target_update,
        margin=args.margin,
        margin_weight=args.margin_weight,
        demo_fraction=args.demo_fraction,
        eps_start=args.eps_start,
        eps_end=args.eps_end,
        init=args.init,
        demo_teacher=args.demo_teacher,
        demo_episodes=args.demo_episodes,
        pretrain_steps=args.pretrain_steps,
        timesteps=args.timesteps,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = DEFAULTS
    parser = recipe_parser(__doc__.split("\n\n")[0], seed=d.seed, gamma=d.gamma)
    parser.add_argument("--hidden", type=int, default=d.hidden)
    parser.add_argument("--init", type=Path, help="host-scoring MaskablePPO .zip whose actor starts A(s, a)")
    parser.add_argument("--demo-teacher", default=d.demo_teacher)
    parser.add_argument("--demo-episodes", type=int, default=d.demo_episodes)
    parser.add_argument("--pretrain-steps", type=int, default=d.pretrain_steps)
    parser.add_argument("--timesteps", type=int, default=d.timesteps, help="online environment steps")
    parser.add_argument("--eval-every", type=int, default=100_000, help="online steps between validations")
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--buffer-size", type=int, default=d.buffer_size)
    parser.add_argument("--train-freq", type=int, default=d.train_freq)
    parser.add_argument("--target-update", type=int, default=d.target_update)
    parser.add_argument("--margin", type=float, default=d.margin)
    parser.add_argument("--margin-weight", type=float, default=d.margin_weight)
    parser.add_argument("--demo-fraction", type=float, default=d.demo_fraction)
    parser.add_argument("--eps-start", type=float, default=d.eps_start)
    parser.add_argument("--eps-end", type=float, default=d.eps_end)
    return parse_recipe_args(parser, argv, out=Path("results/itp/runs/dqn_s0"))


def main(argv: list[str] | None = None) -> dict:
    from novacron.placement.dqfd import train_dqfd
    from novacron.placement.rl import FastMaskedPolicy, MaskedDQN

    args = parse_args(argv)
    run = RecipeRun(args)
    curve = run.curve

    def checkpoint(model: MaskedDQN, phase: str, step: int) -> None:
        """Validate; keep the best trained checkpoint (the warm start, phase "init", is not a candidate)."""
        candidate = phase != "init"
        name = "dqn" if candidate else "init"
        curve.check(FastMaskedPolicy(model), model, step, name, phase=phase, candidate=candidate)

    def on_episode(model: MaskedDQN, ep_return: float, info: dict) -> None:
        curve.episode(model.num_timesteps, info, "dqn")

    trained = train_dqfd(
        run.env,
        settings_from(args),
        checkpoint=checkpoint,
        eval_every=args.eval_every,
        on_episode=on_episode,
        should_stop=run.out_of_time,
        log=run.log,
    )
    return run.finish(
        trained.model,
        best_phase=curve.best["phase"],
        online_timesteps=trained.model.num_timesteps,
        demo_transitions=trained.demo_transitions,
    )


if __name__ == "__main__":
    main()
