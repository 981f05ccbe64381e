"""Environments of the command line: gymnasium ids (your own as ``package.module:Env-v0``), vectorised in the
same process (``sync``) or in worker processes (``async``), with make errors turned into one-line messages.

MuJoCo environments need the ``mujoco`` and ``imageio`` packages (``pip install "ddpgx[mujoco]"``); without them
gymnasium raises an import error from deep inside its MuJoCo module, which is reported here in one line.
"""

from __future__ import annotations

from typing import Any

import gymnasium

__all__ = ["make_env", "make_single"]

MUJOCO_HINT = 'MuJoCo environments need the mujoco and imageio packages: pip install "ddpgx[mujoco]"'


def _error(env_id: str, error: BaseException) -> ValueError:
    name = getattr(error, "name", None)
    if isinstance(error, ImportError) and name in ("imageio", "mujoco"):
        return ValueError(f"env_id={env_id!r} could not be made: {name!r} is missing ({MUJOCO_HINT})")
    if "mujoco" in repr(error).lower():
        return ValueError(f"env_id={env_id!r} could not be made: {error} ({MUJOCO_HINT})")
    return ValueError(f"env_id={env_id!r} could not be made by gymnasium: {error}")


def make_single(env_id: str, kwargs: dict | None = None, **extra: Any) -> gymnasium.Env:
    """``gymnasium.make(env_id, **kwargs)`` with one-line errors."""
    try:
        return gymnasium.make(env_id, **dict(kwargs or {}), **extra)
    except (gymnasium.error.Error, ImportError, TypeError, AttributeError) as error:
        raise _error(env_id, error) from error


def make_env(env_id: str, num_envs: int = 1, *, vector_mode: str = "sync", kwargs: dict | None = None) -> Any:
    """A :func:`ddpgx.envs.wrap_env`-wrapped gymnasium vector environment of ``num_envs`` copies, stepped in this
    process (``"sync"``) or one worker process each (``"async"``), resetting finished episodes in the same step."""
    from ddpgx.envs import wrap_env

    if vector_mode not in ("sync", "async"):
        raise ValueError(f"vector_mode={vector_mode!r} is invalid: expected 'sync' or 'async'")
    make_single(env_id, kwargs).close()  # the one-line errors of a bad id or missing packages, before any worker
    vector_kwargs = {"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP}
    if vector_mode == "async":  # workers started fresh: forking a process that runs JAX's threads can deadlock
        vector_kwargs["context"] = "spawn"
    try:
        env = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode=vector_mode,
                                 vector_kwargs=vector_kwargs, **dict(kwargs or {}))
    except (gymnasium.error.Error, ImportError, TypeError, AttributeError) as error:
        raise _error(env_id, error) from error
    return wrap_env(env)
