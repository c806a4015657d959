"""What the recipe trainers (``itp_train_dqn.py``, ``itp_train_td3.py``) do around their recipe.

Each script trains one agent with a recipe from :mod:`novacron.placement` and differs from the
other only in the recipe and its arguments. The rest is the same and lives here: the head and the
tail of the command line, and a :class:`RecipeRun` (run folder, environments, learning curve with
its choice of ``best.zip``, wall-time limit, ``last.zip`` and ``summary.json``). The run folder,
the validation split and the curve themselves are ``itp_train.py``'s, as for the PPO runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from itp_train import ValidationLog, _env, add_run_args, start_run


def recipe_parser(description: str, *, seed: int, gamma: float) -> argparse.ArgumentParser:
    """The first arguments of a recipe trainer: the run's (``add_run_args``), then ``--gamma``.
    The script adds its recipe's, then ends with :func:`parse_recipe_args`."""
    parser = argparse.ArgumentParser(description=description)
    add_run_args(parser, seed=seed)
    parser.add_argument("--gamma", type=float, default=gamma)
    return parser


def parse_recipe_args(
    parser: argparse.ArgumentParser, argv: list[str] | None, *, out: Path
) -> argparse.Namespace:
    """Add the last arguments of a recipe trainer (the wall-time limit, the run folder) and parse."""
    parser.add_argument(
        "--max-seconds", type=float, default=0, help="stop online training after this (0: off)"
    )
    parser.add_argument("--out", type=Path, default=out)
    return parser.parse_args(argv)


class RecipeRun:
    """One training run of a recipe, from its parsed arguments: :meth:`start_run`'s run folder,
    the ``fit`` environment to train on (:attr:`env`), and the ``val`` episodes' learning curve
    (:attr:`curve`: the ``references`` heuristics' rows first; it keeps ``best.zip``)."""

    def __init__(self, args: argparse.Namespace, references: tuple[str, ...] = ("nearest_fit",)) -> None:
        self.args = args
        loads, val_loads, val_seeds = start_run(args)
        self.env = _env("fit", loads[0], args.hosts, args.tasks, loads=loads)
        val_envs = {load: _env("val", load, args.hosts, args.tasks) for load in val_loads}
        self.curve = ValidationLog(args.out, val_envs, val_seeds, references=references)

    def out_of_time(self) -> bool:
        """The recipe's ``should_stop``: ``--max-seconds`` (0: never) since the curve started."""
        return bool(self.args.max_seconds) and self.curve.seconds() > self.args.max_seconds

    def log(self, message: str) -> None:
        """The recipe's ``log``: each message with the seconds since the curve started."""
        print(f"{message} ({self.curve.seconds():.0f} s)", flush=True)

    def finish(self, model: Any, **results: Any) -> dict:
        """Save ``model`` as ``last.zip``, close the curve, and write and print ``summary.json``:
        the best validation score and its step, then the recipe's ``results``, then the seconds."""
        model.save(self.args.out / "last.zip")
        self.curve.close()
        best = self.curve.best
        summary = {
            "best_val_score": best["score"],
            "best_timesteps": best["timesteps"],
            **results,
            "seconds": self.curve.seconds(),
        }
        (self.args.out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(summary)
        return summary
