"""Exploration through the agent path: the Ornstein-Uhlenbeck process as the trainer drives it, and the presets' OU.

The agent precomputes each next action inside its fused update (``ddpgx.core.add_update_act``) once learning has
started; these tests check that the process it applies there still follows its recursion, step after step, and
restarts only where an episode does. The MountainCarContinuous preset's OU parameters are checked against
Stable-Baselines3's own ``OrnsteinUhlenbeckActionNoise`` (what RL Zoo's tuned hyperparameters were found with).
"""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddpgx import DDPG
from ddpgx.cli import presets
from ddpgx.core import ddpg as core
from ddpgx.core import networks
from ddpgx.core import noise as noise_lib
from ddpgx.envs import wrap_env
from ddpgx.memories import RandomMemory
from ddpgx.noises import OrnsteinUhlenbeckNoise
from ddpgx.trainers import SequentialTrainer

NO_WRITES = {"write_interval": 0, "checkpoint_interval": 0}


def _recording_agent(env, **cfg):
    """A small DDPG agent whose ``act`` records, per call, the OU state and the noise actually added."""
    low = tuple(np.asarray(env.action_space.low, float).reshape(-1).tolist())
    high = tuple(np.asarray(env.action_space.high, float).reshape(-1).tolist())
    models = {"policy": networks.DeterministicPolicy(low, high, tuple(env.action_space.shape), (16,)),
              "critic": networks.QFunction((16,)), "target_policy": None, "target_critic": None}
    agent = DDPG(models=models, memory=RandomMemory(memory_size=64, num_envs=env.num_envs),
                 cfg={"batch_size": 4, "experiment": NO_WRITES, **cfg}, observation_space=env.observation_space,
                 action_space=env.action_space, seed=0)
    states, added = [], []
    act = agent.act

    def recording_act(observations, states_=None, *, timestep, timesteps):
        actions, info = act(observations, states_, timestep=timestep, timesteps=timesteps)
        deterministic, _, _ = core.act(agent.train_state, np.asarray(observations, np.float32), explore=False)
        states.append(np.asarray(agent.train_state.noise_state)[0, 0])
        added.append(np.asarray(actions).reshape(-1)[0] - np.asarray(deterministic).reshape(-1)[0])
        return actions, info

    agent.act = recording_act
    return agent, states, added


@pytest.mark.parametrize("learning_starts", [1000, 2])  # acting alone, and through the fused update-and-act
def test_ou_process_follows_its_recursion_through_the_trainer_and_restarts_only_at_episode_starts(learning_starts):
    # Driving noise N(1, 0): x <- (1 - theta) x + sigma exactly, so the process is 1, 1.5, 1.75, ... from a reset.
    env = wrap_env(gymnasium.make("Pendulum-v1", max_episode_steps=5))
    agent, states, added = _recording_agent(
        env, learning_starts=learning_starts, exploration_noise=OrnsteinUhlenbeckNoise,
        exploration_noise_kwargs={"theta": 0.5, "sigma": 1.0, "base_scale": 0.5, "mean": 1.0, "std": 0.0})
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 12, "headless": True, "seed": 0}).train()
    within_episode = [2 - 2.0 ** -k for k in range(5)]  # episodes of 5 steps: restarts at steps 5 and 10
    expected = np.array(within_episode + within_episode + within_episode[:2], np.float32)
    np.testing.assert_allclose(states, expected, rtol=1e-6)
    # what reaches the environment is the policy's action plus base_scale times the process (Pendulum: bounds +-2)
    np.testing.assert_allclose(added, 0.5 * expected, rtol=1e-4, atol=1e-5)


def test_slow_ou_process_keeps_its_memory_through_the_fused_update_and_act():
    # The MountainCarContinuous preset's process (theta 0.0015, sigma 0.05) with real N(0, 1) draws, 400 steps of one
    # environment, updates from step 10: the increments x_{t+1} - (1 - theta) x_t are the independent draws
    # sigma * eps, and the process itself wanders with lag-1 autocorrelation 1 - theta. A process restarted at every
    # step would have a lag-1 autocorrelation near 0 and a spread of sigma only.
    kwargs = presets.PRESETS["MountainCarContinuous-v0"]["cfg.exploration_noise_kwargs"]
    env = wrap_env(gymnasium.make("MountainCarContinuous-v0"))
    agent, states, _ = _recording_agent(env, learning_starts=10, random_timesteps=0,
                                        exploration_noise=OrnsteinUhlenbeckNoise, exploration_noise_kwargs=kwargs)
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 400, "headless": True, "seed": 0}).train()
    x = np.asarray(states, np.float64)
    increments = x[1:] - (1 - kwargs["theta"]) * x[:-1]
    assert increments.std() == pytest.approx(kwargs["sigma"], rel=0.15)
    assert abs(np.corrcoef(increments[1:], increments[:-1])[0, 1]) < 0.2
    assert np.corrcoef(x[1:], x[:-1])[0, 1] > 0.9
    assert np.max(np.abs(x)) > 4 * kwargs["sigma"]


def test_mountain_car_preset_ou_equals_stable_baselines3_ou_with_rl_zoo_settings(monkeypatch):
    sb3_noise = pytest.importorskip("stable_baselines3.common.noise")
    kwargs = presets.PRESETS["MountainCarContinuous-v0"]["cfg.exploration_noise_kwargs"]
    ours = noise_lib.OrnsteinUhlenbeckNoise(**kwargs)
    # RL Zoo: noise_type ornstein-uhlenbeck, noise_std 0.5; SB3's OU defaults theta 0.15, dt 1e-2
    theirs = sb3_noise.OrnsteinUhlenbeckActionNoise(mean=np.zeros(1), sigma=0.5 * np.ones(1), theta=0.15, dt=1e-2)
    draws: list[np.ndarray] = []  # SB3 draws with np.random.normal: it is handed the same N(0, 1) values as ddpgx
    monkeypatch.setattr(np.random, "normal", lambda size=None: draws.pop().reshape(size))
    state = noise_lib.init_state(1, 1)
    key = jax.random.key(3)
    ours_values, theirs_values = [], []
    for _ in range(300):
        key, step_key = jax.random.split(key)
        draws.append(np.asarray(jax.random.normal(step_key, (1, 1), jnp.float32), np.float64))
        values, state = noise_lib.sample(ours, state, step_key, (1, 1))  # draws the same N(0, 1) from step_key
        ours_values.append(float(values[0, 0]))
        theirs_values.append(float(theirs()[0]))
    assert not draws
    np.testing.assert_allclose(ours_values, theirs_values, rtol=1e-4, atol=1e-5)  # float32 against float64
    assert np.std(ours_values[-100:]) > 0.1  # the process has wandered far beyond one step's sigma (0.05)
