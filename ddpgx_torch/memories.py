"""skrl-style ``RandomMemory`` over the core replay buffer, with skrl 2.x's methods and defaults.

``RandomMemory(memory_size, num_envs=1, device=None, export=False, export_format="pt", export_directory="",
replacement=False)``: ``memory_size`` steps of ``num_envs`` environments. The agent writes transitions with
``add_samples(**tensors)`` and samples in its update straight from the preallocated buffer
(:mod:`ddpgx_torch.replay`), sequences for a recurrent policy. ``replacement=False`` (skrl's default) samples
distinct entries within a batch (a permutation of the buffer per batch), ``True`` with replacement.

skrl's name-based interface works on the same storage: ``tensors`` (name -> ``[memory_size, num_envs, size]``),
``create_tensor``, ``add_samples`` (any created name), ``sample`` / ``sample_by_index`` / ``get_sampling_indexes``
(tensors flattened to ``[memory_size * num_envs, size]`` and indexed), ``save`` / ``load`` (``"pt"``, ``"npz"``;
``"csv"`` save only, as skrl), ``reset`` and ``export``. The transition fields (``observations``, ``actions``,
``rewards``, ``next_observations``, ``terminated``, ``truncated``, ``states``, ``next_states``, and the recurrent
policy's hidden states as ``rnn_policy_<i>``, skrl's names) live in the replay buffer, which is allocated from the
first ``add_samples`` (their ``create_tensor`` calls are recorded and checked against it); any other name gets its
own tensor at ``create_tensor``, NaN-filled as in skrl, written at the same row. Departures: ``sample`` draws from
torch's global generator through the core's sampler (sequences never straddle the write position), and ``save``
also records the write position and fill level so that ``load`` restores them (skrl's ``load`` does not).
"""

from __future__ import annotations

import csv
import datetime
import os
from typing import Any, Optional

import gymnasium
import numpy as np
import torch

from ddpgx_torch import settings
from ddpgx_torch.core import replay
from ddpgx_torch.core.types import Transition

_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated", "states", "next_states",
           "truncated")
_SCALARS = ("rewards", "terminated", "truncated")  # stored [rows, num_envs]; shown as [rows, num_envs, 1]
_FORMATS = ("pt", "npz", "csv")


def _rnn_index(name: str) -> Optional[int]:
    if name.startswith("rnn_policy_") and name[len("rnn_policy_"):].isdigit():
        return int(name[len("rnn_policy_"):])
    return None


class RandomMemory:
    """A replay memory of ``memory_size`` steps of ``num_envs`` environments (skrl's documented interface)."""

    def __init__(self, memory_size: int, num_envs: int = 1, device: Any = None, export: bool = False,
                 export_format: str = "pt", export_directory: str = "", replacement: bool = False):
        for name, value in (("memory_size", memory_size), ("num_envs", num_envs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid: expected a positive integer")
        if export_format not in _FORMATS:
            raise ValueError(f"export_format={export_format!r} is invalid: expected one of {_FORMATS}")
        self.memory_size, self.num_envs = memory_size, num_envs
        self.device = settings.config.torch.parse_device(device)
        self.export, self.export_format, self.export_directory = bool(export), export_format, export_directory
        self.replacement = bool(replacement)
        self.buffer: Optional[replay.ReplayState] = None
        self.sampling_indexes: Optional[torch.Tensor] = None
        self._declared: dict[str, tuple[tuple[int, ...], Optional[torch.dtype]]] = {}  # transition fields
        self._extra: dict[str, torch.Tensor] = {}  # other names: [memory_size, num_envs, *size]
        self._position = self._size = 0  # rows written where no transition fields are stored (extra names only)

    def __len__(self) -> int:
        """Number of transitions held (steps times environments)."""
        return len(self.buffer) if self.buffer is not None else self._size * self.num_envs

    # -- skrl's name-based view ------------------------------------------------------------------------------------
    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """Every stored tensor by skrl's name, ``[memory_size, num_envs, *size]`` (views of the storage)."""
        out = {}
        if self.buffer is not None:
            for name in _FIELDS:
                value = getattr(self.buffer.data, name)
                if value is not None:
                    out[name] = value.unsqueeze(-1) if name in _SCALARS else value
            for i, value in enumerate(self.buffer.data.rnn_states or ()):
                out[f"rnn_policy_{i}"] = value
        out.update(self._extra)
        return out

    def get_tensor_names(self) -> list[str]:
        return sorted(self.tensors)

    def get_tensor_by_name(self, name: str) -> torch.Tensor:
        """The tensor ``name`` ``[memory_size, num_envs, *size]``.

        Raises:
          KeyError: if there is no tensor of that name.
        """
        tensors = self.tensors
        if name not in tensors:
            raise KeyError(f"the memory has no tensor {name!r} (it has {sorted(tensors)})")
        return tensors[name]

    def set_tensor_by_name(self, name: str, tensor: torch.Tensor) -> None:
        """Copies ``tensor`` into the stored tensor ``name`` (same shape)."""
        with torch.no_grad():
            self.get_tensor_by_name(name).copy_(torch.as_tensor(tensor))

    def create_tensor(self, name: str, *, size: Any, dtype: Optional[torch.dtype] = None,
                      keep_dimensions: bool = False) -> bool:
        """Declares a tensor ``[memory_size, num_envs, size]`` (``size``: an int, a gymnasium space, or with
        ``keep_dimensions`` a sequence of ints kept as dimensions); returns whether it is new. ``size=None`` creates
        nothing (returns False), as in skrl.

        Raises:
          ValueError: if a tensor of that name exists with another size or dtype, or ``size`` is invalid.
        """
        if size is None:
            return False
        if keep_dimensions:
            if not isinstance(size, (tuple, list)) or not all(isinstance(d, int) and d > 0 for d in size):
                raise ValueError(f"size={size!r} is invalid with keep_dimensions=True: expected a sequence of "
                                 "positive integers")
            shape = tuple(size)
        elif isinstance(size, gymnasium.Space):
            shape = (int(gymnasium.spaces.flatdim(size)),)
        elif isinstance(size, (tuple, list)):
            shape = (int(np.prod(size)),)
        elif isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size > 0:
            shape = (int(size),)
        else:
            raise ValueError(f"size={size!r} is invalid: expected a positive integer, a gymnasium space or a "
                             "sequence of integers")
        existing = self.tensors.get(name)
        if existing is None and name in self._declared:
            declared_shape, declared_dtype = self._declared[name]
            existing = torch.empty((1, 1, *declared_shape), dtype=declared_dtype or torch.float32, device="meta")
        if existing is not None:
            if tuple(existing.shape[2:]) != shape and existing.shape[2:].numel() != int(np.prod(shape)):
                raise ValueError(f"tensor {name!r} exists with size {tuple(existing.shape[2:])}, not {shape}")
            if dtype is not None and existing.dtype != dtype:
                raise ValueError(f"tensor {name!r} exists with dtype {existing.dtype}, not {dtype}")
            return False
        if name in _FIELDS or _rnn_index(name) is not None:
            self._declared[name] = (shape, dtype)
            return True
        tensor = torch.zeros((self.memory_size, self.num_envs, *shape), dtype=dtype, device=self.device)
        if torch.is_floating_point(tensor):
            tensor.fill_(float("nan"))  # (skrl's early misuse detection)
        self._extra[name] = tensor
        return True

    def add_samples(self, **tensors: Any) -> None:
        """Adds one step for every environment: tensors ``[num_envs, size]`` (``[size]`` for one environment) keyed
        by name. Transition fields go to the replay buffer (allocated on the first call); other names are written
        where ``create_tensor`` made them, and skipped otherwise, as in skrl. ddpgx's own ``rnn_states`` (a list)
        is accepted for ``rnn_policy_<i>``.

        Raises:
          ValueError: without tensors, without the transition fields the buffer needs, or for mismatched shapes.
        """
        if not tensors:
            raise ValueError("add_samples() needs at least one tensor (keyword arguments name -> tensor)")
        fields = {k: v for k, v in tensors.items() if k in _FIELDS and v is not None}
        rnn = sorted((i, v) for k, v in tensors.items() if (i := _rnn_index(k)) is not None and v is not None)
        if rnn:
            fields["rnn_states"] = [v for _, v in rnn]
        elif tensors.get("rnn_states") is not None:
            fields["rnn_states"] = tensors["rnn_states"]
        if fields:
            missing = [f for f in Transition._fields[:5] if f not in fields]
            if missing:
                raise ValueError(f"add_samples() got {sorted(fields)} but a transition needs {missing} too")
            transition = Transition(**fields)
            if self.buffer is None:
                self.buffer = replay.init(self.memory_size * self.num_envs, self._example(transition),
                                          num_envs=self.num_envs, device=self.device, replacement=self.replacement)
            row = self.buffer.position
            replay.add(self.buffer, transition)
            wrapped = self.buffer.position == 0
        else:
            row = self._position
            self._position = (row + 1) % self.memory_size
            self._size = min(self._size + 1, self.memory_size)
            wrapped = self._position == 0
        for name, target in self._extra.items():
            if tensors.get(name) is not None:
                value = torch.as_tensor(tensors[name], device=self.device)
                target[row].copy_(value.reshape(target.shape[1:]))
        if wrapped and self.export:
            self.save(self.export_directory, format=self.export_format)

    def _example(self, transition: Transition) -> Transition:
        """One environment's entry of ``transition`` (the buffer's per-entry shapes and dtypes), checked against
        what ``create_tensor`` declared."""
        def first(name, x):
            x = torch.as_tensor(x)
            entry = x[0] if x.dim() > 0 and x.shape[0] == self.num_envs else x  # ([size] alone: one environment)
            return entry.reshape(()) if name in _SCALARS else entry

        example = Transition(*(
            None if x is None else [first(name, s) for s in x] if isinstance(x, (list, tuple)) else first(name, x)
            for name, x in zip(Transition._fields, transition, strict=True)
        ))  # fmt: skip
        for name, (shape, _) in self._declared.items():
            index = _rnn_index(name)
            value = getattr(example, name) if index is None else (example.rnn_states or [None] * (index + 1))[index]
            if value is not None and value.numel() != int(np.prod(shape)):
                raise ValueError(f"add_samples() got {name} of {value.numel()} values per environment, but "
                                 f"create_tensor declared size {shape}")
        return example

    def reset(self) -> None:
        """Forgets what is stored (the next write goes to row 0, the memory reads as empty); the storage stays."""
        if self.buffer is not None:
            self.buffer.position = self.buffer.size = 0
        self._position = self._size = 0

    # -- sampling -------------------------------------------------------------------------------------------------
    def sample(self, names: list[str], *, batch_size: int, mini_batches: int = 1, sequence_length: int = 1
               ) -> list[list[Optional[torch.Tensor]]]:
        """``batch_size`` entries (``batch_size`` sequences of ``sequence_length`` with ``sequence_length > 1``,
        flattened batch-major) drawn uniformly, without replacement unless ``replacement=True``; for each
        mini-batch, the tensors of ``names`` in that order (``[n, size]``; None for an unknown name).

        Raises:
          ValueError: if the memory holds no transitions, or fewer steps than ``sequence_length``.
        """
        if self.buffer is None:
            raise ValueError("the memory is empty: add_samples() transitions before sampling")
        rows, envs = replay.sample_indexes(self.buffer, None, batch_size, sequence_length)
        self.sampling_indexes = (rows * self.num_envs + envs).reshape(-1)
        return self.sample_by_index(names, indexes=self.sampling_indexes, mini_batches=mini_batches)

    def sample_by_index(self, names: list[str], *, indexes: Any, mini_batches: int = 1
                        ) -> list[list[Optional[torch.Tensor]]]:
        """The entries at the flat ``indexes`` (into ``[memory_size * num_envs]``, step-major) of the tensors
        ``names``, split into ``mini_batches``."""
        indexes = torch.as_tensor(indexes, dtype=torch.long, device=self.device).reshape(-1)
        tensors = self.tensors
        flat = {name: t.reshape(-1, *t.shape[2:]) for name, t in tensors.items() if name in names}
        batches = torch.tensor_split(indexes, mini_batches) if mini_batches > 1 else (indexes,)
        return [[flat[name][batch] if name in flat else None for name in names] for batch in batches]

    def sample_all(self, names: list[str], *, mini_batches: int = 1, sequence_length: int = 1
                   ) -> list[list[Optional[torch.Tensor]]]:
        """Every entry of the memory (``memory_size * num_envs``, step-major, as skrl's ``sample_all``), split into
        ``mini_batches``.

        Raises:
          ValueError: for ``sequence_length`` other than 1 (skrl's reorders whole sequences; not supported here).
        """
        if sequence_length != 1:
            raise ValueError(f"sequence_length={sequence_length!r} is not supported by sample_all (expected 1)")
        return self.sample_by_index(names, indexes=torch.arange(self.memory_size * self.num_envs),
                                    mini_batches=mini_batches)

    def share_memory(self) -> None:
        """Moves every stored CPU tensor to shared memory (``Tensor.share_memory_``), as skrl's, for multiprocessing."""
        for tensor in self.tensors.values():
            if not tensor.is_cuda:
                tensor.share_memory_()

    def get_sampling_indexes(self) -> Optional[torch.Tensor]:
        """The flat indexes of the last :meth:`sample`."""
        return self.sampling_indexes

    # -- files ----------------------------------------------------------------------------------------------------
    def save(self, directory: str = "", *, format: str = "pt") -> str:  # noqa: A002 -- skrl's argument name
        """Writes every tensor to ``<directory>/memories/<time>_memory_<id>.<format>`` (``"pt"``: a dict of
        tensors; ``"npz"``; ``"csv"``: one row per stored entry), as skrl does; returns the path. ``pt`` and ``npz``
        also record the write position and fill level.

        Raises:
          ValueError: for an unsupported format.
        """
        if format not in _FORMATS:
            raise ValueError(f"format={format!r} is invalid: expected one of {_FORMATS}")
        directory = directory or self.export_directory
        os.makedirs(os.path.join(directory, "memories"), exist_ok=True)
        stamp = datetime.datetime.now().strftime("%y-%m-%d_%H-%M-%S-%f")
        path = os.path.join(directory, "memories", f"{stamp}_memory_{hex(id(self))}.{format}")
        tensors = self.tensors
        position = self.buffer.position if self.buffer is not None else self._position
        size = self.buffer.size if self.buffer is not None else self._size
        if format == "pt":
            torch.save({**{k: v.detach().cpu() for k, v in tensors.items()}, "_ddpgx_position": position,
                        "_ddpgx_size": size}, path)
        elif format == "npz":
            np.savez(path, _ddpgx_position=position, _ddpgx_size=size,
                     **{k: v.detach().cpu().numpy() for k, v in tensors.items()})
        else:
            names = sorted(tensors)
            flat = {name: tensors[name].reshape(-1, int(np.prod(tensors[name].shape[2:]))) for name in names}
            with open(path, "w", newline="") as file:
                writer = csv.writer(file)
                writer.writerow([f"{name}.{i}" for name in names for i in range(flat[name].shape[1])])
                for i in range(len(self)):
                    writer.writerow([v for name in names for v in flat[name][i].tolist()])
        return path

    def load(self, path: str) -> None:
        """Reads a memory written by :meth:`save` (``.pt`` or ``.npz``; skrl's own ``.pt``/``.npz`` files too, read
        as full), allocating the storage if needed.

        Raises:
          ValueError: for an unsupported file type or tensors of another ``[memory_size, num_envs]`` than this
            memory's (nothing is loaded then).
        """
        if path.endswith(".pt"):
            data = dict(torch.load(path, map_location="cpu", weights_only=True))
        elif path.endswith(".npz"):
            with np.load(path) as npz:
                data = {k: torch.as_tensor(npz[k]) for k in npz.files}
        else:
            raise ValueError(f"{path!r} has an unsupported format: expected a .pt or .npz file (csv is write-only, "
                             "as in skrl)")
        position = int(data.pop("_ddpgx_position", 0))
        size = int(data.pop("_ddpgx_size", self.memory_size))
        for name, value in data.items():
            if tuple(value.shape[:2]) != (self.memory_size, self.num_envs):
                raise ValueError(f"{path!r} holds {name} of shape {tuple(value.shape)}, but this memory is "
                                 f"[memory_size={self.memory_size}, num_envs={self.num_envs}, ...]; nothing was "
                                 "loaded")
        fields = {k: v for k, v in data.items() if k in _FIELDS}
        rnn = [data[f"rnn_policy_{i}"] for i in range(len(data)) if f"rnn_policy_{i}" in data]
        if fields:
            if self.buffer is None:
                entry = {k: (v[0, 0, 0] if k in _SCALARS else v[0, 0]) for k, v in fields.items()}
                if rnn:
                    entry["rnn_states"] = [v[0, 0] for v in rnn]
                self.buffer = replay.init(self.memory_size * self.num_envs, Transition(**entry),
                                          num_envs=self.num_envs, device=self.device, replacement=self.replacement)
            for name, target in self.tensors.items():
                if name in data:
                    target.copy_(data[name].reshape(target.shape))
            self.buffer.position, self.buffer.size = position, size
        else:
            self._position, self._size = position, size
        for name, value in data.items():
            if name not in _FIELDS and _rnn_index(name) is None:
                self._extra[name] = value.to(self.device).clone()


__all__ = ["RandomMemory"]
