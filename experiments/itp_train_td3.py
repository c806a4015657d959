"""Experiment: TD3 over the continuous relaxation of placement, selecting on a validation split.

Same conventions as ``experiments/itp_train.py``: training episodes come from the
``fit`` part of the pod list (first 55 %) at a load drawn per episode from
``--loads``; checkpoints are scored greedily on fixed episodes of the ``val`` part
(55-70 %) at each of ``--val-loads`` (episode seeds ``0 .. --val-seeds - 1``) and the
best mean is kept as ``best.zip``; the ``test`` part is left to
``experiments/itp_compare.py --td3-model``.

The agent and its recipe are :mod:`novacron.placement.relaxation` (shared with
``novacron itp train --algo td3``): the action weights a host-scoring rule (RTT price,
free shares after placement, alignment) plus a defer gate, in
``novacron/PlacementContinuous-v0``; the actor is first regressed onto the decisions of
``--demo-teacher`` (``patient_nearest_fit``), the critic pre-trained on those
demonstrations (``--pretrain-steps``), then TD3+BC runs online for ``--timesteps``
steps (``--max-seconds`` caps the wall time). The warm start (step 0) is validated as
a candidate: it is this model's own checkpoint, and if it wins, TD3's online phase
added nothing. Writes under ``--out``: ``best.zip``, ``last.zip``, ``warm.zip`` (the warm start),
``learning_curve.csv`` (val rows per checkpoint, ``nearest_fit`` and the teacher on the
same val episodes once, ``fit`` rows per training episode), ``config.json`` and
``summary.json``. Progress (episodes, validations) goes to stdout.

    nice -n 19 .venv/bin/python experiments/itp_train_td3.py --seed 0 --timesteps 300000 \\
        --pretrain-steps 10000 --eval-every 20000 --max-seconds 3300 --out results/itp/runs/td3_s0
    nice -n 19 .venv/bin/python experiments/itp_train_td3.py --seed 0 \\
        --init results/itp/runs/td3_s0/warm.zip --pretrain-steps 0 --lr 3e-5 --alpha 0.3 \\
        --action-noise 0.05 --eval-every 10000 --max-seconds 2400 \\
        --out results/itp/runs/td3c_s0     # the reported (selected) run; see results/itp/README.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from itp_common import RecipeRun, parse_recipe_args, recipe_parser  # noqa: E402

from novacron.placement.relaxation import RelaxedPolicy, TD3Settings  # noqa: E402

DEFAULTS = TD3Settings()


def settings_from(args: argparse.Namespace) -> TD3Settings:
    """The shared recipe's settings from this script's arguments."""
    return TD3Settings(
        seed=args.seed,
        gamma=args.gamma,
        demo_teacher=args.demo_teacher,
        demo_episodes=args.demo_episodes,
        bc_epochs=args.bc_epochs,
        critic_pretrain_steps=args.pretrain_steps,
        timesteps=args.timesteps,
        lr=args.lr,
        batch_size=args.batch_size,
        hidden=tuple(int(x) for x in args.hidden.split(",")),
        action_noise=args.action_noise,
        alpha=args.alpha,
        bc_weight=args.bc_weight,
        init=args.init,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = DEFAULTS
    parser = recipe_parser(__doc__.split("\n\n")[0], seed=d.seed, gamma=d.gamma)
    parser.add_argument("--hidden", default=",".join(map(str, d.hidden)), help="actor/critic MLP widths")
    parser.add_argument("--init", type=Path, help="a TD3 .zip to continue from (no actor regression)")
    parser.add_argument("--demo-teacher", default=d.demo_teacher)
    parser.add_argument("--demo-episodes", type=int, default=d.demo_episodes)
    parser.add_argument("--bc-epochs", type=int, default=d.bc_epochs, help="actor regression epochs")
    parser.add_argument(
        "--pretrain-steps", type=int, default=d.critic_pretrain_steps, help="critic-only steps"
    )
    parser.add_argument("--timesteps", type=int, default=d.timesteps, help="online environment steps")
    parser.add_argument("--eval-every", type=int, default=20_000, help="online steps between validations")
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--action-noise", type=float, default=d.action_noise)
    parser.add_argument("--alpha", type=float, default=d.alpha, help="TD3+BC: weight of the normalised Q")
    parser.add_argument("--bc-weight", type=float, default=d.bc_weight, help="TD3+BC: weight of the BC MSE")
    return parse_recipe_args(parser, argv, out=Path("results/itp/runs/td3_s0"))


def main(argv: list[str] | None = None) -> dict:
    from stable_baselines3.common.callbacks import BaseCallback

    from novacron.placement.relaxation import train_td3
    from novacron.sim.envs.placement_continuous import PlacementContinuousEnv

    args = parse_args(argv)
    run = RecipeRun(args, references=("nearest_fit", args.demo_teacher))
    curve = run.curve

    def validate_and_keep(model, step: int) -> None:
        curve.check(RelaxedPolicy(model), model, step, "td3")

    class Validate(BaseCallback):
        """Validation every ``--eval-every`` online steps, and a ``fit`` row per training episode."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval = args.eval_every
            self.episodes = 0

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
                if done and "metrics" in info:
                    self.episodes += 1
                    m = curve.episode(self.num_timesteps, info, "td3")
                    print(
                        f"  episode {self.episodes} ({self.num_timesteps} steps, {curve.seconds():.1f} s) "
                        f"load {info.get('load', '')} score {m['score']:.3f}",
                        flush=True,
                    )
            if self.num_timesteps >= self.next_eval:
                self.next_eval += args.eval_every
                validate_and_keep(self.model, self.num_timesteps)
            return True

    def checkpoint(model, phase: str, step: int) -> None:
        if phase == "warm":  # the warm start is a candidate (see the module doc)
            model.save(args.out / "warm.zip")
            validate_and_keep(model, 0)

    trained = train_td3(
        PlacementContinuousEnv(run.env),
        settings_from(args),
        checkpoint=checkpoint,
        callback=Validate(),
        should_stop=run.out_of_time,
        log=run.log,
    )
    if trained.model.num_timesteps % args.eval_every:  # the last steps since the previous validation
        validate_and_keep(trained.model, trained.model.num_timesteps)
    return run.finish(
        trained.model,
        online_timesteps=trained.model.num_timesteps,
        demo_transitions=trained.demo_transitions,
        demo_mismatches=trained.demo_mismatches,
        actor_regression_mse=trained.bc_loss,
    )


if __name__ == "__main__":
    main()
