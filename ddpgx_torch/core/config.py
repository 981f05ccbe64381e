"""The configuration of the torch core: ``ddpgx.DDPGConfig``'s fields and meanings, plus ``mixed_precision``.

One word per quantity (STYLE.md, 12), as in ``ddpgx``: ``polyak`` is skrl's tau, the weight of the *online*
parameters in ``theta' <- polyak * theta + (1 - polyak) * theta'`` (0.005 by default).

``mixed_precision``: ``False`` (float32), ``True`` (bf16 on CPU, fp16 on CUDA: torch.autocast's defaults),
``"bf16"`` or ``"fp16"``. Parameters, optimizer states, losses and targets stay float32; matmuls run in the lower
precision under ``torch.autocast``. With fp16 a ``torch.amp.GradScaler`` scales the losses (bf16 has float32's
exponent range and needs no scaling, so the scaler is disabled there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from ddpgx.core.validation import check_config  # one set of checks, both backends
from ddpgx_torch.core import noise as noise_lib

MIXED_PRECISION = (False, True, "bf16", "fp16")


@dataclasses.dataclass(frozen=True)
class DDPGConfig:
    """Hyperparameters of the torch core; defaults follow skrl's ``DDPG_CFG`` (see ``ddpgx.DDPGConfig``).

    Attributes:
      batch_size: transitions (sequences, for a recurrent policy) per gradient step.
      gradient_steps: gradient steps per update call.
      discount_factor: gamma, in [0, 1].
      polyak: target-network step, in [0, 1].
      learning_rate: Adam step size for both networks, or a ``(policy, critic)`` pair.
      grad_norm_clip: clip each network's gradient to this global norm; ``<= 0`` disables clipping.
      random_timesteps: timesteps at the start of training whose actions are uniform in the action bounds.
      exploration_noise: ``GaussianNoise``, ``OrnsteinUhlenbeckNoise``, a ``torch.distributions.Distribution``, or
        None.
      exploration_scheduler: ``(timestep, timesteps) -> scale`` multiplying the noise.
      observation_preprocessor / state_preprocessor: standardise with running statistics.
      preprocessor_epsilon / preprocessor_clip: ``clip((x - mean) / (std + eps), -clip, clip)``.
      mixed_precision: ``False``, ``True``, ``"bf16"`` or ``"fp16"`` (see the module docstring).
      skip_nonfinite_updates: drop a gradient step whose critic or policy loss or gradient is NaN or infinite
        (the ``skipped_updates`` metric counts it), by the same rule as ``ddpgx.DDPGConfig``'s.
    """

    batch_size: int = 64
    gradient_steps: int = 1
    discount_factor: float = 0.99
    polyak: float = 0.005
    learning_rate: float | tuple[float, float] = 1e-3
    grad_norm_clip: float = 0.0
    random_timesteps: int = 0
    exploration_noise: Any | None = None
    exploration_scheduler: Callable[[Any, Any], Any] | None = None
    observation_preprocessor: bool = False
    state_preprocessor: bool = False
    preprocessor_epsilon: float = 1e-8
    preprocessor_clip: float = 5.0
    mixed_precision: bool | str = False
    skip_nonfinite_updates: bool = True

    def __post_init__(self):
        object.__setattr__(self, "learning_rate", check_config(self, noise_lib.validate, schedules=False))
        if not any(self.mixed_precision is m or (isinstance(m, str) and self.mixed_precision == m)
                   for m in MIXED_PRECISION):
            raise ValueError(
                f"mixed_precision={self.mixed_precision!r} is invalid: expected False, True, 'bf16' or 'fp16'"
            )

    @property
    def learning_rates(self) -> tuple[float, float]:
        """``(policy, critic)`` learning rates."""
        if isinstance(self.learning_rate, tuple):
            return self.learning_rate
        return (self.learning_rate, self.learning_rate)

    def autocast_dtype(self, device_type: str) -> torch.dtype | None:
        """The autocast dtype on a device type (``"cpu"``, ``"cuda"``), or None for float32."""
        if self.mixed_precision is False:
            return None
        if self.mixed_precision == "fp16":
            return torch.float16
        if self.mixed_precision == "bf16":
            return torch.bfloat16
        return torch.float16 if device_type == "cuda" else torch.bfloat16

    def replace(self, **changes) -> DDPGConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

