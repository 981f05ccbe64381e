"""skrl-style ``RunningStandardScaler`` for ``DDPG_CFG.observation_preprocessor`` / ``state_preprocessor``.

Given as the preprocessor class in the configuration, it switches on the core's running standard scaler
(:mod:`ddpgx_torch.scaler`) with its ``epsilon`` and ``clip_threshold``; the statistics live in the agent's train
state and are saved in its checkpoints under skrl's names. Used on its own it standardises tensors like skrl's.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import torch

from ddpgx_torch.core import scaler


class RunningStandardScaler:
    """``RunningStandardScaler(size, epsilon=1e-8, clip_threshold=5.0, device=None)``."""

    def __init__(self, size: Any = None, epsilon: float = 1e-8, clip_threshold: float = 5.0, device: Any = None):
        n = gymnasium.spaces.flatdim(size) if isinstance(size, gymnasium.Space) else int(size)
        self.epsilon, self.clip_threshold = float(epsilon), float(clip_threshold)
        self.state = scaler.init(n, device)

    def __call__(self, x: torch.Tensor, train: bool = False, inverse: bool = False) -> torch.Tensor:
        if train:
            self.state = scaler.update(self.state, x)
        if inverse:
            return x * (torch.sqrt(self.state.var) + self.epsilon) + self.state.mean
        return scaler.standardize(self.state, x, self.epsilon, self.clip_threshold)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"running_mean": self.state.mean, "running_variance": self.state.var, "current_count": self.state.count}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.state = scaler.ScalerState(state["running_mean"], state["running_variance"], state["current_count"])


__all__ = ["RunningStandardScaler"]
