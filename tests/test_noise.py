"""Exploration noise against its closed forms, through ``ddpgx.noise.sample`` and through ``ddpgx.act``.

Every statistical check uses a fixed seed and a tolerance of ``Z`` standard errors of the estimator (computed from
the closed form, or from independent replicates where the samples are autocorrelated), never an arbitrary one.
"""

from __future__ import annotations

import functools

import distrax
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpgx
from ddpgx.core import networks, noise

Z = 5.0  # tolerance in standard errors (two-sided false-alarm rate ~6e-7 for a normal estimator)
OBS_SIZE = 3


def box(low, high):
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    return gymnasium.spaces.Box(low, high, low.shape, np.float32)


@functools.lru_cache(maxsize=None)
def make_state(config, low, high, num_envs=1, seed=0):
    """A train state with small networks (hidden 16) for a Box action space ``[low, high]`` (tuples).

    Cached: tests that share a configuration share one train state (``act`` is pure) and one compilation.
    """
    action_space = box(low, high)
    layout = ddpgx.spaces.action_layout(action_space)
    return ddpgx.init(
        jax.random.key(seed), config, gymnasium.spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32), action_space,
        policy=networks.DeterministicPolicy(layout.low, layout.high, layout.shape, hidden_sizes=(16,)),
        critic=networks.QFunction(hidden_sizes=(16,)), num_envs=num_envs)


@functools.lru_cache(maxsize=None)
def observations(n, seed=1, scale=0.05):
    """Small observations, so the deterministic actions stay well inside wide bounds (no clipping)."""
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=(n, OBS_SIZE)), jnp.float32)


def f32(**params):
    """Noise parameters as float32 arrays: swapping them into a train state does not recompile ``act``."""
    return {name: jnp.float32(value) for name, value in params.items()}


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


def deterministic(ts, obs):
    return ddpgx.act(ts, obs, explore=False)[0]


def assert_same_actions(actions, det):
    """Equal up to rounding: ``act`` with and without exploration are two compiled programs (on CPU they agree
    bit for bit; another backend may fuse differently)."""
    np.testing.assert_allclose(actions, det, rtol=0, atol=1e-6)


def leaves(tree):
    return [np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves(tree)]


# Shared configurations: each costs a compilation of ``act``, so the tests reuse a few (4 action components
# everywhere, so the network initialisers compile once) and swap noise *parameters* (array leaves) where they can.
N = 50_000  # environments for the statistics through ``act`` (x 4 action components = 200k draws)
WIDE = ((-10.0,) * 4, (10.0,) * 4)  # far from the deterministic actions of the small observations below
GAUSS = ddpgx.DDPGConfig(exploration_noise=ddpgx.GaussianNoise(mean=-0.1, std=0.25))
OU_ENVS = 1024
OU = ddpgx.OrnsteinUhlenbeckNoise(theta=0.3, sigma=0.2, base_scale=2.0)
OU_CONFIG = ddpgx.DDPGConfig(exploration_noise=OU)
NORMAL = ddpgx.DDPGConfig(exploration_noise=distrax.Normal(0.0, 0.3))
ASYM = ((-2.0, 0.0, -7.0, 3.0), (1.0, 5.0, 9.0, 3.5))
SCHEDULED = ddpgx.DDPGConfig(exploration_noise=ddpgx.GaussianNoise(std=0.4), random_timesteps=5,
                             exploration_scheduler=lambda t, T: jnp.maximum(0.0, 1.0 - t / T))
SMALL = ((-1.0, -3.0, -1.0, -1.0), (2.0, 3.0, 1.0, 1.0))
OU_RANDOM = ddpgx.DDPGConfig(exploration_noise=ddpgx.OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.2),
                             random_timesteps=3, exploration_scheduler=lambda t, T: 1.0 - t / T)


def ou_params(theta, sigma, base_scale=1.0, mean=0.0, std=1.0):
    return ddpgx.OrnsteinUhlenbeckNoise(**f32(theta=theta, sigma=sigma, base_scale=base_scale, mean=mean, std=std))


# --------------------------------------------------------------------------------------------- Gaussian


def test_gaussian_sample_mean_std():
    g = noise.GaussianNoise(mean=0.2, std=0.3)
    state = noise.init_state(50_000, 4)
    values, new_state = noise.sample(g, state, jax.random.key(0), (50_000, 4))  # 200k draws
    assert values.shape == (50_000, 4) and values.dtype == jnp.float32
    assert new_state is state  # the Gaussian noise has no process state
    assert_mean_std(np.ravel(values), 0.2, 0.3)
    assert_mean_std(values, 0.2, 0.3)  # per component (50k each)
    corr = np.corrcoef(np.asarray(values).T)[np.triu_indices(4, 1)]  # components uncorrelated
    np.testing.assert_array_less(np.abs(corr), Z / np.sqrt(50_000))
    # Same key, same draws; another key, other draws.
    again, _ = noise.sample(g, state, jax.random.key(0), (50_000, 4))
    other, _ = noise.sample(g, state, jax.random.key(1), (50_000, 4))
    np.testing.assert_array_equal(values, again)
    assert np.mean(np.asarray(values) == np.asarray(other)) < 1e-3


def test_gaussian_through_act():
    ts = make_state(GAUSS, *WIDE, num_envs=N)
    obs = observations(N)
    det = deterministic(ts, obs)
    actions, new_ts, info = ddpgx.act(ts, obs, timestep=0, timesteps=100)
    assert actions.shape == (N, 4) and info["noise"].shape == (N, 4)
    assert np.all(np.abs(np.asarray(actions)) < 10.0)  # no clipping happened, so action = mu(s) + noise
    np.testing.assert_allclose(actions, det + info["noise"], rtol=0, atol=1e-5)
    assert_mean_std(np.ravel(info["noise"]), -0.1, 0.25)
    assert_mean_std(np.ravel(actions - det), -0.1, 0.25)
    assert_mean_std(info["noise"], -0.1, 0.25)
    # The key advances, so the next call draws fresh noise.
    assert not np.array_equal(jax.random.key_data(new_ts.key), jax.random.key_data(ts.key))
    _, _, info2 = ddpgx.act(new_ts, obs)
    assert np.mean(np.asarray(info2["noise"]) == np.asarray(info["noise"])) < 1e-3


# --------------------------------------------------------------------------------------------- Ornstein-Uhlenbeck


@functools.partial(jax.jit, static_argnames=("chains", "action_size", "steps"))
def ou_run(ou, key, *, chains, action_size, steps):
    """``steps`` draws of ``chains`` independent OU processes started at 0: [steps, chains, action_size]."""
    def step(state, k):
        values, state = noise.sample(ou, state, k, (chains, action_size))
        return state, values

    return jax.lax.scan(step, noise.init_state(chains, action_size), jax.random.split(key, steps))[1]


@pytest.mark.parametrize(
    "params",
    [dict(theta=0.15, sigma=0.2),  # skrl / paper defaults
     dict(theta=0.4, sigma=0.3, base_scale=2.0, std=1.5),
     dict(theta=1.0, sigma=0.5, base_scale=0.5)],  # theta = 1: white noise
    ids=["defaults", "scaled", "theta1"])
def test_ou_sample_stationary_variance_and_autocorrelation(params):
    ou = noise.OrnsteinUhlenbeckNoise(**params)
    burn_in = 300  # (1 - 0.15)^(2 * 300) < 1e-40: stationary afterwards for every theta here
    values = ou_run(ou_params(**params), jax.random.key(3), chains=1024, action_size=2, steps=burn_in + 400)
    stationary = values[burn_in:]
    assert_ou_statistics(stationary, ou, lags=(1, 3) if ou.theta < 1 else (1,))
    if ou.theta == 1.0:  # no memory: lag-1 correlation 0
        x = np.asarray(stationary, np.float64).reshape(stationary.shape[0], -1)
        assert abs(np.mean(x[1:] * x[:-1]) / np.mean(x * x)) < Z / np.sqrt(x[1:].size)
    # The transient from x_0 = 0 follows its closed form too: Var(x_t) = v (1 - (1 - theta)^(2t)).
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
    # base_scale scales the applied noise only, not the process.
    v3, s3 = noise.sample(ou.replace(base_scale=4.5), state, key, (3, 2))
    np.testing.assert_array_equal(s3, new_state)
    np.testing.assert_allclose(v3, 3.0 * values, rtol=1e-6)


def test_ou_through_act_statistics():
    burn_in, steps = 140, 300  # (1 - 0.3)^280 ~ 1e-43
    ts = make_state(OU_CONFIG, *WIDE, num_envs=OU_ENVS)
    obs = observations(OU_ENVS)
    det = deterministic(ts, obs)

    @jax.jit
    def run(ts):
        def step(ts, _):
            actions, ts, info = ddpgx.act(ts, obs, timestep=0, timesteps=1)
            return ts, (actions, info["noise"], ts.noise_state)

        return jax.lax.scan(step, ts, None, length=burn_in + steps)[1]

    actions, applied, states = run(ts)
    np.testing.assert_allclose(applied, 2.0 * states, rtol=1e-6)  # applied = base_scale * process value
    assert np.all(np.abs(np.asarray(actions)) < 10.0)
    np.testing.assert_allclose(actions - det, applied, atol=1e-5)
    assert_ou_statistics(applied[burn_in:], OU, lags=(1, 2, 4))
    # base_scale: the same run with base_scale 0.5 applies a quarter of the noise (the process is unchanged).
    _, applied_q, states_q = run(ts.replace(noise=ou_params(theta=0.3, sigma=0.2, base_scale=0.5)))
    np.testing.assert_allclose(states_q, states, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(applied_q, 0.25 * applied, rtol=1e-5, atol=1e-7)


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


def built_up_ou_state(steps=10):
    ts = make_state(OU_CONFIG, *WIDE, num_envs=OU_ENVS)
    obs = observations(OU_ENVS)
    for _ in range(steps):
        _, ts, _ = ddpgx.act(ts, obs)
    assert np.all(np.abs(np.asarray(ts.noise_state)) > 0)
    return ts, obs


def test_act_episode_starts_resets_process():
    ts, obs = built_up_ou_state()
    mask = np.random.default_rng(0).random(OU_ENVS) < 0.3
    old = np.asarray(ts.noise_state)
    a_reset, ts_reset, info_reset = ddpgx.act(ts, obs, episode_starts=jnp.asarray(mask))
    # Same key, state zeroed by hand: identical result.
    manual = ts.replace(noise_state=jnp.where(mask[:, None], 0.0, ts.noise_state))
    a_manual, ts_manual, _ = ddpgx.act(manual, obs)
    np.testing.assert_array_equal(a_reset, a_manual)
    np.testing.assert_array_equal(ts_reset.noise_state, ts_manual.noise_state)
    # Without the reset the unmasked rows evolve identically, and the masked ones differ by the decayed old value.
    _, ts_plain, info_plain = ddpgx.act(ts, obs)
    np.testing.assert_array_equal(info_reset["noise"][~mask], info_plain["noise"][~mask])
    np.testing.assert_allclose(info_plain["noise"][mask] - info_reset["noise"][mask], 2.0 * 0.7 * old[mask],
                               rtol=1e-4, atol=1e-6)
    # The first draw after a reset is base_scale * sigma * eps: N(0, (2 * 0.2)^2).
    assert_mean_std(np.ravel(info_reset["noise"][mask]), 0.0, 0.4)
    # No episode start: all rows keep evolving.
    _, ts_none, _ = ddpgx.act(ts, obs, episode_starts=jnp.zeros(OU_ENVS, bool))
    np.testing.assert_array_equal(ts_none.noise_state, ts_plain.noise_state)


def test_act_episode_starts_with_zero_sigma():
    """With sigma = 0 after building up state: reset rows give exactly the deterministic action; the others decay."""
    ts, obs = built_up_ou_state()
    ts = ts.replace(noise=ou_params(theta=0.3, sigma=0.0, base_scale=2.0))
    det = deterministic(ts, obs)
    mask = np.random.default_rng(1).random(OU_ENVS) < 0.5
    old = np.asarray(ts.noise_state)
    actions, ts, info = ddpgx.act(ts, obs, episode_starts=jnp.asarray(mask))
    np.testing.assert_array_equal(info["noise"][mask], 0.0)
    assert_same_actions(actions[mask], det[mask])
    np.testing.assert_array_equal(ts.noise_state[mask], 0.0)
    np.testing.assert_allclose(ts.noise_state[~mask], 0.7 * old[~mask], rtol=1e-6)
    np.testing.assert_allclose(info["noise"][~mask], 2.0 * 0.7 * old[~mask], rtol=1e-6)
    np.testing.assert_allclose(actions[~mask], det[~mask] + info["noise"][~mask], atol=1e-5)
    actions, ts, _ = ddpgx.act(ts, obs)  # the reset rows stay at zero while sigma is 0
    assert_same_actions(actions[mask], det[mask])


# --------------------------------------------------------------------------------------------- distrax


def eager_deterministic(ts, obs, low, high):
    return np.clip(ts.spec.policy.apply(ts.policy_params, obs), np.float32(low), np.float32(high))


def test_distrax_scalar_normal_as_exploration_noise():
    ts = make_state(NORMAL, *WIDE, num_envs=N)
    obs = observations(N)
    actions, _, info = ddpgx.act(ts, obs)
    assert info["noise"].shape == (N, 4) and info["noise"].dtype == jnp.float32
    np.testing.assert_allclose(actions, eager_deterministic(ts, obs, *WIDE) + info["noise"], atol=1e-5)
    assert_mean_std(np.ravel(info["noise"]), 0.0, 0.3)
    assert_mean_std(info["noise"], 0.0, 0.3)  # every component drawn independently
    corr = np.corrcoef(np.asarray(info["noise"]).T)[np.triu_indices(4, 1)]
    np.testing.assert_array_less(np.abs(corr), Z / np.sqrt(N))


@pytest.mark.parametrize("make", [
    lambda loc, scale: distrax.MultivariateNormalDiag(jnp.asarray(loc), jnp.asarray(scale)),  # event shape [4]
    lambda loc, scale: distrax.Normal(jnp.asarray(loc), jnp.asarray(scale)),  # batch shape [4]
], ids=["MultivariateNormalDiag", "batched-Normal"])
def test_distrax_vector_distribution_as_exploration_noise(make):
    loc, scale = np.array([0.1, -0.2, 0.0, 0.5]), np.array([0.3, 0.5, 0.1, 1.0])
    dist = make(loc, scale)
    values, _ = jax.jit(noise.sample, static_argnums=3)(dist, noise.init_state(1, 4), jax.random.key(2), (N, 4))
    assert values.shape == (N, 4)
    assert_mean_std(values, loc, scale)

    ts = make_state(ddpgx.DDPGConfig(exploration_noise=dist), *WIDE, num_envs=N)
    obs = observations(N)
    actions, _, info = ddpgx.act(ts, obs)
    assert actions.shape == (N, 4) and info["noise"].shape == (N, 4)
    np.testing.assert_allclose(actions, eager_deterministic(ts, obs, *WIDE) + info["noise"], atol=1e-5)
    assert_mean_std(info["noise"], loc, scale)


# --------------------------------------------------------------------------------------------- scheduler


def test_exploration_scheduler_scales_noise():
    """SCHEDULED: Gaussian std 0.4 scaled by max(0, 1 - t / T), after 5 random timesteps."""
    horizon = 1000
    ts = make_state(SCHEDULED, *ASYM, num_envs=N)
    obs = observations(N)
    det = deterministic(ts, obs)
    low, high = np.float32(ASYM[0]), np.float32(ASYM[1])
    for t, scale in ((5, 0.995), (250, 0.75), (600, 0.4)):
        actions, ts, info = ddpgx.act(ts, obs, timestep=t, timesteps=horizon)
        assert_mean_std(info["noise"], 0.0, scale * 0.4)
        np.testing.assert_allclose(actions, np.clip(det + info["noise"], low, high), atol=1e-5)
    for t in (horizon, horizon + 50):  # scale 0 at and past the horizon: exactly the deterministic actions
        actions, ts, info = ddpgx.act(ts, obs, timestep=t, timesteps=horizon)
        np.testing.assert_array_equal(info["noise"], 0.0)
        assert_same_actions(actions, det)


# --------------------------------------------------------------------------------------------- random timesteps


def test_random_timesteps_uniform_then_deterministic():
    from scipy import stats

    ts = make_state(SCHEDULED, *ASYM, num_envs=N)
    obs = observations(N)
    det = deterministic(ts, obs)
    low, high = np.array(ASYM[0]), np.array(ASYM[1])
    width = high - low
    mean, var = (low + high) / 2, width**2 / 12
    var_se = np.sqrt((width**4 / 80 - var**2) / N)  # standard error of the sample variance: (mu_4 - sigma^4) / n
    previous = None
    for t in range(5):
        actions, ts, info = ddpgx.act(ts, obs, timestep=t, timesteps=1000)
        a = np.asarray(actions, np.float64)
        assert np.all(a >= low) and np.all(a <= high)
        np.testing.assert_array_less(np.abs(a.mean(0) - mean), Z * np.sqrt(var / N))
        np.testing.assert_array_less(np.abs(a.var(0) - var), Z * var_se)
        for j in range(4):  # flat over deciles: chi-square with 9 degrees of freedom, p > 1e-4
            counts = np.histogram(a[:, j], bins=np.linspace(low[j], high[j], 11))[0]
            assert stats.chisquare(counts).pvalue > 1e-4
        np.testing.assert_array_equal(info["noise"], 0.0)  # no noise drawn while acting randomly
        if previous is not None:
            assert np.mean(a == previous) < 1e-3  # fresh draws every step
        previous = a
    # From timestep 5 on the policy acts again: with the scheduler at 0 (t >= T), exactly mu(s).
    for t, horizon in ((5, 5), (6, 5), (50, 10)):
        actions, ts, _ = ddpgx.act(ts, obs, timestep=t, timesteps=horizon)
        assert_same_actions(actions, det)


def test_random_timesteps_hold_ou_state_then_scheduled_noise():
    """OU_RANDOM: OU(theta 0.15, sigma 0.2), 3 random timesteps, scheduler 1 - t / T."""
    ts = make_state(OU_RANDOM, *SMALL, num_envs=6)
    obs = observations(6)
    det = deterministic(ts, obs)
    for t in range(3):
        actions, ts, info = ddpgx.act(ts, obs, timestep=t, timesteps=10)
        np.testing.assert_array_equal(ts.noise_state, 0.0)  # the process is held still while acting randomly
        np.testing.assert_array_equal(info["noise"], 0.0)
        assert not np.any(np.asarray(actions) == np.asarray(det))
    # The scheduler scales the applied noise, not the process: same key, scale 0.5 and 0.25.
    _, ts_half, info_half = ddpgx.act(ts, obs, timestep=5, timesteps=10)
    _, ts_quarter, info_quarter = ddpgx.act(ts, obs, timestep=6, timesteps=8)
    np.testing.assert_array_equal(ts_half.noise_state, ts_quarter.noise_state)
    np.testing.assert_allclose(info_half["noise"], 2.0 * info_quarter["noise"], rtol=1e-6)
    np.testing.assert_allclose(info_half["noise"], 0.5 * ts_half.noise_state, rtol=1e-6)  # first step from x = 0
    assert np.all(np.asarray(info_half["noise"]) != 0.0)
    actions, _, info = ddpgx.act(ts, obs, timestep=5, timesteps=10)
    np.testing.assert_allclose(actions, np.clip(det + info["noise"], np.float32(SMALL[0]), np.float32(SMALL[1])),
                               atol=1e-6)


# --------------------------------------------------------------------------------------------- clipping


@pytest.mark.parametrize("config, num_envs, big_noise", [
    (GAUSS, N, ddpgx.GaussianNoise(**f32(mean=0.0, std=30.0))),
    (OU_CONFIG, OU_ENVS, ou_params(theta=0.5, sigma=20.0, base_scale=2.0)),
    (NORMAL, N, distrax.Normal(jnp.float32(1.0), jnp.float32(25.0))),
], ids=["gaussian", "ou", "distrax-normal"])
def test_actions_always_clipped(config, num_envs, big_noise):
    ts = make_state(config, *WIDE, num_envs=num_envs).replace(noise=big_noise)
    obs = observations(num_envs)
    det = np.asarray(deterministic(ts, obs))
    low, high = np.float32(WIDE[0]), np.float32(WIDE[1])
    for _ in range(3):
        actions, ts, info = ddpgx.act(ts, obs)
        a = np.asarray(actions)
        assert np.all(a >= low) and np.all(a <= high)
        np.testing.assert_allclose(a, np.clip(det + np.asarray(info["noise"]), low, high), atol=1e-5)
        assert np.max(np.abs(np.asarray(info["noise"]))) > 20  # the noise itself is not clipped
        # The noise is large, so a good share of the actions sits exactly on each bound.
        assert np.mean(a == low) > 0.1 and np.mean(a == high) > 0.1


# --------------------------------------------------------------------------------------------- explore=False


@pytest.mark.parametrize("case", ["gaussian", "ou-random-timesteps"])
def test_explore_false_is_deterministic_and_pure(case):
    if case == "gaussian":
        ts, obs, (low, high) = make_state(GAUSS, *WIDE, num_envs=N), observations(N, scale=1.0), WIDE
    else:
        ts, obs, (low, high) = make_state(OU_RANDOM, *SMALL, num_envs=6), observations(6, scale=1.0), SMALL
        for _ in range(2):  # give the OU process some state first
            _, ts, _ = ddpgx.act(ts, obs, timestep=20, timesteps=100)
        assert np.all(np.asarray(ts.noise_state) != 0)
    before = leaves(ts)
    expected = eager_deterministic(ts, obs, low, high)
    for timestep in (0, 20):  # even inside the random phase
        actions, new_ts, info = ddpgx.act(ts, obs, timestep=timestep, timesteps=100, explore=False,
                                          episode_starts=jnp.ones(obs.shape[0], bool))
        np.testing.assert_allclose(actions, expected, rtol=1e-6, atol=1e-6)  # jit vs eager rounding only
        np.testing.assert_array_equal(info["noise"], 0.0)
        assert jax.tree.structure(new_ts) == jax.tree.structure(ts)
        for a, b in zip(before, leaves(new_ts), strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(deterministic(ts, obs), actions)  # repeatable


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
    ts = make_state(GAUSS, *WIDE, num_envs=N)
    obs = observations(N)
    stds = jnp.array([0.1, 0.7, 2.0])
    means = jnp.array([0.0, 0.3, -0.5])

    def noise_for(mean, std):
        return ddpgx.act(ts.replace(noise=ddpgx.GaussianNoise(mean=mean, std=std)), obs)[2]["noise"]

    noises = jax.vmap(noise_for)(means, stds)
    assert noises.shape == (3, N, 4)
    assert_mean_std(np.asarray(noises).reshape(3, -1), np.asarray(means), np.asarray(stds), axis=1)


def test_ou_params_vmap_stationary_variance():
    params = [dict(theta=0.15, sigma=0.2), dict(theta=0.4, sigma=0.3, base_scale=2.0, std=1.5),
              dict(theta=1.0, sigma=0.5, base_scale=0.5)]
    batched = jax.tree.map(lambda *x: jnp.stack(x), *(ou_params(**p) for p in params))  # [3] leaves
    values = jax.vmap(lambda ou: ou_run(ou, jax.random.key(9), chains=512, action_size=2, steps=700))(batched)
    for i, p in enumerate(params):
        assert_ou_statistics(values[i, 300:], noise.OrnsteinUhlenbeckNoise(**p), lags=(1,))
    # Each vmapped slice equals the unbatched run.
    np.testing.assert_allclose(values[1], ou_run(ou_params(**params[1]), jax.random.key(9), chains=512,
                                                 action_size=2, steps=700), rtol=1e-5, atol=1e-6)
