"""What a skrl 2.x JAX DDPG script meets when ported to ddpgx (issue 14): the recorded data is the agent's own, the
non-finite guard covers what a step writes, Python exploration schedulers, min/max metrics over gradient steps,
the Ornstein-Uhlenbeck reset at the trainer's resets, models that stay valid after training, and skrl's JAX
``Model``, noise, scaler, memory and trainer methods. Each test follows the pattern skrl's examples and docs use."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpgx
from ddpgx import DDPG, DDPG_CFG
from ddpgx.envs import wrap_env
from ddpgx.memories import RandomMemory
from ddpgx.models import DeterministicMixin, Model
from ddpgx.noises import GaussianNoise, OrnsteinUhlenbeckNoise
from ddpgx.preprocessors import RunningStandardScaler
from ddpgx.trainers import SequentialTrainer

OBS = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
NO_WRITES = {"write_interval": 0, "checkpoint_interval": 0}


class Actor(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device=None, clip_actions=False, **kwargs):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device, **kwargs)
        DeterministicMixin.__init__(self, clip_actions=clip_actions)

    @nn.compact
    def __call__(self, inputs, role):
        x = nn.relu(nn.Dense(32)(inputs["observations"]))
        return 2 * nn.tanh(nn.Dense(self.num_actions)(x)), {}


class Critic(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device=None, clip_actions=False, **kwargs):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device, **kwargs)
        DeterministicMixin.__init__(self, clip_actions=clip_actions)

    @nn.compact
    def __call__(self, inputs, role):
        x = jnp.concatenate([inputs["observations"], inputs["taken_actions"]], axis=-1)
        return nn.Dense(1)(nn.relu(nn.Dense(32)(x))), {}


def skrl_models(env_or_spaces, state_space=None, critic=Critic):
    obs, act = (env_or_spaces.observation_space, env_or_spaces.action_space) if hasattr(
        env_or_spaces, "observation_space") else env_or_spaces
    models = {"policy": Actor(obs, state_space, act), "target_policy": Actor(obs, state_space, act),
              "critic": critic(obs, state_space, act), "target_critic": critic(obs, state_space, act)}
    for role, model in models.items():
        model.init_state_dict(role=role)
    return models


def make_agent(env, memory_size=64, state_space=None, critic=Critic, **cfg):
    cfg.setdefault("experiment", NO_WRITES)
    memory = RandomMemory(memory_size=memory_size, num_envs=env.num_envs)
    return DDPG(models=skrl_models(env, state_space, critic), memory=memory, cfg=cfg,
                observation_space=env.observation_space, state_space=state_space, action_space=env.action_space)


def stored(agent, name):
    """The first ``len(memory)`` rows of a stored field, in write order (no wrap-around in these tests)."""
    return np.asarray(getattr(agent.memory.state.data, name))[: len(agent.memory)]


# ---------------------------------------------------------------------------------------------------------------------
# Defect 1: aliased observations.


class BufferEnv(gymnasium.Env):
    """Returns its internal observation buffer and changes it in place: obs = [t, t, t] at step t of an episode;
    episodes are truncated after 3 steps; reset writes [100, 100, 100] into the same buffer."""

    observation_space = OBS
    action_space = ACT

    def __init__(self):
        self._buffer = np.zeros(3, np.float32)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        self._buffer[:] = 100.0
        return self._buffer, {}

    def step(self, action):
        self._t += 1
        self._buffer[:] = self._t
        return self._buffer, 1.0, False, self._t == 3, {}


def test_an_environment_returning_its_buffer_in_place_records_true_transitions():
    env = wrap_env(BufferEnv())
    agent = make_agent(env, learning_starts=1000)
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 6, "headless": True}).train()
    obs, nxt = stored(agent, "observations")[:, 0], stored(agent, "next_observations")[:, 0]
    # Two episodes: s = 100, 1, 2 and s' = 1, 2, 3 (the truncated episode's true last observation, not the reset's).
    np.testing.assert_array_equal(obs, [100, 1, 2, 100, 1, 2])
    np.testing.assert_array_equal(nxt, [1, 2, 3, 1, 2, 3])


def test_sync_vector_env_without_copies_records_distinct_observations():
    env = wrap_env(gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("Pendulum-v1")] * 2, copy=False))
    agent = make_agent(env, learning_starts=1000)
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 5, "headless": True, "seed": 0}).train()
    obs, nxt = stored(agent, "observations"), stored(agent, "next_observations")
    assert not np.allclose(obs, nxt)  # aliased, s and s' were the same array
    # Each step's s' is the next step's s (rows are [step, env] in order; 2 environments).
    np.testing.assert_array_equal(nxt[:-2], obs[2:])


def test_a_precomputed_action_is_not_used_for_observations_changed_in_place():
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    agent = make_agent(env, learning_starts=0, batch_size=4)
    agent.init(trainer_cfg={"timesteps": 10})
    agent.enable_training_mode(True)
    obs = np.zeros((1, 3), np.float32)  # a user loop whose environment writes into one observation buffer
    for t in range(3):
        actions, _ = agent.act(obs, None, timestep=t, timesteps=10)
        previous = obs.copy()
        obs[:] = 0.3 * (t + 1)  # the environment's step, in place
        agent.record_transition(observations=previous, states=None, actions=actions, rewards=np.ones((1, 1)),
                                next_observations=obs, next_states=None, terminated=np.zeros((1, 1), bool),
                                truncated=np.zeros((1, 1), bool), infos={}, timestep=t, timesteps=10)
        agent.post_interaction(timestep=t, timesteps=10)  # precomputes the action for these observations
    obs += 0.5  # ... and something changes them in place before the next act (e.g. an in-place normalisation)
    # No noise: the action must be the deterministic policy's for the buffer's current values.
    acted, _ = agent.act(obs, None, timestep=3, timesteps=10)
    expected, _, _ = ddpgx.act(agent.train_state, obs, explore=False)
    np.testing.assert_allclose(np.asarray(acted), np.asarray(expected), rtol=1e-6)


def test_the_precomputed_action_serves_float64_observations(monkeypatch):
    # MuJoCo environments return float64 observations; the action precomputed with the update (from their float32
    # copy) must still be the one used, without a second policy call per step.
    env = wrap_env(gymnasium.wrappers.TransformObservation(
        gymnasium.make("Pendulum-v1"), lambda o: o.astype(np.float64) / 3.0,  # (not exact in float32)
        gymnasium.spaces.Box(-8.0, 8.0, (3,), np.float64)))
    agent = make_agent(env, learning_starts=2, batch_size=2)
    calls = []
    original = ddpgx.core.act
    monkeypatch.setattr("ddpgx.agent.core.act", lambda *a, **k: calls.append(1) or original(*a, **k))
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 10, "headless": True, "seed": 0}).train()
    # One call compiles (agent.init), three act at timesteps 0, 1, 2, before the first update; from then on the
    # action computed with each update serves the next step.
    assert len(calls) == 4


# ---------------------------------------------------------------------------------------------------------------------
# Defect 2: a finite loss with an infinite gradient.


class SqrtPolicy(nn.Module):
    """``a = sqrt(w . s + b)``, zero-initialised: at s = 0 the action is 0, finite, and its gradient infinite."""

    @nn.compact
    def __call__(self, obs):
        return jnp.sqrt(nn.Dense(1, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)(obs))


def test_a_step_with_an_infinite_gradient_and_finite_losses_is_not_written():
    config = ddpgx.DDPGConfig(batch_size=8)
    ts = ddpgx.init(jax.random.key(0), config, OBS, ACT, policy=SqrtPolicy())
    names = ("policy_params", "policy_opt_state", "target_policy_params", "target_critic_params", "critic_params")
    before = {name: jax.tree.map(np.asarray, getattr(ts, name)) for name in names}
    batch = ddpgx.Transition(jnp.zeros((8, 3)), jnp.zeros((8, 1)), jnp.ones(8), jnp.zeros((8, 3)), jnp.zeros(8, bool))
    ts, metrics = ddpgx.update(ts, batch)
    assert np.isfinite(float(metrics["critic_loss"])) and np.isfinite(float(metrics["policy_loss"]))
    assert float(metrics["skipped_updates"]) == 1.0
    # The policy's step and the Polyak update are dropped (not NaN); the critic's finite step stays, as in
    # ddpgx_torch.
    for name in names[:-1]:
        for new, old in zip(jax.tree.leaves(getattr(ts, name)), jax.tree.leaves(before[name]), strict=True):
            np.testing.assert_array_equal(np.asarray(new), old, err_msg=name)
    assert not all(np.array_equal(np.asarray(new), old) for new, old in
                   zip(jax.tree.leaves(ts.critic_params), jax.tree.leaves(before["critic_params"]), strict=True))
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves((ts.critic_params, ts.critic_opt_state)))
    assert int(ts.step) == 0


class SteepPolicy(nn.Module):
    """``a = 1e21 (w . s)``, zero-initialised: the action is 0 and the gradient finite but about 1e21, whose square
    overflows float32 (Adam's second moment would become infinite)."""

    @nn.compact
    def __call__(self, obs):
        return 1e21 * nn.Dense(1, kernel_init=nn.initializers.zeros, use_bias=False)(obs)


def test_a_step_whose_gradient_squares_overflow_is_not_written():
    config = ddpgx.DDPGConfig(batch_size=8)
    ts = ddpgx.init(jax.random.key(0), config, OBS, ACT, policy=SteepPolicy())
    before = jax.tree.map(np.asarray, (ts.policy_params, ts.policy_opt_state))
    batch = ddpgx.Transition(jnp.ones((8, 3)), jnp.zeros((8, 1)), jnp.ones(8), jnp.ones((8, 3)), jnp.zeros(8, bool))
    ts, metrics = ddpgx.update(ts, batch)
    assert np.isfinite(float(metrics["policy_loss"])) and float(metrics["skipped_updates"]) == 1.0
    for new, old in zip(jax.tree.leaves((ts.policy_params, ts.policy_opt_state)), jax.tree.leaves(before), strict=True):
        np.testing.assert_array_equal(np.asarray(new), old)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(ts.policy_opt_state))


# ---------------------------------------------------------------------------------------------------------------------
# Defect 3: skrl's plain-Python exploration scheduler.


def test_skrl_python_exploration_scheduler_scales_the_noise():
    cfg = DDPG_CFG()
    cfg.exploration_noise = GaussianNoise
    cfg.exploration_noise_kwargs = {"mean": 0.0, "std": 0.3, "device": "cpu"}
    cfg.exploration_scheduler = lambda timestep, timesteps: max(1 - timestep / timesteps, 1e-2)
    cfg.experiment.write_interval = cfg.experiment.checkpoint_interval = 0
    agent = DDPG(models=skrl_models((OBS, ACT)), memory=RandomMemory(memory_size=4, num_envs=256), cfg=cfg,
                 observation_space=OBS, action_space=ACT)
    agent.init(trainer_cfg={"timesteps": 100})
    obs = np.zeros((256, 3), np.float32)
    clean, _ = agent.act(obs, None, timestep=0, timesteps=100)  # evaluation mode: no noise
    agent.enable_training_mode(True)
    for timestep, scale in ((0, 1.0), (50, 0.5), (100, 1e-2)):
        noisy, _ = agent.act(obs, None, timestep=timestep, timesteps=100)
        assert np.std(np.asarray(noisy) - np.asarray(clean)) == pytest.approx(0.3 * scale, rel=0.15)


# ---------------------------------------------------------------------------------------------------------------------
# Defect 4: min/max metrics with gradient_steps > 1.


def test_min_and_max_metrics_over_gradient_steps_are_the_min_and_max():
    rng = np.random.default_rng(0)
    steps, batch = 3, 16
    data = ddpgx.Transition(rng.normal(size=(steps, batch, 3)).astype(np.float32),
                            rng.uniform(-2, 2, (steps, batch, 1)).astype(np.float32),
                            rng.normal(size=(steps, batch)).astype(np.float32) * np.arange(1, 4)[:, None] ** 2,
                            rng.normal(size=(steps, batch, 3)).astype(np.float32), np.zeros((steps, batch), bool))
    one = ddpgx.init(jax.random.key(1), ddpgx.DDPGConfig(batch_size=batch), OBS, ACT)
    many = jax.tree.map(jnp.copy, one).replace(spec=dataclasses_replace(one.spec, gradient_steps=steps))
    _, metrics = ddpgx.update(many, data)
    # Reference: the same steps one at a time.
    per_step = []
    for i in range(steps):
        one, m = ddpgx.update(one, jax.tree.map(lambda x: x[i], data))  # noqa: B023
        per_step.append({k: float(v) for k, v in m.items()})
    for name in ("q", "target"):
        assert float(metrics[f"{name}_min"]) == pytest.approx(min(m[f"{name}_min"] for m in per_step), rel=1e-5)
        assert float(metrics[f"{name}_max"]) == pytest.approx(max(m[f"{name}_max"] for m in per_step), rel=1e-5)
        assert float(metrics[f"{name}_mean"]) == pytest.approx(np.mean([m[f"{name}_mean"] for m in per_step]),
                                                               rel=1e-5)


def dataclasses_replace(spec, **config_changes):
    import dataclasses

    return dataclasses.replace(spec, config=spec.config.replace(**config_changes))


# ---------------------------------------------------------------------------------------------------------------------
# Defect 5: the Ornstein-Uhlenbeck state at the trainer's resets.

# Driving noise N(1, 0): x <- (1 - theta) x + sigma exactly, so x = 1 after one step from a reset, and 2 in the limit.
OU_KWARGS = {"theta": 0.5, "sigma": 1.0, "base_scale": 1.0, "mean": 1.0, "std": 0.0}


def test_ou_state_restarts_when_the_trainer_resets_the_environments():
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    agent = make_agent(env, learning_starts=1000, exploration_noise=OrnsteinUhlenbeckNoise,
                       exploration_noise_kwargs=OU_KWARGS)
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 8, "headless": True}).train()
    assert float(agent.train_state.noise_state[0, 0]) == pytest.approx(2 - 2 ** -7)  # 1, 1.5, 1.75, ...
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 1, "headless": True}).train()
    assert float(agent.train_state.noise_state[0, 0]) == pytest.approx(1.0)


def test_torch_ou_state_restarts_when_the_trainer_resets_the_environments():
    torch = pytest.importorskip("torch")
    import ddpgx_torch
    from ddpgx_torch.core import networks
    from ddpgx_torch.memories import RandomMemory as TorchMemory
    from ddpgx_torch.noises import OrnsteinUhlenbeckNoise as TorchOU

    torch.set_num_threads(1)
    env = gymnasium.make("Pendulum-v1")
    models = {"policy": networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (16,)),
              "critic": networks.QFunction(3, 1, (16,))}
    agent = ddpgx_torch.DDPG(models=models, memory=TorchMemory(64), observation_space=env.observation_space,
                             action_space=env.action_space,
                             cfg={"learning_starts": 1000, "exploration_noise": TorchOU,
                                  "exploration_noise_kwargs": OU_KWARGS, "experiment": NO_WRITES})
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 8, "headless": True}).train()
    assert float(agent.train_state.noise_state[0, 0]) == pytest.approx(2 - 2 ** -7)
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 1, "headless": True}).train()
    assert float(agent.train_state.noise_state[0, 0]) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------------------------
# Defect 6: what a user holds after training.


def test_models_and_memory_stay_valid_and_current_after_training():
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    agent = make_agent(env, learning_starts=4, batch_size=8)
    held = agent.policy.state_dict  # a user's reference, taken before training
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 20, "headless": True}).train()
    obs = np.asarray(env.reset(seed=1)[0])
    actions, _ = agent.policy.act({"observations": obs}, role="policy")  # skrl's way of using a trained model
    expected, _, _ = ddpgx.act(agent.train_state, obs, explore=False)
    np.testing.assert_allclose(np.asarray(actions), np.asarray(expected), rtol=1e-6)
    for role, field in (("policy", "policy_params"), ("critic", "critic_params"),
                        ("target_policy", "target_policy_params"), ("target_critic", "target_critic_params")):
        current = agent.models[role].state_dict.params
        for a, b in zip(jax.tree.leaves(current), jax.tree.leaves(getattr(agent.train_state, field)), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(held.params))  # not deleted
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 5, "headless": True}).train()  # and still usable
    ((rewards, observations),) = agent.memory.sample(["rewards", "observations"], batch_size=8)
    assert rewards.shape == (8,) and observations.shape == (8, 3) and len(agent.memory) == 25


def test_a_model_loaded_or_updated_after_construction_is_what_the_agent_uses(tmp_path):
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    agent = make_agent(env)
    other = Actor(env.observation_space, None, env.action_space)
    other.init_state_dict(role="policy", key=jax.random.key(9))
    other.save(str(tmp_path / "policy.flax"))
    agent.policy.load(str(tmp_path / "policy.flax"))  # skrl: load a trained policy, then evaluate
    for a, b in zip(jax.tree.leaves(agent.train_state.policy_params), jax.tree.leaves(other.state_dict.params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    agent.target_policy.update_parameters(agent.policy, polyak=1)
    for a, b in zip(jax.tree.leaves(agent.train_state.target_policy_params),
                    jax.tree.leaves(other.state_dict.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ---------------------------------------------------------------------------------------------------------------------
# skrl's JAX Model methods.


def test_init_parameters_weights_and_biases_follow_flax_initializers():
    model = Actor(OBS, None, ACT)
    model.init_state_dict(role="policy")
    model.init_parameters(method_name="normal", stddev=0.1)  # skrl's Pendulum example
    leaves = np.concatenate([np.ravel(x) for x in jax.tree.leaves(model.state_dict.params)])
    assert np.std(leaves) == pytest.approx(0.1, rel=0.1) and abs(np.mean(leaves)) < 0.02
    model.init_biases("constant", 0.25)
    model.init_weights("zeros")
    params = model.state_dict.params["params"]
    for layer in params.values():
        assert np.all(np.asarray(layer["bias"]) == 0.25) and np.all(np.asarray(layer["kernel"]) == 0)
    with pytest.raises(ValueError, match="method_name='nromal' is not a flax.linen.initializers method"):
        model.init_parameters("nromal")


def test_update_parameters_hard_and_polyak():
    source, target = Actor(OBS, None, ACT), Actor(OBS, None, ACT)
    source.init_state_dict(role="policy", key=jax.random.key(1))
    target.init_state_dict(role="policy", key=jax.random.key(2))
    before = jax.tree.map(np.asarray, target.state_dict.params)
    target.update_parameters(source, polyak=0.25)  # theta = 0.25 theta_source + 0.75 theta
    for new, src, old in zip(jax.tree.leaves(target.state_dict.params), jax.tree.leaves(source.state_dict.params),
                             jax.tree.leaves(before), strict=True):
        np.testing.assert_allclose(np.asarray(new), 0.25 * np.asarray(src) + 0.75 * old, rtol=1e-6, atol=1e-7)
    target.update_parameters(source)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(target.state_dict.params),
                                                     jax.tree.leaves(source.state_dict.params), strict=True))
    target.freeze_parameters(True)  # a no-op in skrl's JAX models too
    with pytest.raises(ValueError, match="polyak=1.5 is invalid"):
        target.update_parameters(source, polyak=1.5)


def test_model_file_saved_by_skrl_loads_and_ours_loads_in_skrl(tmp_path):
    skrl_models_lib = pytest.importorskip("skrl.models.jax")

    class SkrlActor(skrl_models_lib.DeterministicMixin, skrl_models_lib.Model):
        def __init__(self, observation_space, state_space, action_space, device=None, **kwargs):
            skrl_models_lib.Model.__init__(self, observation_space=observation_space, state_space=state_space,
                                           action_space=action_space, device=device, **kwargs)
            skrl_models_lib.DeterministicMixin.__init__(self)

        @nn.compact
        def __call__(self, inputs, role):
            x = nn.relu(nn.Dense(32)(inputs["observations"]))
            return 2 * nn.tanh(nn.Dense(self.num_actions)(x)), {}

    theirs = SkrlActor(OBS, None, ACT)
    theirs.init_state_dict(role="policy")
    theirs.save(str(tmp_path / "skrl.flax"))
    ours = Actor(OBS, None, ACT)
    ours.init_state_dict(role="policy")
    ours.load(str(tmp_path / "skrl.flax"))
    obs = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(np.asarray(ours.act({"observations": obs}, role="policy")[0]),
                               np.asarray(theirs.act({"observations": obs}, role="policy")[0]), rtol=1e-6)
    ours.init_parameters("normal", stddev=0.5)
    ours.save(str(tmp_path / "ours.flax"))
    theirs.load(str(tmp_path / "ours.flax"))
    np.testing.assert_allclose(np.asarray(ours.act({"observations": obs}, role="policy")[0]),
                               np.asarray(theirs.act({"observations": obs}, role="policy")[0]), rtol=1e-6)
    small = Actor(OBS, None, gymnasium.spaces.Box(-1, 1, (2,)))
    small.init_state_dict(role="policy")
    with pytest.raises(ValueError, match="holds a parameter of shape"):
        small.load(str(tmp_path / "ours.flax"))


def test_random_act_is_uniform_in_the_action_space():
    model = Actor(OBS, None, gymnasium.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 5.0], np.float32)))
    model.init_state_dict(role="policy")
    actions, outputs = model.random_act({"observations": np.zeros((5000, 3), np.float32)}, role="policy")
    actions = np.asarray(actions)
    assert actions.shape == (5000, 2) and outputs == {}
    assert actions.min(axis=0) == pytest.approx([-1.0, 0.0], abs=0.01)
    assert actions.max(axis=0) == pytest.approx([1.0, 5.0], abs=0.01)
    assert actions.mean(axis=0) == pytest.approx([0.0, 2.5], abs=0.05)


# ---------------------------------------------------------------------------------------------------------------------
# state_space: asymmetric critics.


class AsymmetricCritic(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device=None, **kwargs):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device, **kwargs)
        DeterministicMixin.__init__(self)

    @nn.compact
    def __call__(self, inputs, role):
        x = jnp.concatenate([inputs["observations"], inputs["states"], inputs["taken_actions"]], axis=-1)
        return nn.Dense(1)(nn.relu(nn.Dense(16)(x))), {}


def test_an_asymmetric_critic_receives_observations_and_states():
    states = gymnasium.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    agent = make_agent(env, state_space=states, critic=AsymmetricCritic, learning_starts=0, batch_size=4)
    agent.init(trainer_cfg={"timesteps": 10})
    agent.enable_training_mode(True)
    rng = np.random.default_rng(0)
    for t in range(3):
        obs, nxt = rng.normal(size=(2, 1, 3)).astype(np.float32)
        s, s_next = rng.normal(size=(2, 1, 5)).astype(np.float32)
        actions, _ = agent.act(obs, s, timestep=t, timesteps=10)
        agent.record_transition(observations=obs, states=s, actions=actions, rewards=np.ones((1, 1)),
                                next_observations=nxt, next_states=s_next, terminated=np.zeros((1, 1), bool),
                                truncated=np.zeros((1, 1), bool), infos={}, timestep=t, timesteps=10)
        agent.post_interaction(timestep=t, timesteps=10)
    assert int(agent.train_state.step) == 3
    # The core's critic values are the model's on {observations, states, taken_actions}.
    spec = agent.train_state.spec
    o, st, a = jnp.ones((2, 3)), jnp.full((2, 5), 2.0), jnp.zeros((2, 1))
    core_q = spec.critic.apply(agent.train_state.critic_params, jnp.concatenate([o, st], -1), a)
    model_q, _ = agent.critic.act({"observations": o, "states": st, "taken_actions": a}, role="critic")
    np.testing.assert_allclose(np.asarray(core_q), np.asarray(model_q), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# Noises, scaler, memory.


def test_noises_take_a_device_and_sample_like_skrl():
    gaussian = GaussianNoise(mean=0.5, std=0.2, device="cpu")
    values = np.asarray(gaussian.sample((20000, 2)))
    assert values.shape == (20000, 2) and values.mean() == pytest.approx(0.5, abs=0.01)
    assert values.std() == pytest.approx(0.2, rel=0.03)
    assert gaussian.sample_like(jnp.zeros((4, 3))).shape == (4, 3)
    ou = OrnsteinUhlenbeckNoise(**OU_KWARGS, device=jax.devices("cpu")[0])
    first, second = (float(ou.sample_like(np.zeros((1, 1)))[0, 0]) for _ in range(2))
    assert (first, second) == pytest.approx((1.0, 1.5))  # x <- 0.5 x + 1 from 0
    with pytest.raises(ValueError, match="device='tpu:7' is not available"):
        GaussianNoise(mean=0.0, std=0.1, device="tpu:7")


def test_running_standard_scaler_is_callable_with_a_state_dict():
    rng = np.random.default_rng(0)
    scaler = RunningStandardScaler(size=gymnasium.spaces.Box(-1, 1, (3,)), clip_threshold=5.0)
    a, b = rng.normal(2.0, 3.0, (100, 3)).astype(np.float32), rng.normal(2.0, 3.0, (50, 3)).astype(np.float32)
    scaler(a, train=True)
    out = np.asarray(scaler(b, train=True))
    both = np.concatenate([a, b])
    expected = np.clip((b - both.mean(0)) / (both.std(0) + 1e-8), -5, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(scaler(out, inverse=True)), b, rtol=1e-4, atol=1e-4)
    state = scaler.state_dict.params
    np.testing.assert_allclose(np.asarray(state["running_mean"]), both.mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(state["running_variance"]), both.var(0), rtol=1e-4)
    assert float(state["current_count"][0]) == 150
    copy = RunningStandardScaler(size=3)
    copy.state_dict = state
    np.testing.assert_array_equal(np.asarray(copy(b)), np.asarray(scaler(b)))
    assert scaler(None) is None


def test_random_memory_methods_follow_skrl(tmp_path):
    memory = RandomMemory(memory_size=4, num_envs=2)
    assert memory.replacement is False  # skrl 2.x's default
    assert memory.create_tensor("observations", size=OBS, dtype=jnp.float32)
    assert memory.create_tensor("rewards", size=1, dtype=jnp.float32)
    assert not memory.create_tensor("states", size=None)
    assert not memory.create_tensor("rewards", size=1, dtype=jnp.float32)
    with pytest.raises(ValueError, match="tensor 'rewards' exists with shape"):
        memory.create_tensor("rewards", size=2)
    for t in range(6):  # wraps around: steps 2..5 remain
        memory.add_samples(observations=np.full((2, 3), t, np.float32), rewards=np.full((2, 1), t, np.float32))
    assert len(memory) == 8 and memory.get_tensor_names() == ["observations", "rewards"]
    np.testing.assert_array_equal(np.asarray(memory.get_tensor_by_name("rewards"))[..., 0],
                                  [[4, 4], [5, 5], [2, 2], [3, 3]])
    batches = memory.sample(["rewards", "observations", "missing"], batch_size=8, mini_batches=2)
    assert len(batches) == 2 and batches[0][2] is None
    rows = np.concatenate([np.asarray(batch[0])[:, 0] for batch in batches])
    indexes = np.asarray(memory.get_sampling_indexes())
    assert sorted(indexes.tolist()) == list(range(8))  # without replacement, 8 of 8: each row once
    np.testing.assert_array_equal(rows, np.asarray(memory.get_tensor_by_name("rewards")).reshape(-1)[indexes])
    ((obs,),) = memory.sample_by_index(["observations"], indexes=[0, 3])
    np.testing.assert_array_equal(np.asarray(obs), [[4, 4, 4], [5, 5, 5]])
    path = memory.save(str(tmp_path))
    memory.reset()
    assert len(memory) == 0
    with pytest.raises(ValueError, match="empty memory"):
        memory.sample(["rewards"], batch_size=2)
    memory.load(path)
    assert len(memory) == 8
    np.testing.assert_array_equal(np.asarray(memory.get_tensor_by_name("rewards"))[..., 0],
                                  [[4, 4], [5, 5], [2, 2], [3, 3]])
    memory.set_tensor_by_name("rewards", np.arange(8, dtype=np.float32).reshape(4, 2, 1))
    np.testing.assert_array_equal(np.asarray(memory.sample_by_index(["rewards"], indexes=[5])[0][0]), [[5.0]])
    with pytest.raises(KeyError, match="no tensor 'nope'"):
        memory.set_tensor_by_name("nope", np.zeros(8))
    with pytest.raises(ValueError, match="missing \\['rewards'\\]"):
        memory.add_samples(observations=np.zeros((2, 3)))


# ---------------------------------------------------------------------------------------------------------------------
# The trainer's close_environment_at_exit, environment_info and stochastic_evaluation.


class InfoEnv(BufferEnv):
    def step(self, action):
        obs, reward, terminated, truncated, _ = super().step(action)
        return obs.copy(), reward, terminated, truncated, {"episode": {"score": float(self._t)}}


def test_environment_info_is_tracked(tmp_path):
    env = wrap_env(InfoEnv())
    agent = make_agent(env, learning_starts=1000, experiment={"directory": str(tmp_path), "write_interval": 1000,
                                                              "checkpoint_interval": 0})
    tracked = []
    agent.track_data = lambda tag, value: tracked.append((tag, value))
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 4, "headless": True}).train()
    assert [v for tag, v in tracked if tag == "Info / score"] == [1.0, 2.0, 3.0, 1.0]


def test_stochastic_evaluation_uses_the_exploration_noise():
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    agent = make_agent(env, exploration_noise=GaussianNoise, exploration_noise_kwargs={"mean": 0.0, "std": 0.5})
    played = []
    act = agent.act

    def spy(observations, states, **kwargs):
        actions, outputs = act(observations, states, **kwargs)
        played.append(np.asarray(actions) - np.asarray(ddpgx.act(agent.train_state, observations, explore=False)[0]))
        return actions, outputs

    agent.act = spy
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 50, "headless": True}).eval()
    assert np.abs(played).max() == 0.0  # deterministic by default
    played.clear()
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 50, "headless": True,
                                                  "stochastic_evaluation": True}).eval()
    assert 0.2 < np.std(played) < 0.8
    assert agent.explore_in_evaluation is False  # only for that evaluation


def test_close_environment_at_exit(tmp_path):
    marker = tmp_path / "closed"
    script = textwrap.dedent(f"""
        import gymnasium
        from ddpgx import DDPG
        from ddpgx.trainers import SequentialTrainer

        class Env(gymnasium.Wrapper):
            def close(self):
                open({str(marker)!r}, "a").write("closed\\n")

        env = Env(gymnasium.make("Pendulum-v1"))
        agent = DDPG(models={{"policy": None}}, observation_space=env.observation_space,
                     action_space=env.action_space, cfg={{"experiment": {{"write_interval": 0,
                                                                          "checkpoint_interval": 0}}}})
        SequentialTrainer(env=env, agents=agent, cfg={{"timesteps": 2, "headless": True,
                                                       "close_environment_at_exit": {{close}}}}).eval()
        """)
    for close, expected in ((True, "closed\n"), (False, None)):
        marker.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-c", script.replace("{close}", str(close))], check=True,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=120)
        assert (marker.read_text() if marker.exists() else None) == expected


def test_critic_adapter_inputs():
    from ddpgx.models import CriticAdapter

    x, a = jnp.arange(8.0).reshape(1, 8), jnp.zeros((1, 1))
    both = CriticAdapter(None, True, "critic", 3)._inputs(x, a)  # observations (3) and states (5), as skrl 2.x
    assert both["observations"].shape == (1, 3) and both["states"].shape == (1, 5)
    np.testing.assert_array_equal(np.asarray(both["states"])[0], [3, 4, 5, 6, 7])
    states_only = CriticAdapter(None, True)._inputs(x, a)
    assert states_only["observations"] is None and states_only["states"] is x
    assert not CriticAdapter(None, True).observations_and_states and CriticAdapter(None, True, observation_size=3
                                                                                     ).observations_and_states
