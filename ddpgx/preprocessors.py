"""skrl-style running standard scaler: ``ddpgx.preprocessors.RunningStandardScaler``.

In the agent the scaler is a pure function of statistics kept in the train state (:mod:`ddpgx.scaler`) and updated
inside the jitted update. ``RunningStandardScaler`` is what a skrl configuration names
(``cfg.observation_preprocessor = RunningStandardScaler``, ``cfg.observation_preprocessor_kwargs = {"size": ...,
"device": ...}``): the agent constructs it from those keyword arguments and reads its ``epsilon`` and
``clip_threshold``. On its own it works as skrl's does: ``scaler(x, train=True)`` merges ``x`` into the running
statistics and standardises it, ``scaler(x, inverse=True)`` maps standardised values back, and ``state_dict``
holds ``running_mean``, ``running_variance`` and ``current_count``. The statistics are :mod:`ddpgx.scaler`'s
(exact streaming moments, count starting at 0, where skrl starts from one phantom sample).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ddpgx.core import scaler
from ddpgx.models import StateDict, _space_size

__all__ = ["RunningStandardScaler"]


class RunningStandardScaler:
    """Standardises inputs with running mean and variance: ``clip((x - mean) / (std + epsilon), -clip, clip)``.

    Args:
      size: the input space or size (as in skrl); None: taken from the last axis of the first input.
      epsilon: added to the standard deviation.
      clip_threshold: bound of the standardised values.
      validate: accepted for skrl compatibility (inputs are always validated).
      device: accepted for skrl compatibility (the agent keeps its statistics on its own device).
    """

    def __init__(self, size: Any = None, epsilon: float = 1e-8, clip_threshold: float = 5.0, validate: bool = True,
                 device: Any = None) -> None:
        for name, value in (("epsilon", epsilon), ("clip_threshold", clip_threshold)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
                raise ValueError(f"RunningStandardScaler {name}={value!r} is invalid: expected a positive number")
        self.size = size
        self.epsilon = float(epsilon)
        self.clip_threshold = float(clip_threshold)
        self.device = device
        if size is None:
            n = 0
        elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            n = int(size)
        elif isinstance(size, (list, tuple)):
            n = int(np.prod(size))
        else:
            n = _space_size(size)
        self._stats: scaler.ScalerState | None = scaler.init(int(n)) if n else None

    def _require(self, x: jax.Array) -> scaler.ScalerState:
        if self._stats is None:
            self._stats = scaler.init(int(x.shape[-1]))
        if x.shape[-1] != self._stats.mean.shape[0]:
            raise ValueError(f"RunningStandardScaler of size {self._stats.mean.shape[0]} got an input of shape "
                             f"{x.shape}")
        return self._stats

    def __call__(self, x: Any, *, train: bool = False, inverse: bool = False) -> jax.Array | None:
        """Standardises ``x`` ``[..., size]`` (after merging it into the statistics with ``train``), or with
        ``inverse`` maps standardised values back: ``sqrt(var) * clip(x, -clip, clip) + mean``. None gives None."""
        if x is None:
            return None
        x = jnp.asarray(x, jnp.float32)
        stats = self._require(x)
        if train:
            stats = self._stats = scaler.update(stats, x)
        if inverse:
            return jnp.sqrt(stats.var) * jnp.clip(x, -self.clip_threshold, self.clip_threshold) + stats.mean
        return scaler.standardize(stats, x, self.epsilon, self.clip_threshold)

    @property
    def state_dict(self) -> StateDict:
        """skrl's keys: ``state_dict.params = {"running_mean", "running_variance", "current_count"}``."""
        if self._stats is None:
            raise ValueError("the scaler has no statistics yet: give it a size, or call it on data first")
        params = {"running_mean": self._stats.mean, "running_variance": self._stats.var,
                  "current_count": jnp.reshape(self._stats.count, (1,))}
        return StateDict(apply_fn=self.__call__, params=params)

    @state_dict.setter
    def state_dict(self, value: Any) -> None:
        params = getattr(value, "params", value)
        try:
            mean, var, count = (jnp.asarray(params[k], jnp.float32)
                                for k in ("running_mean", "running_variance", "current_count"))
        except (KeyError, TypeError) as error:
            raise ValueError("a RunningStandardScaler state dict needs running_mean, running_variance and "
                             f"current_count; got {params!r}") from error
        if mean.ndim != 1 or var.shape != mean.shape or count.size != 1:
            raise ValueError(f"inconsistent scaler state: mean {mean.shape}, variance {var.shape}, count "
                             f"{count.shape}")
        self._stats = scaler.ScalerState(mean, var, count.reshape(()))

    def __repr__(self) -> str:
        return f"RunningStandardScaler(epsilon={self.epsilon}, clip_threshold={self.clip_threshold})"
