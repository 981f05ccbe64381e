"""skrl-style replay memory: ``ddpgx.memories.RandomMemory`` over the device ring buffer of :mod:`ddpgx.core.replay`.

skrl's ``RandomMemory(memory_size, num_envs)`` stores ``memory_size`` steps of ``num_envs`` environments and samples
uniformly; here it holds a :class:`ddpgx.core.replay.ReplayState` of capacity ``memory_size * num_envs``, one row per
environment and step in skrl's order (``[memory_size, num_envs, ...]`` flattened). Given to :class:`ddpgx.DDPG`, it
holds the agent's transitions (a :class:`~ddpgx.core.types.Transition`, whose field names are skrl's tensor names:
``observations``, ``states``, ``actions``, ``rewards``, ``next_observations``, ``next_states``, ``terminated``), and
the agent adds to it inside its jitted update call, so there is one buffer on the device and no per-step copy.

On its own it has skrl 2.x's methods: ``create_tensor(name, size=..., dtype=...)``, ``add_samples(**tensors)``,
``sample(names, batch_size=...)``, ``sample_by_index(names, indexes=...)``, ``sample_all``, ``get_tensor_by_name``,
``set_tensor_by_name``, ``reset``, ``save`` and ``load`` (NumPy ``.npz`` files; skrl's JAX memory raises
``NotImplementedError`` there), with skrl's default ``replacement=False``. Sampling draws its indexes with
:func:`ddpgx.core.replay.sample` itself (the same code the agent samples with), from the memory's own PRNG key.
"""

from __future__ import annotations

import datetime
import itertools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ddpgx.core import replay
from ddpgx.models import _space_size, default_key
from ddpgx.core.types import Transition

__all__ = ["RandomMemory"]

_COUNTER = itertools.count()


class RandomMemory:
    """Uniform replay memory.

    Args:
      memory_size: steps kept per environment (the oldest are overwritten).
      num_envs: environments writing to the memory at each step.
      device: accepted for skrl compatibility (the buffer lives on the agent's device).
      export: skrl's export of the memory to files on wrap-around is not supported: True raises.
      replacement: sample with replacement, or (skrl 2.x's default) distinct transitions within each minibatch.
    """

    def __init__(self, *, memory_size: int, num_envs: int = 1, device: Any = None, export: bool = False,
                 export_format: str = "pt", export_directory: str = "", replacement: bool = False) -> None:
        for name, value in (("memory_size", memory_size), ("num_envs", num_envs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RandomMemory {name}={value!r} is invalid: expected an integer >= 1")
        if export:
            raise ValueError("RandomMemory export=True is not supported by ddpgx (save the agent with the replay "
                             "buffer instead: DDPG.save(path, include_memory=True), or memory.save(directory))")
        if not isinstance(replacement, bool):
            raise ValueError(f"RandomMemory replacement={replacement!r} is invalid: expected True or False")
        self.memory_size = memory_size
        self.num_envs = num_envs
        self.device = device
        self.replacement = replacement
        self.export_directory = export_directory
        self.state: replay.ReplayState | None = None  # created by create() (the agent) or create_tensor()
        self.sampling_indexes: jax.Array | None = None
        self._key = jax.random.fold_in(default_key(7), next(_COUNTER))

    @property
    def capacity(self) -> int:
        return self.memory_size * self.num_envs

    def create(self, example: Transition) -> None:
        """Allocates the storage for transitions shaped like ``example`` (one unbatched transition)."""
        self.state = replay.init(self.capacity, example, replacement=self.replacement)

    def _require(self) -> replay.ReplayState:
        if self.state is None:
            raise ValueError("the memory has no storage yet: the agent creates it in its constructor, or call "
                             "create_tensor(...)")
        return self.state

    def __len__(self) -> int:
        return 0 if self.state is None else int(self.state.size)

    # ----------------------------------------------------------------------------------------------------------------
    # skrl's named-tensor interface

    def _tensors(self) -> dict[str, jax.Array]:
        """The stored tensors by name, ``[capacity, ...]`` (a Transition's fields under skrl's names)."""
        data = self._require().data
        if isinstance(data, Transition):
            return {name: value for name, value in data._asdict().items() if value is not None}
        return dict(data)

    def get_tensor_names(self) -> list[str]:
        """The names of the stored tensors, sorted."""
        return sorted(self._tensors()) if self.state is not None else []

    def get_tensor_by_name(self, name: str) -> jax.Array:
        """A stored tensor as skrl lays it out, ``[memory_size, num_envs, ...]``; ``KeyError`` for an unknown name."""
        tensors = self._tensors()
        if name not in tensors:
            raise KeyError(f"the memory has no tensor {name!r}; it holds {sorted(tensors)}")
        tensor = tensors[name]
        return tensor.reshape((self.memory_size, self.num_envs) + tensor.shape[1:])

    def set_tensor_by_name(self, name: str, tensor: Any) -> None:
        """Replaces a stored tensor's values with ``tensor`` (``[memory_size, num_envs, ...]``, as
        :meth:`get_tensor_by_name` gives it); ``KeyError`` for an unknown name."""
        stored = self._tensors()
        if name not in stored:
            raise KeyError(f"the memory has no tensor {name!r}; it holds {sorted(stored)}")
        value = jnp.asarray(tensor, stored[name].dtype)
        if value.size != stored[name].size:
            raise ValueError(f"tensor {name!r} has {stored[name].size} values "
                             f"({(self.memory_size, self.num_envs) + stored[name].shape[1:]}); got shape {value.shape}")
        value = value.reshape(stored[name].shape)
        data = self.state.data
        data = data._replace(**{name: value}) if isinstance(data, Transition) else {**data, name: value}
        self.state = self.state.replace(data=data)

    def share_memory(self) -> None:
        """Nothing to do (skrl's JAX memory does nothing either): kept for skrl's method surface."""

    def create_tensor(self, name: str, *, size: Any, dtype: Any = None, keep_dimensions: bool = False) -> bool:
        """Declares a tensor of ``size`` values per environment and step (an int, a shape with ``keep_dimensions``,
        or a gymnasium space); returns False for ``size=None`` or a tensor that exists with that size and dtype.

        Raises:
          ValueError: the name exists with another size or dtype, or the memory already holds data (create every
            tensor before adding samples), or it is an agent's transition memory and ``name`` is not one of its
            fields.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"tensor name {name!r} is invalid: expected a Python identifier")
        if size is None:
            return False
        if keep_dimensions:
            if not isinstance(size, (tuple, list)):
                raise ValueError(f"size={size!r} is invalid with keep_dimensions=True: expected a sequence of ints")
            shape = tuple(int(n) for n in size)
        else:
            n = int(size) if isinstance(size, (int, np.integer)) else (
                int(np.prod(size)) if isinstance(size, (tuple, list)) else _space_size(size))
            shape = (n,)
        dtype = jnp.dtype(dtype if dtype is not None else jnp.float32)
        if self.state is not None:
            tensors = self._tensors()
            if name in tensors:
                stored = tensors[name]
                if int(np.prod(stored.shape[1:])) != int(np.prod(shape)) or (
                        stored.dtype != dtype and not isinstance(self.state.data, Transition)):
                    raise ValueError(f"tensor {name!r} exists with shape {stored.shape[1:]} and dtype {stored.dtype}, "
                                     f"not {shape} and {dtype}")
                return False
            if isinstance(self.state.data, Transition):
                raise ValueError(f"this memory holds an agent's transitions ({sorted(tensors)}): it cannot add "
                                 f"tensor {name!r}")
            if len(self) > 0:
                raise ValueError(f"cannot create tensor {name!r}: the memory already holds {len(self)} samples")
            examples = {k: jnp.zeros(v.shape[1:], v.dtype) for k, v in tensors.items()}
        else:
            examples = {}
        examples[name] = jnp.zeros(shape, dtype)
        buffer = replay.init(self.capacity, examples, replacement=self.replacement)
        # skrl fills float tensors with NaN, so that reading what was never written shows; so does this.
        self.state = buffer.replace(data={k: jnp.full_like(v, np.nan) if jnp.issubdtype(v.dtype, jnp.floating) else v
                                          for k, v in buffer.data.items()})
        return True

    def add_samples(self, transitions: Transition | None = None, **tensors: Any) -> None:
        """Adds one step: ``[num_envs, ...]`` values of every tensor, by name as skrl does (``add_samples(
        observations=..., actions=..., ...)``; rows of a single environment may drop the leading axis), or one
        :class:`~ddpgx.core.types.Transition` batch."""
        buffer = self._require()
        if transitions is None:
            if not tensors:
                raise ValueError("there are no samples: give them as keyword arguments named after the tensors")
            names = set(self._tensors())
            unknown, missing = sorted(set(tensors) - names - {"truncated"}), sorted(names - set(tensors))
            if unknown or missing:
                raise ValueError(f"add_samples needs exactly the memory's tensors {sorted(names)}: unknown "
                                 f"{unknown}, missing {missing}")
            rows = {name: self._rows(name, value) for name, value in tensors.items() if name in names}
            if isinstance(buffer.data, Transition):
                transitions = Transition(**{field: rows.get(field) for field in Transition._fields})
            else:
                transitions = rows
        self.state = replay.add(buffer, transitions)

    def _rows(self, name: str, value: Any) -> jax.Array:
        stored = self._tensors()[name]
        value = jnp.asarray(value, stored.dtype)
        if value.ndim == stored.ndim - 1 or value.size == int(np.prod(stored.shape[1:])):
            value = value.reshape((1,) + stored.shape[1:])  # one environment, without its leading axis
        return value.reshape((value.shape[0],) + stored.shape[1:])

    def sample(self, names: list[str], *, batch_size: int, mini_batches: int = 1, sequence_length: int = 1
               ) -> list[list[jax.Array]]:
        """``batch_size`` samples drawn uniformly (without replacement unless ``replacement=True``), as
        ``[[tensor of each name], ...]`` (one list per mini-batch). ``sequence_length`` > 1 is not supported (DDPG
        samples single steps; ``ddpgx_torch``'s recurrent memory samples sequences)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is invalid: expected an integer >= 1")
        if sequence_length != 1:
            raise ValueError(f"sequence_length={sequence_length!r} is not supported by ddpgx.memories.RandomMemory")
        buffer = self._require()
        if len(self) == 0:
            raise ValueError("cannot sample from an empty memory")
        if not self.replacement:
            batch_size = min(batch_size, len(self))  # skrl: at most the memory's size without replacement
        self._key, key = jax.random.split(self._key)
        # The indexes are drawn by replay.sample itself, from a buffer whose entries are their own indexes.
        positions = buffer.replace(data=jnp.arange(replay.capacity(buffer), dtype=jnp.int32))
        indexes = replay.sample(positions, key, batch_size)
        self.sampling_indexes = indexes
        return self.sample_by_index(names, indexes=indexes, mini_batches=mini_batches)

    def sample_by_index(self, names: list[str], *, indexes: Any, mini_batches: int = 1) -> list[list[Any]]:
        """The samples at ``indexes`` (into the ``[memory_size * num_envs]`` rows), ``[[tensor of each name],
        ...]`` split into ``mini_batches``; None for a name the memory does not hold (as skrl)."""
        tensors = self._tensors()
        indexes = jnp.asarray(indexes)
        batches = np.array_split(np.asarray(indexes), mini_batches) if mini_batches > 1 else [indexes]
        return [[tensors[name][batch] if name in tensors else None for name in names] for batch in batches]

    def sample_all(self, names: list[str], *, mini_batches: int = 1, sequence_length: int = 1) -> list[list[Any]]:
        """Every row of the memory (``memory_size * num_envs``), in storage order."""
        if sequence_length != 1:
            raise ValueError(f"sequence_length={sequence_length!r} is not supported by ddpgx.memories.RandomMemory")
        return self.sample_by_index(names, indexes=np.arange(self.capacity), mini_batches=mini_batches)

    def get_sampling_indexes(self) -> Any:
        """The indexes of the last :meth:`sample`."""
        return self.sampling_indexes

    def reset(self) -> None:
        """Empties the memory (its size and write position go to 0; old values stay until overwritten)."""
        buffer = self._require()
        self.state = buffer.replace(position=jnp.zeros_like(buffer.position), size=jnp.zeros_like(buffer.size))

    def save(self, directory: str = "", *, format: str = "npz") -> str:
        """Writes the tensors, write position and size to ``<directory>/<date>_memory_<id>.npz`` (NumPy); returns
        the path. Only ``"npz"`` is supported."""
        if format != "npz":
            raise ValueError(f"format={format!r} is not supported by ddpgx.memories.RandomMemory: use 'npz'")
        buffer = self._require()
        directory = directory or self.export_directory or "."
        os.makedirs(directory, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%y-%m-%d_%H-%M-%S-%f")
        path = os.path.join(directory, f"{stamp}_memory_{hex(id(self))}.npz")
        arrays = {f"tensor_{name}": np.asarray(value) for name, value in self._tensors().items()}
        np.savez(path, position=np.asarray(buffer.position), size=np.asarray(buffer.size), **arrays)
        return path

    def load(self, path: str) -> None:
        """Restores what :meth:`save` wrote into this memory, whose tensors must have the same names and shapes."""
        buffer = self._require()
        with np.load(path) as saved:
            loaded = {key[len("tensor_"):]: saved[key] for key in saved.files if key.startswith("tensor_")}
            position, size = int(saved["position"]), int(saved["size"])
        tensors = self._tensors()
        if sorted(loaded) != sorted(tensors) or any(loaded[k].shape != tensors[k].shape for k in tensors):
            raise ValueError(f"{path} holds tensors {({k: v.shape for k, v in loaded.items()})}, this memory "
                             f"{({k: v.shape for k, v in tensors.items()})}")
        arrays = {k: jnp.asarray(v, tensors[k].dtype) for k, v in loaded.items()}
        data = (Transition(**{f: arrays.get(f) for f in Transition._fields}) if isinstance(buffer.data, Transition)
                else arrays)
        self.state = buffer.replace(data=data, position=jnp.asarray(position, buffer.position.dtype),
                                    size=jnp.asarray(size, buffer.size.dtype))

    def __repr__(self) -> str:
        return (f"RandomMemory(memory_size={self.memory_size}, num_envs={self.num_envs}, "
                f"replacement={self.replacement}, size={len(self)})")
