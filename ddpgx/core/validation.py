"""Checks of user input shared by both backends: numbers in range, DDPGConfig's shared fields, arrays of numbers.

Framework-free (the standard library and NumPy; JAX only once a tree other than a NumPy array is checked), so that
``ddpgx_torch`` uses the same checks without importing JAX.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np

__all__ = ["check_config", "check_numeric", "nonnegative_int", "positive_int", "real_in"]


def positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid: expected an integer >= 1")


def nonnegative_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name}={value!r} is invalid: expected an integer >= 0")


def real_in(name: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name}={value!r} is invalid: expected a finite number in {bounds}")


def check_config(config: Any, validate_noise: Callable[[Any], None], *, schedules: bool) -> Any:
    """The checks of a ``DDPGConfig``'s shared fields, for both backends' configs (each adds its own): raises
    ``ValueError`` naming the first bad field and what it expects. ``schedules``: a learning rate may be a callable
    (an optax schedule, JAX only). Returns the learning rate to store: a ``(policy, critic)`` list as a tuple, so that
    the frozen config stays hashable; anything else as given."""
    positive_int("batch_size", config.batch_size)
    positive_int("gradient_steps", config.gradient_steps)
    real_in("discount_factor", config.discount_factor, 0.0, 1.0)
    real_in("polyak", config.polyak, 0.0, 1.0)
    learning_rate = config.learning_rate
    if isinstance(learning_rate, (tuple, list)):
        if len(learning_rate) != 2:
            raise ValueError(f"learning_rate={learning_rate!r} is invalid: expected a float or a (policy, critic) pair")
        learning_rate = tuple(learning_rate)
    pair = learning_rate if isinstance(learning_rate, tuple) else (learning_rate, learning_rate)
    for name, lr in zip(("policy learning_rate", "critic learning_rate"), pair, strict=True):
        if not (schedules and callable(lr)):
            real_in(name, lr, 0.0, math.inf, low_open=True)
    real_in("grad_norm_clip", config.grad_norm_clip, -math.inf, math.inf)
    nonnegative_int("random_timesteps", config.random_timesteps)
    validate_noise(config.exploration_noise)
    if config.exploration_scheduler is not None and not callable(config.exploration_scheduler):
        raise ValueError(
            f"exploration_scheduler={config.exploration_scheduler!r} is invalid: expected a callable or None"
        )
    for name in ("observation_preprocessor", "state_preprocessor", "skip_nonfinite_updates"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name}={getattr(config, name)!r} is invalid: expected True or False")
    real_in("preprocessor_epsilon", config.preprocessor_epsilon, 0.0, math.inf)
    real_in("preprocessor_clip", config.preprocessor_clip, 0.0, math.inf, low_open=True)
    return learning_rate


def check_numeric(tree: Any, name: str) -> None:
    """Raises ``ValueError`` naming ``name`` if a leaf of ``tree`` is not an array of numbers (or booleans)."""
    if isinstance(tree, np.ndarray) and tree.dtype.kind in "biuf":
        return  # the common case, checked without walking a tree (nor importing JAX)
    if isinstance(tree, dict) and all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in tree.values()):
        return  # Dict-space observations as NumPy arrays (a torch agent's among them): no JAX either
    import jax  # a tree of any pytree nodes, JAX arrays and PRNG keys among its leaves

    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            try:
                dtype = np.asarray(leaf).dtype
            except (TypeError, ValueError) as error:
                raise ValueError(f"{name}{jax.tree_util.keystr(path)} is not an array ({error})") from error
        if np.dtype(dtype).kind not in "biuf" and not jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            raise ValueError(f"{name}{jax.tree_util.keystr(path)} has dtype {dtype}: expected real numbers")
