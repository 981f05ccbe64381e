"""The transition record shared by the replay buffer and the update (the twin of :mod:`ddpgx.core.types`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch


class Transition(NamedTuple):
    """One batch of environment transitions ``(s_tm1, a_tm1, r_t, s_t, terminated_t)``.

    Leading dimensions are the batch: ``[batch]`` or ``[gradient_steps, batch]``; with a recurrent policy
    ``[batch, sequence_length]`` or ``[gradient_steps, batch, sequence_length]``. The first seven fields are
    ``ddpgx.Transition``'s. ``truncated`` only matters to recurrent models (a sequence crossing an episode end
    resets the hidden state there); it never reaches the learning target. ``rnn_states`` are the policy's
    hidden states *before* each step (one tensor per state, ``[*batch, num_layers, hidden]``).
    """

    observations: torch.Tensor  # [*batch, obs_size] float32 (or a dict of tensors before flattening)
    actions: torch.Tensor  # [*batch, *action_shape] float32
    rewards: torch.Tensor  # [*batch] float32
    next_observations: torch.Tensor  # [*batch, obs_size] float32
    terminated: torch.Tensor  # [*batch] bool
    states: torch.Tensor | None = None  # [*batch, state_size] float32
    next_states: torch.Tensor | None = None  # [*batch, state_size] float32
    truncated: torch.Tensor | None = None  # [*batch] bool, recurrent models only
    rnn_states: Sequence[torch.Tensor] | None = None  # each [*batch, num_layers, hidden], recurrent only
