"""glibc's malloc told to keep freed memory, so that per-step jitted calls on the CPU stop faulting pages in.

XLA:CPU allocates each call's intermediate buffers afresh and frees them when the call ends. glibc serves an
allocation above its mmap threshold with a fresh ``mmap`` and gives freed memory above its trim threshold back to
the system, so the next call faults those pages in again. Both thresholds adapt to the process's allocation history,
so whether a training loop pays for this differs from process to process: in the benchmark of skrl's Pendulum
example (``benchmarks/skrl_examples_jax.py``: 400-300 networks, batch 100) the agent's step faulted 220 to 390 pages
(about 1 to 1.5 MiB) in some processes, 0.4 ms of system time a step on the 2-core VM of ``benchmarks/RESULTS.md``,
and almost none in others; with the thresholds held at glibc's defaults, 470 a step. Raised, none.

:func:`keep_freed_memory` raises both thresholds (``mallopt``); the JAX agent calls it when it is built on a CPU
device. It changes how the process's memory is reused, not what it computes: memory freed below the heap's peak
stays with the process, and blocks of 32 MiB or more (a replay buffer) are still mapped and unmapped directly. It
does nothing where the C library is not glibc, when the process already set glibc's malloc thresholds through the
environment (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``glibc.malloc`` tunables in
``GLIBC_TUNABLES``), or when ``DDPGX_KEEP_FREED_MEMORY=0``.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

# mallopt's parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 1024 * 1024 * 1024
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raises glibc's mmap and trim thresholds for this process, once; True when they are (now or before) raised
    by this function, False where it leaves malloc alone (see the module's docstring for when)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("DDPGX_KEEP_FREED_MEMORY", "1").strip() == "0" or _set_by_environment():
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done


def _set_by_environment() -> bool:
    return ("MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))
