"""ddpgx.core.xla_cpu: ddpgx's update programs compile with YNNPACK's fused products for minibatches of up to 128 rows,
as XLA compiles by default above that and inside a caller's trace, with the same results either way."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpgx
from ddpgx.core import ddpg, packing, replay, xla_cpu


def _state(batch_size, seed=0):
    env = gymnasium.make("Pendulum-v1")
    config = ddpgx.DDPGConfig(batch_size=batch_size, exploration_noise=ddpgx.GaussianNoise(std=0.1))
    return ddpgx.init(jax.random.key(seed), config, env.observation_space, env.action_space)


def _batch(rows, seed=0):
    rng = np.random.default_rng(seed)
    return ddpgx.Transition(rng.normal(size=(rows, 3)).astype(np.float32),
                            rng.uniform(-2, 2, (rows, 1)).astype(np.float32),
                            rng.normal(size=rows).astype(np.float32), rng.normal(size=(rows, 3)).astype(np.float32),
                            rng.random(rows) < 0.1)


@pytest.fixture
def fresh_probe():
    xla_cpu.accepted.cache_clear()
    yield
    xla_cpu.accepted.cache_clear()


def test_the_installed_jaxlib_on_cpu_accepts_the_options():
    assert jax.default_backend() == "cpu"
    assert xla_cpu.accepted(), "this jaxlib rejects OPTIONS: ddpgx's updates compile as XLA does by default"


def test_options_apply_up_to_max_rows():
    assert xla_cpu.for_rows(100) == xla_cpu.OPTIONS and xla_cpu.for_rows(xla_cpu.MAX_ROWS) == xla_cpu.OPTIONS
    assert xla_cpu.for_rows(xla_cpu.MAX_ROWS + 1) == {} and xla_cpu.for_rows(None) == {}
    xla_cpu.for_rows(100)["x"] = 1  # a copy: the module's options stay as they are
    assert "x" not in xla_cpu.OPTIONS
    assert xla_cpu.applies(100) and not xla_cpu.applies(xla_cpu.MAX_ROWS + 1) and not xla_cpu.applies(None)


def test_max_rows_zero_turns_the_options_off(monkeypatch):
    ts, batch = _state(100), _batch(100)
    assert ddpg.update.variant(ts, batch) is ddpg.update._fused
    monkeypatch.setattr(xla_cpu, "MAX_ROWS", 0)
    assert xla_cpu.for_rows(100) == {} and ddpg.update.variant(ts, batch) is ddpg.update._plain


def test_a_jaxlib_that_rejects_the_options_gets_none(monkeypatch, fresh_probe):
    monkeypatch.setattr(xla_cpu, "OPTIONS", {"xla_cpu_no_such_option_in_any_jaxlib": "1"})
    assert not xla_cpu.accepted()
    assert xla_cpu.for_rows(100) == {} and not xla_cpu.applies(100)


def test_the_fused_program_differs_and_gives_the_results_of_the_plain_one():
    ts, batch = _state(100), _batch(100)
    fused = ddpg.update._fused.lower(ts, batch).compile()
    plain = ddpg.update._plain.lower(ts, batch).compile()
    assert fused.as_text() != plain.as_text()  # the options reached XLA
    results = [jax.tree.leaves(program(jax.tree.map(jnp.copy, ts), batch)) for program in (fused, plain)]
    for a, b in zip(*results, strict=True):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rows, fused", [(100, True), (256, False)])
def test_each_update_function_picks_its_program_by_the_minibatch(rows, fused):
    ts = _state(rows)
    buffer = replay.add(replay.init(500, jax.tree.map(lambda x: x[0], _batch(1))), _batch(300))
    one = _batch(1)
    starts = np.zeros(1, bool)
    calls = {
        ddpg.update: (ts, _batch(rows)),
        ddpg.update_from_replay: (ts, buffer),
        ddpg._update_after_add: (ts, buffer, one),
        ddpg._update_act: (ts, buffer, one, one.observations, 5, 10, starts, None),
        ddpg._packed_update_act: (packing.pack(ts), buffer, one, one.observations, 5, 10, starts, None),
    }
    for function, args in calls.items():
        expected = function._fused if fused else function._plain
        assert function.variant(*args) is expected, function.__name__
    # lower() lowers the program a call runs: compiled, it is the variant's (the options reach XLA or not)
    variant = ddpg.update._fused if fused else ddpg.update._plain
    lowered = ddpg.update.lower(ts, _batch(rows)).compile().as_text()
    assert lowered == variant.lower(ts, _batch(rows)).compile().as_text()


def test_cache_size_counts_the_programs_of_both_variants():
    small, large = _state(101), _state(257)  # minibatch sizes no other test compiles
    before = ddpg.update._fused._cache_size(), ddpg.update._plain._cache_size(), ddpg.update._cache_size()
    ddpg.update(small, _batch(101))
    ddpg.update(large, _batch(257))
    after = ddpg.update._fused._cache_size(), ddpg.update._plain._cache_size(), ddpg.update._cache_size()
    assert after == (before[0] + 1, before[1] + 1, before[2] + 2)


def test_update_counts_rows_by_the_actions_whatever_the_rewards_shape():
    ts = _state(4)
    batch = _batch(256)
    assert ddpg.update.variant(ts, batch) is ddpg.update._plain
    assert ddpg.update.variant(ts, batch._replace(rewards=batch.rewards[:, None])) is ddpg.update._plain  # [256, 1]
    steps = jax.tree.map(lambda x: np.stack([x[:100]] * 2), batch)  # gradient_steps=2: [2, 100, ...]
    assert ddpg.update.variant(ts, steps) is ddpg.update._fused


def test_inside_a_callers_trace_the_plain_jit_is_used():
    ts, batch = _state(4), _batch(4)
    batches = jax.tree.map(lambda x: jnp.stack([x] * 3), batch)
    scanned = jax.jit(lambda ts, b: jax.lax.scan(ddpgx.update, ts, b))(ts, batches)  # no "nested jit" error
    one_by_one = ts
    for i in range(3):
        one_by_one, _ = ddpgx.update(one_by_one, jax.tree.map(lambda x, i=i: x[i], batches))
    for a, b in zip(jax.tree.leaves(scanned[0].policy_params), jax.tree.leaves(one_by_one.policy_params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
