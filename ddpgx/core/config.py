"""The static configuration of the functional core.

``DDPGConfig`` is frozen and hashable: it is part of the train state's static structure, so jitted functions
specialise on it once. It holds what shapes the computation (batch size, number of gradient steps, which
preprocessors exist, clipping on or off) and the *initial* values of the numbers one may sweep or schedule
(``discount_factor``, ``polyak``, learning rates, noise parameters): :func:`ddpgx.init` copies those into the train
state as array leaves, so ``jax.vmap`` over them needs no recompilation.

One word per quantity (STYLE.md, 12): ``polyak`` is skrl's tau, the weight of the *online* parameters in the
target update ``theta' <- polyak * theta + (1 - polyak) * theta'`` (0.005 by default), not rejax's 0.99.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Union

import jax

from ddpgx.core import noise as noise_lib
from ddpgx.core.validation import check_config

Schedule = Callable[[jax.Array], jax.Array]
LearningRate = Union[float, Schedule]


@dataclasses.dataclass(frozen=True)
class DDPGConfig:
    """Hyperparameters of DDPG's pure functions; defaults follow skrl's ``DDPG_CFG``.

    Attributes:
      batch_size: transitions per gradient step (sampled by :func:`ddpgx.update_from_replay`).
      gradient_steps: gradient steps per update call, run as one ``lax.scan``.
      discount_factor: gamma, in [0, 1].
      polyak: target-network step ``theta' <- polyak * theta + (1 - polyak) * theta'``, in [0, 1].
      learning_rate: Adam step size for both networks, or a ``(policy, critic)`` pair; each a positive float or an
        optax schedule ``step -> learning rate``.
      grad_norm_clip: clip each network's gradient to this global norm; ``<= 0`` disables clipping.
      random_timesteps: timesteps at the start of training whose actions are uniform in the action bounds.
      exploration_noise: ``GaussianNoise``, ``OrnsteinUhlenbeckNoise``, any ``distrax.Distribution``, or None.
      exploration_scheduler: ``(timestep, timesteps) -> scale`` multiplying the noise; it is traced inside ``act``,
        so write it with ``jax.numpy`` (e.g. ``lambda t, T: jnp.maximum(0.0, 1.0 - t / T)``).
      observation_preprocessor: standardise observations with running statistics.
      state_preprocessor: standardise states (the critic's privileged input) with running statistics.
      preprocessor_epsilon: added to the standard deviation when standardising.
      preprocessor_clip: standardised values are clipped to ``[-clip, clip]``.
      skip_nonfinite_updates: drop a gradient step whose critic or policy loss or gradient is NaN or infinite, or
        whose gradients' sum of squares overflows: a bad critic step drops the whole step (parameters, targets,
        optimizer states and scaler statistics stay as they were); a bad policy step after a good critic step
        drops the policy's step and the Polyak update, and the critic's step stays (as in ``ddpgx_torch``). The
        ``skipped_updates`` metric counts either. With the default optimizers nothing non-finite is then written;
        a custom optimizer that turns finite gradients into NaN is not caught.
    """

    batch_size: int = 64
    gradient_steps: int = 1
    discount_factor: float = 0.99
    polyak: float = 0.005
    learning_rate: Union[LearningRate, tuple[LearningRate, LearningRate]] = 1e-3
    grad_norm_clip: float = 0.0
    random_timesteps: int = 0
    exploration_noise: Optional[Any] = None
    exploration_scheduler: Optional[Callable[[Any, Any], Any]] = None
    observation_preprocessor: bool = False
    state_preprocessor: bool = False
    preprocessor_epsilon: float = 1e-8
    preprocessor_clip: float = 5.0
    skip_nonfinite_updates: bool = True

    def __post_init__(self):
        object.__setattr__(self, "learning_rate", check_config(self, noise_lib.validate, schedules=True))

    @property
    def learning_rates(self) -> tuple[LearningRate, LearningRate]:
        """``(policy, critic)`` learning rates."""
        if isinstance(self.learning_rate, (tuple, list)):
            return tuple(self.learning_rate)
        return (self.learning_rate, self.learning_rate)

    def replace(self, **changes) -> "DDPGConfig":
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)
