"""TD3 for placement: a continuous relaxation of the discrete action as a parametrised scoring rule.

``novacron/Placement-v0`` asks for one of ``max_hosts + 1`` discrete actions (a host, or
defer). TD3 (Fujimoto et al. 2018) needs a continuous action. Rather than relax the
host index itself (neighbouring indices are unrelated hosts, so a continuous index
means nothing), the continuous action here **parametrises a scoring rule**, and the
rule picks the host:

* ``action[0]``, the *RTT price* ``p = 10 ** (1.5 - 2.5 * action[0])``, from 1e4
  (at -1) down to 0.1 (at +1) per unit of normalised RTT: how much one unit of
  distance to the task's origin costs in units of free share. A log scale, because
  the interesting range spans orders of magnitude: at 1e4 RTT decides first
  (lexicographic, as ``nearest_fit``; the cluster's RTTs are whole milliseconds and at
  most a few hundred, so one millisecond outweighs any fit difference), near 1 RTT and
  packing trade off, at 0.1 packing decides first. The price is never negative: a
  farther host is never *preferred* for its distance.
* ``action[1:4]``, weights on the free CPU, memory and GPU shares a host would have
  left after taking the task: negative packs (best fit), positive spreads (worst fit).
* ``action[4]``, a weight on the Tetris alignment (Grandl et al. 2014): the dot
  product of the task's demand and the host's free capacity, as shares of the host.
* ``action[5]``, the *defer gate*: the task is deferred when it is > 0. The gate is
  state-dependent through the actor, which sees what the non-work-conserving
  heuristics look at (time waited, resource-time, whether the nearest region fits),
  so one threshold at 0 is enough; a threshold on the host score would tie the gate to
  the RTT price's log scale.

A host's score is ``-p * rtt + sum_i w_i * feature_i``; the action is the feasible host
(the environment's mask) with the highest score, the lowest index among equal scores,
or defer when the gate says so or no host fits. **An infeasible host is never chosen**,
whatever the action (NaN included). Every feature is read from the observation, so
the rule is a pure function of (observation, mask, action): the trained policy plugs
into the same ``predict(obs, action_masks=...)`` path as the masked PPO and DQN.

The policy class contains the best work-conserving heuristic: :data:`NEAREST_FIT_ACTION`
makes the same decisions as ``nearest_fit`` (tested on whole episodes), and
:func:`teacher_action` maps ``patient_nearest_fit``'s decisions to actions that reproduce
them, which the actor is first regressed onto. TD3 then fine-tunes with a
behaviour-cloning term in the actor loss (TD3+BC, Fujimoto and Gu 2021): earlier
unconstrained fine-tuning of imitation policies drifted and lost validation score
(``results/itp/README.md``).

The recipe (:func:`train_td3`) is shared by ``novacron itp train --algo td3`` and
``experiments/itp_train_td3.py``. torch and SB3 are imported on first use; no clock is
read here (protocol code rule): time limits are the caller's ``should_stop``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: names of the action components, in order
ACTION_NAMES = ("rtt_price", "cpu_free_after", "mem_free_after", "gpu_free_after", "alignment", "defer")
ACTION_DIM = len(ACTION_NAMES)
#: the RTT price is ``10 ** (RTT_PRICE_CENTRE - RTT_PRICE_SPAN * action[0])``: 1e4 .. 0.1
RTT_PRICE_CENTRE, RTT_PRICE_SPAN = 1.5, 2.5
#: exactly ``nearest_fit``: RTT first (price 1e4), then best fit on the sum of free shares
NEAREST_FIT_ACTION = np.array([-1.0, -1.0, -1.0, -1.0, 0.0, -1.0], dtype=np.float32)
#: the warm-start targets (:func:`teacher_action`) stay off tanh's saturation; the host part
#: still orders hosts as ``nearest_fit`` (price 10 ** 3.5 ~ 3162 per unit of normalised RTT,
#: ~14 per ms at 229 ms, against at most 1.5 of fit: three shares at weight 0.5)
_TARGET_PLACE = np.array([-0.8, -0.5, -0.5, -0.5, 0.0, -0.5], dtype=np.float32)
_TARGET_DEFER = np.array([-0.8, -0.5, -0.5, -0.5, 0.0, 0.5], dtype=np.float32)

# observation layout (sim/envs/placement.py: HOST_FEATURES per slot, then TASK_FEATURES)
_H_CPU_FREE, _H_CPU_TOTAL, _H_MEM_FREE, _H_MEM_TOTAL, _H_GPU_FREE, _H_GPU_TOTAL = 1, 2, 3, 4, 5, 6
_H_RTT, _H_CPU_AFTER, _H_MEM_AFTER, _H_GPU_AFTER = 9, 12, 13, 14
_T_CPU, _T_MEM, _T_NUM_GPU, _T_GPU_MILLI = 0, 1, 2, 3


@dataclass(frozen=True)
class ScoringRule:
    """A decoded action: the RTT price, the feature weights, and whether to defer."""

    rtt_price: float
    #: weights on (cpu_free_after, mem_free_after, gpu_free_after, alignment)
    weights: np.ndarray
    defer: bool


def decode(action: np.ndarray) -> ScoringRule:
    """The rule an action in [-1, 1]^6 stands for (clipped into the box; NaN reads as 0)."""
    a = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64).reshape(-1), nan=0.0), -1.0, 1.0)
    if a.shape != (ACTION_DIM,):
        raise ValueError(f"expected an action of {ACTION_DIM} components, got {a.shape}")
    price = 10.0 ** (RTT_PRICE_CENTRE - RTT_PRICE_SPAN * a[0])
    return ScoringRule(rtt_price=float(price), weights=a[1:5].copy(), defer=bool(a[5] > 0.0))


def host_features(obs: np.ndarray, max_hosts: int, n_host_features: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rtt, features)`` per host slot from an observation of ``novacron/Placement-v0``.

    ``rtt`` is the RTT to the task's origin over the cluster's largest RTT; ``features``
    (max_hosts, 4) are the free CPU, memory and GPU shares left after placing the task
    there and the Tetris alignment (demand . free capacity, both as shares of the host).
    """
    obs = np.asarray(obs, dtype=np.float64).reshape(-1)
    hosts = obs[: max_hosts * n_host_features].reshape(max_hosts, n_host_features)
    task = obs[max_hosts * n_host_features :]
    gpu_demand = task[_T_NUM_GPU] * task[_T_GPU_MILLI]  # (num_gpu * milli) / (MAX_GPUS * GPU_MILLI)
    totals = hosts[:, [_H_CPU_TOTAL, _H_MEM_TOTAL, _H_GPU_TOTAL]]
    free = hosts[:, [_H_CPU_FREE, _H_MEM_FREE, _H_GPU_FREE]]
    demand = np.broadcast_to(np.array([task[_T_CPU], task[_T_MEM], gpu_demand]), totals.shape)
    ok = totals > 0
    demand_share = np.divide(demand, totals, out=np.zeros_like(totals), where=ok)
    free_share = np.divide(free, totals, out=np.zeros_like(totals), where=ok)
    alignment = (demand_share * free_share).sum(axis=1)
    after = hosts[:, [_H_CPU_AFTER, _H_MEM_AFTER, _H_GPU_AFTER]]
    return hosts[:, _H_RTT], np.column_stack([after, alignment])


def host_scores(rtt: np.ndarray, features: np.ndarray, rule: ScoringRule) -> np.ndarray:
    """The rule's score of every host slot (higher is better; the mask is applied by :func:`choose`)."""
    return features @ rule.weights - rule.rtt_price * rtt


def choose(obs: np.ndarray, mask: np.ndarray, action: np.ndarray, n_host_features: int) -> int:
    """The discrete action (host slot, or ``len(mask) - 1`` = defer) the continuous ``action`` picks.

    ``mask`` is the environment's ``action_masks()`` (hosts, then defer). Only a host
    the mask allows can come out; equal scores go to the lowest slot, as in the heuristics.
    """
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    max_hosts = len(mask) - 1
    rule = decode(action)
    feasible = np.flatnonzero(mask[:max_hosts])
    if rule.defer or len(feasible) == 0:
        return max_hosts
    rtt, features = host_features(obs, max_hosts, n_host_features)
    scores = np.nan_to_num(host_scores(rtt[feasible], features[feasible], rule), nan=-np.inf)
    return int(feasible[int(np.argmax(scores))])


def teacher_action(defers: bool) -> np.ndarray:
    """The warm-start target for a decision of ``patient_nearest_fit`` (or ``nearest_fit``).

    Both place on ``nearest_fit``'s host when they place, so one host rule serves every
    state; only the gate follows the teacher. The targets sit at +-0.5 / -0.8, off
    tanh's saturation, so the regressed actor keeps gradients for fine-tuning.
    """
    return (_TARGET_DEFER if defers else _TARGET_PLACE).copy()


# ---------------------------------------------------------------------------- trained policy


class RelaxedPolicy:
    """Discrete placement decisions from a trained TD3 actor and the scoring rule.

    The actor (SB3's flat MLP with a tanh output) runs in numpy, as
    :class:`~novacron.placement.rl.FastMaskedPolicy` does for the other models, so a
    decision is one small MLP pass plus a vectorised score over hosts. ``predict``
    has the signature of the masked models' (``action_masks`` required here: the
    rule must know which hosts fit).
    """

    def __init__(self, model: Any, n_host_features: int | None = None) -> None:
        from novacron.placement.rl import numpy_forward, numpy_layers

        actor = model.policy.actor
        self._forward = numpy_forward
        self._layers = numpy_layers(_sequential(actor))
        if self._layers is None:
            raise ValueError("the TD3 actor is not a plain MLP (Linear/ReLU/Tanh layers)")
        if n_host_features is None:
            from novacron.sim.envs.placement import HOST_FEATURES

            n_host_features = len(HOST_FEATURES)
        self.n_host_features = int(n_host_features)

    def action(self, obs: np.ndarray) -> np.ndarray:
        """The actor's continuous action for one observation (in [-1, 1]^6)."""
        return self._forward(self._layers, obs)

    def predict(self, obs, action_masks=None, deterministic: bool = True, **_: Any):
        if action_masks is None:
            raise ValueError("the scoring rule needs action_masks (which hosts fit)")
        return choose(obs, action_masks, self.action(obs), self.n_host_features), None


def _sequential(actor):
    """The actor's layers in order (features extractor, then ``mu``) as one ``nn.Sequential``."""
    from torch import nn

    return nn.Sequential(actor.features_extractor, actor.mu)


def load_policy(path: str | Path) -> RelaxedPolicy:
    """A :class:`RelaxedPolicy` from a TD3 ``.zip`` written by :func:`train_td3` (or SB3's TD3)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file {path}")
    from stable_baselines3 import TD3

    return RelaxedPolicy(TD3.load(str(path), device="cpu"))


# ---------------------------------------------------------------------------- training recipe


@dataclass
class TD3Settings:
    """The TD3 recipe (defaults of ``novacron itp train --algo td3`` and ``experiments/itp_train_td3.py``;
    the reported runs' overrides are listed in ``results/itp/README.md``)."""

    seed: int = 0
    gamma: float = 0.999
    #: warm start: the heuristic whose decisions the actor is regressed onto (see teacher_action)
    demo_teacher: str = "patient_nearest_fit"
    demo_episodes: int = 20
    bc_epochs: int = 20
    bc_lr: float = 1e-3
    #: critic-only gradient steps on the demonstrations before any actor update
    critic_pretrain_steps: int = 20_000
    #: online environment steps (one gradient step each)
    timesteps: int = 100_000
    lr: float = 1e-4
    batch_size: int = 256
    hidden: tuple[int, ...] = (256, 256)
    buffer_size: int = 300_000
    #: exploration noise (Gaussian, std per component)
    action_noise: float = 0.1
    #: TD3+BC: actor loss = -alpha * Q / mean|Q| + bc_weight * MSE(actor, teacher action)
    alpha: float = 2.5
    bc_weight: float = 1.0
    #: continue from a TD3 .zip instead of the warm start
    init: Path | None = None


def _td3_bc_class():
    """``TD3BC``: SB3's TD3 whose actor loss adds a behaviour-cloning term on demonstrations.

    Built on first use (SB3 is imported lazily). The demonstrations are set with
    :meth:`set_demos` and are not saved with the model.
    """
    import torch
    import torch.nn.functional as F
    from stable_baselines3 import TD3
    from stable_baselines3.common.utils import polyak_update

    class TD3BC(TD3):
        demo_obs: torch.Tensor | None = None
        demo_actions: torch.Tensor | None = None
        alpha: float = 2.5
        bc_weight: float = 1.0
        update_actor: bool = True

        def _excluded_save_params(self) -> list[str]:
            return [*super()._excluded_save_params(), "demo_obs", "demo_actions"]

        def set_demos(self, obs: np.ndarray, actions: np.ndarray) -> None:
            self.demo_obs = torch.as_tensor(obs, dtype=torch.float32)
            self.demo_actions = torch.as_tensor(actions, dtype=torch.float32)

        def train(self, gradient_steps: int, batch_size: int = 100) -> None:
            self.policy.set_training_mode(True)
            self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
            for _ in range(gradient_steps):
                self._n_updates += 1
                data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
                self._critic_step(data)
                if self.update_actor and self._n_updates % self.policy_delay == 0:
                    self._actor_step(data.observations, batch_size)
                    polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                    polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
                    polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)
                if not self.update_actor or self._n_updates % self.policy_delay == 0:
                    polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
            self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

        def _critic_step(self, data) -> None:
            with torch.no_grad():
                noise = data.actions.clone().normal_(0, self.target_policy_noise)
                noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (self.actor_target(data.next_observations) + noise).clamp(-1, 1)
                next_q = torch.cat(self.critic_target(data.next_observations, next_actions), dim=1)
                next_q, _ = torch.min(next_q, dim=1, keepdim=True)
                target_q = data.rewards + (1 - data.dones) * self.gamma * next_q
            current = self.critic(data.observations, data.actions)
            loss = sum(F.mse_loss(q, target_q) for q in current)
            self.critic.optimizer.zero_grad()
            loss.backward()
            self.critic.optimizer.step()
            self.logger.record("train/critic_loss", loss.item())

        def _actor_step(self, obs: torch.Tensor, batch_size: int) -> None:
            q = self.critic.q1_forward(obs, self.actor(obs))
            loss = -self.alpha * q.mean() / q.abs().mean().detach().clamp_min(1e-6)
            if self.bc_weight > 0 and self.demo_obs is not None and len(self.demo_obs):
                idx = torch.randint(len(self.demo_obs), (batch_size,))
                bc = F.mse_loss(self.actor(self.demo_obs[idx]), self.demo_actions[idx])
                loss = loss + self.bc_weight * bc
                self.logger.record("train/bc_loss", bc.item())
            self.actor.optimizer.zero_grad()
            loss.backward()
            self.actor.optimizer.step()
            self.logger.record("train/actor_loss", loss.item())

    return TD3BC


def collect_demos(env, teacher_name: str, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Roll the teacher out through the continuous wrapper ``env`` with :func:`teacher_action`.

    Returns the transitions (obs, action, reward, next_obs, done) and ``mismatches``:
    decisions where the rule did not reproduce the teacher (0 for the supported teachers).
    """
    from novacron.placement.heuristics import DEFER, make_policy

    base = env.unwrapped
    rows: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "next_obs", "done")}
    mismatches = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 100_000 + episode)
        teacher = make_policy(teacher_name)
        teacher.reset(base.sim, episode)
        done = False
        while not done:
            choice = teacher.select(base.sim)
            wanted = base.defer_action if choice == DEFER else int(choice)
            action = teacher_action(choice == DEFER)
            next_obs, reward, done, _, info = env.step(action)
            mismatches += int(info["placement_action"] != wanted)
            for key, value in zip(rows, (obs, action, reward, next_obs, done), strict=True):
                rows[key].append(value)
            obs = next_obs
    out = {k: np.asarray(v, dtype=np.float32) for k, v in rows.items()}
    out["mismatches"] = np.asarray(mismatches)
    return out


def regress_actor(model, obs: np.ndarray, actions: np.ndarray, epochs: int, lr: float, seed: int) -> float:
    """Fit the actor's output to ``actions`` (MSE, minibatches of 256); copies it to the target actor.

    Returns the last epoch's mean loss.
    """
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(obs, dtype=torch.float32)
    y = torch.as_tensor(actions, dtype=torch.float32)
    actor = model.actor
    optimizer = torch.optim.Adam(actor.parameters(), lr=lr)
    last = float("nan")
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        losses = []
        for start in range(0, len(x), 256):
            idx = perm[start : start + 256]
            loss = F.mse_loss(actor(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        last = float(np.mean(losses)) if losses else last
    model.actor_target.load_state_dict(actor.state_dict())
    return last


@dataclass
class TD3Run:
    """What :func:`train_td3` returns: the model and the warm start's numbers."""

    model: Any
    demo_transitions: int
    demo_mismatches: int
    bc_loss: float


def train_td3(
    env,
    settings: TD3Settings,
    *,
    checkpoint: Callable[[Any, str, int], None] | None = None,
    callback: Any = None,
    should_stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> TD3Run:
    """Warm start (demonstrations, actor regression, critic pre-training), then online TD3+BC.

    ``env`` is a :class:`~novacron.sim.envs.placement_continuous.PlacementContinuousEnv`
    (e.g. over several loads). ``checkpoint(model, phase, step)`` is called with phase
    "warm" (after the warm start) and "last"; ``callback`` is an SB3 callback for the
    online phase (validation, saves); ``should_stop()`` ends the online phase early.
    """
    from stable_baselines3.common.noise import NormalActionNoise

    say = log or (lambda _message: None)
    cls = _td3_bc_class()
    noise = NormalActionNoise(np.zeros(ACTION_DIM), settings.action_noise * np.ones(ACTION_DIM))
    if settings.init is not None:
        model = cls.load(
            str(settings.init),
            env=env,
            device="cpu",
            action_noise=noise,
            learning_rate=settings.lr,
            gamma=settings.gamma,
            batch_size=settings.batch_size,
            seed=settings.seed,
        )
    else:
        model = cls(
            "MlpPolicy",
            env,
            learning_rate=settings.lr,
            buffer_size=settings.buffer_size,
            learning_starts=0,
            batch_size=settings.batch_size,
            gamma=settings.gamma,
            train_freq=1,
            gradient_steps=1,
            action_noise=noise,
            policy_kwargs={"net_arch": list(settings.hidden)},
            seed=settings.seed,
            device="cpu",
            verbose=0,
        )
    model.alpha, model.bc_weight = settings.alpha, settings.bc_weight
    demos = collect_demos(env, settings.demo_teacher, settings.demo_episodes, settings.seed)
    n_demo = len(demos["action"])
    mismatches = int(demos["mismatches"])
    say(f"{n_demo} demonstration transitions of {settings.demo_teacher} ({mismatches} not reproduced)")
    model.set_demos(demos["obs"], demos["action"])
    for i in range(n_demo):
        model.replay_buffer.add(
            demos["obs"][i : i + 1],
            demos["next_obs"][i : i + 1],
            demos["action"][i : i + 1],
            demos["reward"][i : i + 1],
            demos["done"][i : i + 1],
            [{}],
        )
    bc_loss = float("nan")
    if settings.init is None and settings.bc_epochs > 0 and n_demo:
        bc_loss = regress_actor(
            model, demos["obs"], demos["action"], settings.bc_epochs, settings.bc_lr, settings.seed
        )
        say(f"actor regressed onto the teacher's actions: MSE {bc_loss:.5f}")
    if settings.critic_pretrain_steps > 0 and n_demo:
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[]))
        model.update_actor = False
        model.train(settings.critic_pretrain_steps, settings.batch_size)
        model.update_actor = True
        model._custom_logger = False  # learn() sets up its own logger unless the caller sets one
        say(f"critic pre-trained for {settings.critic_pretrain_steps} steps")
    if checkpoint is not None:
        checkpoint(model, "warm", 0)
    if settings.timesteps > 0:
        callbacks = [c for c in (callback, _stop_callback(should_stop)) if c is not None]
        model.learn(total_timesteps=settings.timesteps, callback=callbacks or None, reset_num_timesteps=True)
    if checkpoint is not None:
        checkpoint(model, "last", model.num_timesteps)
    return TD3Run(model=model, demo_transitions=n_demo, demo_mismatches=mismatches, bc_loss=bc_loss)


def _stop_callback(should_stop: Callable[[], bool] | None):
    """An SB3 callback ending ``learn`` once ``should_stop()`` is true (None without one)."""
    if should_stop is None:
        return None
    from stable_baselines3.common.callbacks import BaseCallback

    class StopWhen(BaseCallback):
        def _on_step(self) -> bool:
            return not should_stop()

    return StopWhen()
