"""Gymnasium spaces as the static, hashable layouts that the jitted functions need.

DDPG learns a deterministic policy ``a = mu(s)`` and needs the gradient ``dQ/da``, so its action space must be a
bounded continuous ``Box`` (Lillicrap et al. 2015, arXiv:1509.02971). Observations (and skrl 2.x ``states``, the
privileged critic input of asymmetric actor-critic) may be a ``Box`` or a ``Dict`` of them; both are flattened to
one float32 vector per sample, in the order ``gymnasium.spaces.flatten`` uses, so flat observations stored by a
gymnasium ``FlattenObservation`` wrapper and dict observations flattened here agree.

A gymnasium space is not hashable, so it cannot be a static field of a jitted train state; the layouts below keep
only what the computation needs (shapes, order, bounds) as tuples. The layouts are framework-free (``ddpgx_torch``
uses them too); only :func:`flatten` needs JAX, and imports it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import gymnasium
import numpy as np

if TYPE_CHECKING:
    import jax


@dataclasses.dataclass(frozen=True)
class InputLayout:
    """How one batch of (possibly dict) observations maps to a flat float32 ``[batch, size]`` matrix.

    Attributes:
      keys: ``None`` for a ``Box`` space; for a ``Dict`` space, the path of each leaf box in flattening order.
      shapes: the shape of each leaf box (one entry for a ``Box`` space).
    """

    keys: tuple[tuple[str, ...], ...] | None
    shapes: tuple[tuple[int, ...], ...]

    @property
    def size(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)


@dataclasses.dataclass(frozen=True)
class ActionLayout:
    """A bounded ``Box`` action space: its shape and its flattened finite bounds."""

    shape: tuple[int, ...]
    low: tuple[float, ...]  # [size], float32-representable
    high: tuple[float, ...]  # [size]

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def input_layout(space: gymnasium.Space, name: str = "observation_space") -> InputLayout:
    """Returns the flattening layout of a ``Box`` or (nested) ``Dict``-of-``Box`` space.

    Raises:
      ValueError: naming the space if it (or one of its sub-spaces) is not a supported kind.
    """
    if isinstance(space, gymnasium.spaces.Box):
        layout = InputLayout(keys=None, shapes=(tuple(int(d) for d in space.shape),))
    elif isinstance(space, gymnasium.spaces.Dict):
        keys: list[tuple[str, ...]] = []
        shapes: list[tuple[int, ...]] = []
        _collect_dict(space, (), keys, shapes, name)
        if not keys:
            raise ValueError(f"{name} is an empty Dict space {space}; it needs at least one Box entry")
        layout = InputLayout(keys=tuple(keys), shapes=tuple(shapes))
    else:
        layout = None
    if layout is not None:
        if layout.size == 0:
            raise ValueError(f"{name}={space!r} has no components (size 0): the networks need at least one input")
        return layout
    raise ValueError(
        f"{name}={space!r} is not supported: ddpgx accepts a gymnasium Box or a Dict of Box spaces "
        "(Discrete and MultiDiscrete observations are not supported, as in skrl's DDPG)"
    )


def _collect_dict(space, prefix, keys, shapes, name) -> None:
    for key, sub in space.spaces.items():
        path = prefix + (str(key),)
        if isinstance(sub, gymnasium.spaces.Dict):
            _collect_dict(sub, path, keys, shapes, name)
        elif isinstance(sub, gymnasium.spaces.Box):
            keys.append(path)
            shapes.append(tuple(int(d) for d in sub.shape))
        else:
            raise ValueError(
                f"{name}[{'/'.join(path)!r}]={sub!r} is not supported: Dict entries must be Box spaces"
            )


def action_layout(space: Any) -> ActionLayout:
    """Returns the layout of a bounded ``Box`` action space.

    Raises:
      ValueError: naming the space if it is not a ``Box`` or has an infinite bound.
    """
    if not isinstance(space, gymnasium.spaces.Box):
        raise ValueError(
            f"action_space={space!r} is not supported: DDPG needs a bounded Box action space (continuous, with "
            "finite low and high; its deterministic policy is learned through dQ/da)"
        )
    if not np.issubdtype(space.dtype, np.floating):
        raise ValueError(
            f"action_space={space!r} has integer dtype {space.dtype}: DDPG needs a bounded Box action space of a "
            "floating dtype (its actions are continuous)"
        )
    low = np.asarray(space.low, dtype=np.float64).reshape(-1)
    high = np.asarray(space.high, dtype=np.float64).reshape(-1)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(
            f"action_space={space!r} is unbounded (low={space.low}, high={space.high}): DDPG needs a bounded Box "
            "with finite low and high, to scale the policy's tanh output and clip exploration noise"
        )
    if low.size == 0:
        raise ValueError(f"action_space={space!r} has no components (size 0): DDPG needs at least one action")
    if np.any(low >= high):
        raise ValueError(f"action_space={space!r} has low >= high somewhere (low={space.low}, high={space.high})")
    return ActionLayout(
        shape=tuple(int(d) for d in space.shape),
        low=tuple(float(v) for v in low),
        high=tuple(float(v) for v in high),
    )


def flatten(layout: InputLayout, inputs: Any, name: str = "observations") -> jax.Array:
    """Flattens a batch of observations to float32 ``[*batch, layout.size]``.

    ``inputs`` is an array (for a ``Dict`` space, an already flat ``[*batch, size]`` array is also accepted) or a
    nested mapping of arrays for a ``Dict`` space. The batch dimensions are whatever leads the space's shape.

    Raises:
      ValueError: naming the field and the shapes when the structure or trailing shape does not match the space.
    """
    return flatten_with_batch_shape(layout, inputs, name)[0]


def flatten_with_batch_shape(
    layout: InputLayout, inputs: Any, name: str = "observations"
) -> tuple[jax.Array, tuple[int, ...]]:
    """Like :func:`flatten`, also returning the batch dimensions of ``inputs``."""
    import jax.numpy as jnp  # here only: the layouts above serve ddpgx_torch too, without JAX

    if isinstance(inputs, dict):
        if layout.keys is None:
            raise ValueError(f"{name} is a dict but the space is a Box of shape {layout.shapes[0]}")
        parts = []
        batch = None
        for path, shape in zip(layout.keys, layout.shapes, strict=True):
            leaf = jnp.asarray(get_path(inputs, path, name, layout.keys))
            lead = _lead_shape(leaf.shape, shape, f"{name}[{'/'.join(path)!r}]")
            if batch is not None and lead != batch:
                raise ValueError(f"{name} entries disagree on batch shape: {batch} vs {lead} at {'/'.join(path)!r}")
            batch = lead
            parts.append(leaf.reshape(lead + (-1,)).astype(jnp.float32))
        return jnp.concatenate(parts, axis=-1), batch
    array = jnp.asarray(inputs)
    # A Box space, or a Dict space given as an already flattened array.
    trailing = layout.shapes[0] if layout.keys is None else (layout.size,)
    lead = _lead_shape(array.shape, trailing, name)
    return array.reshape(lead + (layout.size,)).astype(jnp.float32), lead


def batch_shape(layout: InputLayout, inputs: Any, name: str = "observations") -> tuple[int, ...]:
    """The batch dimensions of ``inputs``, validated as :func:`flatten` does, from shapes alone (no device work)."""
    if isinstance(inputs, dict):
        if layout.keys is None:
            raise ValueError(f"{name} is a dict but the space is a Box of shape {layout.shapes[0]}")
        batch = None
        for path, shape in zip(layout.keys, layout.shapes, strict=True):
            lead = _lead_shape(np.shape(get_path(inputs, path, name, layout.keys)), shape,
                               f"{name}[{'/'.join(path)!r}]")
            if batch is not None and lead != batch:
                raise ValueError(f"{name} entries disagree on batch shape: {batch} vs {lead} at {'/'.join(path)!r}")
            batch = lead
        return batch
    trailing = layout.shapes[0] if layout.keys is None else (layout.size,)
    return _lead_shape(np.shape(inputs), trailing, name)


def get_path(tree: Any, path: tuple[str, ...], name: str = "observations", keys: Any = None) -> Any:
    """The entry of a nested mapping at ``path``, with an error naming what is missing."""
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            known = f"; the Dict space has keys {keys}" if keys else ""
            raise ValueError(f"{name} has no entry {'/'.join(path)!r}{known}")
        tree = tree[key]
    return tree


def _lead_shape(shape: tuple[int, ...], trailing: tuple[int, ...], name: str) -> tuple[int, ...]:
    n = len(trailing)
    if len(shape) < n or tuple(shape[len(shape) - n :]) != tuple(trailing):
        raise ValueError(f"{name} has shape {tuple(shape)}, expected (*batch, {', '.join(map(str, trailing))})")
    return tuple(shape[: len(shape) - n])
