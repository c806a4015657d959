"""The masked-DQN training recipe we report: Deep Q-learning from Demonstrations (DQfD).

One place for the procedure that both ``novacron itp train --algo masked_dqn`` and
``experiments/itp_train_dqn.py`` run, so the command line trains the same agent the
results describe (Hester et al. 2018, "Deep Q-learning from Demonstrations"):

1. the agent is :class:`~novacron.placement.rl.MaskedDQN` with the dueling host-scoring
   Q-network (``arch="host_scoring"``: ``Q = V(s) + A(s, a)``, ``A`` the per-host scorer),
   masking in acting, exploration and the double-DQN target;
2. optional warm start (``init``): ``A`` is copied from a trained host-scoring
   MaskablePPO actor (e.g. ``results/itp/runs/bcpat_s0/best.zip``); ``V`` starts fresh;
3. a demonstrator heuristic (``demo_teacher``) is rolled out on ``demo_episodes``
   training episodes; its transitions, flagged ``demo``, are the demonstrations;
4. ``pretrain_steps`` gradient steps on demonstrations only (TD + large-margin loss);
5. ``timesteps`` online epsilon-greedy steps (among allowed actions), each batch mixing
   ``demo_fraction`` demonstrations (margin loss on those rows).

Callers add what is theirs through hooks: validation and model selection (the
experiment), periodic saves and a progress CSV (the CLI), a wall-clock budget. No clock
is read here (protocol code rule): a time limit is the caller's ``should_stop``.
torch, SB3 and the simulator are imported on first use: the CLI reads this module's
defaults for every ``novacron`` command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .rl import DQNConfig, HostScoringExtractor, MaskedDQN, MaskedReplayBuffer

#: rows reserved for demonstrations (numpy zero pages: only the rows written use memory);
#: the reported run wrote 93 776 (20 episodes of 512 tasks)
DEMO_CAPACITY = 400_000

#: ``checkpoint(model, phase, online_step)``: phase is "init" (after the warm start, not
#: a trained DQN), "pretrain", "online" (every ``eval_every`` online steps) or "last"
Checkpoint = Callable[["MaskedDQN", str, int], None]
#: ``on_episode(model, episode_return, info)`` after every online episode
OnEpisode = Callable[["MaskedDQN", float, dict], None]


@dataclass
class DQfDSettings:
    """Agent and procedure settings; the defaults are those of the reported run ``runs/dqn_s0``
    (there with ``init=runs/bcpat_s0/best.zip``)."""

    seed: int = 0
    hidden: int = 64
    gamma: float = 0.999
    lr: float = 1e-4
    batch_size: int = 64
    buffer_size: int = 200_000
    train_freq: int = 4
    target_update: int = 2_000
    margin: float = 0.1
    margin_weight: float = 1.0
    demo_fraction: float = 0.25
    eps_start: float = 0.05
    eps_end: float = 0.01
    init: Path | None = None
    demo_teacher: str = "patient_nearest_fit"
    demo_episodes: int = 20
    pretrain_steps: int = 20_000
    timesteps: int = 600_000


@dataclass
class DQfDResult:
    """The trained agent (its final weights) and what the demonstrations were."""

    model: MaskedDQN
    demo_transitions: int
    teacher_scores: list[float]


def dqn_config(settings: DQfDSettings, max_hosts: int, host_features: int) -> DQNConfig:
    """The :class:`DQNConfig` of the recipe: host-scoring dueling network, DQfD margin loss."""
    from .rl import DQNConfig

    return DQNConfig(
        hidden=(settings.hidden,),
        arch="host_scoring",
        max_hosts=max_hosts,
        host_features=host_features,
        learning_rate=settings.lr,
        gamma=settings.gamma,
        buffer_size=settings.buffer_size,
        batch_size=settings.batch_size,
        learning_starts=settings.batch_size,
        train_freq=settings.train_freq,
        target_update_interval=settings.target_update,
        exploration_fraction=0.5,
        exploration_initial_eps=settings.eps_start,
        exploration_final_eps=settings.eps_end,
        margin=settings.margin,
        margin_weight=settings.margin_weight,
        demo_fraction=settings.demo_fraction,
        seed=settings.seed,
    )


def new_agent(env, settings: DQfDSettings) -> MaskedDQN:
    """A fresh agent sized for ``env`` (a ``novacron/Placement-v0`` environment)."""
    from novacron.sim.envs.placement import HOST_FEATURES

    from .rl import MaskedDQN

    config = dqn_config(settings, env.max_hosts, len(HOST_FEATURES))
    return MaskedDQN(env.observation_space.shape[0], env.action_space.n, config)


def ppo_host_scorer(path: str | Path) -> HostScoringExtractor:
    """The host-scoring actor of a MaskablePPO .zip (ValueError if it has another network)."""
    from sb3_contrib import MaskablePPO

    from .rl import HostScoringExtractor

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file {path}")
    policy = MaskablePPO.load(str(path), device="cpu").policy
    scorer = getattr(policy.features_extractor, "inner", None)
    if not isinstance(scorer, HostScoringExtractor):
        raise ValueError(f"{path} is not a host-scoring MaskablePPO model (trained with --arch host_scoring)")
    return scorer


def warm_start(model: MaskedDQN, path: str | Path) -> None:
    """Copy a host-scoring MaskablePPO actor into the advantages ``A`` of ``model`` (online and target)."""
    scorer = ppo_host_scorer(path)
    own = model.q_net.scorer
    if (scorer.max_hosts, scorer.host_features, scorer.host_score.in_features) != (
        own.max_hosts,
        own.host_features,
        own.host_score.in_features,
    ):
        raise ValueError(
            f"{path}: host scorer of {scorer.max_hosts} hosts x {scorer.host_features} features, "
            f"width {scorer.host_score.in_features}; the DQN needs {own.max_hosts} x {own.host_features}, "
            f"width {own.host_score.in_features} (match --max-hosts / hidden)"
        )
    model.q_net.load_scorer(scorer)
    model.q_target.load_state_dict(model.q_net.state_dict())


def collect_demos(
    env, teacher_name: str, episodes: int, seed: int, buffer: MaskedReplayBuffer
) -> list[float]:
    """Add a heuristic's transitions on ``episodes`` episodes to ``buffer`` (flagged ``demo``).

    Episode ``i`` uses seed ``seed * 100_000 + i``. Returns the teacher's score per episode.
    """
    from .heuristics import DEFER, make_policy

    scores = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 100_000 + episode)
        teacher = make_policy(teacher_name)
        teacher.reset(env.sim, episode)
        done, info = False, {}
        while not done:
            choice = teacher.select(env.sim)
            action = env.defer_action if choice == DEFER else int(choice)
            mask = env.action_masks()
            next_obs, reward, done, _, info = env.step(action)
            buffer.add(obs, action, reward, next_obs, env.action_masks(), done, mask=mask, demo=True)
            obs = next_obs
        scores.append(info["metrics"]["score"])
    return scores


def train_dqfd(
    env,
    settings: DQfDSettings,
    *,
    checkpoint: Checkpoint | None = None,
    eval_every: int = 0,
    on_episode: OnEpisode | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> DQfDResult:
    """Run the recipe of the module doc on ``env`` (training episodes) and return the agent.

    ``checkpoint`` is called after the warm start ("init", step 0), after pre-training
    ("pretrain", step 0; only if ``pretrain_steps`` > 0), every ``eval_every`` online
    steps ("online") and, if the online phase ended off that grid, at its end ("last").
    ``should_stop()`` is asked after every online step (and any checkpoint there);
    True ends the online phase. Online episode ``i`` uses seed
    ``seed * 100_000 + 50_000 + i`` (apart from the demonstrations' seeds).
    ValueError if pre-training is asked for without demonstrations.
    """
    from .rl import MaskedReplayBuffer

    if settings.pretrain_steps > 0 and settings.demo_episodes <= 0:
        raise ValueError("pre-training (pretrain_steps > 0) needs demonstrations (demo_episodes > 0)")
    say = log or (lambda _message: None)
    model = new_agent(env, settings)
    if settings.init is not None:
        warm_start(model, settings.init)
        say(f"advantages initialised from {settings.init}")
    if checkpoint is not None:
        checkpoint(model, "init", 0)
    demos = MaskedReplayBuffer(DEMO_CAPACITY, model.obs_dim, model.n_actions)
    scores = collect_demos(env, settings.demo_teacher, settings.demo_episodes, settings.seed, demos)
    say(
        f"demonstrations: {demos.size} transitions of {settings.demo_teacher} "
        f"(score {sum(scores) / len(scores) if scores else float('nan'):.3f})"
    )
    if settings.pretrain_steps > 0:
        model.pretrain(demos, settings.pretrain_steps)
        if checkpoint is not None:
            checkpoint(model, "pretrain", 0)
    if settings.timesteps > 0:
        _online(model, env, settings, demos, checkpoint, eval_every, on_episode, should_stop)
        if checkpoint is not None and (eval_every <= 0 or model.num_timesteps % eval_every):
            checkpoint(model, "last", model.num_timesteps)
    return DQfDResult(model=model, demo_transitions=demos.size, teacher_scores=scores)


def _online(
    model: MaskedDQN,
    env,
    settings: DQfDSettings,
    demos: MaskedReplayBuffer,
    checkpoint: Checkpoint | None,
    eval_every: int,
    on_episode: OnEpisode | None,
    should_stop: Callable[[], bool] | None,
) -> None:
    """The online phase: epsilon-greedy Q-learning with demonstrations in every batch."""

    def on_step(m: MaskedDQN, step: int) -> bool | None:
        if checkpoint is not None and eval_every > 0 and step % eval_every == 0:
            checkpoint(m, "online", step)
        if should_stop is not None and should_stop():
            return False
        return None

    model.learn(
        env,
        settings.timesteps,
        seed=settings.seed * 100_000 + 50_000,
        demos=demos,
        callback=on_step,
        on_episode=on_episode,
    )
