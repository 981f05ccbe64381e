"""XLA:CPU options for ddpgx's update programs: each layer's matrix product, bias and ReLU in one YNNPACK kernel.

By default XLA:CPU gives YNNPACK each matrix product alone and adds the bias and applies the ReLU in a loop of its
own. With ``xla_cpu_experimental_ynn_fusion_type`` set to dot fusions and reductions (:data:`OPTIONS`), YNNPACK
takes the elementwise operations around a product into the same kernel. Measured on a 2-core Xeon with 400-300
networks (``docs/implementation-notes.md``), a DDPG step called back to back ran 4-10 % faster at minibatches of 100
and 128 rows with replay memories of 15,000-20,000 entries (skrl's Pendulum example's own models, ddpgx's networks on
Pendulum, Hopper and HalfCheetah) and about as fast with HalfCheetah's 300,000; 0-4 % faster in a loop with an
environment step between calls, and the one-program gymnax loop 5-6 % faster; at 192 rows and more 1-4 % slower. So
ddpgx compiles its updates with these options for minibatches of up to :data:`MAX_ROWS` rows, and as XLA compiles by
default above that. The results were bit for bit the same.

:func:`jit` is ``jax.jit`` for the update programs (``update``, ``update_from_replay``, ``add_and_update``,
``add_update_act`` and its packed form): it compiles a function both ways on demand and calls the one that suits the
minibatch. A jitted loop of your own gets the same with
``jax.jit(loop, compiler_options=ddpgx.core.xla_cpu.for_rows(config.batch_size))``.

The option is experimental in XLA; where the installed jaxlib does not accept it, or JAX's default backend is not the
CPU, :func:`for_rows` gives ``{}`` and programs compile as XLA compiles them.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax

try:  # whether no trace is open (JAX accepts compiler options only on a jit called outside any trace)
    from jax._src.core import trace_state_clean as _top_level
except ImportError:  # pragma: no cover - JAX moved it: every call compiles as XLA compiles by default
    def _top_level() -> bool:
        return False

__all__ = ["MAX_ROWS", "OPTIONS", "accepted", "applies", "for_rows", "jit"]

#: XLA:CPU's fusion of products with their elementwise neighbours, and of reductions, by YNNPACK.
OPTIONS: dict[str, str] = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}

#: The largest minibatch (rows per gradient step) compiled with :data:`OPTIONS`.
MAX_ROWS = 128


@functools.cache
def accepted() -> bool:
    """Whether JAX's default backend is the CPU and it compiles a program with :data:`OPTIONS` (checked once)."""
    if jax.default_backend() != "cpu":
        return False
    try:
        jax.jit(lambda x: x.sum(0), compiler_options=OPTIONS).lower(jax.numpy.ones((2, 2))).compile()
    except Exception:  # noqa: BLE001 - jaxlib raises several kinds for an unknown option or value
        return False
    return True


def applies(rows: int | None) -> bool:
    """Whether an update on minibatches of ``rows`` rows compiles with :data:`OPTIONS`: up to :data:`MAX_ROWS` rows,
    where :func:`accepted` (not for ``rows=None``, unknown)."""
    return rows is not None and rows <= MAX_ROWS and accepted()


def for_rows(rows: int | None) -> dict[str, str]:
    """The compiler options for an update on minibatches of ``rows`` rows: :data:`OPTIONS` where :func:`applies`,
    else ``{}``."""
    return dict(OPTIONS) if applies(rows) else {}


class _Jitted:
    """``fun`` under ``jax.jit(**jit_kwargs)``, compiled with or without :data:`OPTIONS` as :func:`applies` says for
    ``rows(*args, **kwargs)``; called inside another trace (a jit, scan or vmap of the caller's), the plain jit, whose
    program then compiles with the caller's options. ``lower`` lowers what a call would run; other attributes
    (``trace``, ``eval_shape``...) are the plain jit's."""

    def __init__(self, fun: Callable, rows: Callable[..., int | None], jit_kwargs: dict[str, Any]):
        functools.update_wrapper(self, fun)
        self._rows = rows
        self._plain = jax.jit(fun, **jit_kwargs)
        self._fused = jax.jit(fun, compiler_options=OPTIONS, **jit_kwargs)

    def variant(self, *args: Any, **kwargs: Any) -> Any:
        """The jitted function a call with these arguments runs."""
        return self._fused if _top_level() and applies(self._rows(*args, **kwargs)) else self._plain

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.variant(*args, **kwargs)(*args, **kwargs)

    def lower(self, *args: Any, **kwargs: Any) -> Any:
        """``jax.jit(...).lower`` of the variant a call with these arguments runs (its ``compile()`` applies the
        options)."""
        return self.variant(*args, **kwargs).lower(*args, **kwargs)

    def _cache_size(self) -> int:
        """The programs both variants hold (``jax.jit``'s own private counter, read by tests of recompilation)."""
        return self._plain._cache_size() + self._fused._cache_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._plain, name)


def jit(rows: Callable[..., int | None], **jit_kwargs: Any) -> Callable[[Callable], _Jitted]:
    """A decorator: ``jax.jit(fun, **jit_kwargs)``, with :data:`OPTIONS` for calls whose minibatch, ``rows(*args,
    **kwargs)``, has at most :data:`MAX_ROWS` rows (see the module docstring)."""
    return lambda fun: _Jitted(fun, rows, jit_kwargs)
