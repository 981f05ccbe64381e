"""``wrap_env``: gymnasium environments, single or vectorised, as the batched interface the agents and trainer use.

The wrapped environment always looks vectorised (``num_envs`` rows, ``[num_envs, 1]`` rewards and flags, like
skrl's wrappers) and always resets finished environments *in the same step*: ``step`` returns the first observation
of the new episode for those environments and puts their true final observation in ``infos["final_obs"]`` (masked
by ``infos["_final_obs"]``; the final state of an environment with a ``state()`` in ``infos["final_state"]``),
which is gymnasium's ``SAME_STEP`` autoreset. A vector environment in gymnasium's
default ``NEXT_STEP`` mode (or ``DISABLED``) is converted with ``reset(options={"reset_mask": done})``, so no step is
ever spent on an autoreset and no transition is recorded from it; a single ``gymnasium.Env`` is reset by the
wrapper. The agents bootstrap truncated episodes from ``final_obs``.

What the wrapper returns is its own: many environments (and gymnasium's ``SyncVectorEnv(copy=False)``) hand back
an internal buffer that the next ``step`` or ``reset`` overwrites in place, which would make a recorded ``s`` and
``s'`` the same array, or a truncated episode's final observation the next episode's first. The wrapper copies each
observation (and state) once, when it receives it, before anything else can change it.

This module is framework-free (NumPy), shared by ``ddpgx`` and ``ddpgx_torch``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

__all__ = ["GymnasiumWrapper", "wrap_env"]


def _stack(items: list[Any]) -> Any:
    if isinstance(items[0], dict):
        return {k: _stack([item[k] for item in items]) for k in items[0]}
    return np.stack([np.asarray(item) for item in items])


def _copy(tree: Any) -> Any:
    """An owned copy of an observation (array or dict of arrays)."""
    if isinstance(tree, dict):
        return {k: _copy(v) for k, v in tree.items()}
    return np.array(tree, copy=True)


def _row(tree: Any, i: int) -> Any:
    return {k: _row(v, i) for k, v in tree.items()} if isinstance(tree, dict) else tree[i]


def _set_rows(tree: Any, rows: np.ndarray, values: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _set_rows(tree[k], rows, values[k]) for k in tree}
    tree = np.array(tree, copy=True)
    tree[rows] = np.asarray(values)[rows]
    return tree


class GymnasiumWrapper:
    """A gymnasium ``Env`` or ``VectorEnv`` with skrl's wrapper interface and same-step autoreset."""

    def __init__(self, env: Any) -> None:
        self._env = env
        self._vector = isinstance(env, gymnasium.vector.VectorEnv)
        if self._vector:
            self.num_envs = int(env.num_envs)
            self.observation_space = env.single_observation_space
            self.action_space = env.single_action_space
            mode = env.metadata.get("autoreset_mode", gymnasium.vector.AutoresetMode.NEXT_STEP)
            self._same_step = str(getattr(mode, "value", mode)) == gymnasium.vector.AutoresetMode.SAME_STEP.value
        elif isinstance(env, gymnasium.Env):
            self.num_envs = 1
            self.observation_space = env.observation_space
            self.action_space = env.action_space
            self._same_step = False
        else:
            raise ValueError(f"env={env!r} is invalid: expected a gymnasium.Env or gymnasium.vector.VectorEnv")
        self.state_space = getattr(env, "state_space", None)
        self.device = "cpu"
        if not isinstance(self.action_space, gymnasium.spaces.Box):
            raise ValueError(f"the environment's action space {self.action_space} is not supported: DDPG needs a Box")

    @property
    def env(self) -> Any:
        """The wrapped gymnasium environment."""
        return self._env

    def reset(self, *, seed: int | None = None) -> tuple[Any, dict]:
        """Resets all environments; observations ``[num_envs, ...]``."""
        obs, infos = self._env.reset(seed=seed)
        return (_copy(obs), infos) if self._vector else (_stack([obs]), infos)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Steps with ``[num_envs, *action_shape]`` actions; see the module docstring for resets."""
        actions = np.asarray(actions)
        expected = (self.num_envs,) + tuple(self.action_space.shape)
        if actions.shape != expected and actions.shape != (self.num_envs, int(np.prod(self.action_space.shape))):
            raise ValueError(f"actions have shape {actions.shape}, expected {expected}")
        actions = actions.reshape(expected).astype(self.action_space.dtype, copy=False)
        if self._vector:
            obs, rewards, terminated, truncated, infos = self._env.step(actions)
            obs = _copy(obs)  # before the reset below (or the next step) can overwrite the environment's buffer
            done = np.logical_or(terminated, truncated)
            if not self._same_step and done.any():
                final = obs
                obs, reset_infos = self._env.reset(options={"reset_mask": np.asarray(done, np.bool_)})
                obs = _copy(obs)
                infos = dict(infos)
                infos["final_obs"] = np.array([_row(final, i) if done[i] else None for i in range(self.num_envs)],
                                              dtype=object)
                infos["_final_obs"] = np.asarray(done, np.bool_)
        else:
            obs, reward, term, trunc, infos = self._env.step(actions[0])
            rewards, terminated, truncated = np.array([reward]), np.array([term]), np.array([trunc])
            if term or trunc:
                final = _copy(obs)
                if self.state_space is not None and callable(getattr(self._env, "state", None)):
                    infos = dict(infos)
                    infos["final_state"] = np.array([None], dtype=object)
                    infos["final_state"][0] = np.asarray(self._env.state())
                    infos["_final_state"] = np.array([True])
                obs, _ = self._env.reset()
                infos = dict(infos)
                infos["final_obs"] = np.array([final] if not isinstance(final, dict) else [final], dtype=object)
                infos["_final_obs"] = np.array([True])
            obs = _stack([obs])
        return (obs, np.asarray(rewards, np.float32).reshape(-1, 1), np.asarray(terminated, bool).reshape(-1, 1),
                np.asarray(truncated, bool).reshape(-1, 1), infos)

    def state(self) -> Any:
        """The privileged state (skrl 2.x); None for gymnasium environments without one."""
        state = getattr(self._env, "state", None)
        if not callable(state) or self.state_space is None:
            return None
        return _copy(state()) if self._vector else _stack([state()])

    def render(self, *args: Any, **kwargs: Any) -> Any:
        return self._env.render(*args, **kwargs)

    def close(self) -> None:
        self._env.close()


def true_next_observations(next_observations: Any, infos: Any, key: str = "final_obs") -> Any:
    """``next_observations`` with the rows of finished environments replaced by ``infos["final_obs"]`` (or by
    ``infos[key]``: the wrapper also reports ``"final_state"`` for environments with a state)."""
    if not isinstance(infos, dict) or f"_{key}" not in infos:
        return next_observations
    mask = np.asarray(infos[f"_{key}"], bool)
    if not mask.any():
        return next_observations
    final = infos[key]
    rows = np.nonzero(mask)[0]
    values = _stack([final[i] if mask[i] else _row(next_observations, i) for i in range(len(mask))])
    return _set_rows(next_observations, rows, values)


def wrap_env(env: Any, wrapper: str = "auto", verbose: bool = True) -> GymnasiumWrapper:
    """Wraps a gymnasium environment (skrl's ``wrap_env``); ``wrapper`` may be ``"auto"`` or ``"gymnasium"``."""
    if isinstance(env, GymnasiumWrapper):
        return env
    if wrapper not in ("auto", "gymnasium"):
        raise ValueError(f"wrapper={wrapper!r} is not supported: ddpgx wraps gymnasium environments ('auto' or "
                         "'gymnasium')")
    return GymnasiumWrapper(env)
