"""A uniform replay buffer that lives on the device, as pure functions.

DDPG is off-policy: it learns from transitions sampled uniformly from a buffer of past experience, which breaks
the temporal correlation of consecutive samples (Lillicrap et al. 2015, following DQN). The buffer is a ring of
fixed capacity holding a :class:`~ddpgx.core.types.Transition` pytree (or a dict of named arrays) with a leading
``[capacity]`` axis; ``add`` writes a batch from N environments at once and wraps around, overwriting the oldest
entries; ``sample`` draws indices uniformly among the filled entries, with replacement by default or, for a buffer
made with ``replacement=False`` (skrl's ``RandomMemory(replacement=False)``), as a uniformly random subset of
distinct entries per minibatch (drawn with replacement, repeats redrawn: no permutation or top-k over the buffer).
All three are jittable, so sampling can run inside the update's jit and a whole training loop can be one program.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from ddpgx import replay
  >>> from ddpgx.core.types import Transition
  >>> example = Transition(jnp.zeros(3), jnp.zeros(1), jnp.zeros(()), jnp.zeros(3), jnp.zeros((), bool))
  >>> buffer = replay.init(1000, example)
  >>> batch = jax.tree.map(lambda x: jnp.stack([x, x]), example)  # two environments
  >>> buffer = replay.add(buffer, batch)
  >>> int(buffer.size)
  2
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from ddpgx.core.types import Transition


@struct.dataclass
class ReplayState:
    """A ring buffer of transitions."""

    data: Transition  # leaves [capacity, ...]
    position: jax.Array  # [] int32, index of the next write
    size: jax.Array  # [] int32, number of filled entries (<= capacity)
    replacement: bool = struct.field(pytree_node=False, default=True)  # how ``sample`` draws a minibatch


def capacity(buffer: ReplayState) -> int:
    return jax.tree.leaves(buffer.data)[0].shape[0]


def init(capacity: int, example: Transition, *, replacement: bool = True) -> ReplayState:
    """An empty buffer of ``capacity`` entries shaped like one unbatched ``example`` transition.

    ``replacement=False`` makes :func:`sample` draw distinct entries within each minibatch.

    Raises:
      ValueError: if ``capacity`` is not a positive integer.
    """
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"capacity={capacity!r} is invalid: expected a positive integer")
    if not isinstance(replacement, bool):
        raise ValueError(f"replacement={replacement!r} is invalid: expected True or False")
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return ReplayState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), replacement)


@functools.partial(jax.jit, donate_argnums=0)
def add(buffer: ReplayState, transitions: Transition) -> ReplayState:
    """Writes a batch ``[n, ...]`` of transitions (one per environment), wrapping around at capacity.

    The buffer is donated: its memory is reused for the result.

    Raises:
      ValueError: if the batch does not match the buffer's structure and shapes, or holds more than capacity.
    """
    n = _batch_size(buffer, transitions)
    cap = capacity(buffer)
    index = (buffer.position + jnp.arange(n, dtype=jnp.int32)) % cap
    data = jax.tree.map(lambda old, new: old.at[index].set(jnp.asarray(new, old.dtype)), buffer.data, transitions)
    return buffer.replace(data=data, position=(buffer.position + n) % cap, size=jnp.minimum(buffer.size + n, cap))


def _batch_size(buffer: ReplayState, transitions: Transition) -> int:
    """The number ``n`` of transitions in a batch for ``buffer``; raises ``ValueError`` (see :func:`add`) if the
    batch does not fit."""
    cap = capacity(buffer)
    if isinstance(buffer.data, Transition):
        if not isinstance(transitions, Transition):
            raise ValueError(f"transitions must be a ddpgx.Transition, got {type(transitions).__name__}")
        fields = zip(Transition._fields, transitions, buffer.data, strict=True)
    else:  # a dict of named arrays (skrl's named tensors: ddpgx.memories.RandomMemory on its own)
        if not isinstance(transitions, dict) or transitions.keys() != buffer.data.keys():
            raise ValueError(f"transitions must be a dict of {sorted(buffer.data)}, got {type(transitions).__name__}"
                             f"{sorted(transitions) if isinstance(transitions, dict) else ''}")
        fields = ((name, transitions[name], buffer.data[name]) for name in buffer.data)
    for name, new, old in fields:
        if jax.tree.structure(new) != jax.tree.structure(old):
            raise ValueError(
                f"transitions.{name} has structure {jax.tree.structure(new)}, "
                f"the buffer holds {jax.tree.structure(old)}"
            )
        for (path, leaf), stored in zip(jax.tree_util.tree_leaves_with_path(new), jax.tree.leaves(old), strict=True):
            if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[1:] != stored.shape[1:]:
                dims = ("n",) + stored.shape[1:]
                expected = "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"
                raise ValueError(
                    f"transitions.{name}{jax.tree_util.keystr(path)} has shape {jnp.shape(leaf)}, expected {expected} "
                    "for n transitions"
                )
    sizes = {jnp.shape(x)[0] for x in jax.tree.leaves(transitions)}
    if len(sizes) != 1:
        raise ValueError(f"all transition fields need the same leading batch size; got {sorted(sizes)}")
    (n,) = sizes
    if n > cap:
        raise ValueError(f"cannot add {n} transitions at once to a buffer of capacity {cap}")
    return n


def sample(buffer: ReplayState, key: jax.Array, shape: int | tuple[int, ...]) -> Transition:
    """Draws transitions uniformly among the filled entries; leaves get leading ``shape``.

    With ``buffer.replacement`` (the default) every index is drawn independently. Without it, each minibatch (the
    last axis of ``shape``) holds distinct entries, a uniformly random subset; a minibatch larger than the filled
    part of the buffer repeats entries (as it must).

    The buffer must hold at least one transition (inside jit this cannot be checked; an empty buffer yields
    entry 0 of its zero-initialised storage).
    """
    index = _indices(buffer, key, shape, buffer.size)
    return jax.tree.map(lambda x: x[index], buffer.data)


def sample_after_add(buffer: ReplayState, transitions: Transition, key: jax.Array,
                     shape: int | tuple[int, ...]) -> Transition:
    """What ``sample(add(buffer, transitions), key, shape)`` draws, read from ``buffer`` without writing it: the
    indices are drawn as :func:`sample` draws them from the buffer after the write, and an index that the write
    would fill takes its row from ``transitions``.

    This lets a step sample for its update and write the new transitions in a separate call issued after it. In one
    program, XLA copies the buffer's columns to sample from them while writing them in place (see
    :func:`ddpgx.core.add_and_update`); here the sampling only reads them.

    Raises:
      ValueError: as :func:`add`, if the batch does not match the buffer.
    """
    n = _batch_size(buffer, transitions)
    cap = capacity(buffer)
    index = _indices(buffer, key, shape, jnp.minimum(buffer.size + n, cap))
    offset = (index - buffer.position) % cap  # where the write puts row k: offset k
    written = offset < n
    row = jnp.minimum(offset, n - 1)

    def pick(stored: jax.Array, new: Any) -> jax.Array:
        mask = written.reshape(written.shape + (1,) * (stored.ndim - 1))
        return jnp.where(mask, jnp.asarray(new, stored.dtype)[row], stored[index])

    return jax.tree.map(pick, buffer.data, transitions)


def _indices(buffer: ReplayState, key: jax.Array, shape: int | tuple[int, ...], size: jax.Array) -> jax.Array:
    """Indices of a draw of leading ``shape`` among ``size`` filled entries, as :func:`sample` describes."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    size = jnp.maximum(size, 1)
    if buffer.replacement:
        return jax.random.randint(key, shape, 0, size)
    cap = capacity(buffer)
    if shape[-1] > cap:
        raise ValueError(f"cannot draw {shape[-1]} distinct transitions from a buffer of capacity {cap}")
    return _distinct(key, shape, size)


_PAIRWISE_UP_TO = 512  # minibatch sizes whose repeats are found by comparing all pairs, not by a sort


def _distinct(key: jax.Array, shape: tuple[int, ...], size: jax.Array) -> jax.Array:
    """Indices in ``[0, size)``, distinct along the last axis of ``shape``: a uniformly random subset per minibatch.

    Draw with replacement, then redraw every entry equal to an earlier one until none is left. The procedure treats
    all ``size`` entries alike (it commutes with any relabelling of them), so every subset is equally likely. With
    minibatches much smaller than the buffer a redraw is rare (100 from 15,000: 28% of draws need one), so this
    costs a comparison of the minibatch with itself instead of a top-k over the whole buffer: all pairs up to
    ``_PAIRWISE_UP_TO`` entries (one fused comparison; XLA:CPU's sort of 100 numbers takes about 15 us, 5 times
    longer), a sort beyond. A minibatch larger than ``size`` cannot be distinct; it is drawn with replacement.
    """
    k = shape[-1]
    first_key, key = jax.random.split(key)
    index = jax.random.randint(first_key, shape, 0, size)

    def repeated_1d(row):  # True at every entry equal to an earlier one (in index order up to _PAIRWISE_UP_TO)
        if k <= _PAIRWISE_UP_TO:
            return jnp.any((row[:, None] == row[None, :]) & jnp.tri(k, k, -1, dtype=bool), axis=1)
        order = jnp.argsort(row)  # in sorted order
        ranked = row[order]
        later = jnp.concatenate([jnp.zeros((1,), bool), ranked[1:] == ranked[:-1]])
        return jnp.zeros((k,), bool).at[order].set(later)

    def repeated(index):
        flat = index.reshape(-1, k)
        return jax.vmap(repeated_1d)(flat).reshape(shape)

    def cond(carry):
        index, _, dup = carry
        return jnp.any(dup) & (size >= k)

    def body(carry):
        index, key, dup = carry
        key, draw_key = jax.random.split(key)
        index = jnp.where(dup, jax.random.randint(draw_key, shape, 0, size), index)
        return index, key, repeated(index)

    index, _, _ = jax.lax.while_loop(cond, body, (index, key, repeated(index)))
    return index
