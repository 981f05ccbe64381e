"""skrl's seed rule shared by both backends' ``set_seed``: check the seed, or draw one.

Framework-free (the standard library and NumPy), so ``ddpgx_torch`` uses it without importing JAX.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

__all__ = ["resolve_seed"]


def resolve_seed(seed: Any, deterministic: Any) -> int:
    """The seed to use: ``seed`` checked, or for ``None`` one drawn below 2**31 from the operating system, as skrl.

    Raises:
      ValueError: if ``seed`` is not an integer in ``[0, 2**32)`` (NumPy's legacy seeding range) or None, or
        ``deterministic`` is not a bool.
    """
    if not isinstance(deterministic, bool):
        raise ValueError(f"deterministic={deterministic!r} is invalid: expected True or False")
    if seed is None:
        seed = int.from_bytes(os.urandom(4), sys.byteorder) % 2**31
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed={seed!r} is invalid: expected an integer in [0, 2**32) or None")
    return int(seed)
