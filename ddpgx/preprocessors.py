"""skrl-style name for the running standard scaler: ``ddpgx.preprocessors.RunningStandardScaler``.

In ddpgx the scaler is a pure function of statistics kept in the train state (:mod:`ddpgx.scaler`) and updated
inside the jitted update. ``RunningStandardScaler`` is what a skrl configuration names
(``cfg.observation_preprocessor = RunningStandardScaler``, ``cfg.observation_preprocessor_kwargs = {"size": ...,
"device": ...}``): the facade constructs it from those keyword arguments and reads its ``epsilon`` and
``clip_threshold``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["RunningStandardScaler"]


class RunningStandardScaler:
    """Standardises inputs with running mean and variance: ``clip((x - mean) / (std + epsilon), -clip, clip)``.

    Args:
      size: the input space or size (checked against the agent's space by the facade; optional).
      epsilon: added to the standard deviation.
      clip_threshold: bound of the standardised values.
      validate: accepted for skrl compatibility (inputs are always validated).
      device: accepted for skrl compatibility (statistics live on the agent's device).
    """

    def __init__(self, size: Any = None, epsilon: float = 1e-8, clip_threshold: float = 5.0, validate: bool = True,
                 device: Any = None) -> None:
        for name, value in (("epsilon", epsilon), ("clip_threshold", clip_threshold)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
                raise ValueError(f"RunningStandardScaler {name}={value!r} is invalid: expected a positive number")
        self.size = size
        self.epsilon = float(epsilon)
        self.clip_threshold = float(clip_threshold)

    def __repr__(self) -> str:
        return f"RunningStandardScaler(epsilon={self.epsilon}, clip_threshold={self.clip_threshold})"
