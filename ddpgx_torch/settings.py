"""skrl's ``config`` and ``logger`` for ddpgx_torch: ``from ddpgx_torch import config, logger`` as in skrl's scripts.

``config.torch`` holds what skrl 2.x keeps there (see ``skrl/__init__.py``):

- ``device``: the default device of the agent, models and memories (those given ``device=None``); a
  ``torch.device`` or a string; unset, ``"cpu"`` (ddpgx_torch's default, where skrl would take ``cuda:LOCAL_RANK``
  when CUDA is available). :meth:`TorchConfig.parse_device` turns any such value into a ``torch.device``.
- ``key``: the seed last set by :func:`ddpgx_torch.models.set_seed` (skrl's ``set_seed`` records it there too);
  agents draw their generators' seeds from torch's global generator, which ``set_seed`` seeds.
- ``local_rank``, ``rank``, ``world_size``, ``is_distributed`` (read-only): this process's place in a ``torchrun``
  job, from ``LOCAL_RANK``, ``RANK`` and ``WORLD_SIZE`` (:func:`ddpgx_torch.core.distributed.launch_env`).

``config.jax`` is :mod:`ddpgx`'s (the same object as ``ddpgx.config.jax``). ``logger`` is the ``logging.Logger``
named ``"ddpgx_torch"``, printing ``[ddpgx_torch:LEVEL] message`` as skrl's does.

Denormal floats: importing ``ddpgx_torch`` sets the CPU to flush them to zero (:func:`flush_denormals`), as XLA's
CPU programs do, so the two backends compute alike. Adam's first moment of a parameter whose gradient is exactly zero
(a dead ReLU unit's) decays by 0.9 a step and spends its last ~150 steps before zero below 1.2e-38, where x86
arithmetic takes a slow path: with skrl's Pendulum example models, torch's fused Adam took 0.36 ms a call instead of
0.07 ms, and the whole training a fifth longer. The setting holds for the importing thread and the threads started
after it (torch's own worker threads start with its first parallel operation, so import ``ddpgx_torch`` before
running torch work, as skrl's scripts import their library at the top). ``DDPGX_TORCH_FLUSH_DENORMAL=0`` leaves the
CPU's setting alone.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ddpgx import settings as jax_settings
from ddpgx_torch.core import distributed

__all__ = ["TorchConfig", "config", "flush_denormals", "logger"]

logger = jax_settings.make_logger("ddpgx_torch")


def flush_denormals() -> bool:
    """Flushes denormal floats to zero on the CPU (see the module docstring) unless the environment variable
    ``DDPGX_TORCH_FLUSH_DENORMAL`` is ``0``; returns whether they are now flushed (False where the CPU cannot).

    Raises:
      ValueError: if ``DDPGX_TORCH_FLUSH_DENORMAL`` is set to anything but ``0`` or ``1``.
    """
    choice = os.environ.get("DDPGX_TORCH_FLUSH_DENORMAL", "1").strip() or "1"
    if choice not in ("0", "1"):
        raise ValueError(f"DDPGX_TORCH_FLUSH_DENORMAL={choice!r} is invalid: expected 1 (flush denormal floats to "
                         "zero, the default) or 0 (leave the CPU's setting alone)")
    return choice == "1" and torch.set_flush_denormal(True)


flush_denormals()


class TorchConfig:
    """``config.torch``: the default device, the last seed, and the process's place in a ``torchrun`` job."""

    def __init__(self) -> None:
        self._device: Any = None
        self._key = 0

    @staticmethod
    def parse_device(device: Any) -> torch.device:
        """A ``torch.device`` from a device, a string (``"cpu"``, ``"cuda:0"``) or None (``config.torch.device``).

        Raises:
          ValueError: for a string torch does not read as a device, or a value of another kind, naming it.
        """
        if device is None:
            return config.torch.device
        if isinstance(device, torch.device):
            return device
        if isinstance(device, str):
            try:
                return torch.device(device)
            except RuntimeError as error:
                raise ValueError(f"device={device!r} is invalid: {error}") from None
        raise ValueError(f"device={device!r} is invalid: expected None, a torch.device or a string such as 'cpu'")

    @property
    def device(self) -> torch.device:
        """The default device: the one set, else the CPU."""
        return torch.device("cpu") if self._device is None else self.parse_device(self._device)

    @device.setter
    def device(self, device: Any) -> None:
        if device is not None:
            self.parse_device(device)  # refuses a bad value now, not at the first use
        self._device = device

    @property
    def key(self) -> int:
        """The seed last set by :func:`ddpgx_torch.models.set_seed` (0 before any)."""
        return self._key

    @key.setter
    def key(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"config.torch.key={value!r} is invalid: expected a seed >= 0")
        self._key = value

    @property
    def local_rank(self) -> int:
        """This process's rank on its machine (``LOCAL_RANK``; 0 without one)."""
        return distributed.launch_env()[1]

    @property
    def rank(self) -> int:
        """This process's rank in the job (``RANK``; 0 without one)."""
        return distributed.launch_env()[0]

    @property
    def world_size(self) -> int:
        """Processes in the job (``WORLD_SIZE``; 1 without one)."""
        return distributed.launch_env()[2]

    @property
    def is_distributed(self) -> bool:
        """Whether this process is one of several (``world_size > 1``)."""
        return self.world_size > 1


config = jax_settings.Config(jax_settings.config.jax, TorchConfig())
