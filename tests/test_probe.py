"""Probe environment with an analytically known Q-function: the learned critic and policy must converge to it.

Probe: observation s ~ U[-1, 1], action a in [-1, 1], reward r(s, a) = 1 - (a - s)^2, next observation s' ~ U[-1, 1]
independent of (s, a). The optimal policy is mu*(s) = s with value 1 per step, so

* every step terminates:        Q*(s, a) = 1 - (a - s)^2
* no step terminates (gamma):   Q*(s, a) = 1 - (a - s)^2 + gamma / (1 - gamma) * 1      (the bootstrap, discounted)

The second case only holds if ``update`` bootstraps through the target networks with the right discount, and if the
policy learns mu*(s) = s (the bootstrap value assumes the greedy action).
"""

from __future__ import annotations

import functools

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpgx
from ddpgx.core import networks

BATCH = 128


def probe_batch(key, terminated: bool) -> ddpgx.Transition:
    k_s, k_a, k_next = jax.random.split(key, 3)
    s = jax.random.uniform(k_s, (BATCH, 1), minval=-1, maxval=1)
    a = jax.random.uniform(k_a, (BATCH, 1), minval=-1, maxval=1)
    return ddpgx.Transition(
        observations=s,
        actions=a,
        rewards=1.0 - jnp.square(a - s)[:, 0],
        next_observations=jax.random.uniform(k_next, (BATCH, 1), minval=-1, maxval=1),
        terminated=jnp.full((BATCH,), terminated),
    )


@functools.partial(jax.jit, static_argnames=("steps", "terminated"))
def train(ts, key, steps: int, terminated: bool):
    def body(ts, key):
        return ddpgx.update(ts, probe_batch(key, terminated))

    return jax.lax.scan(body, ts, jax.random.split(key, steps))


@pytest.mark.parametrize("terminated, gamma, bootstrap", [(True, 0.9, 0.0), (False, 0.5, 1.0)])
def test_learned_q_converges_to_the_analytic_q(terminated, gamma, bootstrap):
    space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
    config = ddpgx.DDPGConfig(batch_size=BATCH, discount_factor=gamma, polyak=0.05, learning_rate=(1e-3, 3e-3))
    ts = ddpgx.init(
        jax.random.key(0), config, space, space,
        policy=networks.DeterministicPolicy((-1.0,), (1.0,), (1,), hidden_sizes=(32, 32)),
        critic=networks.QFunction(hidden_sizes=(64, 64)),
    )
    ts, metrics = train(ts, jax.random.key(1), steps=6000, terminated=terminated)

    s = jnp.linspace(-0.9, 0.9, 19)[:, None]
    for offset in (0.0, 0.5, -0.5):
        a = jnp.clip(s + offset, -1, 1)
        q = ts.spec.critic.apply(ts.critic_params, s, a)
        expected = 1.0 - jnp.square(a - s)[:, 0] + bootstrap
        np.testing.assert_allclose(q, expected, atol=0.08, err_msg=f"Q(s, s + {offset})")
    # The policy is only as precise as the critic's slope: an error e in dQ/da moves the argmax of Q*, whose
    # curvature is -2, by e / 2. So the policy is checked by its regret, Q*(s, s) - Q*(s, mu(s)) = (mu(s) - s)^2.
    errors = np.abs(np.asarray(ts.spec.policy.apply(ts.policy_params, s)) - np.asarray(s))
    assert np.max(errors**2) < 0.015, errors.ravel()  # every state within 1.5% of the best one-step reward
    assert np.mean(errors) < 0.05, errors.ravel()
    assert float(metrics["critic_loss"][-100:].mean()) < 5e-3
