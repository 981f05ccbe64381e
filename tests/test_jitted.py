"""The fully jitted loop (ddpgx.jitted): learning on Pendulum-v1, vmap over seeds and hyperparameters, one
compilation per sweep, time limits versus terminal states on a probe environment, host callbacks, bad input."""

from __future__ import annotations

import dataclasses
import glob
import io
import os

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import ddpgx
from ddpgx.core import jitted, networks
from ddpgx.cli import jitted_run, runner

gymnax = pytest.importorskip("gymnax")
from gymnax.environments import environment  # noqa: E402
from gymnax.environments import spaces as gymnax_spaces  # noqa: E402


def small_networks(hidden=(32, 32), low=-2.0, high=2.0):
    return dict(policy=networks.DeterministicPolicy((low,), (high,), (1,), hidden_sizes=hidden),
                critic=networks.QFunction(hidden_sizes=hidden))


def leaves(tree):
    out = []
    for x in jax.tree.leaves(tree):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        out.append(np.asarray(x, np.float64))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Pendulum-v1: the jitted loop and the gymnasium loop both solve it.


def gymnasium_returns(ts, episodes=10, seed=10_000):
    """Returns of the deterministic policy of a train state on gymnasium's Pendulum-v1 (not gymnax's)."""
    env = gymnasium.make("Pendulum-v1")
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            actions, _, _ = ddpgx.act(ts, obs[None], explore=False)
            obs, reward, terminated, truncated, _ = env.step(np.asarray(actions)[0])
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return returns


@pytest.mark.slow
def test_jitted_loop_and_facade_both_solve_pendulum(tmp_path):
    # skrl's example settings (batch 100, OU noise, 100 random steps, 400-300 MLPs), seed 0, 10,000 steps each.
    steps = 10_000
    ts_jit, summary = jitted_run.train_gymnax("gymnax:Pendulum-v1", timesteps=steps, seed=0, eval_interval=2_500,
                                         progress=False)
    assert int(ts_jit.step) == steps - 100  # one gradient step per environment step from learning_starts on
    metrics = summary["metrics"]
    np.testing.assert_array_equal(metrics["timestep"], [2500, 5000, 7500, 10000])
    np.testing.assert_array_equal(metrics["episode_count"], [12, 13, 12, 13])  # 50 episodes of 200 steps
    np.testing.assert_array_equal(metrics["update_count"], [2400, 2500, 2500, 2500])
    assert metrics["episode_return"][0] < -900  # the untrained policy does not swing up ...
    assert summary["eval_return"] >= -200, summary["eval_returns"]  # ... the trained one does (gymnax's Pendulum)

    # The facade path: the main job (ddpgx.DDPG and its SequentialTrainer on gymnasium's Pendulum-v1).
    result = runner.train(runner.plan({"run.timesteps": steps, "run.seed": 0, "cfg.experiment.directory": str(tmp_path),
                                       "evaluation.episodes": 10}), progress=False, log=lambda *args: None)
    assert result["eval_mean"] >= -200, result["eval_returns"]
    ts_facade = result["agent"].train_state

    # Each policy also solves the other implementation of the environment: the two paths learn the same task.
    cross_gym = gymnasium_returns(ts_jit)
    assert np.mean(cross_gym) >= -200, cross_gym
    env, env_params = gymnax.make("Pendulum-v1")
    cross_jax = jax.jit(lambda ts, k: jitted.evaluate(ts, k, env, env_params, 10))(ts_facade, jax.random.key(3))
    assert float(jnp.mean(cross_jax)) >= -200, cross_jax
    # Equivalent learning: on the same 10 gymnasium episodes both end within 60 of each other (one evaluation's
    # spread is about +-65 per episode).
    assert abs(result["eval_mean"] - np.mean(cross_gym)) < 60, (result["eval_returns"], cross_gym)


# ---------------------------------------------------------------------------------------------------------------
# vmap over seeds and hyperparameters


PENDULUM = None


def pendulum():
    global PENDULUM
    if PENDULUM is None:
        PENDULUM = gymnax.make("Pendulum-v1")
    return PENDULUM


SHORT = jitted.JittedConfig(timesteps=200, num_envs=2, learning_starts=50, memory_size=500, eval_interval=100,
                            eval_episodes=2, eval_max_steps=30)
SHORT_CONFIG = ddpgx.DDPGConfig(batch_size=32, random_timesteps=20,
                                exploration_noise=ddpgx.OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.1))


def test_vmapped_seeds_match_each_seed_alone():
    env, env_params = pendulum()
    # 30 updates: enough to show the runs are the same, few enough that float32 rounding differences between the
    # batched and the single program (another summation order in batched matmuls, other fusions) have not yet been
    # amplified into a flipped ReLU unit, which over hundreds of updates makes single weights drift apart.
    settings = dataclasses.replace(SHORT, timesteps=230, learning_starts=200)
    train = ddpgx.make_train(env, env_params, SHORT_CONFIG, settings, **small_networks())
    keys = jax.random.split(jax.random.key(7), 3)
    states, metrics = jax.jit(jax.vmap(train))(keys)
    # A remainder interval: 230 steps in intervals of 100 give 100, 100, 30.
    np.testing.assert_array_equal(metrics["timestep"], np.tile([100, 200, 230], (3, 1)))
    np.testing.assert_array_equal(metrics["update_count"], np.tile([0, 0, 30], (3, 1)))
    assert metrics["eval_returns"].shape == (3, 3, 2)
    alone = jax.jit(train)
    for i in range(3):
        state_i, metrics_i = alone(keys[i])
        # Equal up to float32 rounding (parameters are O(1); different seeds differ by O(0.1-1)).
        for a, b in zip(leaves(jax.tree.map(lambda x, i=i: x[i], states)), leaves(state_i), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        for name, value in metrics_i.items():
            np.testing.assert_allclose(metrics[name][i], value, rtol=1e-4, atol=1e-4, err_msg=name)
    # Different seeds really are different runs.
    first = leaves(jax.tree.map(lambda x: x[0], states))
    second = leaves(jax.tree.map(lambda x: x[1], states))
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(first, second, strict=True)) > 0.05
    assert np.isfinite(metrics["critic_loss"][:, -1]).all()


def test_hyperparameter_sweep_compiles_once_and_each_value_takes_effect():
    env, env_params = pendulum()
    traces = []
    train = ddpgx.make_train(env, env_params, SHORT_CONFIG, SHORT, **small_networks())

    def run(key, hyperparams):
        traces.append(1)  # Python side effect: runs once per trace
        return train(key, hyperparams)

    sweep = jax.jit(jax.vmap(run))
    lrs, taus = np.meshgrid(np.array([1e-3, 3e-4], np.float32), np.array([0.005, 0.05], np.float32))
    grid = {"learning_rate": lrs.ravel(), "polyak": taus.ravel(),
            "discount_factor": np.full(4, 0.9, np.float32), "noise": {"sigma": np.full(4, 0.2, np.float32)}}
    keys = jax.random.split(jax.random.key(0), 4)
    states, metrics = sweep(keys, grid)
    grid2 = {**grid, "learning_rate": grid["learning_rate"] * 2, "discount_factor": np.full(4, 0.8, np.float32)}
    states2, metrics2 = sweep(keys, grid2)
    assert len(traces) == 1 and sweep._cache_size() == 1  # two grids, one compilation

    # Each run used its own values: the learning rates the updates report, the state's gamma and tau.
    np.testing.assert_allclose(metrics["policy_learning_rate"][:, -1], lrs.ravel(), rtol=1e-6)
    np.testing.assert_allclose(metrics2["critic_learning_rate"][:, -1], 2 * lrs.ravel(), rtol=1e-6)
    np.testing.assert_allclose(states.hyperparams.polyak, taus.ravel())
    np.testing.assert_allclose(states2.hyperparams.discount_factor, 0.8)
    np.testing.assert_allclose(states.noise.sigma, 0.2)

    # A grid point equals a run configured with those values from the start (the override is not approximate).
    config = SHORT_CONFIG.replace(learning_rate=3e-4, polyak=0.05, discount_factor=0.9,
                                  exploration_noise=ddpgx.OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.2))
    alone_state, alone_metrics = jax.jit(ddpgx.make_train(env, env_params, config, SHORT, **small_networks()))(keys[3])
    assert float(lrs.ravel()[3]) == pytest.approx(3e-4) and float(taus.ravel()[3]) == pytest.approx(0.05)
    for name in ("critic_loss", "policy_loss", "q_mean", "eval_return"):
        np.testing.assert_allclose(metrics[name][3], alone_metrics[name], rtol=1e-3, atol=1e-3, err_msg=name)
    for a, b in zip(leaves(jax.tree.map(lambda x: x[3], states)), leaves(alone_state), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Probe environment: time limits bootstrap, terminal states cut, from the true final observation.


@struct.dataclass
class ProbeState(environment.EnvState):
    time: jax.Array


@struct.dataclass
class ProbeParams(environment.EnvParams):
    max_steps_in_episode: int = 2


class TwoStepProbe(environment.Environment):
    """Observation 0 at reset, 1 after any step; reward 1 for a step taken from observation 1, else 0.

    Episodes are two steps long, ended either by the time limit (``terminal=False``: ``truncated``) or by a terminal
    state (``terminal=True``). Actions do not matter, so Q(s, a) = V(s). With gamma = 1/2:

    * truncation (the episode is cut, the process goes on): V(1) = 1 / (1 - gamma) = 2, V(0) = gamma V(1) = 1;
    * termination after the second step: V(1) = 1, V(0) = gamma * 1 = 1/2;
    * a loop that bootstrapped from the *reset* observation 0 instead of the final one 1 would learn
      V(1) = 1 + gamma V(0), V(0) = gamma V(1), i.e. V(1) = 4/3, V(0) = 2/3; one that cut at truncation would learn
      the termination values.
    """

    def __init__(self, terminal: bool):
        super().__init__()
        self.terminal = terminal

    @property
    def default_params(self):
        return ProbeParams(max_steps_in_episode=100 if self.terminal else 2)

    def step_env(self, key, state, action, params):
        reward = jnp.where(state.time >= 1, 1.0, 0.0)
        state = ProbeState(time=state.time + 1)
        terminated = jnp.logical_and(self.terminal, state.time >= 2)
        return self.get_obs(state), state, reward, terminated, {}

    def reset_env(self, key, params):
        state = ProbeState(time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.where(state.time >= 1, 1.0, 0.0)[None].astype(jnp.float32)

    def is_terminated(self, state, params):
        return jnp.logical_and(self.terminal, state.time >= 2)

    def observation_space(self, params):
        return gymnax_spaces.Box(0.0, 1.0, (1,), jnp.float32)

    def action_space(self, params=None):
        return gymnax_spaces.Box(-1.0, 1.0, (1,), jnp.float32)


@pytest.mark.parametrize("terminal, v0, v1", [(False, 1.0, 2.0), (True, 0.5, 1.0)])
def test_probe_truncation_bootstraps_and_termination_cuts(terminal, v0, v1):
    env = TwoStepProbe(terminal)
    env_params = env.default_params
    # The environment itself: gymnax reports the two cases apart, and the final observation differs from the reset.
    obs, state = env.reset(jax.random.key(0), env_params)
    _, state, _, _, _, _ = env.step(jax.random.key(1), state, jnp.zeros(1), env_params)
    obs, _, reward, terminated, truncated, info = env.step(jax.random.key(2), state, jnp.zeros(1), env_params)
    assert (bool(terminated), bool(truncated)) == (terminal, not terminal)
    assert float(obs[0]) == 0.0 and float(info["final_observation"][0]) == 1.0 and float(reward) == 1.0

    config = ddpgx.DDPGConfig(batch_size=64, discount_factor=0.5, polyak=0.05, learning_rate=(1e-3, 3e-3),
                              exploration_noise=ddpgx.GaussianNoise(std=0.5))
    settings = jitted.JittedConfig(timesteps=1500, num_envs=4, learning_starts=50, memory_size=2000,
                                   eval_interval=1500, eval_episodes=2)
    train = ddpgx.make_train(env, env_params, config, settings, **small_networks(low=-1.0, high=1.0))
    ts, metrics = jax.jit(train)(jax.random.key(0))
    assert float(metrics["eval_return"][-1]) == 1.0  # every episode earns exactly 1
    np.testing.assert_allclose(metrics["episode_return"], 1.0)

    actions = jnp.linspace(-1, 1, 9)[:, None]
    for s, expected in ((0.0, v0), (1.0, v1)):
        q = ts.spec.critic.apply(ts.critic_params, jnp.full((9, 1), s), actions)
        np.testing.assert_allclose(q, expected, atol=0.06, err_msg=f"Q({s}, a), terminal={terminal}")


# ---------------------------------------------------------------------------------------------------------------
# Host callbacks: progress lines and TensorBoard tags from inside the compiled run


def test_progress_logger_writes_progress_and_tensorboard_from_a_vmapped_run(tmp_path):
    env, env_params = pendulum()
    stream = io.StringIO()
    logger = jitted_run.ProgressLogger(SHORT.timesteps, SHORT.num_envs, logdir=str(tmp_path), runs=2, stream=stream)
    train = ddpgx.make_train(env, env_params, SHORT_CONFIG, SHORT, callback=logger, **small_networks())
    _, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(1), 2), None, jnp.arange(2))
    jax.effects_barrier()
    logger.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 * 2  # 2 runs x 2 intervals
    assert sorted((int(h["run"]), int(h["timestep"])) for h in logger.history) == [(0, 100), (0, 200), (1, 100),
                                                                                  (1, 200)]
    for h in logger.history:  # the host got the same numbers the program returned
        run, index = int(h["run"]), [100, 200].index(int(h["timestep"]))
        np.testing.assert_allclose(h["critic_loss"], metrics["critic_loss"][run, index], rtol=1e-6)
    assert "run 1 [" in lines[-1] or "run 0 [" in lines[-1]
    for run in (0, 1):
        (path,) = glob.glob(os.path.join(tmp_path, f"run_{run}", "events.out.tfevents.*"))
        with open(path, "rb") as file:
            data = file.read()
        for tag in ("Loss / Critic loss", "Q-network / Q1 (mean)", "Target / Target (max)",
                    "Reward / Total reward (mean)", "Reward / Evaluation return (mean)"):
            assert tag.encode() in data, tag


# ---------------------------------------------------------------------------------------------------------------
# Bad input


class FiveValueStep(TwoStepProbe):
    """gymnax < 1.0's step: (obs, state, reward, done, info)."""

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
        return obs, state, reward, terminated | truncated, info


def test_bad_input_names_the_value():
    with pytest.raises(ValueError, match=r"timesteps=0 is invalid"):
        jitted.JittedConfig(timesteps=0)
    with pytest.raises(ValueError, match=r"memory_size=2 is invalid"):
        jitted.JittedConfig(num_envs=4, memory_size=2)
    with pytest.raises(ValueError, match=r"env_id='gymnax:NoSuchEnv-v0' is not a gymnax environment"):
        jitted.make_env("gymnax:NoSuchEnv-v0")
    with pytest.raises(ValueError, match=r"is not a gymnax-style environment"):
        ddpgx.make_train(object(), None, SHORT_CONFIG)
    env = FiveValueStep(False)
    train = ddpgx.make_train(env, env.default_params, SHORT_CONFIG, SHORT, **small_networks(low=-1.0, high=1.0))
    with pytest.raises(ValueError, match=r"env.step returned 5 values; ddpgx needs gymnax >= 1.0's six"):
        jax.jit(train)(jax.random.key(0))
    env, env_params = pendulum()
    train = ddpgx.make_train(env, env_params, SHORT_CONFIG, SHORT)
    with pytest.raises(ValueError, match=r"unknown keys \['gamma'\]"):
        train(jax.random.key(0), {"gamma": 0.9})
    ts = jitted.init(jax.random.key(0), env, env_params, SHORT_CONFIG, SHORT)
    with pytest.raises(ValueError, match=r"discount_factor=1.5 is invalid"):
        ddpgx.with_hyperparams(ts, discount_factor=1.5)
    with pytest.raises(ValueError, match=r"learning_rate=0.0 is invalid"):
        ddpgx.with_hyperparams(ts, learning_rate=0.0)
    with pytest.raises(ValueError, match=r"noise field 'stdev' is invalid: OrnsteinUhlenbeckNoise has fields"):
        ddpgx.with_hyperparams(ts, noise={"stdev": 0.1})
    scheduled = SHORT_CONFIG.replace(learning_rate=lambda step: 1e-3)
    ts = jitted.init(jax.random.key(0), env, env_params, scheduled, SHORT)
    with pytest.raises(ValueError, match=r"learning_rate cannot be set: config.learning_rate is a schedule"):
        ddpgx.with_hyperparams(ts, learning_rate=1e-4)
    with pytest.raises(ValueError, match=r"seed=-1 is invalid"):
        jitted_run.train_gymnax("Pendulum-v1", seed=-1)


def test_gymnax_spaces_become_gymnasium_spaces():
    env, env_params = pendulum()
    obs_space, act_space = jitted.spaces_of(env, env_params)
    assert isinstance(act_space, gymnasium.spaces.Box)
    np.testing.assert_array_equal(act_space.low, [-2.0])
    np.testing.assert_array_equal(act_space.high, [2.0])
    np.testing.assert_array_equal(obs_space.high, [1.0, 1.0, 8.0])
