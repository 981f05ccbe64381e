"""ddpgx.core.threefry: programs compiled under ``unrolled()`` draw the same bits without XLA:CPU's threefry loop, JAX's
own lowering comes back on exit, and ddpgx's step functions compile under it."""

import contextlib
import threading

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpgx
from ddpgx.core import ddpg, packing, replay, threefry


def _draws(key):
    sample_key, noise_key = jax.random.split(key)
    return jax.random.randint(sample_key, (100,), 0, 15_000), jax.random.normal(noise_key, (4, 3))


def _threefry_loops(hlo: str) -> int:
    """While loops that JAX's rolled threefry lowering left in compiled HLO."""
    return sum(1 for line in hlo.splitlines() if " while(" in line and "threefry" in line)


def _compiled(fn, *args):
    """``fn`` compiled now, in a fresh ``jax.jit`` (nothing cached from an earlier lowering)."""
    return jax.jit(lambda *a: fn(*a)).lower(*args).compile()


def test_the_installed_jax_exposes_what_unrolled_swaps():
    assert threefry.AVAILABLE, "jax's internals moved: ddpgx.core.threefry.unrolled() now does nothing"


def test_unrolled_draws_the_same_bits_without_the_loop_and_restores_jax_rule():
    key = jax.random.key(3)
    rolled = _compiled(_draws, key)
    with threefry.unrolled():
        fast = _compiled(_draws, key)
    again = _compiled(_draws, key)
    assert _threefry_loops(rolled.as_text()) > 0  # JAX's CPU lowering: a loop per hash
    assert _threefry_loops(fast.as_text()) == 0
    assert _threefry_loops(again.as_text()) > 0  # JAX's rule is back after the block
    for a, b in zip(rolled(key), fast(key), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_nested_and_concurrent_blocks_restore_jax_rule_once_the_last_closes():
    rule = threefry._CPU_RULES[threefry._PRIMITIVE]
    barrier, errors = threading.Barrier(4), []

    def worker():
        try:
            with threefry.unrolled():
                barrier.wait(timeout=10)
                with threefry.unrolled():
                    assert threefry._CPU_RULES[threefry._PRIMITIVE] is threefry._UNROLLED
                barrier.wait(timeout=10)
        except Exception as error:  # noqa: BLE001 -- reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert threefry._CPU_RULES[threefry._PRIMITIVE] is rule
    with pytest.raises(RuntimeError), threefry.unrolled():
        raise RuntimeError("an error inside the block")
    assert threefry._CPU_RULES[threefry._PRIMITIVE] is rule


def _setup():
    env = gymnasium.make("Pendulum-v1")
    ts = ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(batch_size=32), env.observation_space, env.action_space)
    rng = np.random.default_rng(0)
    transitions = ddpgx.Transition(rng.normal(size=(2, 3)).astype(np.float32),
                                   rng.uniform(-2, 2, (2, 1)).astype(np.float32), np.zeros(2, np.float32),
                                   rng.normal(size=(2, 3)).astype(np.float32), np.zeros(2, bool))
    buffer = replay.add(replay.init(256, jax.tree.map(lambda x: x[0], transitions), replacement=False),
                        jax.tree.map(lambda x: np.repeat(x, 64, axis=0), transitions))
    return ts, buffer, transitions


def test_the_update_compiled_unrolled_equals_jax_lowering_bit_for_bit():
    ts, buffer, _ = _setup()
    rolled = _compiled(ddpgx.update_from_replay, ts, buffer)
    with threefry.unrolled():
        fast = _compiled(ddpgx.update_from_replay, ts, buffer)
    assert _threefry_loops(rolled.as_text()) > _threefry_loops(fast.as_text()) == 0
    out_rolled, out_fast = rolled(ts, buffer), fast(ts, buffer)
    for a, b in zip(jax.tree.leaves(out_rolled), jax.tree.leaves(out_fast), strict=True):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_ddpgx_step_functions_compile_under_unrolled(monkeypatch):
    entered = []

    @contextlib.contextmanager
    def spy():
        entered.append(True)
        yield

    monkeypatch.setattr(threefry, "unrolled", spy)
    ts, buffer, transitions = _setup()
    obs, starts = np.zeros((2, 3), np.float32), np.zeros(2, bool)
    ddpgx.act(ts, obs)
    assert len(entered) == 1
    ts, buffer, _ = ddpgx.add_and_update(ts, buffer, transitions)
    assert len(entered) == 2
    _, (key, noise_state), ts, buffer, _, _ = ddpgx.add_update_act(ts, buffer, transitions, obs, 1, 10, starts)
    assert len(entered) == 3
    ts = ts.replace(key=key, noise_state=noise_state)  # the action's randomness committed, as the agent does
    ddpg.add_update_act_packed(packing.pack(ts), buffer, transitions, obs, 1, 10, starts)
    assert len(entered) == 4
