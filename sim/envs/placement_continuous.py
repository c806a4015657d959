"""``novacron/PlacementContinuous-v0``: ``novacron/Placement-v0`` with a continuous action, for TD3.

The action is a point of ``Box(-1, 1, (6,))`` that parametrises a host-scoring rule
(:mod:`novacron.placement.relaxation`: an RTT price on a log scale, weights on the free
shares left after placement and on the Tetris alignment, and a defer gate); the wrapper
turns it into the discrete action of the underlying environment with
:func:`~novacron.placement.relaxation.choose`, which only ever picks a host the mask
allows (or defers). Observation, reward (the primary objective), episodes and
determinism under ``reset(seed=...)`` are the underlying environment's, unchanged;
``info["placement_action"]`` is the discrete action taken.

Why a wrapper and not a second environment: the simulator, the observation and the
reward stay in one place, so a result of this environment is a result of
``novacron/Placement-v0`` (a trained actor is evaluated there, through the same rule).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from novacron.placement.relaxation import ACTION_DIM, choose

from .placement import HOST_FEATURES, PlacementEnv


class PlacementContinuousEnv(gym.Wrapper):
    """Continuous-action placement (see the module doc).

    ``PlacementContinuousEnv(env)`` wraps a :class:`PlacementEnv`;
    ``PlacementContinuousEnv(**kwargs)`` (what ``gymnasium.make`` calls) builds one
    from ``kwargs``.
    """

    def __init__(self, env: PlacementEnv | None = None, **kwargs: Any) -> None:
        if env is None:
            env = PlacementEnv(**kwargs)
        elif kwargs:
            raise TypeError("pass either an environment or its keyword arguments, not both")
        super().__init__(env)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self._obs: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        return obs, info

    def step(self, action):
        if self._obs is None:
            raise RuntimeError("call reset() first")
        discrete = self.discrete_action(action)
        obs, reward, terminated, truncated, info = self.env.step(discrete)
        self._obs = obs
        info["placement_action"] = discrete
        return obs, reward, terminated, truncated, info

    def discrete_action(self, action) -> int:
        """The underlying environment's action that ``action`` picks in the current state."""
        if self._obs is None:
            raise RuntimeError("call reset() first")
        return choose(self._obs, self.env.unwrapped.action_masks(), action, len(HOST_FEATURES))

    def action_masks(self) -> np.ndarray:
        """The underlying environment's mask (hosts where the current task fits, and defer)."""
        return self.env.unwrapped.action_masks()
