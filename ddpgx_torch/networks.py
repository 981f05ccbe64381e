"""Default DDPG networks (torch): a deterministic policy and a Q-function, the twins of :mod:`ddpgx.networks`.

Both follow Lillicrap et al. 2015 (Sec. 7): two hidden ReLU layers of 400 and 300 units; the policy ends in tanh,
scaled affinely to the action bounds so its output is always a valid action; the critic maps
``concat(observation, action)`` to one value (the action enters the first layer, as in skrl, SB3 and TD3).

Their layers are in the same order as the flax modules' ``Dense_0, Dense_1, ...``, so
:mod:`ddpgx_torch.convert` maps parameters between the backends one to one (a flax kernel ``[in, out]`` is a torch
weight ``[out, in]`` transposed). Initialisation is torch's default (Kaiming-uniform), not flax's lecun-normal:
copy weights with :func:`ddpgx_torch.convert.load_flax_params` for identical starts.

Any ``torch.nn.Module`` can replace them: a policy ``policy(observations [B, obs]) -> actions [B, *action_shape]``
and a critic ``critic(inputs [B, n], actions [B, action_size]) -> q [B]`` (a trailing dimension of 1 is accepted),
or skrl-style models (:mod:`ddpgx_torch.models`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """ReLU hidden layers, then a linear output layer; ``layers[i]`` is flax's ``Dense_i``."""

    def __init__(self, input_size: int, hidden_sizes: Sequence[int], output_size: int):
        super().__init__()
        sizes = [int(input_size), *(int(h) for h in hidden_sizes), int(output_size)]
        self.layers = nn.ModuleList(nn.Linear(n, m) for n, m in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = torch.relu(x)
        return x


class DeterministicPolicy(nn.Module):
    """``mu(s) = low + (tanh(MLP(s)) + 1) / 2 * (high - low)``, reshaped to the action shape."""

    def __init__(
        self,
        observation_size: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        action_shape: Sequence[int],
        hidden_sizes: Sequence[int] = (400, 300),
    ):
        super().__init__()
        low = torch.as_tensor(tuple(action_low), dtype=torch.float32)
        high = torch.as_tensor(tuple(action_high), dtype=torch.float32)
        self.register_buffer("low", low, persistent=False)
        self.register_buffer("half_range", 0.5 * (high - low), persistent=False)
        self.action_shape = tuple(int(d) for d in action_shape)
        self.mlp = MLP(observation_size, hidden_sizes, low.numel())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        u = torch.tanh(self.mlp(observations))
        actions = torch.addcmul(self.low, u + 1.0, self.half_range)
        return actions.reshape(observations.shape[:-1] + self.action_shape)


class QFunction(nn.Module):
    """``Q(s, a) = MLP(concat(s, a))``, one value per sample."""

    def __init__(self, input_size: int, action_size: int, hidden_sizes: Sequence[int] = (400, 300)):
        super().__init__()
        self.mlp = MLP(int(input_size) + int(action_size), hidden_sizes, 1)

    def forward(self, inputs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([inputs, actions.to(inputs.dtype)], dim=-1))[..., 0]
