"""skrl-style replay memory: ``ddpgx.memories.RandomMemory`` over the device ring buffer of :mod:`ddpgx.core.replay`.

skrl's ``RandomMemory(memory_size, num_envs)`` stores ``memory_size`` steps of ``num_envs`` environments and samples
uniformly; here it is a holder of a :class:`ddpgx.core.replay.ReplayState` of capacity ``memory_size * num_envs``. The
agent creates the storage in ``init`` (when it knows the spaces) and adds to it inside its jitted update call, so
there is one buffer on the device and no per-step copy.
"""

from __future__ import annotations

from typing import Any

import jax

from ddpgx.core import replay
from ddpgx.core.types import Transition

__all__ = ["RandomMemory"]


class RandomMemory:
    """Uniform replay memory.

    Args:
      memory_size: steps kept per environment (the oldest are overwritten).
      num_envs: environments writing to the memory at each step.
      device: accepted for skrl compatibility (the buffer lives on the agent's device).
      export: skrl's export of the memory to files on wrap-around is not supported: True raises.
      replacement: sample with replacement (skrl's default) or distinct transitions within each minibatch.
    """

    def __init__(self, *, memory_size: int, num_envs: int = 1, device: Any = None, export: bool = False,
                 export_format: str = "pt", export_directory: str = "", replacement: bool = True) -> None:
        for name, value in (("memory_size", memory_size), ("num_envs", num_envs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RandomMemory {name}={value!r} is invalid: expected an integer >= 1")
        if export:
            raise ValueError("RandomMemory export=True is not supported by ddpgx (save the agent with the replay "
                             "buffer instead: DDPG.save(path, include_memory=True))")
        if not isinstance(replacement, bool):
            raise ValueError(f"RandomMemory replacement={replacement!r} is invalid: expected True or False")
        self.memory_size = memory_size
        self.num_envs = num_envs
        self.replacement = replacement
        self.state: replay.ReplayState | None = None  # created by create() (the agent's init)

    @property
    def capacity(self) -> int:
        return self.memory_size * self.num_envs

    def create(self, example: Transition) -> None:
        """Allocates the storage for transitions shaped like ``example`` (one unbatched transition)."""
        self.state = replay.init(self.capacity, example, replacement=self.replacement)

    def _require(self) -> replay.ReplayState:
        if self.state is None:
            raise ValueError("the memory has no storage yet: the agent creates it in agent.init()")
        return self.state

    def __len__(self) -> int:
        return 0 if self.state is None else int(self.state.size)

    def add_samples(self, transitions: Transition) -> None:
        """Adds ``[num_envs, ...]`` transitions (the agent does this itself in ``record_transition``)."""
        self.state = replay.add(self._require(), transitions)

    def sample(self, batch_size: int, key: jax.Array) -> Transition:
        """``batch_size`` transitions drawn uniformly (as the agent's update draws them)."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty memory")
        return replay.sample(self._require(), key, batch_size)

    def __repr__(self) -> str:
        return (f"RandomMemory(memory_size={self.memory_size}, num_envs={self.num_envs}, "
                f"replacement={self.replacement}, size={len(self)})")
