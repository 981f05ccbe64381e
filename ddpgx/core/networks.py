"""Default DDPG networks (flax linen): a deterministic policy and a Q-function.

Both follow Lillicrap et al. 2015 (Sec. 7): two hidden ReLU layers of 400 and 300 units; the policy ends in tanh,
here scaled affinely to the action bounds so its output is always a valid action; the critic maps
``concat(observation, action)`` to one value. (The paper feeds the action only into the second layer; feeding it
into the first, as skrl, SB3 and TD3 do, is the common modern form and is what is used here.)

Any flax module can replace them: a policy ``policy(observations [B, obs]) -> actions [B, *action_shape]`` and a
critic ``critic(inputs [B, n], actions [B, action_size]) -> q [B]`` (a trailing dimension of 1 is accepted), where the
critic's ``inputs`` are the observations, or the states when the environment has a state space.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
    """ReLU hidden layers, then a linear output layer."""

    hidden_sizes: Sequence[int]
    output_size: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for size in self.hidden_sizes:
            x = nn.relu(nn.Dense(size)(x))
        return nn.Dense(self.output_size)(x)


class DeterministicPolicy(nn.Module):
    """``mu(s) = low + (tanh(MLP(s)) + 1) / 2 * (high - low)``, reshaped to the action shape."""

    action_low: tuple[float, ...]  # flattened bounds
    action_high: tuple[float, ...]
    action_shape: tuple[int, ...]
    hidden_sizes: Sequence[int] = (400, 300)

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        low = jnp.asarray(self.action_low, jnp.float32)
        high = jnp.asarray(self.action_high, jnp.float32)
        u = jnp.tanh(MLP(tuple(self.hidden_sizes), len(self.action_low))(observations))
        actions = low + (u + 1.0) * (0.5 * (high - low))
        return actions.reshape(observations.shape[:-1] + tuple(self.action_shape))


class QFunction(nn.Module):
    """``Q(s, a) = MLP(concat(s, a))``, one value per sample."""

    hidden_sizes: Sequence[int] = (400, 300)

    @nn.compact
    def __call__(self, inputs: jax.Array, actions: jax.Array) -> jax.Array:
        x = jnp.concatenate([inputs, actions], axis=-1)
        return MLP(tuple(self.hidden_sizes), 1)(x)[..., 0]
