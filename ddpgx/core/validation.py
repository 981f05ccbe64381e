"""Checks of user input shared by both backends: numbers in range, and arrays of numbers.

Framework-free (the standard library and NumPy; JAX only once a tree other than a NumPy array is checked), so that
``ddpgx_torch`` uses the same checks without importing JAX.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["check_numeric", "nonnegative_int", "positive_int", "real_in"]


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
