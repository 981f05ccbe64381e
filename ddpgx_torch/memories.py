"""skrl-style ``RandomMemory(memory_size, num_envs=1, device=None, replacement=True)`` over the core replay buffer.

The agent writes transitions with ``add_samples(**tensors)`` and samples in its update from the preallocated
buffer (:mod:`ddpgx_torch.replay`), sequences for a recurrent policy. ``replacement=False`` samples distinct
entries within a batch (skrl's default; it costs a permutation of the buffer per batch), ``True`` with replacement.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ddpgx_torch import settings
from ddpgx_torch.core import replay
from ddpgx_torch.core.types import Transition


class RandomMemory:
    """A replay memory of ``memory_size`` steps of ``num_envs`` environments."""

    def __init__(self, memory_size: int, num_envs: int = 1, device: Any = None, export: bool = False,
                 export_format: str = "pt", export_directory: str = "", replacement: bool = True):
        for name, value in (("memory_size", memory_size), ("num_envs", num_envs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid: expected a positive integer")
        if export:
            raise ValueError("export=True is not supported by ddpgx_torch.memories.RandomMemory")
        self.memory_size, self.num_envs = memory_size, num_envs
        self.device = settings.config.torch.parse_device(device)
        self.replacement = bool(replacement)
        self.buffer: Optional[replay.ReplayState] = None

    def __len__(self) -> int:
        return 0 if self.buffer is None else len(self.buffer)

    def create_tensor(self, *args, **kwargs) -> bool:
        """skrl compatibility: storage is allocated from the first transition added."""
        return True

    def add_samples(self, **tensors: Any) -> None:
        """Adds one transition per environment (fields of :class:`~ddpgx_torch.core.types.Transition`)."""
        transition = Transition(**tensors)
        if self.buffer is None:
            example = Transition(*(
                None if x is None else
                [torch.as_tensor(s)[0] for s in x] if isinstance(x, (list, tuple)) else torch.as_tensor(x)[0]
                for x in transition
            ))  # fmt: skip
            self.buffer = replay.init(self.memory_size * self.num_envs, example, num_envs=self.num_envs,
                                      device=self.device, replacement=self.replacement)
        replay.add(self.buffer, transition)


__all__ = ["RandomMemory"]
