"""DDPG's losses as pure math on arrays (Lillicrap et al. 2015, arXiv:1509.02971, Algorithm 1).

Notation: ``_tm1`` is the sampled time step ``t-1`` (state ``s_tm1``, action ``a_tm1``), ``_t`` the next one.

* Target:  ``y = r_t + discount_t * Q'(s_t, mu'(s_t))`` with ``discount_t = gamma * (1 - terminated_t)``. Only
  termination cuts the bootstrap; a time-limit truncation bootstraps like any other step (Pardo et al. 2018), a
  departure from the paper's episodic ``(1 - done)``.
* Critic:  ``L(phi) = mean((Q_phi(s_tm1, a_tm1) - y)^2)``, ``y`` held constant (``stop_gradient``). The paper writes
  ``1/N sum (y - Q)^2``; no 1/2 factor, matching skrl and SB3.
* Policy:  ``J(theta) = -mean(Q_phi(s_tm1, mu_theta(s_tm1)))``; its gradient is the deterministic policy gradient
  ``-mean(dQ/da * dmu/dtheta)`` (Silver et al. 2014).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def td_target(r_t: jax.Array, discount_t: jax.Array, q_t: jax.Array) -> jax.Array:
    """The bootstrapped target ``r_t + discount_t * q_t``, under ``stop_gradient``."""
    return jax.lax.stop_gradient(r_t + discount_t * q_t)


def critic_loss(q_tm1: jax.Array, target_tm1: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean squared TD error of the critic's predictions ``q_tm1`` against fixed targets.

    Returns:
      ``(loss, aux)`` with ``aux = {"q": q_tm1, "target": target_tm1}``.
    """
    target_tm1 = jax.lax.stop_gradient(target_tm1)
    loss = jnp.mean(jnp.square(q_tm1 - target_tm1))
    return loss, {"q": q_tm1, "target": target_tm1}


def policy_loss(q_of_policy_tm1: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Negative mean critic value of the policy's own actions, ``-mean Q(s, mu(s))``.

    Returns:
      ``(loss, aux)`` with ``aux = {"q_policy": q_of_policy_tm1}``.
    """
    return -jnp.mean(q_of_policy_tm1), {"q_policy": q_of_policy_tm1}
