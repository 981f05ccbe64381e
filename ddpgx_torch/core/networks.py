"""Default DDPG networks (torch): a deterministic policy and a Q-function, the twins of :mod:`ddpgx.core.networks`.

Both follow Lillicrap et al. 2015 (Sec. 7): two hidden ReLU layers of 400 and 300 units; the policy ends in tanh,
scaled affinely to the action bounds so its output is always a valid action; the critic maps
``concat(observation, action)`` to one value (the action enters the first layer, as in skrl, SB3 and TD3).

Their layers are in the same order as the flax modules' ``Dense_0, Dense_1, ...``, so
:mod:`ddpgx_torch.core.convert` maps parameters between the backends one to one (a flax kernel ``[in, out]`` is a torch
weight ``[out, in]`` transposed). Initialisation is torch's default (Kaiming-uniform), not flax's lecun-normal:
copy weights with :func:`ddpgx_torch.core.convert.load_flax_params` for identical starts.

Any ``torch.nn.Module`` can replace them: a policy ``policy(observations [B, obs]) -> actions [B, *action_shape]``
and a critic ``critic(inputs [B, n], actions [B, action_size]) -> q [B]`` (a trailing dimension of 1 is accepted),
or skrl-style models (:mod:`ddpgx_torch.models`, which also holds the recurrent policy and critic built on
:class:`_Recurrent`, ``RecurrentPolicy`` and ``RecurrentQFunction``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ddpgx_torch.core import linear
from ddpgx_torch.core.linear import Linear


class MLP(nn.Module):
    """ReLU hidden layers, then a linear output layer; ``layers[i]`` is flax's ``Dense_i``."""

    def __init__(self, input_size: int, hidden_sizes: Sequence[int], output_size: int):
        super().__init__()
        sizes = [int(input_size), *(int(h) for h in hidden_sizes), int(output_size)]
        self.layers = nn.ModuleList(Linear(n, m) for n, m in zip(sizes[:-1], sizes[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear.mlp(x, self.layers)  # one autograd node on the CPU (ddpgx_torch.linear)

    def value_and_pullback(self, x: torch.Tensor, *, wrt_params: bool = True, wrt_inputs: bool = False):
        """``(y, pullback)`` for a 2-d float32 ``x`` (CPU or CUDA), without autograd: ``y = self(x)`` and
        ``pullback(dy) -> (parameter gradients [w0, b0, ...] or None, input gradient or None)``, the products of
        the fused MLP's own backward. None where the fused path does not apply (see :func:`linear.fused_params`)."""
        params = linear.fused_params(x, self.layers)
        if params is None or x.dim() != 2:
            return None
        with torch.no_grad():
            y, hidden = linear.mlp_forward(x, params, keep=True)
        needs = (wrt_inputs,) + (wrt_params,) * len(params)

        def pullback(dy: torch.Tensor):
            with torch.no_grad():
                grads = linear.mlp_backward(x, hidden, params[0::2], dy, needs)
            return (grads[1:] if wrt_params else None), grads[0]

        return y, pullback


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
        shape = observations.shape[:-1] + self.action_shape
        return actions if actions.shape == shape else actions.reshape(shape)

    def value_and_pullback(self, observations: torch.Tensor):
        """``(actions [B, action_size], pullback)`` without autograd (see :meth:`MLP.value_and_pullback`):
        ``pullback(d_actions) -> parameter gradients`` in ``self.parameters()`` order; None where it does not
        apply. The same operations as autograd's backward of :meth:`forward`, so the same numbers."""
        out = self.mlp.value_and_pullback(observations)
        if out is None:
            return None
        z, mlp_pullback = out
        with torch.no_grad():
            u = torch.tanh(z)
            actions = torch.addcmul(self.low, u + 1.0, self.half_range)

        def pullback(d_actions: torch.Tensor) -> list:
            with torch.no_grad():
                dz = torch.ops.aten.tanh_backward(d_actions * self.half_range, u)
            return mlp_pullback(dz)[0]

        return actions, pullback


class QFunction(nn.Module):
    """``Q(s, a) = MLP(concat(s, a))``, one value per sample."""

    def __init__(self, input_size: int, action_size: int, hidden_sizes: Sequence[int] = (400, 300)):
        super().__init__()
        self.mlp = MLP(int(input_size) + int(action_size), hidden_sizes, 1)

    def forward(self, inputs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([inputs, actions.to(inputs.dtype)], dim=-1)).squeeze(-1)

    def value_and_pullback(self, inputs: torch.Tensor, actions: torch.Tensor, *, wrt_params: bool = True,
                           wrt_actions: bool = False):
        """``(q [B], pullback)`` without autograd (see :meth:`MLP.value_and_pullback`):
        ``pullback(dq [B]) -> (parameter gradients or None, action gradient [B, action_size] or None)``; None
        where it does not apply."""
        out = self.mlp.value_and_pullback(torch.cat([inputs, actions.to(inputs.dtype)], dim=-1),
                                          wrt_params=wrt_params, wrt_inputs=wrt_actions)
        if out is None:
            return None
        q, mlp_pullback = out
        split = inputs.shape[-1]

        def pullback(dq: torch.Tensor):
            grads, d_inputs = mlp_pullback(dq.unsqueeze(-1))
            return grads, (None if d_inputs is None else d_inputs[:, split:])

        return q.squeeze(-1), pullback


class _Recurrent(nn.Module):
    """A recurrent layer (LSTM, GRU or Elman RNN) run over training sequences with resets at episode ends.

    During rollouts (``training`` False) each call is one step per environment. During updates the inputs are
    sequences flattened batch-major ``[B * L, features]`` and the hidden states ``[num_layers, B * L, hidden]``
    (the states stored with each transition); the sequence starts from the state stored at step 0, or at step 1 for
    the target networks (they read the next observations), and the state is zeroed after any step where an
    episode ended (terminated or truncated).
    """

    CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, sequence_length: int):
        super().__init__()
        if cell not in self.CELLS:
            raise ValueError(f"cell={cell!r} is invalid: expected one of {sorted(self.CELLS)}")
        self.cell, self.num_layers, self.hidden_size = cell, num_layers, hidden_size
        self.sequence_length = sequence_length
        self.rnn = self.CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True)

    def state_count(self) -> int:
        return 2 if self.cell == "lstm" else 1

    def forward(self, x: torch.Tensor, states: list, inputs: dict, role: str) -> tuple[torch.Tensor, list]:
        if not self.training:  # rollout: one step for each environment
            out, new = self.rnn(x.unsqueeze(1), states[0] if self.cell != "lstm" else (states[0], states[1]))
            return out[:, 0], list(new) if self.cell == "lstm" else [new]
        length = self.sequence_length
        start = 1 if role.startswith("target") and length > 1 else 0
        seq = x.reshape(-1, length, x.shape[-1])
        h = [s.reshape(self.num_layers, -1, length, s.shape[-1])[:, :, start].contiguous() for s in states]
        done = None
        for key in ("terminated", "truncated"):
            if inputs.get(key) is not None:
                flag = inputs[key].reshape(-1, length).bool()
                done = flag if done is None else done | flag
        cuts = [] if done is None else (done[:, :-1].any(dim=0).nonzero().flatten() + 1).tolist()
        outs, i0 = [], 0
        for i1 in cuts + [length]:
            out, new = self.rnn(seq[:, i0:i1], h[0] if self.cell != "lstm" else (h[0], h[1]))
            h = list(new) if self.cell == "lstm" else [new]
            if i1 < length:  # zero the state of sequences whose episode ended at step i1 - 1
                keep = (~done[:, i1 - 1]).to(h[0].dtype).view(1, -1, 1)
                h = [s * keep for s in h]
            outs.append(out)
            i0 = i1
        return torch.cat(outs, dim=1).reshape(-1, self.hidden_size), h
