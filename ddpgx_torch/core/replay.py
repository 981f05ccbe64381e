"""A preallocated ring-buffer replay memory (torch), the twin of :mod:`ddpgx.core.replay`, with sequence sampling.

Storage is one tensor per field of shape ``[rows, num_envs, ...]``, allocated once: ``add`` writes one transition
per environment into the next row (wrapping around, overwriting the oldest row), so each environment's transitions
are contiguous in time, which sequence sampling for recurrent policies needs.

``sample(buffer, generator, batch_size)`` draws ``batch_size`` transitions uniformly with replacement among the
filled ones (as ``ddpgx.replay.sample``). With ``sequence_length=L > 1`` it draws ``batch_size`` sequences of
``L`` consecutive steps of one environment; a sequence never straddles the write position, i.e. never joins the
newest row to the oldest one: its start is drawn uniformly among the ``size - L + 1`` starts, counted from the
oldest row, whose ``L`` rows are all in time order. (skrl's ``RandomMemory`` only excludes the last ``L - 1``
indexes of the storage, so once the memory has wrapped around its sequences can run from the newest data into
the oldest.)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from ddpgx_torch.core.types import Transition


@dataclasses.dataclass
class ReplayState:
    """A ring buffer of transitions (mutable: ``add`` writes in place and returns it)."""

    data: Transition  # leaves [rows, num_envs, ...] (rnn_states: a tuple of such tensors)
    position: int  # index of the next row to write
    size: int  # number of filled rows (<= rows)
    replacement: bool = True  # sample with replacement (False: distinct entries within a batch, as skrl's default)

    @property
    def rows(self) -> int:
        return self.data.observations.shape[0]

    @property
    def num_envs(self) -> int:
        return self.data.observations.shape[1]

    def __len__(self) -> int:
        """Number of transitions held."""
        return self.size * self.num_envs


def _leaves(t: Transition) -> list[tuple[str, Any]]:
    out = []
    for name, value in zip(Transition._fields, t, strict=True):
        if value is None:
            continue
        if name == "rnn_states":
            out += [(f"rnn_states[{i}]", v) for i, v in enumerate(value)]
        else:
            out.append((name, value))
    return out


def init(
    capacity: int, example: Transition, *, num_envs: int = 1, device: Any = None, replacement: bool = True
) -> ReplayState:
    """An empty buffer for at least ``capacity`` transitions (``ceil(capacity / num_envs)`` rows of ``num_envs``),
    shaped like one unbatched ``example`` transition (flat float32 observations, bool terminated).

    Raises:
      ValueError: if ``capacity`` or ``num_envs`` is not a positive integer.
    """
    for name, value in (("capacity", capacity), ("num_envs", num_envs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: expected a positive integer")
    rows = math.ceil(capacity / num_envs)

    def alloc(x):
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        return torch.zeros((rows, num_envs) + tuple(x.shape), dtype=x.dtype, device=device)

    fields = {}
    for name, value in zip(Transition._fields, example, strict=True):
        if value is None:
            fields[name] = None
        elif name == "rnn_states":
            fields[name] = tuple(alloc(v) for v in value)
        else:
            fields[name] = alloc(value)
    return ReplayState(Transition(**fields), 0, 0, bool(replacement))


def add(buffer: ReplayState, transitions: Transition) -> ReplayState:
    """Writes one transition per environment (leaves ``[num_envs, ...]``) into the next row, in place.

    Raises:
      ValueError: naming the field when the batch does not match the buffer's fields and shapes.
    """
    if not isinstance(transitions, Transition):
        raise ValueError(f"transitions must be a ddpgx_torch.Transition, got {type(transitions).__name__}")
    stored = dict(_leaves(buffer.data))
    new = dict(_leaves(transitions))
    if stored.keys() != new.keys():
        raise ValueError(f"transitions have fields {sorted(new)}, the buffer holds {sorted(stored)}")
    row = buffer.position
    for name, value in new.items():
        target = stored[name]
        value = torch.as_tensor(value) if not isinstance(value, torch.Tensor) else value
        if tuple(value.shape) != tuple(target.shape[1:]):
            if value.numel() != math.prod(target.shape[1:]):
                raise ValueError(
                    f"transitions.{name} has shape {tuple(value.shape)}, expected {tuple(target.shape[1:])} "
                    "(one transition per environment)"
                )
            value = value.reshape(target.shape[1:])
        target[row].copy_(value)
    buffer.position = (row + 1) % buffer.rows
    buffer.size = min(buffer.size + 1, buffer.rows)
    return buffer


def sample_indexes(
    buffer: ReplayState, generator: torch.Generator | None, batch_size: int, sequence_length: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and environment indexes of a sample: rows ``[batch_size, sequence_length]``, envs ``[batch_size, 1]``.

    Raises:
      ValueError: if the buffer holds fewer rows than ``sequence_length`` (or is empty).
    """
    if buffer.size < sequence_length or buffer.size == 0:
        raise ValueError(
            f"cannot sample sequences of {sequence_length} steps from a buffer holding {buffer.size} steps per "
            "environment"
        )
    device = buffer.data.observations.device
    gen_device = generator.device if generator is not None else torch.device("cpu")
    candidates = (buffer.size - sequence_length + 1) * buffer.num_envs
    if buffer.replacement:
        starts = torch.randint(0, candidates, (batch_size,), generator=generator, device=gen_device)
    else:  # distinct entries (a batch larger than the candidates is capped at their number, as in skrl)
        starts = torch.randperm(candidates, generator=generator, device=gen_device)[:batch_size]
    starts = starts.to(device)
    if buffer.num_envs == 1:  # fewer operations on the common single-environment path
        offset, env = starts, torch.zeros_like(starts)
    else:
        offset, env = starts // buffer.num_envs, starts % buffer.num_envs
    oldest = buffer.position if buffer.size == buffer.rows else 0
    if sequence_length == 1:
        rows = ((oldest + offset) % buffer.rows).unsqueeze(1)
    else:
        steps = torch.arange(sequence_length, device=device)
        rows = (oldest + offset.unsqueeze(1) + steps) % buffer.rows
    return rows, env.unsqueeze(1)


def gather(buffer: ReplayState, rows: torch.Tensor, envs: torch.Tensor, sequence: bool) -> Transition:
    """The transitions at ``(rows, envs)``: leaves ``[batch, ...]``, or ``[batch, L, ...]`` if ``sequence``."""
    flat = (rows if buffer.num_envs == 1 else rows * buffer.num_envs + envs).reshape(-1)
    lead = tuple(rows.shape) if sequence else (rows.shape[0],)

    def take(x):
        return x.reshape((-1,) + tuple(x.shape[2:])).index_select(0, flat).reshape(lead + tuple(x.shape[2:]))

    fields = {}
    for name, value in zip(Transition._fields, buffer.data, strict=True):
        if value is None:
            fields[name] = None
        elif name == "rnn_states":
            fields[name] = tuple(take(v) for v in value)
        else:
            fields[name] = take(value)
    return Transition(**fields)


def sample(
    buffer: ReplayState, generator: torch.Generator | None, batch_size: int, sequence_length: int = 1
) -> Transition:
    """``batch_size`` transitions (leaves ``[batch_size, ...]``) uniformly with replacement, or with
    ``sequence_length > 1`` that many sequences (leaves ``[batch_size, sequence_length, ...]``) that never
    straddle the write position."""
    rows, envs = sample_indexes(buffer, generator, batch_size, sequence_length)
    return gather(buffer, rows, envs, sequence_length > 1)
