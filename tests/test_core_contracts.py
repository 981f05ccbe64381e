"""Contracts of the pure functions: jit equality, structure and dtypes, compile-once, vmap/scan composition."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import flax.linen as nn

import ddpgx
from ddpgx.core import networks

OBS_SPACE = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT_SPACE = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
SMALL = dict(policy=networks.DeterministicPolicy((-2.0,), (2.0,), (1,), hidden_sizes=(16, 16)),
             critic=networks.QFunction(hidden_sizes=(16, 16)))


def numeric_leaves(tree):
    """Leaves as float64 NumPy arrays (PRNG keys as their raw data)."""
    out = []
    for x in jax.tree.leaves(tree):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        out.append(np.asarray(x, np.float64))
    return out


def batch_of(n, seed=0, lead=None):
    rng = np.random.default_rng(seed)
    lead = (n,) if lead is None else lead
    return ddpgx.Transition(
        rng.normal(size=lead + (3,)).astype(np.float32), rng.uniform(-2, 2, lead + (1,)).astype(np.float32),
        rng.normal(size=lead).astype(np.float32), rng.normal(size=lead + (3,)).astype(np.float32),
        rng.random(lead) < 0.1)


def small_state(config=None, seed=0, **kwargs):
    config = config or ddpgx.DDPGConfig(batch_size=8, exploration_noise=ddpgx.GaussianNoise(std=0.2))
    return ddpgx.init(jax.random.key(seed), config, OBS_SPACE, ACT_SPACE, **{**SMALL, **kwargs})


def test_jit_and_no_jit_agree():
    batch = batch_of(8)
    ts_jit, m_jit = ddpgx.update(small_state(), batch)
    with jax.disable_jit():
        ts_eager, m_eager = ddpgx.update(small_state(), batch)
    for a, b in zip(numeric_leaves(ts_jit), numeric_leaves(ts_eager), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for name in m_jit:
        np.testing.assert_allclose(m_jit[name], m_eager[name], rtol=1e-5, atol=1e-6)
    obs = np.ones((2, 3), np.float32)
    ts = small_state(num_envs=2)
    a_jit, _, _ = ddpgx.act(ts, obs, timestep=5, timesteps=10)
    with jax.disable_jit():
        a_eager, _, _ = ddpgx.act(small_state(num_envs=2), obs, timestep=5, timesteps=10)
    np.testing.assert_allclose(a_jit, a_eager, rtol=1e-5, atol=1e-6)


def test_update_preserves_structure_and_dtypes():
    ts = small_state()
    before = jax.tree.map(lambda x: (x.shape, x.dtype), ts)
    structure = jax.tree.structure(ts)
    new_ts, metrics = ddpgx.update(ts, batch_of(8))
    assert jax.tree.structure(new_ts) == structure
    assert jax.tree.map(lambda x: (x.shape, x.dtype), new_ts) == before
    assert all(m.shape == () and m.dtype == jnp.float32 for m in metrics.values())
    _, new_ts, _ = ddpgx.act(new_ts, np.zeros((1, 3), np.float32))
    assert jax.tree.map(lambda x: (x.shape, x.dtype), new_ts) == before


def test_update_donates_the_train_state():
    ts = small_state()
    leaf = ts.critic_params["params"]["MLP_0"]["Dense_0"]["kernel"]
    ddpgx.update(ts, batch_of(8))
    assert leaf.is_deleted()


def test_no_recompilation_across_calls_and_states():
    config = ddpgx.DDPGConfig(batch_size=8)
    ts = small_state(config)
    ts, _ = ddpgx.update(ts, batch_of(8))
    size = ddpgx.update._cache_size()
    for seed in range(4):
        ts, _ = ddpgx.update(ts, batch_of(8, seed))
    # A fresh state from an equal configuration, with other hyperparameter values, reuses the compilation.
    other = small_state(config, seed=3)
    other = other.replace(hyperparams=ddpgx.Hyperparams(jnp.float32(0.5), jnp.float32(0.5)))
    other, _ = ddpgx.update(other, batch_of(8))
    assert ddpgx.update._cache_size() == size
    ts_act = small_state(config)
    ddpgx.act(ts_act, np.zeros((1, 3), np.float32), timestep=0, timesteps=10)
    act_size = ddpgx.core.ddpg._act._cache_size()
    for t in range(1, 5):
        _, ts_act, _ = ddpgx.act(ts_act, np.zeros((1, 3), np.float32), timestep=t, timesteps=10)
    assert ddpgx.core.ddpg._act._cache_size() == act_size


def test_update_composes_in_lax_scan_and_matches_a_python_loop():
    batches = batch_of(8, lead=(4, 8))
    ts_scan, metrics = jax.jit(lambda ts, b: jax.lax.scan(ddpgx.update, ts, b))(small_state(), batches)
    ts_loop = small_state()
    for i in range(4):
        ts_loop, last = ddpgx.update(ts_loop, jax.tree.map(lambda x, i=i: x[i], batches))
    assert metrics["critic_loss"].shape == (4,)
    for a, b in zip(numeric_leaves(ts_scan), numeric_leaves(ts_loop), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_vmap_over_seeds_and_hyperparameters():
    config = ddpgx.DDPGConfig(batch_size=8)
    keys = jax.random.split(jax.random.key(0), 3)
    states = jax.vmap(lambda k: ddpgx.init(k, config, OBS_SPACE, ACT_SPACE, **SMALL))(keys)
    gammas = np.array([0.0, 0.5, 0.99], np.float32)
    states = states.replace(hyperparams=states.hyperparams._replace(discount_factor=jnp.asarray(gammas)))
    batch = batch_of(8)
    new_states, metrics = jax.vmap(ddpgx.update, in_axes=(0, None))(states, batch)
    assert metrics["critic_loss"].shape == (3,)
    # Each vmapped member equals the same seed run alone with its own gamma.
    for i in range(3):
        alone = ddpgx.init(keys[i], config.replace(discount_factor=float(gammas[i])), OBS_SPACE, ACT_SPACE, **SMALL)
        alone, m = ddpgx.update(alone, batch)
        np.testing.assert_allclose(metrics["critic_loss"][i], m["critic_loss"], rtol=1e-5)
        np.testing.assert_allclose(new_states.critic_params["params"]["MLP_0"]["Dense_0"]["kernel"][i],
                                   alone.critic_params["params"]["MLP_0"]["Dense_0"]["kernel"], rtol=1e-5, atol=1e-7)


def test_learning_rates_as_pair_and_schedule():
    schedule = optax.linear_schedule(1e-2, 0.0, transition_steps=4)
    config = ddpgx.DDPGConfig(batch_size=8, learning_rate=(schedule, 3e-4))
    ts = small_state(config)
    rates = []
    for i in range(5):
        ts, m = ddpgx.update(ts, batch_of(8, i))
        rates.append((float(m["policy_learning_rate"]), float(m["critic_learning_rate"])))
    # The metric is the rate each step used: the schedule at optax's count 0, 1, 2, ...
    np.testing.assert_allclose([r[0] for r in rates], [1e-2, 7.5e-3, 5e-3, 2.5e-3, 0.0], atol=1e-9)
    np.testing.assert_allclose([r[1] for r in rates], [3e-4] * 5, rtol=1e-6)
    # The schedule has reached zero: the policy no longer changes.
    before = jax.tree.map(np.asarray, ts.policy_params)
    ts, _ = ddpgx.update(ts, batch_of(8, 9))
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, ts.policy_params))


def test_dict_observations_flatten_in_gymnasium_order():
    space = gymnasium.spaces.Dict({"b": gymnasium.spaces.Box(-1, 1, (2,)), "a": gymnasium.spaces.Box(-1, 1, (1, 2))})
    obs = {"a": np.array([[[1.0, 2.0]]], np.float32), "b": np.array([[3.0, 4.0]], np.float32)}
    flat = ddpgx.spaces.flatten(ddpgx.spaces.input_layout(space), obs)
    expected = gymnasium.spaces.flatten(space, {"a": obs["a"][0], "b": obs["b"][0]})
    np.testing.assert_array_equal(flat[0], expected)
    config = ddpgx.DDPGConfig(batch_size=2)
    ts = ddpgx.init(jax.random.key(0), config, space, ACT_SPACE)
    actions, ts, _ = ddpgx.act(ts, obs)
    assert actions.shape == (1, 1)
    batch = ddpgx.Transition({"a": np.zeros((2, 1, 2)), "b": np.ones((2, 2))}, np.zeros((2, 1)), np.ones(2),
                             {"a": np.zeros((2, 1, 2)), "b": np.ones((2, 2))}, np.zeros(2, bool))
    ts, m = ddpgx.update(ts, batch)
    assert np.isfinite(float(m["critic_loss"]))


def test_user_flax_modules_replace_the_defaults():
    class Policy(nn.Module):
        @nn.compact
        def __call__(self, obs):
            return 2.0 * jnp.tanh(nn.Dense(1)(obs))

    class Critic(nn.Module):
        @nn.compact
        def __call__(self, obs, actions):
            return nn.Dense(1)(jnp.concatenate([obs, actions, obs * actions], -1))  # [B, 1] accepted

    ts = ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(batch_size=8), OBS_SPACE, ACT_SPACE,
                    policy=Policy(), critic=Critic())
    ts, m = ddpgx.update(ts, batch_of(8))
    assert np.isfinite(float(m["policy_loss"]))

    class BadPolicy(nn.Module):
        @nn.compact
        def __call__(self, obs):
            return nn.Dense(3)(obs)

    with pytest.raises(ValueError, match=r"policy returned actions of shape \(1, 3\)"):
        ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(), OBS_SPACE, ACT_SPACE, policy=BadPolicy())


def test_init_starts_from_given_parameters_and_owns_copies():
    config = ddpgx.DDPGConfig(batch_size=8)
    fresh = ddpgx.init(jax.random.key(1), config, OBS_SPACE, ACT_SPACE, **SMALL)
    given_policy = jax.tree.map(lambda x: x + 0.5, fresh.policy_params)
    given_critic = jax.tree.map(lambda x: x - 0.25, fresh.critic_params)
    ts = ddpgx.init(jax.random.key(0), config, OBS_SPACE, ACT_SPACE, **SMALL, policy_params=given_policy,
                    critic_params=given_critic)
    reference = ddpgx.init(jax.random.key(0), config, OBS_SPACE, ACT_SPACE, **SMALL)
    for field, given in (("policy_params", given_policy), ("critic_params", given_critic)):
        for name in (field, "target_" + field):
            for got, want in zip(jax.tree.leaves(getattr(ts, name)), jax.tree.leaves(given), strict=True):
                np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
                assert got is not want  # copies: the update donates the train state's buffers
    # the rest of the state (key, optimizer moments, noise) is what the same key gives without parameters
    np.testing.assert_array_equal(jax.random.key_data(ts.key), jax.random.key_data(reference.key))
    ts, _ = ddpgx.update(ts, batch_of(8))
    assert all(not x.is_deleted() for x in jax.tree.leaves(given_policy) + jax.tree.leaves(given_critic))

    wrong = jax.tree.map(lambda x: x, given_policy)
    wrong["params"]["MLP_0"]["Dense_0"]["kernel"] = jnp.zeros((4, 16))
    with pytest.raises(ValueError, match=r"policy_params\['params'\]\['MLP_0'\]\['Dense_0'\]\['kernel'\] has shape \(4, 16\).*"
                                         r"expects \(3, 16\)"):
        ddpgx.init(jax.random.key(0), config, OBS_SPACE, ACT_SPACE, **SMALL, policy_params=wrong)
    with pytest.raises(ValueError, match="critic_params do not match the critic's parameters"):
        ddpgx.init(jax.random.key(0), config, OBS_SPACE, ACT_SPACE, **SMALL, critic_params={"params": {}})


def test_default_policy_respects_asymmetric_bounds():
    space = gymnasium.spaces.Box(np.array([0.0, -5.0], np.float32), np.array([1.0, -4.0], np.float32))
    ts = ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(), OBS_SPACE, space)
    obs = np.random.default_rng(0).normal(0, 100, (256, 3)).astype(np.float32)
    actions, _, _ = ddpgx.act(ts, obs, explore=False)
    assert np.all(actions >= np.array([0.0, -5.0])) and np.all(actions <= np.array([1.0, -4.0]))
    assert actions[:, 0].max() - actions[:, 0].min() > 0.5  # the tanh range is used, not a constant
