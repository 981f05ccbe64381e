"""skrl's ``config`` and ``logger`` for ddpgx: ``from ddpgx import config, logger`` as skrl's scripts import them.

``config.jax`` holds what skrl 2.x keeps there (see ``skrl/__init__.py``):

- ``device``: the default device of the agent and models (those given ``device=None``); a ``jax.Device`` or a
  string such as ``"cpu"`` or ``"cuda:0"``; unset, JAX's default device. :meth:`JaxConfig.parse_device` turns any
  such value into a ``jax.Device``.
- ``key``: the PRNG key that models and agents given no key or seed derive theirs from; setting an integer seeds it
  (:func:`ddpgx.models.set_seed` does the same), and a key (``jax.random.key`` or a legacy ``uint32[2]`` key) is
  taken as it is.
- ``rank``, ``world_size``, ``is_distributed``, ``coordinator_address`` (read-only): this process's place in a
  multi-process job, from the variables that :mod:`ddpgx.cli.launch` sets (``DDPGX_PROCESS_ID``,
  ``DDPGX_NUM_PROCESSES``, ``DDPGX_COORDINATOR_ADDRESS``; see :func:`ddpgx.core.sharding.initialize`).
- ``backend``: skrl 1.x's choice between ``"jax"`` and ``"numpy"`` arrays. ddpgx always computes with JAX, so
  ``"numpy"`` is accepted and changes nothing (the logger says so once); any other value raises.

``logger`` is the ``logging.Logger`` named ``"ddpgx"``, printing ``[ddpgx:LEVEL] message`` as skrl's does.
``config.torch`` is the PyTorch backend's: ``from ddpgx_torch import config``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import jax

__all__ = ["Config", "JaxConfig", "config", "logger", "make_logger"]


def make_logger(name: str) -> logging.Logger:
    """The logger ``name`` with skrl's format (``[name:LEVEL] message``) on standard error, level DEBUG as skrl's."""
    logger = logging.getLogger(name)
    if not any(getattr(handler, "_ddpgx", False) for handler in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(name)s:%(levelname)s] %(message)s"))
        handler._ddpgx = True
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    return logger


logger = make_logger("ddpgx")

BACKENDS = ("jax", "numpy")


class JaxConfig:
    """``config.jax``: the default device and PRNG key, and the process's place in a multi-process job."""

    def __init__(self) -> None:
        self._device: Any = None
        self._seed = 0
        self._key: jax.Array | None = None  # a key set as such; None: jax.random.key(self._seed)
        self._backend = "jax"
        self._told_backend = False

    # -- backend ---------------------------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """``"jax"`` or ``"numpy"`` (skrl 1.x); ddpgx computes with JAX either way."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in BACKENDS:
            raise ValueError(f"config.jax.backend={value!r} is invalid: expected one of {BACKENDS}")
        self._backend = value
        if value != "jax" and not self._told_backend:
            self._told_backend = True
            logger.info(f"config.jax.backend = {value!r} changes nothing: ddpgx always computes with JAX arrays")

    # -- device ----------------------------------------------------------------------------------------------------
    @staticmethod
    def parse_device(device: Any) -> jax.Device:
        """A ``jax.Device`` from a device, a string (``"cpu"``, ``"gpu:1"``, ``"cuda:0"``) or None (the default
        device, ``config.jax.device``).

        Raises:
          ValueError: for a device that is not available here or a value of another kind, naming it.
        """
        import jax  # here and below: imported on first use, so that ddpgx_torch's settings do not load JAX

        if device is None:
            return config.jax.device
        if isinstance(device, jax.Device):
            return device
        if isinstance(device, str):
            platform, _, index = device.partition(":")
            platform = {"cuda": "gpu"}.get(platform, platform)
            try:
                found = jax.devices(platform)
                return found[int(index) if index else 0]
            except (RuntimeError, IndexError, ValueError) as error:
                raise ValueError(f"device={device!r} is not available here ({error}); devices: {jax.devices()}") \
                    from error
        raise ValueError(f"device={device!r} is invalid: expected None, a jax.Device or a string such as 'cpu'")

    @property
    def device(self) -> jax.Device:
        """The default device: the one set, else JAX's default device."""
        import jax

        return jax.devices()[0] if self._device is None else self.parse_device(self._device)

    @device.setter
    def device(self, device: Any) -> None:
        if device is not None:
            self.parse_device(device)  # refuses a bad value now, not at the first use
        self._device = device

    # -- key -------------------------------------------------------------------------------------------------------
    @property
    def key(self) -> jax.Array:
        """The PRNG key that models and agents derive theirs from (``jax.random.key(seed)`` after a seed)."""
        import jax

        return jax.random.key(self._seed) if self._key is None else self._key

    @key.setter
    def key(self, value: Any) -> None:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"config.jax.key={value!r} is invalid: expected a seed >= 0 or a JAX PRNG key")
            self._seed, self._key = int(value), None
            return
        import jax

        if isinstance(value, (jax.Array, np.ndarray)):
            if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key) and value.shape == ():
                self._key = value
                return
            if value.dtype == np.uint32 and value.shape == (2,):  # a legacy jax.random.PRNGKey, as skrl keeps
                self._key = jax.random.wrap_key_data(jax.numpy.asarray(value))
                return
        raise ValueError(f"config.jax.key={value!r} is invalid: expected a seed >= 0, a jax.random.key(...) or a "
                         "uint32[2] jax.random.PRNGKey(...)")

    def derive_key(self, salt: int) -> jax.Array:
        """``fold_in(key, salt)``: the key of one use (a model's initialisation, an agent's randomness)."""
        import jax

        return jax.random.fold_in(self.key, salt)

    # -- multi-process jobs (read-only) ------------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        """This process's index in the job (``DDPGX_PROCESS_ID``; 0 without one)."""
        from ddpgx.core import sharding

        return sharding._env_int("DDPGX_PROCESS_ID") or 0

    @property
    def world_size(self) -> int:
        """Processes in the job (``DDPGX_NUM_PROCESSES``; 1 without one)."""
        from ddpgx.core import sharding

        return sharding._env_int("DDPGX_NUM_PROCESSES") or 1

    @property
    def is_distributed(self) -> bool:
        """Whether this process is one of several (``world_size > 1``)."""
        return self.world_size > 1

    @property
    def coordinator_address(self) -> str | None:
        """Process 0's ``host:port`` (``DDPGX_COORDINATOR_ADDRESS``), or None."""
        return os.environ.get("DDPGX_COORDINATOR_ADDRESS")


class Config:
    """skrl's ``config``: per-framework settings, ``config.jax`` (and ``config.torch`` in :mod:`ddpgx_torch`)."""

    def __init__(self, jax_config: JaxConfig, torch_config: Any = None) -> None:
        self._jax, self._torch = jax_config, torch_config

    @property
    def jax(self) -> JaxConfig:
        return self._jax

    @property
    def torch(self) -> Any:
        if self._torch is None:
            raise AttributeError("config.torch is the PyTorch backend's: use `from ddpgx_torch import config`")
        return self._torch


config = Config(JaxConfig())
