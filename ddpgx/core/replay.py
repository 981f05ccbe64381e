"""A uniform replay buffer that lives on the device, as pure functions.

DDPG is off-policy: it learns from transitions sampled uniformly from a buffer of past experience, which breaks
the temporal correlation of consecutive samples (Lillicrap et al. 2015, following DQN). The buffer is a ring of
fixed capacity holding a :class:`~ddpgx.core.types.Transition` pytree with a leading ``[capacity]`` axis; ``add``
writes a batch from N environments at once and wraps around, overwriting the oldest entries; ``sample`` draws
indices uniformly among the filled entries, with replacement by default or, for a buffer made with
``replacement=False`` (skrl's ``RandomMemory(replacement=False)``), as a uniformly random subset of distinct entries
per minibatch (drawn with replacement, repeats redrawn: no permutation or top-k over the buffer). All
three are jittable, so sampling can run inside the update's jit and a whole training loop can be one program.

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
    cap = capacity(buffer)
    if not isinstance(transitions, Transition):
        raise ValueError(f"transitions must be a ddpgx.Transition, got {type(transitions).__name__}")
    for name, new, old in zip(Transition._fields, transitions, buffer.data, strict=True):
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
    index = (buffer.position + jnp.arange(n, dtype=jnp.int32)) % cap
    data = jax.tree.map(lambda old, new: old.at[index].set(jnp.asarray(new, old.dtype)), buffer.data, transitions)
    return buffer.replace(data=data, position=(buffer.position + n) % cap, size=jnp.minimum(buffer.size + n, cap))


def sample(buffer: ReplayState, key: jax.Array, shape: int | tuple[int, ...]) -> Transition:
    """Draws transitions uniformly among the filled entries; leaves get leading ``shape``.

    With ``buffer.replacement`` (the default) every index is drawn independently. Without it, each minibatch (the
    last axis of ``shape``) holds distinct entries, a uniformly random subset; a minibatch larger than the filled
    part of the buffer repeats entries (as it must).

    The buffer must hold at least one transition (inside jit this cannot be checked; an empty buffer yields
    entry 0 of its zero-initialised storage).
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    size = jnp.maximum(buffer.size, 1)
    if buffer.replacement:
        index = jax.random.randint(key, shape, 0, size)
    else:
        cap = capacity(buffer)
        if shape[-1] > cap:
            raise ValueError(f"cannot draw {shape[-1]} distinct transitions from a buffer of capacity {cap}")
        index = _distinct(key, shape, size)
    return jax.tree.map(lambda x: x[index], buffer.data)


def _distinct(key: jax.Array, shape: tuple[int, ...], size: jax.Array) -> jax.Array:
    """Indices in ``[0, size)``, distinct along the last axis of ``shape``: a uniformly random subset per minibatch.

    Draw with replacement, then redraw every repeated entry until none is left. The procedure treats all
    ``size`` entries alike (it commutes with any relabelling of them), so every subset is equally likely. With
    minibatches much smaller than the buffer a redraw is rare (100 from 15,000: 28% of draws need one), so this
    costs a sort of the minibatch instead of a top-k over the whole buffer. A minibatch larger than ``size``
    cannot be distinct; it is drawn with replacement.
    """
    k = shape[-1]
    first_key, key = jax.random.split(key)
    index = jax.random.randint(first_key, shape, 0, size)

    def repeated_1d(row):  # True at every entry equal to an earlier one (in sorted order)
        order = jnp.argsort(row)
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
