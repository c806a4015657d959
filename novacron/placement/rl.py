"""RL placement policies beyond SB3's MaskablePPO: a masked DQN and fast masked inference.

Masked DQN
    A small deep Q-network (Mnih et al. 2015, with the double-DQN target of van
    Hasselt et al. 2016) for environments that expose ``action_masks()`` like
    ``novacron/Placement-v0``. The mask is applied everywhere an action is chosen:

    * acting: the greedy action is the argmax of Q over *allowed* actions, and
      epsilon-exploration draws uniformly among allowed actions only;
    * learning: the replay buffer stores the mask of the *next* state, and the
      bootstrap target ``r + gamma * (1 - done) * Q_target(s', a*)`` takes
      ``a*`` (and the max) over the next state's allowed actions only, so a
      never-executable action cannot inflate the target.

    Its ``predict(obs, action_masks=..., deterministic=True)`` mirrors SB3's so
    it drops into the same evaluation loops; ``save`` / ``load`` use a
    ``torch.save`` file (config + weights).

    Options: ``arch="host_scoring"`` uses :class:`HostScoringQNet` (a dueling
    network, Wang et al. 2016, whose advantages come from the permutation-
    equivariant host scorer below); demonstrations (transitions of a teacher
    heuristic, flagged ``demo``) can be mixed into every batch with the
    large-margin loss of DQfD (Hester et al. 2018), itself taken over the
    *current* state's allowed actions only (:func:`large_margin_loss`).

Host-scoring policy
    :func:`host_scoring_policy` is a MaskablePPO policy class whose actor scores
    every host with one shared MLP (host features + task features -> logit) and
    the defer action from pooled host embeddings (:class:`HostScoringExtractor`):
    slot order does not matter, and what it learns about one host applies to all.

Fast inference
    :class:`FastMaskedPolicy` wraps a trained MaskablePPO (or a :class:`MaskedDQN`):
    it keeps only the actor path (features -> policy MLP -> action logits) and
    picks the argmax of the masked logits, skipping SB3's per-call
    preprocessing, distribution objects and value head. The MLP runs as a few
    numpy matrix products on copies of the weights (about 6x faster than a
    ``torch.no_grad`` forward for a single observation), and so does the
    host-scoring actor; other architectures fall back to the torch forward. For
    MaskablePPO its choice equals ``model.predict(obs, action_masks=mask,
    deterministic=True)`` (the mode of the masked categorical).

No clock is read here (protocol code rule); callers time decisions themselves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# ---------------------------------------------------------------------------- masked Q helpers


def masked_argmax(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Index of the largest value among allowed entries, per row (``mask`` is boolean)."""
    return values.masked_fill(~mask, -torch.inf).argmax(dim=-1)


def masked_max(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Largest value among allowed entries, per row; 0 for a row with nothing allowed."""
    best = values.masked_fill(~mask, -torch.inf).max(dim=-1).values
    return torch.where(mask.any(dim=-1), best, torch.zeros_like(best))


def td_targets(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    next_q_target: torch.Tensor,
    next_mask: torch.Tensor,
    gamma: float,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bootstrap targets ``r + gamma (1 - done) Q'(s', a*)`` with ``a*`` restricted to ``next_mask``.

    Plain DQN takes ``max`` of the target network over allowed actions; with
    ``next_q_online`` (double DQN) the online network picks the allowed argmax
    and the target network evaluates it.
    """
    if next_q_online is None:
        value = masked_max(next_q_target, next_mask)
    else:
        choice = masked_argmax(next_q_online, next_mask)
        value = next_q_target.gather(1, choice.unsqueeze(1)).squeeze(1)
        value = torch.where(next_mask.any(dim=-1), value, torch.zeros_like(value))
    return rewards + gamma * (1.0 - dones) * value


def large_margin_loss(
    q: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor, margin: float
) -> torch.Tensor:
    """DQfD's supervised loss ``max_{a allowed} [Q(s,a) + margin 1(a != a_E)] - Q(s,a_E)``, per row.

    Zero when the demonstrated action ``a_E`` beats every other *allowed* action by
    at least ``margin``; masked actions never count, however large their Q.
    """
    bonus = torch.full_like(q, float(margin))
    bonus.scatter_(1, actions.unsqueeze(1), 0.0)
    top = (q + bonus).masked_fill(~mask, -torch.inf).max(dim=-1).values
    return top - q.gather(1, actions.unsqueeze(1)).squeeze(1)


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int, activation=nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), activation()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------- replay buffer


class MaskedReplayBuffer:
    """Uniform replay of ``(s, mask(s), a, r, s', mask(s'), done, demo)`` transitions in a ring buffer.

    ``mask(s)`` is needed only by the large-margin loss (default: all allowed);
    ``demo`` flags a teacher's transition.
    """

    def __init__(self, capacity: int, obs_dim: int, n_actions: int) -> None:
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.masks = np.ones((self.capacity, n_actions), dtype=bool)
        self.demo = np.zeros(self.capacity, dtype=bool)
        self.next_obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.dones = np.zeros(self.capacity, dtype=np.float32)
        self.next_masks = np.zeros((self.capacity, n_actions), dtype=bool)
        self.size = 0
        self._pos = 0

    def add(
        self, obs, action: int, reward: float, next_obs, next_mask, done: bool, mask=None, demo: bool = False
    ) -> None:
        i = self._pos
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.next_masks[i], self.dones[i] = next_obs, next_mask, float(done)
        self.masks[i] = True if mask is None else mask
        self.demo[i] = demo
        self._pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        idx = rng.integers(0, self.size, size=batch_size)
        return {
            "obs": torch.from_numpy(self.obs[idx]),
            "masks": torch.from_numpy(self.masks[idx]),
            "demo": torch.from_numpy(self.demo[idx]),
            "actions": torch.from_numpy(self.actions[idx]),
            "rewards": torch.from_numpy(self.rewards[idx]),
            "next_obs": torch.from_numpy(self.next_obs[idx]),
            "next_masks": torch.from_numpy(self.next_masks[idx]),
            "dones": torch.from_numpy(self.dones[idx]),
        }


def concat_batches(*batches: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One batch from several (e.g. agent and demonstration samples)."""
    return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}


# ---------------------------------------------------------------------------- masked DQN


@dataclass
class DQNConfig:
    hidden: tuple[int, ...] = (256, 256)
    learning_rate: float = 5e-4
    gamma: float = 0.99
    buffer_size: int = 100_000
    batch_size: int = 64
    learning_starts: int = 1_000
    train_freq: int = 1
    target_update_interval: int = 1_000
    exploration_fraction: float = 0.3
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.02
    double: bool = True
    max_grad_norm: float = 10.0
    seed: int = 0
    #: "mlp" (flat MLP over the observation) or "host_scoring" (:class:`HostScoringQNet`,
    #: whose width is ``hidden[0]``; needs ``max_hosts`` and ``host_features``)
    arch: str = "mlp"
    max_hosts: int = 0
    host_features: int = 0
    #: DQfD large-margin loss on demonstration rows: weight and margin (0: off)
    margin_weight: float = 0.0
    margin: float = 0.8
    #: share of each batch drawn from the demonstrations given to ``learn`` / ``pretrain``
    demo_fraction: float = 0.25


def q_network(config: DQNConfig, obs_dim: int, n_actions: int) -> nn.Module:
    """The Q-network ``config.arch`` asks for."""
    if config.arch == "mlp":
        return mlp(obs_dim, tuple(config.hidden), n_actions)
    if config.arch == "host_scoring":
        if config.max_hosts + 1 != n_actions:
            raise ValueError(f"host_scoring needs n_actions = max_hosts + 1, got {n_actions}")
        return HostScoringQNet(obs_dim, config.max_hosts, config.host_features, int(config.hidden[0]))
    raise ValueError(f"unknown Q-network arch {config.arch!r}")


class MaskedDQN:
    """DQN whose action choice and bootstrap target respect action masks (see the module doc)."""

    def __init__(self, obs_dim: int, n_actions: int, config: DQNConfig | None = None) -> None:
        self.config = config or DQNConfig()
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        torch.manual_seed(self.config.seed)
        self.q_net = q_network(self.config, self.obs_dim, self.n_actions)
        self.q_target = q_network(self.config, self.obs_dim, self.n_actions)
        self.q_target.load_state_dict(self.q_net.state_dict())
        self.q_target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=self.config.learning_rate)
        self.rng = np.random.default_rng(self.config.seed)
        self.num_timesteps = 0
        self.episode_returns: list[float] = []

    # ------------------------------------------------------------------ acting

    def act(self, obs: np.ndarray, mask: np.ndarray, epsilon: float = 0.0) -> int:
        """Epsilon-greedy among allowed actions (greedy when ``epsilon`` is 0)."""
        mask = np.asarray(mask, dtype=bool)
        if epsilon > 0.0 and self.rng.random() < epsilon:
            return int(self.rng.choice(np.flatnonzero(mask)))
        with torch.no_grad():
            q = self.q_net(torch.as_tensor(obs, dtype=torch.float32).reshape(1, -1))[0]
        return int(masked_argmax(q, torch.from_numpy(mask)))

    def predict(self, obs, action_masks=None, deterministic: bool = True, **_: Any):
        """SB3-style ``(action, None)``; stochastic prediction uses the final epsilon."""
        mask = np.ones(self.n_actions, dtype=bool) if action_masks is None else action_masks
        eps = 0.0 if deterministic else self.config.exploration_final_eps
        return self.act(obs, mask, eps), None

    def epsilon(self, step: int, total: int) -> float:
        c = self.config
        span = max(1.0, c.exploration_fraction * total)
        frac = min(1.0, step / span)
        return c.exploration_initial_eps + frac * (c.exploration_final_eps - c.exploration_initial_eps)

    # ------------------------------------------------------------------ learning

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        c = self.config
        with torch.no_grad():
            next_target = self.q_target(batch["next_obs"])
            next_online = self.q_net(batch["next_obs"]) if c.double else None
            target = td_targets(
                batch["rewards"], batch["dones"], next_target, batch["next_masks"], c.gamma, next_online
            )
        q_all = self.q_net(batch["obs"])
        q = q_all.gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        loss = nn.functional.smooth_l1_loss(q, target)
        demo = batch.get("demo")
        if c.margin_weight > 0 and demo is not None and bool(demo.any()):
            margin = large_margin_loss(q_all[demo], batch["actions"][demo], batch["masks"][demo], c.margin)
            loss = loss + c.margin_weight * margin.sum() / len(demo)
        return loss

    def sample(self, buffer: MaskedReplayBuffer | None, demos: MaskedReplayBuffer | None):
        """A training batch: ``demo_fraction`` of it from ``demos`` (when given), the rest from ``buffer``."""
        c = self.config
        n_demo = 0 if demos is None or demos.size == 0 else c.batch_size
        if n_demo and buffer is not None and buffer.size > 0:
            n_demo = int(round(c.demo_fraction * c.batch_size))
        parts = []
        if n_demo:
            parts.append(demos.sample(n_demo, self.rng))
        if c.batch_size - n_demo > 0:
            parts.append(buffer.sample(c.batch_size - n_demo, self.rng))
        return parts[0] if len(parts) == 1 else concat_batches(*parts)

    def pretrain(self, demos: MaskedReplayBuffer, steps: int, callback=None) -> MaskedDQN:
        """Learn from demonstrations only (DQfD's pre-training phase): TD + large-margin loss.

        ``callback(model, step)`` runs after every ``target_update_interval`` steps.
        """
        for step in range(1, int(steps) + 1):
            self.train_step(self.sample(None, demos))
            if step % self.config.target_update_interval == 0:
                self.q_target.load_state_dict(self.q_net.state_dict())
                if callback is not None:
                    callback(self, step)
        self.q_target.load_state_dict(self.q_net.state_dict())
        return self

    def train_step(self, batch: dict[str, torch.Tensor]) -> float:
        loss = self.loss(batch)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.q_net.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        return float(loss.detach())

    def learn(
        self,
        env,
        total_timesteps: int,
        *,
        reset_options=None,
        seed: int | None = None,
        on_episode=None,
        demos: MaskedReplayBuffer | None = None,
        callback=None,
    ) -> MaskedDQN:
        """Train for ``total_timesteps`` steps of ``env`` (which must have ``action_masks()``).

        ``reset_options`` is ``None``, a dict passed to every ``env.reset``, or a
        callable ``rng -> dict`` (e.g. to draw a load level per episode).
        ``on_episode(model, episode_return, info)`` is called after each episode.
        ``demos``: demonstration transitions mixed into every batch (see :meth:`sample`).
        ``callback(model, step)`` is called after every step; returning False stops training.
        """
        c = self.config
        buffer = MaskedReplayBuffer(c.buffer_size, self.obs_dim, self.n_actions)
        episode = 0

        def reset():
            options = reset_options(self.rng) if callable(reset_options) else reset_options
            ep_seed = None if seed is None else seed + episode
            return env.reset(seed=ep_seed, options=options)[0]

        obs, ep_return = reset(), 0.0
        mask = env.action_masks()
        for step in range(int(total_timesteps)):
            action = self.act(obs, mask, self.epsilon(step, total_timesteps))
            next_obs, reward, terminated, truncated, info = env.step(action)
            next_mask = env.action_masks()
            buffer.add(obs, action, reward, next_obs, next_mask, terminated, mask=mask)
            ep_return += reward
            self.num_timesteps += 1
            if step >= c.learning_starts and step % c.train_freq == 0:
                self.train_step(self.sample(buffer, demos))
            if step % c.target_update_interval == 0:
                self.q_target.load_state_dict(self.q_net.state_dict())
            if callback is not None and callback(self, step + 1) is False:
                break
            if terminated or truncated:
                self.episode_returns.append(ep_return)
                if on_episode is not None:
                    on_episode(self, ep_return, info)
                episode += 1
                obs, ep_return = reset(), 0.0
                mask = env.action_masks()
            else:
                obs, mask = next_obs, next_mask
        return self

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        config = asdict(self.config)
        config["hidden"] = list(config["hidden"])
        torch.save(
            {
                "kind": "masked_dqn",
                "obs_dim": self.obs_dim,
                "n_actions": self.n_actions,
                "config": config,
                "q_net": self.q_net.state_dict(),
                "num_timesteps": self.num_timesteps,
            },
            str(path),
        )

    @classmethod
    def load(cls, path: str | Path) -> MaskedDQN:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
        if data.get("kind") != "masked_dqn":
            raise ValueError(f"{path} is not a masked DQN model")
        config = DQNConfig(**{**data["config"], "hidden": tuple(data["config"]["hidden"])})
        model = cls(data["obs_dim"], data["n_actions"], config)
        model.q_net.load_state_dict(data["q_net"])
        model.q_target.load_state_dict(data["q_net"])
        model.num_timesteps = int(data["num_timesteps"])
        return model


# ---------------------------------------------------------------------------- host-scoring policy


class HostScoringExtractor(nn.Module):
    """Permutation-equivariant scorer for ``novacron/Placement-v0`` observations.

    One small MLP embeds every host slot together with the task features (shared
    weights across hosts, so what it learns about one host applies to all and the
    policy does not depend on slot order); a linear head turns each embedding
    into that host's logit. The defer logit comes from an MLP over the task
    features and the mean and max of the embeddings of present hosts. Output:
    ``[host logits (max_hosts), defer logit, pooled features]``; the policy's
    action head takes the first ``max_hosts + 1`` entries, the value head reads all.
    """

    def __init__(self, observation_space, max_hosts: int, host_features: int, hidden: int = 64) -> None:
        super().__init__()
        n_obs = int(observation_space.shape[0])
        self.max_hosts, self.host_features = int(max_hosts), int(host_features)
        self.task_features = n_obs - self.max_hosts * self.host_features
        if self.task_features <= 0:
            raise ValueError(f"observation of size {n_obs} is too small for {max_hosts} x {host_features}")
        self.pooled_dim = 2 * hidden + self.task_features
        self.features_dim = self.max_hosts + 1 + self.pooled_dim
        self.host_net = nn.Sequential(
            nn.Linear(self.host_features + self.task_features, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
        )
        self.host_score = nn.Linear(hidden, 1)
        self.defer_net = nn.Sequential(nn.Linear(self.pooled_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        for head in (self.host_score, self.defer_net[-1]):
            nn.init.orthogonal_(head.weight, gain=0.01)
            nn.init.zeros_(head.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch = obs.shape[0]
        split = self.max_hosts * self.host_features
        hosts = obs[:, :split].reshape(batch, self.max_hosts, self.host_features)
        task = obs[:, split:]
        x = torch.cat([hosts, task.unsqueeze(1).expand(batch, self.max_hosts, self.task_features)], dim=-1)
        emb = self.host_net(x)  # (batch, hosts, hidden), tanh in [-1, 1]
        present = hosts[..., :1]  # slot 0 of the host features is the presence flag
        mean = (emb * present).sum(dim=1) / present.sum(dim=1).clamp(min=1.0)
        top = (emb * present + (present - 1.0) * 2.0).max(dim=1).values
        pooled = torch.cat([mean, top, task], dim=-1)
        scores = self.host_score(emb).squeeze(-1)
        return torch.cat([scores, self.defer_net(pooled), pooled], dim=-1)


class HostScoringQNet(nn.Module):
    """Dueling Q-network ``Q(s, a) = V(s) + A(s, a)`` over :class:`HostScoringExtractor`.

    ``A`` is the extractor's per-host score and defer logit (so slot order does not
    matter and the greedy action is the argmax of ``A`` over allowed actions);
    ``V`` is an MLP over its pooled features. :meth:`load_scorer` copies a trained
    host-scoring actor (e.g. a MaskablePPO imitation policy) into ``A`` as a warm start.
    """

    def __init__(self, obs_dim: int, max_hosts: int, host_features: int, hidden: int = 64) -> None:
        super().__init__()
        from gymnasium import spaces

        space = spaces.Box(0.0, 1.0, shape=(int(obs_dim),), dtype=np.float32)
        self.scorer = HostScoringExtractor(space, max_hosts, host_features, hidden)
        self.out_features = self.scorer.max_hosts + 1
        width = 2 * hidden
        self.value = nn.Sequential(nn.Linear(self.scorer.pooled_dim, width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.scorer(obs)
        advantages, pooled = out[:, : self.out_features], out[:, self.out_features :]
        return self.value(pooled) + advantages

    def load_scorer(self, scorer: HostScoringExtractor) -> None:
        self.scorer.load_state_dict(scorer.state_dict())


class FirstN(nn.Module):
    """The first ``out_features`` entries of the input (the logits the extractor already made)."""

    def __init__(self, out_features: int) -> None:
        super().__init__()
        self.out_features = int(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : self.out_features]


def host_scoring_policy():
    """The MaskablePPO policy class using :class:`HostScoringExtractor` (sb3-contrib imported lazily)."""
    global _HOST_SCORING_POLICY
    if _HOST_SCORING_POLICY is None:
        from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
        from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

        class _Extractor(BaseFeaturesExtractor):
            def __init__(self, observation_space, max_hosts: int, host_features: int, hidden: int = 64):
                inner = HostScoringExtractor(observation_space, max_hosts, host_features, hidden)
                super().__init__(observation_space, features_dim=inner.features_dim)
                self.inner = inner

            def forward(self, obs):
                return self.inner(obs)

        class HostScoringPolicy(MaskableActorCriticPolicy):
            """Actor: equivariant host logits + defer logit; critic: MLP over the pooled features."""

            def __init__(self, *args, max_hosts: int, host_features: int, hidden: int = 64, **kwargs):
                kwargs.setdefault("net_arch", {"pi": [], "vf": [128, 128]})
                kwargs["features_extractor_class"] = _Extractor
                kwargs["features_extractor_kwargs"] = {
                    "max_hosts": max_hosts,
                    "host_features": host_features,
                    "hidden": hidden,
                }
                super().__init__(*args, **kwargs)

            def _build(self, lr_schedule) -> None:
                super()._build(lr_schedule)
                self.action_net = FirstN(self.action_space.n)
                for head in (
                    self.features_extractor.inner.host_score,
                    self.features_extractor.inner.defer_net[-1],
                ):
                    nn.init.orthogonal_(head.weight, gain=0.01)
                    nn.init.zeros_(head.bias)
                self.optimizer = self.optimizer_class(
                    self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
                )

        HostScoringPolicy.__module__ = __name__
        HostScoringPolicy.__qualname__ = "HostScoringPolicy"
        _Extractor.__module__ = __name__
        _Extractor.__qualname__ = "HostScoringFeatures"
        HostScoringPolicy._extractor_class = _Extractor
        _HOST_SCORING_POLICY = HostScoringPolicy
    return _HOST_SCORING_POLICY


_HOST_SCORING_POLICY = None


# ---------------------------------------------------------------------------- fast inference


def numpy_layers(net: nn.Module):
    """``[(weight.T, bias, activation)]`` of a plain MLP as numpy arrays, or None if ``net`` has
    other modules (see :func:`numpy_forward`)."""
    layers: list[list] = []
    for module in net.modules():
        if isinstance(module, nn.Sequential | nn.Flatten) or type(module).__name__ == "FlattenExtractor":
            continue
        if isinstance(module, nn.Linear):
            weight = np.ascontiguousarray(module.weight.detach().numpy().T, dtype=np.float32)
            layers.append([weight, module.bias.detach().numpy().astype(np.float32), None])
        elif isinstance(module, nn.Tanh | nn.ReLU) and layers and layers[-1][2] is None:
            layers[-1][2] = np.tanh if isinstance(module, nn.Tanh) else _relu
        else:
            return None
    return [tuple(layer) for layer in layers] or None


def numpy_forward(layers, obs: np.ndarray) -> np.ndarray:
    """One observation through :func:`numpy_layers`' MLP: for a single decision, numpy is many
    times faster than a torch call (the < 1 ms per placement target)."""
    x = np.asarray(obs, dtype=np.float32).reshape(-1)
    for weight, bias, activation in layers:
        x = x @ weight + bias
        if activation is not None:
            x = activation(x)
    return x


class FastMaskedPolicy:
    """Greedy masked action from a trained MaskablePPO or :class:`MaskedDQN`, with minimal overhead.

    For MaskablePPO the network is the actor path only (features extractor,
    policy MLP, action head); the action is the argmax of the logits over
    allowed actions, which is the mode of SB3's masked categorical, i.e. what
    ``model.predict(..., deterministic=True)`` returns. Single observations only.
    """

    def __init__(self, model) -> None:
        if isinstance(model, MaskedDQN) and isinstance(model.q_net, HostScoringQNet):
            # V(s) is the same for every action: the greedy action is the argmax of the advantages
            self.net = model.q_net.eval()
            self.n_actions = model.q_net.out_features
            self._host_scoring, self._layers = _NumpyHostScoring(model.q_net.scorer), None
            self.logits(np.zeros(model.obs_dim, dtype=np.float32))
            return
        if isinstance(model, MaskedDQN):
            net = model.q_net
        else:
            policy = model.policy
            extractor = policy.features_extractor if policy.share_features_extractor else None
            extractor = extractor or policy.pi_features_extractor
            net = nn.Sequential(extractor, policy.mlp_extractor.policy_net, policy.action_net)
        self.net = net.eval()
        self.n_actions = int(net[-1].out_features)
        scorer = getattr(net[0], "inner", None)
        self._host_scoring = _NumpyHostScoring(scorer) if isinstance(scorer, HostScoringExtractor) else None
        self._layers = None if self._host_scoring else numpy_layers(self.net)
        space = getattr(model, "observation_space", None)
        if space is not None and getattr(space, "shape", None):
            n_in = int(np.prod(space.shape))
        else:
            n_in = next(m.in_features for m in net.modules() if isinstance(m, nn.Linear))
        self.logits(np.zeros(n_in, dtype=np.float32))  # warm up: first calls pay one-off set-up costs

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """Action logits of one observation (Q-values for an MLP DQN, advantages for a dueling one)."""
        if self._host_scoring is not None:
            return self._host_scoring(obs)[: self.n_actions]
        if self._layers is None:
            with torch.no_grad():
                return self.net(torch.as_tensor(obs, dtype=torch.float32).reshape(1, -1))[0].numpy()
        return numpy_forward(self._layers, obs)

    def predict(self, obs, action_masks=None, deterministic: bool = True, **_: Any):
        """SB3-style ``(action, None)``; always greedy (``deterministic`` is accepted and ignored)."""
        out = self.logits(obs)
        if action_masks is not None:
            out = np.where(action_masks, out, -np.inf)
        return int(np.argmax(out)), None


class _NumpyHostScoring:
    """:class:`HostScoringExtractor`'s logits for one observation, as numpy products (no torch call)."""

    def __init__(self, net: HostScoringExtractor) -> None:
        def weights(layer: nn.Linear):
            w = np.ascontiguousarray(layer.weight.detach().numpy().T, dtype=np.float32)
            return w, layer.bias.detach().numpy().astype(np.float32)

        self.max_hosts, self.host_features = net.max_hosts, net.host_features
        self.h1, self.h2 = weights(net.host_net[0]), weights(net.host_net[2])
        self.score = weights(net.host_score)
        self.d1, self.d2 = weights(net.defer_net[0]), weights(net.defer_net[2])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32).reshape(-1)
        split = self.max_hosts * self.host_features
        hosts = obs[:split].reshape(self.max_hosts, self.host_features)
        task = obs[split:]
        x = np.concatenate([hosts, np.broadcast_to(task, (self.max_hosts, len(task)))], axis=1)
        emb = np.tanh(np.tanh(x @ self.h1[0] + self.h1[1]) @ self.h2[0] + self.h2[1])
        present = hosts[:, :1]
        mean = (emb * present).sum(axis=0) / max(float(present.sum()), 1.0)
        top = (emb * present + (present - 1.0) * 2.0).max(axis=0)
        pooled = np.concatenate([mean, top, task])
        scores = emb @ self.score[0][:, 0] + self.score[1][0]
        defer = np.tanh(pooled @ self.d1[0] + self.d1[1]) @ self.d2[0] + self.d2[1]
        return np.concatenate([scores, defer])


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


MODEL_KINDS = ("maskable_ppo", "masked_dqn")


def load_model(kind: str, path: str | Path):
    """A trained model: ``maskable_ppo`` (SB3 .zip) or ``masked_dqn`` (torch file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file {path}")
    if kind == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO.load(str(path), device="cpu")
    if kind == "masked_dqn":
        return MaskedDQN.load(path)
    raise ValueError(f"unknown model kind {kind!r}; choose from {', '.join(MODEL_KINDS)}")


def __getattr__(name: str):
    # the SB3 classes are built on first use (sb3-contrib is imported lazily); exposing them as
    # module attributes lets pickle find them by reference when a saved model is loaded
    if name == "HostScoringPolicy":
        return host_scoring_policy()
    if name == "HostScoringFeatures":
        return host_scoring_policy()._extractor_class
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
