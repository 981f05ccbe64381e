"""A pytree held in few buffers: its small leaves concatenated into one vector per dtype.

An environment loop that calls a jitted step once per environment step is bound by the call as much as by the
computation: XLA:CPU spends about 2 microseconds per argument and per result buffer, before the computation starts.
A DDPG train state has some 70 leaves, most of them small (biases, Adam's counts and hyperparameters, the noise
state), so a step that takes and returns it pays 0.2-0.3 ms a call in buffers alone. :func:`pack` keeps the large
leaves as they are and concatenates the small ones per dtype (float32, int32...), leaving about 20 buffers; a
jitted step calls :func:`unpack` first and :func:`pack` last, which XLA compiles into slices and a concatenation
of a few thousand numbers. Packing and unpacking are exact (bit for bit) and leave extended dtypes such as PRNG
keys alone.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from ddpgx.core import packing
  >>> tree = {"w": jnp.ones((64, 64)), "b": jnp.zeros(64), "count": jnp.int32(3)}
  >>> packed = packing.pack(tree)
  >>> len(jax.tree.leaves(packed)), len(jax.tree.leaves(tree))
  (3, 3)
  >>> int(packing.unpack(packed)["count"])
  3
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

__all__ = ["SMALL_SIZE", "Layout", "Packed", "pack", "skeleton", "unpack"]

#: Leaves with fewer elements than this are concatenated (a 64x64 kernel stays a buffer of its own).
SMALL_SIZE = 4096


class _Slot(NamedTuple):
    """Where a small leaf lives: its dtype's vector, the offset in it, and its shape."""

    dtype: str
    offset: int
    shape: tuple[int, ...]


class Layout(NamedTuple):
    """How to rebuild the tree: its structure and, per leaf, ``None`` (a large leaf, next in ``large``) or a slot."""

    treedef: Any
    slots: tuple[Optional[_Slot], ...]


@struct.dataclass
class Packed:
    """A pytree as its large leaves and one vector per dtype of its small ones (see :func:`pack`)."""

    large: tuple  # the large leaves, in the tree's leaf order
    small: dict  # dtype name -> [n] vector of the small leaves of that dtype, raveled and concatenated
    layout: Layout = struct.field(pytree_node=False)


def _layout(leaves: list, treedef: Any) -> Layout:
    offsets: dict[str, int] = {}
    slots = []
    for leaf in leaves:
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        if jax.dtypes.issubdtype(dtype, jax.dtypes.extended) or math.prod(np.shape(leaf)) >= SMALL_SIZE:
            slots.append(None)
            continue
        name = np.dtype(dtype).name
        offset = offsets.get(name, 0)
        slots.append(_Slot(name, offset, tuple(np.shape(leaf))))
        offsets[name] = offset + math.prod(np.shape(leaf))
    return Layout(treedef, tuple(slots))


def pack(tree: Any) -> Packed:
    """``tree`` as a :class:`Packed`: large leaves as they are, small ones concatenated per dtype (traceable)."""
    leaves, treedef = jax.tree.flatten(tree)
    layout = _layout(leaves, treedef)
    large = tuple(leaf for leaf, slot in zip(leaves, layout.slots, strict=True) if slot is None)
    parts: dict[str, list] = {}
    for leaf, slot in zip(leaves, layout.slots, strict=True):
        if slot is not None:
            parts.setdefault(slot.dtype, []).append(jnp.ravel(leaf))
    small = {name: jnp.concatenate(vectors) for name, vectors in parts.items()}
    return Packed(large, small, layout)


def unpack(packed: Packed) -> Any:
    """The tree :func:`pack` was given (traceable; inside a jit, the small leaves are slices of their vector)."""
    large = iter(packed.large)
    leaves = []
    for slot in packed.layout.slots:
        if slot is None:
            leaves.append(next(large))
        else:
            size = math.prod(slot.shape)
            vector = packed.small[slot.dtype]
            leaves.append(jax.lax.slice(vector, (slot.offset,), (slot.offset + size,)).reshape(slot.shape))
    return jax.tree.unflatten(packed.layout.treedef, leaves)


def skeleton(packed: Packed) -> Any:
    """The tree :func:`pack` was given with ``None`` for every leaf: its static parts (e.g. a train state's ``spec``),
    without touching the buffers. Cached per layout."""
    return _skeleton(packed.layout)


@functools.lru_cache(maxsize=64)
def _skeleton(layout: Layout) -> Any:
    return jax.tree.unflatten(layout.treedef, [None] * len(layout.slots))
