"""The running standard scaler against NumPy on streamed data, and inside ``ddpgx.update``."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpgx
from ddpgx.core import networks, scaler

RTOL = 1e-5  # float32 streaming statistics vs float64 NumPy over the same float32 data

# Chunk sizes of the stream: size-1 chunks (first, in a row, and between large ones) and sizes up to 1000.
CHUNKS = (1, 1, 7, 1, 64, 3, 1, 250, 1, 2, 1000, 1, 33, 500, 1)


def stream(seed=0, n=sum(CHUNKS)):
    """Non-standard data: a large offset with a small spread, a skewed exponential, a heavy-tailed Student-t
    and a bimodal mixture; float32, as the scaler sees it."""
    rng = np.random.default_rng(seed)
    columns = [
        50.0 + 0.1 * rng.standard_normal(n),
        rng.exponential(2.0, n) - 1.0,
        3.0 * rng.standard_t(4, n) - 7.0,
        np.where(rng.random(n) < 0.3, -4.0, 6.0) + rng.standard_normal(n),
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def assert_matches_numpy(state, seen):
    seen = np.asarray(seen, np.float64)
    assert float(state.count) == seen.shape[0]
    # The mean relative to the data's magnitude (a mean near 0 has no relative precision), per column.
    scale = np.abs(seen).max(0)
    np.testing.assert_array_less(np.abs(np.asarray(state.mean, np.float64) - seen.mean(0)), RTOL * scale + 1e-30)
    # The variance relative to itself (a single sample has variance exactly 0).
    np.testing.assert_allclose(state.var, seen.var(0), rtol=RTOL, atol=1e-12)


def test_init_is_identity_statistics():
    state = scaler.init(3)
    np.testing.assert_array_equal(state.mean, np.zeros(3))
    np.testing.assert_array_equal(state.var, np.ones(3))
    assert state.count == 0 and state.mean.dtype == jnp.float32 and state.var.dtype == jnp.float32


def test_streamed_chunks_match_numpy_after_every_merge():
    data = stream()
    state = scaler.init(data.shape[1])
    start = 0
    for size in CHUNKS:
        state = scaler.update(state, jnp.asarray(data[start:start + size]))
        start += size
        assert_matches_numpy(state, data[:start])
    assert start == data.shape[0]


def test_leading_dimensions_are_all_samples():
    data = stream(seed=1, n=60)
    first = scaler.update(scaler.init(4), jnp.asarray(data[:24]).reshape(2, 3, 4, 4))  # [2, 3, 4] samples of [4]
    assert_matches_numpy(first, data[:24])
    both = scaler.update(first, jnp.asarray(data[24:]).reshape(36, 1, 4))
    assert_matches_numpy(both, data)


def test_chunking_does_not_matter():
    data = stream(seed=2, n=512)
    whole = scaler.update(scaler.init(4), jnp.asarray(data))
    by_one = scaler.init(4)
    for row in data[:64]:
        by_one = scaler.update(by_one, jnp.asarray(row[None]))
    by_one = scaler.update(by_one, jnp.asarray(data[64:]))
    np.testing.assert_allclose(by_one.mean, whole.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(by_one.var, whole.var, rtol=RTOL)
    assert float(by_one.count) == float(whole.count) == 512


def test_jit_equals_eager():
    data = stream(seed=3)
    update = jax.jit(scaler.update)
    standardize = jax.jit(scaler.standardize, static_argnames=("epsilon", "clip"))
    eager, jitted = scaler.init(4), scaler.init(4)
    start = 0
    for size in CHUNKS:
        chunk = jnp.asarray(data[start:start + size])
        start += size
        eager, jitted = scaler.update(eager, chunk), update(jitted, chunk)
        for a, b in zip(eager, jitted, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
    assert_matches_numpy(jitted, data)
    x = jnp.asarray(data[:100])
    np.testing.assert_allclose(standardize(jitted, x), scaler.standardize(eager, x), rtol=1e-6, atol=1e-6)
    # A whole stream as one lax.scan over equal chunks (the form used inside a jitted training loop).
    chunks = jnp.asarray(data[:1000]).reshape(50, 20, 4)
    scanned, _ = jax.lax.scan(lambda s, c: (scaler.update(s, c), None), scaler.init(4), chunks)
    assert_matches_numpy(scanned, data[:1000])


@pytest.mark.parametrize("epsilon, clip", [(1e-8, 5.0), (0.5, 2.0), (0.0, 1.0)])
def test_standardize_matches_formula(epsilon, clip):
    data = stream(seed=4, n=2000)
    state = scaler.update(scaler.init(4), jnp.asarray(data))
    rng = np.random.default_rng(5)
    # Points in the bulk and far outliers (to exercise the clipping on both sides).
    x = np.concatenate([data[:200], data[:50] + rng.choice([-1, 1], (50, 4)) * 100 * data.std(0)]).astype(np.float32)
    got = np.asarray(scaler.standardize(state, jnp.asarray(x), epsilon, clip))
    mean, var = np.asarray(state.mean, np.float64), np.asarray(state.var, np.float64)
    expected = np.clip((x - mean) / (np.sqrt(var) + epsilon), -clip, clip)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.abs(got) <= clip)
    assert np.any(got == clip) and np.any(got == -clip)
    # With the NumPy statistics in place of the scaler's, the same result (the statistics are exact).
    np_expected = np.clip((x - data.mean(0, dtype=np.float64)) / (data.std(0, dtype=np.float64) + epsilon), -clip,
                          clip)
    np.testing.assert_allclose(got, np_expected, rtol=1e-4, atol=1e-4)


def test_standardize_defaults_and_bulk_statistics():
    data = stream(seed=6, n=20_000)
    state = scaler.update(scaler.init(4), jnp.asarray(data))
    z = np.asarray(scaler.standardize(state, jnp.asarray(data)), np.float64)  # defaults: epsilon 1e-8, clip 5
    np.testing.assert_allclose(np.abs(z).max(0) <= 5.0, True)
    # Column 0 (normal) is standardised without clipping: mean 0 and variance 1 up to float32 rounding.
    np.testing.assert_allclose(z[:, 0].mean(), 0.0, atol=1e-4)
    np.testing.assert_allclose(z[:, 0].var(), 1.0, rtol=1e-4)
    # The identity statistics (no data yet) leave values in [-5, 5] unchanged up to epsilon.
    x = jnp.asarray([[0.5, -2.0, 4.0, 9.0]], jnp.float32)
    np.testing.assert_allclose(scaler.standardize(scaler.init(4), x), [[0.5, -2.0, 4.0, 5.0]], rtol=1e-7)


# --------------------------------------------------------------------------------------------- inside ddpgx.update

OBS_SPACE = gymnasium.spaces.Box(-np.inf, np.inf, (4,), np.float32)
STATE_SPACE = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
ACT_SPACE = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)


def small_state(config, state_space=None):
    return ddpgx.init(jax.random.key(0), config, OBS_SPACE, ACT_SPACE, state_space=state_space,
                      policy=networks.DeterministicPolicy((-1.0, -1.0), (1.0, 1.0), (2,), hidden_sizes=(16,)),
                      critic=networks.QFunction(hidden_sizes=(16,)))


def batch(rng, lead, with_states):
    n = int(np.prod(lead))
    obs, next_obs = stream(seed=int(rng.integers(1 << 30)), n=2 * n).reshape(2, *lead, 4)
    states = next_states = None
    if with_states:
        states = (rng.standard_normal(lead + (2,)) * [10.0, 0.1] + [-3.0, 20.0]).astype(np.float32)
        next_states = (rng.standard_normal(lead + (2,)) * [10.0, 0.1] + [-3.0, 20.0]).astype(np.float32)
    return ddpgx.Transition(obs, rng.uniform(-1, 1, lead + (2,)).astype(np.float32),
                            rng.standard_normal(lead).astype(np.float32), next_obs, rng.random(lead) < 0.1,
                            states, next_states)


@pytest.mark.parametrize("gradient_steps, state_preprocessor", [(1, False), (3, True)])
def test_update_scaler_matches_numpy_over_all_fed_observations(gradient_steps, state_preprocessor):
    config = ddpgx.DDPGConfig(batch_size=16, gradient_steps=gradient_steps, observation_preprocessor=True,
                              state_preprocessor=state_preprocessor)
    ts = small_state(config, STATE_SPACE)
    rng = np.random.default_rng(gradient_steps)
    lead = (16,) if gradient_steps == 1 else (gradient_steps, 16)
    seen_obs, seen_states = [], []
    for _ in range(4):
        b = batch(rng, lead, with_states=True)
        ts, metrics = ddpgx.update(ts, b)
        assert np.isfinite(float(metrics["critic_loss"]))
        seen_obs += [b.observations.reshape(-1, 4), b.next_observations.reshape(-1, 4)]
        seen_states += [b.states.reshape(-1, 2), b.next_states.reshape(-1, 2)]
        assert_matches_numpy(ts.observation_stats, np.concatenate(seen_obs))
        if state_preprocessor:
            assert_matches_numpy(ts.state_stats, np.concatenate(seen_states))
        else:  # states given but not standardised: their statistics stay empty
            assert float(ts.state_stats.count) == 0
            np.testing.assert_array_equal(ts.state_stats.mean, 0.0)
            np.testing.assert_array_equal(ts.state_stats.var, 1.0)
    assert int(ts.step) == 4 * gradient_steps

    # act standardises observations with the same statistics.
    obs = stream(seed=99, n=8)
    actions, _, _ = ddpgx.act(ts, obs, explore=False)
    z = scaler.standardize(ts.observation_stats, jnp.asarray(obs))
    np.testing.assert_allclose(actions, ts.spec.policy.apply(ts.policy_params, z), rtol=1e-5, atol=1e-6)
