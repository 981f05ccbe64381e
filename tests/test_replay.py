"""The device replay buffer: ring semantics, validation, uniform sampling of filled entries, jit and update use."""

from __future__ import annotations

import re

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import ddpgx
from ddpgx.core import networks, replay
from ddpgx.core.types import Transition

P_MIN = 1e-3  # chi-square p-value threshold for the uniformity tests (fixed seeds, so the outcome is deterministic)


def example(obs_size=3, action_size=1, states=False):
    """One unbatched transition (zeros)."""
    s = jnp.zeros(2) if states else None
    return Transition(jnp.zeros(obs_size), jnp.zeros(action_size), jnp.zeros(()), jnp.zeros(obs_size),
                      jnp.zeros((), bool), s, s)


def items(ids):
    """A batch of transitions encoding integer ids: every field can be traced back to its id."""
    i = np.asarray(ids, np.float32)
    obs = np.stack([i, -i, 0.5 * i], axis=1)
    return Transition(obs, (i / 10)[:, None], i, obs + 1000.0, np.asarray(ids) % 2 == 0)


def assert_ring(buffer, slots, position):
    """``slots``: the id held by each slot, or None for a slot never written (all zeros)."""
    assert int(buffer.position) == position
    assert int(buffer.size) == sum(s is not None for s in slots)
    filled = np.array([s is not None for s in slots])
    expected = items([s if s is not None else 0 for s in slots])
    for name, got, want in zip(Transition._fields, buffer.data, expected, strict=True):
        if want is None:
            assert got is None
            continue
        got = np.asarray(got)
        np.testing.assert_array_equal(got[filled], np.asarray(want)[filled], err_msg=name)
        np.testing.assert_array_equal(got[~filled], 0, err_msg=name)


# --------------------------------------------------------------------------------------------- init / add


def test_init_layout():
    buffer = replay.init(5, example(states=True))
    assert replay.capacity(buffer) == 5
    assert int(buffer.position) == 0 and int(buffer.size) == 0
    shapes = {name: (x.shape, x.dtype) for name, x in zip(Transition._fields, buffer.data, strict=True)}
    assert shapes == {"observations": ((5, 3), jnp.float32), "actions": ((5, 1), jnp.float32),
                      "rewards": ((5,), jnp.float32), "next_observations": ((5, 3), jnp.float32),
                      "terminated": ((5,), jnp.bool_), "states": ((5, 2), jnp.float32),
                      "next_states": ((5, 2), jnp.float32)}
    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(buffer.data))


@pytest.mark.parametrize("capacity", [0, -3, 2.5, True, "10"])
def test_init_rejects_bad_capacity(capacity):
    with pytest.raises(ValueError, match=re.escape(f"capacity={capacity!r}")):
        replay.init(capacity, example())


def test_wrap_around_capacity_5_batches_of_3():
    buffer = replay.init(5, example())
    # Hand-computed ring: batch k holds ids 3k, 3k+1, 3k+2, written at position, position+1, ... modulo 5.
    expected = [
        ([0, 1, 2, None, None], 3),
        ([5, 1, 2, 3, 4], 1),
        ([5, 6, 7, 8, 4], 4),
        ([10, 11, 7, 8, 9], 2),
        ([10, 11, 12, 13, 14], 0),
        ([15, 16, 17, 13, 14], 3),
    ]
    for k, (slots, position) in enumerate(expected):
        buffer = replay.add(buffer, items([3 * k, 3 * k + 1, 3 * k + 2]))
        assert_ring(buffer, slots, position)


def test_add_from_n_envs_at_once():
    buffer = replay.init(10, example())
    buffer = replay.add(buffer, items([0, 1, 2, 3]))  # 4 environments
    assert_ring(buffer, [0, 1, 2, 3] + [None] * 6, 4)
    buffer = replay.add(buffer, items([4, 5, 6, 7]))
    assert_ring(buffer, list(range(8)) + [None] * 2, 8)
    buffer = replay.add(buffer, items([8, 9, 10, 11]))
    assert_ring(buffer, [10, 11] + list(range(2, 10)), 2)
    # A batch of exactly the capacity overwrites every entry, starting at the position.
    buffer = replay.add(buffer, items(list(range(100, 110))))
    assert_ring(buffer, list(range(108, 110)) + list(range(100, 108)), 2)
    # One environment at a time.
    buffer = replay.add(buffer, items([7]))
    assert_ring(buffer, [108, 109, 7] + list(range(101, 108)), 3)


def test_add_casts_to_buffer_dtypes():
    buffer = replay.init(4, example())
    batch = items([1, 2])._replace(rewards=np.array([1, 2], np.int32), terminated=np.array([1, 0], np.int32))
    buffer = replay.add(buffer, batch)
    assert buffer.data.rewards.dtype == jnp.float32 and buffer.data.terminated.dtype == jnp.bool_
    np.testing.assert_array_equal(buffer.data.terminated[:2], [True, False])


def test_add_more_than_capacity_raises():
    buffer = replay.init(5, example())
    with pytest.raises(ValueError, match=r"cannot add 6 transitions at once to a buffer of capacity 5"):
        replay.add(buffer, items(range(6)))
    buffer = replay.add(buffer, items(range(5)))  # the buffer is still usable, and 5 fit
    assert int(buffer.size) == 5


def test_add_mismatch_raises_naming_the_field():
    buffer = replay.init(5, example())
    good = items([0, 1])
    with pytest.raises(ValueError, match=r"transitions\.observations has shape \(2, 4\), expected \(n, 3\)"):
        replay.add(buffer, good._replace(observations=np.zeros((2, 4), np.float32)))
    with pytest.raises(ValueError, match=r"transitions\.actions has shape \(2, 2\), expected \(n, 1\)"):
        replay.add(buffer, good._replace(actions=np.zeros((2, 2), np.float32)))
    with pytest.raises(ValueError, match=r"transitions\.rewards has shape \(2, 1\), expected \(n,\)"):
        replay.add(buffer, good._replace(rewards=np.zeros((2, 1), np.float32)))
    with pytest.raises(ValueError, match=r"transitions\.next_observations has shape \(2, 3, 1\)"):
        replay.add(buffer, good._replace(next_observations=np.zeros((2, 3, 1), np.float32)))
    # Structure: states given to the batch but not to the buffer (and the reverse), named by field.
    with pytest.raises(ValueError, match=r"transitions\.states has structure PyTreeDef\(\*\), the buffer holds "
                                         r"PyTreeDef\(None\)"):
        replay.add(buffer, good._replace(states=np.zeros((2, 2), np.float32), next_states=np.zeros((2, 2),
                                                                                                   np.float32)))
    with pytest.raises(ValueError, match=r"transitions\.states has structure PyTreeDef\(None\)"):
        replay.add(replay.init(5, example(states=True)), good)
    # Leading batch sizes that disagree, and an unbatched field.
    with pytest.raises(ValueError, match=r"same leading batch size; got \[2, 3\]"):
        replay.add(buffer, good._replace(rewards=np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"transitions\.terminated has shape \(\), expected \(n,\)"):
        replay.add(buffer, good._replace(terminated=np.array(True)))


# --------------------------------------------------------------------------------------------- sample


# The sampling tests share one capacity and one sample shape, so sampling compiles once.
CAPACITY = 100
SHAPE = (70, 1000)  # 70k draws


def test_sample_returns_only_filled_entries_uniformly():
    buffer = replay.add(replay.init(CAPACITY, example()), items([1, 2, 3, 4, 5, 6, 7]))
    batch = replay.sample(buffer, jax.random.key(123), SHAPE)
    assert batch.observations.shape == SHAPE + (3,) and batch.actions.shape == SHAPE + (1,)
    assert batch.rewards.shape == SHAPE and batch.terminated.shape == SHAPE and batch.terminated.dtype == jnp.bool_
    ids = np.asarray(batch.rewards).astype(int)
    counts = np.bincount(ids.ravel(), minlength=CAPACITY)
    assert counts[0] == 0 and counts[8:].sum() == 0  # never an unfilled (zero) entry
    result = stats.chisquare(counts[1:8])  # H0: uniform over the 7 filled entries (6 degrees of freedom)
    assert result.pvalue > P_MIN, result
    # Every field of a sampled transition comes from the same entry.
    for name, got, expected in zip(Transition._fields, batch, items(ids.ravel()), strict=True):
        if expected is not None:
            np.testing.assert_array_equal(np.asarray(got).reshape(np.shape(expected)), expected, err_msg=name)
    # Another key, other draws; the same key, the same draws.
    np.testing.assert_array_equal(replay.sample(buffer, jax.random.key(123), SHAPE).rewards, batch.rewards)
    assert np.mean(np.asarray(replay.sample(buffer, jax.random.key(124), SHAPE).rewards) == ids) < 0.2
    # A single filled entry: every draw is it. An int shape gives one leading dimension.
    one = replay.add(replay.init(CAPACITY, example()), items([42]))
    np.testing.assert_array_equal(replay.sample(one, jax.random.key(1), SHAPE).rewards, 42)
    assert replay.sample(one, jax.random.key(1), 5).observations.shape == (5, 3)


@pytest.mark.parametrize("method, rows", [("pairwise", 20_000), ("sort", 20_001)])  # distinct shapes: two traces
def test_sample_without_replacement_draws_every_subset_alike(monkeypatch, method, rows):
    """Each minibatch holds distinct entries, every 3-subset of the 6 filled entries is equally likely, and so is
    every entry at every position, whether repeats are found by comparing all pairs or by a sort."""
    if method == "sort":
        monkeypatch.setattr(replay, "_PAIRWISE_UP_TO", 0)
    buffer = replay.add(replay.init(CAPACITY, example(), replacement=False), items([1, 2, 3, 4, 5, 6]))
    ids = np.asarray(replay.sample(buffer, jax.random.key(5), (rows, 3)).rewards).astype(int)
    assert ids.min() >= 1 and ids.max() <= 6
    assert (np.sort(ids, axis=1)[:, 1:] != np.sort(ids, axis=1)[:, :-1]).all()  # distinct within each minibatch
    subsets = np.sort(ids, axis=1) @ np.array([100, 10, 1])
    _, counts = np.unique(subsets, return_counts=True)
    assert counts.size == 20  # all C(6, 3) subsets occur ...
    assert stats.chisquare(counts).pvalue > P_MIN  # ... equally often
    for position in range(3):
        assert stats.chisquare(np.bincount(ids[:, position], minlength=7)[1:]).pvalue > P_MIN
    # As many draws as filled entries: every minibatch is a permutation of them.
    full = np.asarray(replay.sample(buffer, jax.random.key(6), (rows, 6)).rewards).astype(int)
    np.testing.assert_array_equal(np.sort(full, axis=1), np.tile(np.arange(1, 7), (rows, 1)))


def test_sample_uniform_over_wrapped_buffer():
    buffer = replay.init(CAPACITY, example())
    for k in range(3):  # 120 ids into 100 slots: ids 20..119 survive
        buffer = replay.add(buffer, items(range(40 * k, 40 * k + 40)))
    assert int(buffer.size) == 100 and int(buffer.position) == 20
    ids = np.asarray(replay.sample(buffer, jax.random.key(7), SHAPE).rewards).astype(int).ravel()
    counts = np.bincount(ids, minlength=120)
    assert counts[:20].sum() == 0  # overwritten
    result = stats.chisquare(counts[20:])  # H0: uniform over all 100 entries (99 degrees of freedom)
    assert result.pvalue > P_MIN, result


def test_sample_and_add_inside_jit():
    buffer = replay.add(replay.init(CAPACITY, example()), items(range(9)))
    key = jax.random.key(3)
    jitted = jax.jit(replay.sample, static_argnums=2)(buffer, key, SHAPE)
    eager = replay.sample(buffer, key, SHAPE)
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager), strict=True):
        np.testing.assert_array_equal(a, b)

    # A whole collection loop as one program: add inside lax.scan, then sample inside the same jit.
    @jax.jit
    def collect(buffer, batches, key):
        buffer, _ = jax.lax.scan(lambda b, t: (replay.add(b, t), None), buffer, batches)
        return buffer, replay.sample(buffer, key, 1000)

    batches = jax.tree.map(lambda x: jnp.asarray(x).reshape((4, 3) + x.shape[1:]), items(range(100, 112)))
    buffer, batch = collect(replay.init(10, example()), batches, jax.random.key(4))
    assert_ring(buffer, [110, 111] + list(range(102, 110)), 2)
    assert set(np.unique(np.asarray(batch.rewards)).astype(int)) == set(range(102, 112))


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("filled, n", [(0, 1), (5, 3), (9, 3), (10, 3), (37, 4)])
def test_sample_after_add_draws_what_add_then_sample_draws(replacement, filled, n):
    # The environment loop samples for its update before writing the new rows (the write is its own call, issued
    # after): the minibatch must be the one that writing first and then sampling gives, with every index, including
    # rows that wrap around the ring (capacity 10) and a buffer still filling.
    buffer = replay.init(10, example(), replacement=replacement)
    for start in range(0, filled, 4):
        buffer = replay.add(buffer, items(range(start, min(start + 4, filled))))
    new = items(range(100, 100 + n))
    for seed in range(5):
        key = jax.random.key(seed)
        after = jax.jit(replay.sample_after_add, static_argnums=3)(buffer, new, key, (2, 8))
        written = replay.add(jax.tree.map(jnp.copy, buffer), new)
        expected = replay.sample(written, key, (2, 8))
        for name, got, want in zip(Transition._fields, after, expected, strict=True):
            if want is not None:
                np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=name)
    assert int(buffer.size) == min(filled, 10)  # only read


def test_sample_after_add_rejects_what_add_rejects():
    buffer = replay.init(10, example())
    with pytest.raises(ValueError, match="expected \\(n, 3\\)"):
        replay.sample_after_add(buffer, Transition(np.zeros((1, 2)), np.zeros((1, 1)), np.zeros(1), np.zeros((1, 3)),
                                                   np.zeros(1, bool)), jax.random.key(0), 4)
    with pytest.raises(ValueError, match="cannot add 11 transitions"):
        replay.sample_after_add(buffer, items(range(11)), jax.random.key(0), 4)


# --------------------------------------------------------------------------------------------- update_from_replay

OBS_SPACE = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT_SPACE = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)


def small_state(config, observation_space=OBS_SPACE):
    return ddpgx.init(jax.random.key(0), config, observation_space, ACT_SPACE,
                      policy=networks.DeterministicPolicy((-1.0,), (1.0,), (1,), hidden_sizes=(16,)),
                      critic=networks.QFunction(hidden_sizes=(16,)))


def test_update_from_replay_samples_only_filled_entries():
    """Filled entries all hold the observation c (unfilled ones hold zeros); the running statistics of the sampled
    observations are then exactly mean c, variance 0: no unfilled entry was ever sampled."""
    config = ddpgx.DDPGConfig(batch_size=32, gradient_steps=2, observation_preprocessor=True)
    ts = small_state(config)
    c = np.array([3.0, -2.0, 7.0], np.float32)
    batch = items(range(10))._replace(observations=np.tile(c, (10, 1)), next_observations=np.tile(c, (10, 1)))
    buffer = replay.add(replay.init(64, example()), batch)
    before = [np.asarray(x) for x in jax.tree.leaves(buffer)]
    for step in range(1, 4):
        ts, metrics = ddpgx.update_from_replay(ts, buffer)
        assert int(ts.step) == 2 * step
        assert float(ts.observation_stats.count) == step * 2 * 2 * 32  # observations and next observations
        np.testing.assert_allclose(ts.observation_stats.mean, c, rtol=1e-6)
        np.testing.assert_allclose(ts.observation_stats.var, 0.0, atol=1e-10)
        assert all(np.isfinite(float(v)) for v in metrics.values())
    for a, b in zip(before, jax.tree.leaves(buffer), strict=True):  # the buffer is only read
        np.testing.assert_array_equal(a, b)


def test_dict_observations_stored_and_sampled():
    space = gymnasium.spaces.Dict({"pos": gymnasium.spaces.Box(-np.inf, np.inf, (3,)),
                                   "vel": gymnasium.spaces.Box(-np.inf, np.inf, (2,))})
    one = {"pos": jnp.zeros(3), "vel": jnp.zeros(2)}
    buffer = replay.init(8, Transition(one, jnp.zeros(1), jnp.zeros(()), one, jnp.zeros((), bool)))
    ids = np.arange(1, 6, dtype=np.float32)
    obs = {"pos": np.repeat(ids[:, None], 3, 1), "vel": -np.repeat(ids[:, None], 2, 1)}
    next_obs = {"pos": obs["pos"] + 100, "vel": obs["vel"] - 100}
    buffer = replay.add(buffer, Transition(obs, (ids / 10)[:, None], ids, next_obs, ids > 3))
    assert int(buffer.size) == 5
    np.testing.assert_array_equal(buffer.data.observations["vel"][:5], obs["vel"])
    batch = replay.sample(buffer, jax.random.key(0), 1000)
    r = np.asarray(batch.rewards)
    assert set(np.unique(r)) == set(ids)
    np.testing.assert_array_equal(batch.observations["pos"], np.repeat(r[:, None], 3, 1))
    np.testing.assert_array_equal(batch.next_observations["vel"], -np.repeat(r[:, None], 2, 1) - 100)
    # And update_from_replay reads the dict observations (flattened in gymnasium's order: pos, then vel).
    ts = small_state(ddpgx.DDPGConfig(batch_size=16, observation_preprocessor=True), space)
    ts, _ = ddpgx.update_from_replay(ts, buffer)
    assert float(ts.observation_stats.count) == 32
    assert np.all(np.asarray(ts.observation_stats.mean)[:3] > 0) and np.all(np.asarray(ts.observation_stats.mean)[3:] < 0)


def test_the_per_step_programs_never_copy_the_buffer():
    # Writing the buffer in place and sampling it in one XLA program made XLA copy whole columns on every call
    # (14 ms a step with a million transitions). The environment loop's programs must touch only the rows they write
    # or draw: no instruction of the compiled write, or of the update-and-act that samples, copies a buffer column.
    from ddpgx.core import ddpg as core_ddpg
    from ddpgx.core import packing

    capacity = 100_003  # a size no other array has
    obs, act = gymnasium.spaces.Box(-1, 1, (3,)), gymnasium.spaces.Box(-1, 1, (1,))
    ts = ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(batch_size=8), obs, act)
    one = Transition(np.zeros((1, 3), np.float32), np.zeros((1, 1), np.float32), np.zeros(1, np.float32),
                     np.zeros((1, 3), np.float32), np.zeros(1, bool))
    buffer = replay.init(capacity, jax.tree.map(lambda x: x[0], one))
    programs = {
        "add": replay.add.lower(buffer, one),
        "update and act": core_ddpg._update_act.lower(ts, buffer, one, one.observations, 5, 10, np.zeros(1, bool),
                                                      None),
        "packed update and act": core_ddpg._packed_update_act.lower(packing.pack(ts), buffer, one, one.observations, 5,
                                                                    10, np.zeros(1, bool), None),
    }
    for name, lowered in programs.items():
        copies = [line.strip() for line in lowered.compile().as_text().splitlines()
                  if re.search(rf"\[{capacity}[,\]]", line) and re.search(r"\bcopy\(", line)]
        assert not copies, (name, copies[:3])
