"""Threefry's unrolled lowering on CPU, for ddpgx's own programs: the same random bits in fewer XLA:CPU kernels.

JAX lowers the threefry hash behind ``jax.random`` to a five-iteration loop on CPU (so that programs with many random
draws compile faster; other platforms get the unrolled form). XLA:CPU runs each iteration's operations as separate
kernels: a DDPG step, which hashes for its minibatch indices, its exploration noise and its key splits, spends about
0.1 ms of 2-3 ms (at batch 100, on a 2-core Xeon) in those loops. The unrolled form, JAX's own lowering for GPUs,
computes the same bits in one fused kernel.

:func:`unrolled` selects that lowering while ddpgx's functions compile (``act``, ``add_and_update``,
``add_update_act`` and their packed form, the agent's update, the one-program loop) and restores JAX's choice on exit,
so programs that are not ddpgx's are lowered as JAX lowers them (one that another thread compiles at that moment may
be lowered unrolled too, drawing the same bits). A loop of your own that calls ``ddpgx.update`` or
``ddpgx.update_from_replay`` can compile under it too::

    with ddpgx.core.threefry.unrolled():
        train_state, metrics = my_jitted_loop(train_state, batches)  # compiled on this first call

Only the lowering changes: every bit drawn is what JAX's loop draws. The swap uses JAX internals
(``jax._src.interpreters.mlir``); where they differ from those of JAX 0.10, :func:`unrolled` does nothing
(:data:`AVAILABLE` is False) and programs compile as JAX compiles them.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

__all__ = ["AVAILABLE", "unrolled"]

try:
    from jax._src.interpreters import mlir as _mlir
    from jax._src.random import threefry2x32 as _threefry

    _PRIMITIVE = _threefry.threefry2x32_p
    _CPU_RULES = _mlir._platform_specific_lowerings["cpu"]
    _UNROLLED = _mlir.LoweringRuleEntry(_threefry._threefry2x32_lowering_rule, True)
    AVAILABLE = isinstance(_CPU_RULES.get(_PRIMITIVE), _mlir.LoweringRuleEntry)
except (ImportError, AttributeError, KeyError, TypeError):
    AVAILABLE = False

_lock = threading.Lock()
_depth = 0  # how many unrolled() contexts are open, in all threads
_saved = None  # JAX's CPU rule, put back when the last context closes


@contextlib.contextmanager
def unrolled() -> Iterator[None]:
    """Within the block, JAX programs lowered for CPU hash threefry unrolled (see the module docstring). Nests and may
    be entered from several threads; JAX's rule is restored when the last open block exits."""
    global _depth, _saved
    if not AVAILABLE:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = _CPU_RULES.get(_PRIMITIVE)
            _CPU_RULES[_PRIMITIVE] = _UNROLLED
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _CPU_RULES[_PRIMITIVE] = _saved
                _saved = None
