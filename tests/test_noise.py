"""Exploration noise against its closed forms, through ``ddpgx.noise.sample`` and through ``ddpgx.act``.

Every statistical check uses a fixed seed and a tolerance of ``Z`` standard errors of the estimator (computed from
the closed form, or from independent replicates where the samples are autocorrelated), never an arbitrary one.
"""

from __future__ import annotations

import distrax
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpgx
from ddpgx import networks, noise

Z = 5.0  # tolerance in standard errors (two-sided false-alarm rate ~6e-7 for a normal estimator)
OBS_SIZE = 3


def box(low, high):
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    return gymnasium.spaces.Box(low, high, low.shape, np.float32)


def make_state(config, action_space, num_envs=1, seed=0):
    """A train state with small networks (hidden 16)."""
    layout = ddpgx.spaces.action_layout(action_space)
    return ddpgx.init(
        jax.random.key(seed), config, gymnasium.spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32), action_space,
        policy=networks.DeterministicPolicy(layout.low, layout.high, layout.shape, hidden_sizes=(16,)),
        critic=networks.QFunction(hidden_sizes=(16,)), num_envs=num_envs)


def observations(n, seed=1):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, OBS_SIZE)), jnp.float32)


def assert_mean_std(samples, mean, std, axis=0):
    """Sample mean and std (per component, along ``axis``) within Z standard errors of N(mean, std^2)."""
    samples = np.asarray(samples, np.float64)
    n = samples.shape[axis]
    mean, std = np.broadcast_to(mean, np.mean(samples, axis).shape), np.broadcast_to(std, np.mean(samples, axis).shape)
    np.testing.assert_array_less(np.abs(samples.mean(axis) - mean), Z * std / np.sqrt(n) + 1e-12)
    # The sample std of n normal draws has standard error std / sqrt(2 (n - 1)).
    np.testing.assert_array_less(np.abs(samples.std(axis) - std), Z * std / np.sqrt(2 * (n - 1)) + 1e-12)


def ou_theory(ou):
    """Stationary variance of the applied OU noise ``base_scale * x`` (driving mean 0)."""
    return ou.base_scale**2 * ou.sigma**2 * ou.std**2 / (ou.theta * (2.0 - ou.theta))


def assert_ou_statistics(values, ou, lags=(1, 2, 5)):
    """``values``: [T, chains, ...] stationary OU noise, chains independent.

    Each chain gives its own time-averaged second moment ``v_i`` and lag-k product ``c_i``; the chains are
    independent, so the standard errors come from their spread (the time samples within a chain are correlated).
    The autocorrelation estimate ``C / V`` gets its standard error by the delta method.
    """
    x = np.asarray(values, np.float64).reshape(values.shape[0], -1)  # [T, chains]
    chains = x.shape[1]
    variance = ou_theory(ou)
    v = np.mean(x * x, axis=0)
    np.testing.assert_allclose(v.mean(), variance, atol=Z * v.std(ddof=1) / np.sqrt(chains))
    for k in lags:
        c = np.mean(x[k:] * x[:-k], axis=0)
        rho = (1.0 - ou.theta) ** k
        np.testing.assert_allclose(c.mean(), variance * rho, atol=Z * c.std(ddof=1) / np.sqrt(chains))
        big_c, big_v = c.mean(), v.mean()
        cov = np.cov(c, v) / chains
        ratio_var = cov[0, 0] / big_v**2 - 2 * big_c * cov[0, 1] / big_v**3 + big_c**2 * cov[1, 1] / big_v**4
        np.testing.assert_allclose(big_c / big_v, rho, atol=Z * np.sqrt(ratio_var))


# --------------------------------------------------------------------------------------------- Gaussian


def test_gaussian_sample_mean_std():
    g = noise.GaussianNoise(mean=0.2, std=0.3)
    state = noise.init_state(50_000, 4)
    values, new_state = noise.sample(g, state, jax.random.key(0), (50_000, 4))  # 200k draws
    assert values.shape == (50_000, 4) and values.dtype == jnp.float32
    assert new_state is state  # the Gaussian noise has no process state
    assert_mean_std(np.ravel(values), 0.2, 0.3)
    # Per component as well (50k each), and the components are uncorrelated.
    assert_mean_std(values, 0.2, 0.3)
    corr = np.corrcoef(np.asarray(values).T)[np.triu_indices(4, 1)]
    np.testing.assert_array_less(np.abs(corr), Z / np.sqrt(50_000))
    # Different keys, different draws; same key, same draws.
    again, _ = noise.sample(g, state, jax.random.key(0), (50_000, 4))
    other, _ = noise.sample(g, state, jax.random.key(1), (50_000, 4))
    np.testing.assert_array_equal(values, again)
    assert not np.any(np.asarray(values) == np.asarray(other))


def test_gaussian_through_act():
    n = 50_000
    config = ddpgx.DDPGConfig(exploration_noise=ddpgx.GaussianNoise(mean=-0.1, std=0.25))
    ts = make_state(config, box([-10.0] * 4, [10.0] * 4), num_envs=n)
    obs = observations(n)
    deterministic, _, _ = ddpgx.act(ts, obs, explore=False)
    actions, new_ts, info = ddpgx.act(ts, obs, timestep=0, timesteps=100)
    assert actions.shape == (n, 4) and info["noise"].shape == (n, 4)
    assert np.all(np.abs(np.asarray(actions)) < 10.0)  # no clipping happened, so action = mu(s) + noise
    np.testing.assert_allclose(actions, deterministic + info["noise"], rtol=0, atol=1e-5)
    assert_mean_std(np.ravel(info["noise"]), -0.1, 0.25)
    assert_mean_std(np.ravel(actions - deterministic), -0.1, 0.25)
    # The key advances, so the next call draws fresh noise.
    assert not np.array_equal(jax.random.key_data(new_ts.key), jax.random.key_data(ts.key))
    _, _, info2 = ddpgx.act(new_ts, obs)
    assert not np.any(np.asarray(info2["noise"]) == np.asarray(info["noise"]))


# --------------------------------------------------------------------------------------------- Ornstein-Uhlenbeck


def _ou_run(ou, chains, action_size, steps, key):
    def step(state, k):
        values, state = noise.sample(ou, state, k, (chains, action_size))
        return state, values

    _, values = jax.lax.scan(step, noise.init_state(chains, action_size), jax.random.split(key, steps))
    return values  # [steps, chains, action_size]


@pytest.mark.parametrize(
    "ou",
    [noise.OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.2),  # skrl/paper defaults
     noise.OrnsteinUhlenbeckNoise(theta=0.4, sigma=0.3, base_scale=2.0, std=1.5),
     noise.OrnsteinUhlenbeckNoise(theta=1.0, sigma=0.5, base_scale=0.5)],  # theta = 1: white noise
    ids=["defaults", "scaled", "theta1"])
def test_ou_sample_stationary_variance_and_autocorrelation(ou):
    burn_in = int(np.ceil(40 / ou.theta))  # (1 - theta)^(2 * burn_in) < 1e-13: stationary afterwards
    values = _ou_run(ou, chains=1024, action_size=2, steps=burn_in + 400, key=jax.random.key(3))
    stationary = values[burn_in:]
    assert_ou_statistics(stationary, ou, lags=(1, 3) if ou.theta < 1 else (1,))
    if ou.theta == 1.0:  # no memory: lag-1 correlation is 0
        x = np.asarray(stationary, np.float64).reshape(stationary.shape[0], -1)
        assert abs(np.mean(x[1:] * x[:-1]) / np.mean(x * x)) < Z / np.sqrt(x[1:].size)
    # The transient from x_0 = 0 follows its closed form too: Var(x_t) = v (1 - (1 - theta)^(2t)) at t = 1, 2.
    for t in (1, 2):
        x_t = np.asarray(values[t - 1], np.float64).ravel()
        expected = ou_theory(ou) * (1 - (1 - ou.theta) ** (2 * t))
        np.testing.assert_allclose(np.mean(x_t**2), expected, atol=Z * expected * np.sqrt(2 / x_t.size))


def test_ou_sample_recursion_exact():
    """x_{t+1} = (1 - theta) x_t + sigma eps_t with eps_t ~ N(mean, std^2); the applied noise is base_scale x."""
    ou = noise.OrnsteinUhlenbeckNoise(theta=0.3, sigma=0.2, base_scale=1.5, mean=0.1, std=2.0)
    state = jnp.asarray(np.random.default_rng(0).normal(size=(3, 2)), jnp.float32)
    key = jax.random.key(7)
    values, new_state = noise.sample(ou, state, key, (3, 2))
    eps = 0.1 + 2.0 * jax.random.normal(key, (3, 2), jnp.float32)
    np.testing.assert_allclose(new_state, 0.7 * state + 0.2 * eps, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(values, 1.5 * new_state, rtol=1e-6, atol=1e-7)


def test_ou_base_scale_scales_noise_only():
    key = jax.random.key(11)
    state = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), jnp.float32)
    v1, s1 = noise.sample(noise.OrnsteinUhlenbeckNoise(theta=0.2, sigma=0.3, base_scale=1.0), state, key, (5, 3))
    v3, s3 = noise.sample(noise.OrnsteinUhlenbeckNoise(theta=0.2, sigma=0.3, base_scale=3.0), state, key, (5, 3))
    np.testing.assert_array_equal(s1, s3)  # the process itself does not depend on base_scale
    np.testing.assert_allclose(v3, 3.0 * v1, rtol=1e-6)


def test_ou_through_act_statistics():
    ou = ddpgx.OrnsteinUhlenbeckNoise(theta=0.3, sigma=0.2, base_scale=2.0)
    chains, burn_in, steps = 1024, 140, 300
    ts = make_state(ddpgx.DDPGConfig(exploration_noise=ou), box([-50.0, -50.0], [50.0, 50.0]), num_envs=chains)
    obs = observations(chains)
    deterministic, _, _ = ddpgx.act(ts, obs, explore=False)

    def step(ts, _):
        actions, ts, info = ddpgx.act(ts, obs, timestep=0, timesteps=1)
        return ts, (actions, info["noise"], ts.noise_state)

    _, (actions, applied, states) = jax.lax.scan(step, ts, None, length=burn_in + steps)
    np.testing.assert_allclose(applied, 2.0 * states, rtol=1e-6)  # applied = base_scale * process value
    assert np.all(np.abs(np.asarray(actions)) < 50.0)
    np.testing.assert_allclose(actions - deterministic, applied, atol=1e-4)
    assert_ou_statistics(applied[burn_in:], ou, lags=(1, 2, 4))


# --------------------------------------------------------------------------------------------- OU reset


def test_noise_reset_zeroes_only_masked_rows():
    state = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)) + 5.0, jnp.float32)
    mask = jnp.array([True, False, True, False])
    out = noise.reset(state, mask)
    np.testing.assert_array_equal(out[np.array([0, 2])], 0.0)
    np.testing.assert_array_equal(out[np.array([1, 3])], state[np.array([1, 3])])
    np.testing.assert_array_equal(noise.reset(state, jnp.zeros(4, bool)), state)
    np.testing.assert_array_equal(noise.reset(state, jnp.ones(4, bool)), 0.0)


def test_first_sample_after_reset_is_sigma_eps():
    ou = noise.OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.2)
    state = jnp.asarray(np.random.default_rng(1).normal(size=(4, 2)), jnp.float32)
    mask = np.array([False, True, True, False])
    key = jax.random.key(5)
    values, new_state = noise.sample(ou, noise.reset(state, jnp.asarray(mask)), key, (4, 2))
    sigma_eps = 0.2 * jax.random.normal(key, (4, 2), jnp.float32)
    np.testing.assert_array_equal(values[mask], sigma_eps[mask])
    np.testing.assert_allclose(values[~mask], 0.85 * state[~mask] + sigma_eps[~mask], rtol=1e-6)
    np.testing.assert_array_equal(new_state, values)


def _built_up_ou_state(ou, num_envs=4, steps=10):
    ts = make_state(ddpgx.DDPGConfig(exploration_noise=ou), box([-50.0] * 2, [50.0] * 2), num_envs=num_envs)
    obs = observations(num_envs)
    for _ in range(steps):
        _, ts, _ = ddpgx.act(ts, obs)
    assert np.all(np.abs(np.asarray(ts.noise_state)) > 0)
    return ts, obs


def test_act_episode_starts_resets_process():
    ou = ddpgx.OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.2)
    ts, obs = _built_up_ou_state(ou)
    mask = np.array([True, False, False, True])
    old = np.asarray(ts.noise_state)
    a_reset, ts_reset, info_reset = ddpgx.act(ts, obs, episode_starts=jnp.asarray(mask))
    # Same key, state zeroed by hand: identical result.
    manual = ts.replace(noise_state=jnp.where(mask[:, None], 0.0, ts.noise_state))
    a_manual, ts_manual, info_manual = ddpgx.act(manual, obs)
    np.testing.assert_array_equal(a_reset, a_manual)
    np.testing.assert_array_equal(ts_reset.noise_state, ts_manual.noise_state)
    # Without the reset, the unmasked rows evolve identically and the masked ones differ by (1 - theta) x_old.
    _, ts_plain, info_plain = ddpgx.act(ts, obs)
    np.testing.assert_array_equal(info_reset["noise"][~mask], info_plain["noise"][~mask])
    np.testing.assert_allclose(info_plain["noise"][mask] - info_reset["noise"][mask], 0.85 * old[mask],
                               rtol=1e-5, atol=1e-6)
    # No episode start: all rows keep evolving.
    _, ts_none, _ = ddpgx.act(ts, obs, episode_starts=jnp.zeros(4, bool))
    np.testing.assert_array_equal(ts_none.noise_state, ts_plain.noise_state)


def test_act_episode_starts_with_zero_sigma():
    """With sigma = 0 after building up state: reset rows give exactly the deterministic action; the others decay."""
    ts, obs = _built_up_ou_state(ddpgx.OrnsteinUhlenbeckNoise(theta=0.25, sigma=0.3, base_scale=2.0))
    ts = ts.replace(noise=ddpgx.OrnsteinUhlenbeckNoise(theta=0.25, sigma=0.0, base_scale=2.0))
    deterministic, _, _ = ddpgx.act(ts, obs, explore=False)
    mask = np.array([False, True, False, True])
    old = np.asarray(ts.noise_state)
    actions, ts, info = ddpgx.act(ts, obs, episode_starts=jnp.asarray(mask))
    np.testing.assert_array_equal(info["noise"][mask], 0.0)
    np.testing.assert_array_equal(actions[mask], deterministic[mask])
    np.testing.assert_array_equal(ts.noise_state[mask], 0.0)
    np.testing.assert_allclose(ts.noise_state[~mask], 0.75 * old[~mask], rtol=1e-6)
    np.testing.assert_allclose(info["noise"][~mask], 2.0 * 0.75 * old[~mask], rtol=1e-6)
    np.testing.assert_allclose(actions[~mask], deterministic[~mask] + info["noise"][~mask], atol=1e-5)
    # The reset rows stay at zero while sigma is 0.
    actions, ts, _ = ddpgx.act(ts, obs)
    np.testing.assert_array_equal(actions[mask], deterministic[mask])


# --------------------------------------------------------------------------------------------- distrax


def test_distrax_scalar_normal_as_exploration_noise():
    n = 50_000
    config = ddpgx.DDPGConfig(exploration_noise=distrax.Normal(0.0, 0.3))
    ts = make_state(config, box([-10.0] * 4, [10.0] * 4), num_envs=n)
    obs = observations(n)
    deterministic, _, _ = ddpgx.act(ts, obs, explore=False)
    actions, _, info = ddpgx.act(ts, obs)
    assert info["noise"].shape == (n, 4) and info["noise"].dtype == jnp.float32
    np.testing.assert_allclose(actions, deterministic + info["noise"], atol=1e-5)
    assert_mean_std(np.ravel(info["noise"]), 0.0, 0.3)
    assert_mean_std(info["noise"], 0.0, 0.3)  # every component independently drawn
    corr = np.corrcoef(np.asarray(info["noise"]).T)[np.triu_indices(4, 1)]
    np.testing.assert_array_less(np.abs(corr), Z / np.sqrt(n))


@pytest.mark.parametrize("make", [
    lambda loc, scale: distrax.MultivariateNormalDiag(jnp.asarray(loc), jnp.asarray(scale)),  # event [3]
    lambda loc, scale: distrax.Normal(jnp.asarray(loc), jnp.asarray(scale)),  # batch [3]
], ids=["MultivariateNormalDiag", "batched-Normal"])
def test_distrax_vector_distribution_as_exploration_noise(make):
    loc, scale = np.array([0.1, -0.2, 0.0]), np.array([0.3, 0.5, 0.1])
    dist = make(loc, scale)
    n = 60_000
    values, state = noise.sample(dist, noise.init_state(1, 3), jax.random.key(2), (n, 3))
    assert values.shape == (n, 3)
    assert_mean_std(values, loc, scale)

    ts = make_state(ddpgx.DDPGConfig(exploration_noise=dist), box([-10.0] * 3, [10.0] * 3), num_envs=n)
    obs = observations(n)
    deterministic, _, _ = ddpgx.act(ts, obs, explore=False)
    actions, _, info = ddpgx.act(ts, obs)
    assert info["noise"].shape == (n, 3)
    np.testing.assert_allclose(actions, deterministic + info["noise"], atol=1e-5)
    assert_mean_std(info["noise"], loc, scale)


# --------------------------------------------------------------------------------------------- scheduler


def test_exploration_scheduler_scales_noise():
    n, std, horizon = 50_000, 0.4, 1000
    config = ddpgx.DDPGConfig(exploration_noise=ddpgx.GaussianNoise(std=std),
                              exploration_scheduler=lambda t, T: jnp.maximum(0.0, 1.0 - t / T))
    ts = make_state(config, box([-10.0] * 2, [10.0] * 2), num_envs=n)
    obs = observations(n)
    deterministic, _, _ = ddpgx.act(ts, obs, explore=False)
    for t, scale in ((0, 1.0), (250, 0.75), (600, 0.4)):
        actions, ts, info = ddpgx.act(ts, obs, timestep=t, timesteps=horizon)
        assert_mean_std(np.ravel(info["noise"]), 0.0, scale * std)
        np.testing.assert_allclose(actions, deterministic + info["noise"], atol=1e-5)
    for t in (horizon, horizon + 50):  # scale 0 at and past the horizon: the deterministic actions exactly
        actions, ts, info = ddpgx.act(ts, obs, timestep=t, timesteps=horizon)
        np.testing.assert_array_equal(info["noise"], 0.0)
        np.testing.assert_array_equal(actions, deterministic)


def test_exploration_scheduler_with_ou_scales_applied_noise_only():
    ou = ddpgx.OrnsteinUhlenbeckNoise(theta=0.2, sigma=0.3)
    config = ddpgx.DDPGConfig(exploration_noise=ou, exploration_scheduler=lambda t, T: 1.0 - t / T)
    ts = make_state(config, box([-50.0] * 2, [50.0] * 2), num_envs=8)
    obs = observations(8)
    _, ts_half, info_half = ddpgx.act(ts, obs, timestep=5, timesteps=10)
    _, ts_full, info_full = ddpgx.act(ts, obs, timestep=0, timesteps=10)
    np.testing.assert_array_equal(ts_half.noise_state, ts_full.noise_state)
    np.testing.assert_allclose(info_half["noise"], 0.5 * info_full["noise"], rtol=1e-6)


# --------------------------------------------------------------------------------------------- random timesteps


def test_random_timesteps_uniform_then_deterministic():
    n = 40_000
    low, high = np.array([-2.0, 0.0, 3.0]), np.array([1.0, 5.0, 3.5])
    config = ddpgx.DDPGConfig(random_timesteps=5)
    ts = make_state(config, box(low, high), num_envs=n)
    obs = observations(n)
    deterministic, _, _ = ddpgx.act(ts, obs, explore=False)
    width = high - low
    mean, var = (low + high) / 2, width**2 / 12
    var_se = np.sqrt((width**4 / 80 - var**2) / n)  # Var(x^2-type estimator) = (mu_4 - sigma^4) / n
    previous = None
    for t in range(5):
        actions, ts, info = ddpgx.act(ts, obs, timestep=t, timesteps=100)
        a = np.asarray(actions, np.float64)
        assert np.all(a >= low) and np.all(a <= high)
        np.testing.assert_array_less(np.abs(a.mean(0) - mean), Z * np.sqrt(var / n))
        np.testing.assert_array_less(np.abs(a.var(0) - var), Z * var_se)
        # Uniform, not clustered: each component's decile counts are flat (chi-square with 9 dof, p > 1e-4).
        from scipy import stats
        for j in range(3):
            counts = np.histogram(a[:, j], bins=np.linspace(low[j], high[j], 11))[0]
            assert stats.chisquare(counts).pvalue > 1e-4
        np.testing.assert_array_equal(info["noise"], 0.0)
        if previous is not None:
            assert not np.array_equal(a, previous)  # fresh draws each step
        previous = a
    for t in (5, 6, 50):
        actions, ts, _ = ddpgx.act(ts, obs, timestep=t, timesteps=100)
        np.testing.assert_array_equal(actions, deterministic)


def test_random_timesteps_hold_ou_state_and_then_add_noise():
    ou = ddpgx.OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.2)
    ts = make_state(ddpgx.DDPGConfig(exploration_noise=ou, random_timesteps=3), box([-5.0] * 2, [5.0] * 2),
                    num_envs=6)
    obs = observations(6)
    deterministic, _, _ = ddpgx.act(ts, obs, explore=False)
    for t in range(3):
        _, ts, info = ddpgx.act(ts, obs, timestep=t)
        np.testing.assert_array_equal(ts.noise_state, 0.0)  # the process is held still while acting randomly
        np.testing.assert_array_equal(info["noise"], 0.0)
    actions, ts, info = ddpgx.act(ts, obs, timestep=3)
    assert np.all(np.asarray(info["noise"]) != 0.0)
    np.testing.assert_allclose(info["noise"], ts.noise_state, rtol=1e-6)  # first step from x = 0
    np.testing.assert_allclose(actions, np.clip(deterministic + info["noise"], -5, 5), atol=1e-6)


# --------------------------------------------------------------------------------------------- clipping


@pytest.mark.parametrize("exploration_noise", [
    ddpgx.GaussianNoise(std=3.0),
    ddpgx.OrnsteinUhlenbeckNoise(theta=0.5, sigma=2.0, base_scale=2.0),
    distrax.Laplace(0.0, 2.0),
], ids=["gaussian", "ou", "distrax-laplace"])
def test_actions_always_clipped(exploration_noise):
    n = 4000
    low, high = np.array([-1.0, 0.0]), np.array([1.0, 0.5])
    ts = make_state(ddpgx.DDPGConfig(exploration_noise=exploration_noise), box(low, high), num_envs=n)
    obs = observations(n)
    deterministic, _, _ = ddpgx.act(ts, obs, explore=False)
    assert np.all(np.asarray(deterministic) >= low) and np.all(np.asarray(deterministic) <= high)
    for _ in range(3):
        actions, ts, info = ddpgx.act(ts, obs)
        a = np.asarray(actions)
        assert np.all(a >= low.astype(np.float32)) and np.all(a <= high.astype(np.float32))
        np.testing.assert_array_equal(a, np.clip(np.asarray(deterministic) + np.asarray(info["noise"]),
                                                 low.astype(np.float32), high.astype(np.float32)))
        # The noise is large, so a good share of actions sits exactly on each bound.
        assert np.mean(a == low.astype(np.float32)) > 0.1 and np.mean(a == high.astype(np.float32)) > 0.1


# --------------------------------------------------------------------------------------------- explore=False


@pytest.mark.parametrize("exploration_noise", [None, ddpgx.GaussianNoise(std=0.5),
                                               ddpgx.OrnsteinUhlenbeckNoise()], ids=["none", "gaussian", "ou"])
def test_explore_false_is_deterministic_and_pure(exploration_noise):
    low, high = np.array([-1.0, -3.0]), np.array([2.0, 3.0])
    config = ddpgx.DDPGConfig(exploration_noise=exploration_noise, random_timesteps=10)
    ts = make_state(config, box(low, high), num_envs=5)
    obs = observations(5)
    for _ in range(2):  # give the OU process some state first
        _, ts, _ = ddpgx.act(ts, obs, timestep=20)
    before = [np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
              for x in jax.tree.leaves(ts)]
    expected = np.clip(ts.spec.policy.apply(ts.policy_params, obs), low.astype(np.float32), high.astype(np.float32))
    for timestep in (0, 20):  # even inside the random phase
        actions, new_ts, info = ddpgx.act(ts, obs, timestep=timestep, explore=False,
                                          episode_starts=jnp.ones(5, bool))
        np.testing.assert_array_equal(actions, expected)
        np.testing.assert_array_equal(info["noise"], 0.0)
        after = [np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
                 for x in jax.tree.leaves(new_ts)]
        assert jax.tree.structure(new_ts) == jax.tree.structure(ts)
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b)
    again, _, _ = ddpgx.act(ts, obs, explore=False)
    np.testing.assert_array_equal(again, expected)


# --------------------------------------------------------------------------------------------- vmap over noise


def test_gaussian_noise_params_vmap():
    stds = jnp.array([0.05, 0.3, 1.0, 2.5])
    means = jnp.array([0.0, 0.5, -1.0, 0.0])
    batched = noise.GaussianNoise(mean=means, std=stds)  # a pytree with [4] leaves
    n = 100_000

    def draw(g):
        return noise.sample(g, jnp.zeros((n, 1)), jax.random.key(0), (n, 1))[0]

    values = jax.vmap(draw)(batched)  # [4, n, 1]
    assert values.shape == (4, n, 1)
    assert_mean_std(values[..., 0], np.asarray(means), np.asarray(stds), axis=1)
    np.testing.assert_allclose(values[1], draw(noise.GaussianNoise(mean=0.5, std=0.3)), rtol=1e-6)


def test_noise_params_vmap_through_act():
    n = 20_000
    ts = make_state(ddpgx.DDPGConfig(exploration_noise=ddpgx.GaussianNoise(std=0.1)), box([-20.0] * 2, [20.0] * 2),
                    num_envs=n)
    obs = observations(n)
    stds = jnp.array([0.1, 0.7, 2.0])
    noises = jax.vmap(lambda s: ddpgx.act(ts.replace(noise=ddpgx.GaussianNoise(mean=0.0, std=s)), obs)[2]["noise"])(
        stds)
    assert noises.shape == (3, n, 2)
    assert_mean_std(np.asarray(noises).reshape(3, -1), 0.0, np.asarray(stds), axis=1)


def test_ou_params_vmap_stationary_variance():
    thetas = jnp.array([0.1, 0.3, 0.6])
    batched = noise.OrnsteinUhlenbeckNoise(theta=thetas, sigma=jnp.full(3, 0.2), base_scale=jnp.ones(3),
                                           mean=jnp.zeros(3), std=jnp.ones(3))
    values = jax.vmap(lambda ou: _ou_run(ou, chains=512, action_size=1, steps=800, key=jax.random.key(9)))(batched)
    for i, theta in enumerate(np.asarray(thetas)):
        ou = noise.OrnsteinUhlenbeckNoise(theta=float(theta), sigma=0.2)
        assert_ou_statistics(values[i, 400:], ou, lags=(1,))
