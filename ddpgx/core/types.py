"""The transition record shared by the replay buffer and the update."""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax


class Transition(NamedTuple):
    """One batch of environment transitions ``(s_tm1, a_tm1, r_t, s_t, terminated_t)``.

    Leading dimensions are the batch (``[batch]``, or ``[gradient_steps, batch]`` for a multi-step update, or
    ``[capacity]`` inside the replay buffer). ``states``/``next_states`` are skrl 2.x's privileged critic inputs and
    are ``None`` when the environment has no state space. ``truncated`` is deliberately absent: a truncated episode
    bootstraps like an unfinished one, so only ``terminated`` reaches the learning target.
    """

    observations: jax.Array  # [*batch, obs_size] float32 (or a dict of arrays before flattening)
    actions: jax.Array  # [*batch, *action_shape] float32
    rewards: jax.Array  # [*batch] float32
    next_observations: jax.Array  # [*batch, obs_size] float32
    terminated: jax.Array  # [*batch] bool
    states: Optional[jax.Array] = None  # [*batch, state_size] float32
    next_states: Optional[jax.Array] = None  # [*batch, state_size] float32
