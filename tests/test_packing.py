"""The few-buffer train state (ddpgx.core.packing) and the packed step: exact, and fewer buffers per call."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpgx
from ddpgx import core
from ddpgx.core import packing, replay
from ddpgx.core.types import Transition

OBS, ACT = gymnasium.spaces.Box(-np.inf, np.inf, (17,), np.float32), gymnasium.spaces.Box(-1, 1, (6,), np.float32)


def state(seed=0, **config):
    config = ddpgx.DDPGConfig(**{"batch_size": 16, "exploration_noise": ddpgx.GaussianNoise(std=0.1), **config})
    return ddpgx.init(jax.random.key(seed), config, OBS, ACT)


def raw(tree):
    """Leaves as NumPy arrays, PRNG keys as their data: comparable bit for bit."""
    return [np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves(tree)]


def assert_same(a, b):
    left, right = raw(a), raw(b)
    assert len(left) == len(right)
    for x, y in zip(left, right, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def transition(rng, n=1):
    return Transition(rng.normal(size=(n, 17)).astype(np.float32), rng.uniform(-1, 1, (n, 6)).astype(np.float32),
                      rng.normal(size=n).astype(np.float32), rng.normal(size=(n, 17)).astype(np.float32),
                      rng.random(n) < 0.1)


def test_pack_unpack_round_trip_is_exact_and_leaves_few_buffers():
    ts = state()
    packed = packing.pack(ts)
    assert_same(packing.unpack(packed), ts)
    assert_same(jax.jit(packing.unpack)(jax.jit(packing.pack)(ts)), ts)
    kinds = {str(x.dtype) for x in packed.small.values()}
    assert kinds == {"float32", "int32"}  # every small leaf of one dtype in one vector
    # 72 leaves become the 16 large ones (two kernels of each network, 17x400 and 400x300 or 23x400 and 400x300,
    # in four copies: parameters, targets, Adam's two moments), the key, and one vector per dtype.
    assert len(jax.tree.leaves(ts)) == 72 and len(jax.tree.leaves(packed)) == 16 + 1 + 2
    large = {np.shape(x) for x in packed.large if not jnp.issubdtype(x.dtype, jax.dtypes.prng_key)}
    assert large == {(17, 400), (400, 300), (23, 400)}


def test_pack_of_a_tree_with_only_large_or_only_small_leaves():
    only_large = {"w": jnp.ones((64, 64))}
    assert jax.tree.leaves(packing.pack(only_large).small) == []
    assert_same(packing.unpack(packing.pack(only_large)), only_large)
    only_small = {"b": jnp.arange(3.0), "n": jnp.int32(7), "flag": jnp.array([True, False])}
    packed = packing.pack(only_small)
    assert packed.large == () and set(packed.small) == {"float32", "int32", "bool"}
    assert_same(packing.unpack(packed), only_small)


@pytest.mark.parametrize("metrics", [True, False])
def test_packed_step_equals_add_update_act_bit_for_bit(metrics):
    """Five steps of the packed step against add_update_act with the action's randomness committed by the caller:
    the same actions, metrics, buffers and train states; the returned (key, noise_state) undo the commit, which
    gives add_and_update's state."""
    rng = np.random.default_rng(0)
    example = jax.tree.map(lambda x: x[0], transition(rng))
    buffer_a = replay.init(64, example)
    for _ in range(20):
        buffer_a = replay.add(buffer_a, transition(rng))
    buffer_b = jax.tree.map(jnp.copy, buffer_a)
    ts_a, packed = state(), jax.jit(packing.pack)(state())
    starts = np.array([True])
    for step in range(5):
        t, next_obs = transition(rng), rng.normal(size=(1, 17)).astype(np.float32)
        before, buffer_before = jax.tree.map(jnp.copy, (ts_a, buffer_a))
        actions_a, (key, noise_state), ts_a, buffer_a, metrics_a, info_a = core.add_update_act(
            ts_a, buffer_a, t, next_obs, 100 + step, 1000, starts, None, metrics=metrics)
        after_update = ts_a
        ts_a = ts_a.replace(key=key, noise_state=noise_state)
        actions_b, packed, undo, buffer_b, metrics_b, info_b = core.add_update_act_packed(
            packed, buffer_b, t, next_obs, 100 + step, 1000, starts, None, metrics=metrics)
        np.testing.assert_array_equal(np.asarray(actions_a), np.asarray(actions_b))
        assert_same(jax.jit(packing.unpack)(packed), ts_a)
        assert_same(buffer_a, buffer_b)
        assert_same((metrics_a, info_a), (metrics_b, info_b))
        assert sorted(metrics_b) == sorted(metrics_a) and (metrics_b != {}) == metrics
        assert_same(undo, (after_update.key, after_update.noise_state))
        ts_c, _, _ = core.add_and_update(before, buffer_before, t)
        assert_same(ts_c.replace(key=undo[0], noise_state=undo[1]), after_update)
        starts = np.array([False])


def test_the_packed_step_passes_fewer_buffers():
    """What the change is for: the compiled step's parameters and results, counted by XLA."""
    from ddpgx.core import ddpg

    rng = np.random.default_rng(0)
    t = transition(rng)
    buffer = replay.init(64, jax.tree.map(lambda x: x[0], t))
    args = (buffer, t, t.observations, 5, 10, np.zeros(1, bool), None)

    def buffers(lowered):
        compiled = lowered.compile()
        return len(jax.tree.leaves(compiled.args_info)) + len(jax.tree.leaves(compiled.out_info))

    plain = buffers(ddpg._update_act.lower(state(), *args, with_metrics=False))
    packed = buffers(ddpg._packed_update_act.lower(packing.pack(state()), *args, with_metrics=False))
    assert plain >= 150 and packed <= plain - 100, (plain, packed)
