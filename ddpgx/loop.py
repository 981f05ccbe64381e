"""Training and evaluation loops over gymnasium environments, written with the pure functions only.

This is the library's main job in its plainest form: act (one jitted call), step the environments on the host,
then add the transitions and update (one more jitted call with replay and train state donated). Vectorised
environments run in gymnasium's ``SAME_STEP`` autoreset mode, so each step's transition carries the true final
observation of a finished episode (for bootstrapping a truncation) and no transition is recorded from a reset.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import gymnasium
import jax
import numpy as np

from ddpgx import core, replay, spaces
from ddpgx.config import DDPGConfig
from ddpgx.noise import OrnsteinUhlenbeckNoise
from ddpgx.types import Transition


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """What the environment loop decides (the algorithm's own settings are in :class:`DDPGConfig`).

    Defaults are skrl's Pendulum-v1 DDPG example: 15,000 timesteps, batch 100, OU noise (theta 0.15, sigma 0.1),
    100 random timesteps and 100 steps before learning starts, a replay memory of 15,000 transitions.
    """

    env_id: str = "Pendulum-v1"
    timesteps: int = 15_000
    num_envs: int = 1
    seed: int = 0
    learning_starts: int = 100
    memory_size: int = 15_000
    log_interval: int = 1_000  # timesteps between progress lines (0: silent)

    def __post_init__(self):
        for name in ("timesteps", "num_envs", "memory_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid: expected an integer >= 1")
        for name in ("learning_starts", "log_interval", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r} is invalid: expected an integer >= 0")


def pendulum_config() -> DDPGConfig:
    """skrl's Pendulum-v1 example settings for the algorithm."""
    return DDPGConfig(
        batch_size=100,
        discount_factor=0.99,
        polyak=0.005,
        learning_rate=1e-3,
        random_timesteps=100,
        exploration_noise=OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.1, base_scale=1.0),
    )


def make_env(env_id: str, num_envs: int, seed: Optional[int] = None) -> gymnasium.vector.VectorEnv:
    """A synchronous vector environment in ``SAME_STEP`` autoreset mode."""
    try:
        return gymnasium.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
        )
    except gymnasium.error.Error as error:
        raise ValueError(f"env_id={env_id!r} could not be made by gymnasium: {error}") from error


def true_next_observations(next_obs: Any, infos: dict, done: np.ndarray) -> Any:
    """Replaces the reset observation of finished environments by their final observation."""
    if not np.any(done):
        return next_obs
    final, mask = infos["final_obs"], infos["_final_obs"]

    def patch(array, key=None):
        array = np.array(array, copy=True)
        for i in np.nonzero(mask)[0]:
            array[i] = final[i] if key is None else spaces.get_path(final[i], key, "final_obs")
        return array

    if isinstance(next_obs, dict):
        return _map_dict(next_obs, patch)
    return patch(next_obs)


def _map_dict(tree, fn, path=()):
    return {k: _map_dict(v, fn, path + (k,)) if isinstance(v, dict) else fn(v, path + (k,)) for k, v in tree.items()}


def train(
    loop: LoopConfig = LoopConfig(),
    config: Optional[DDPGConfig] = None,
    *,
    log: Callable[[str], None] = print,
) -> tuple[core.TrainState, dict[str, Any]]:
    """Trains DDPG on a gymnasium environment; returns the train state and a summary (episode returns, timings)."""
    config = config or pendulum_config()
    env = make_env(loop.env_id, loop.num_envs)
    try:
        ts = core.init(jax.random.key(loop.seed), config, env.single_observation_space, env.single_action_space,
                       num_envs=loop.num_envs)
        obs, _ = env.reset(seed=loop.seed)
        example = Transition(
            observations=jax.tree.map(lambda x: np.asarray(x[0], np.float32), obs),
            actions=np.zeros(env.single_action_space.shape, np.float32),
            rewards=np.float32(0),
            next_observations=jax.tree.map(lambda x: np.asarray(x[0], np.float32), obs),
            terminated=np.bool_(False),
        )
        buffer = replay.init(loop.memory_size, example)
        episode_starts = np.ones(loop.num_envs, bool)
        returns, running = [], np.zeros(loop.num_envs)
        metrics = None
        start = time.perf_counter()
        for t in range(loop.timesteps):
            actions, ts, _ = core.act(ts, obs, timestep=t, timesteps=loop.timesteps, episode_starts=episode_starts)
            actions = np.asarray(actions)
            next_obs, rewards, terminated, truncated, infos = env.step(actions)
            done = np.logical_or(terminated, truncated)
            transition = Transition(
                observations=obs, actions=actions, rewards=np.asarray(rewards, np.float32),
                next_observations=true_next_observations(next_obs, infos, done), terminated=np.asarray(terminated),
            )
            if t >= loop.learning_starts:
                ts, buffer, metrics = core.add_and_update(ts, buffer, transition)
            else:
                buffer = replay.add(buffer, transition)
            running += rewards
            returns.extend(running[done].tolist())
            running[done] = 0.0
            obs, episode_starts = next_obs, done
            if loop.log_interval and (t + 1) % loop.log_interval == 0:
                recent = f"{np.mean(returns[-10:]):9.2f}" if returns else "      n/a"
                loss = f"{float(metrics['critic_loss']):.4f}" if metrics is not None else "n/a"
                rate = (t + 1) * loop.num_envs / (time.perf_counter() - start)
                log(f"timestep {t + 1:>7}/{loop.timesteps}  return(last 10) {recent}  critic loss {loss}  "
                    f"{rate:7.0f} env steps/s")
        jax.block_until_ready(ts)
        seconds = time.perf_counter() - start
    finally:
        env.close()
    return ts, {"episode_returns": returns, "train_seconds": seconds,
                "env_steps_per_second": loop.timesteps * loop.num_envs / seconds}


def evaluate(ts: core.TrainState, env_id: str, episodes: int = 10, seed: int = 10_000) -> list[float]:
    """Returns of ``episodes`` episodes with the deterministic policy (no exploration noise)."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes={episodes!r} is invalid: expected an integer >= 1")
    env = make_env(env_id, 1)
    returns = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                actions, _, _ = core.act(ts, obs, explore=False)
                obs, reward, terminated, truncated, _ = env.step(np.asarray(actions))
                total += float(reward[0])
                done = bool(terminated[0] or truncated[0])
            returns.append(total)
    finally:
        env.close()
    return returns
