"""Exploration noise for DDPG, as pure functions.

DDPG's policy is deterministic, so it explores by adding noise to its actions (Lillicrap et al. 2015, Sec. 3:
``mu'(s) = mu(s) + N``). The paper used an Ornstein-Uhlenbeck process for temporally correlated exploration; a
plain Gaussian works as well in most tasks (Fujimoto et al. 2018). Any ``distrax`` distribution can be plugged in.

The noise *parameters* (``GaussianNoise``, ``OrnsteinUhlenbeckNoise`` or a distrax distribution) are pytrees that
live in the train state, so they can be swept with ``jax.vmap``; the OU process value is a separate
``[num_envs, action_size]`` array in the train state, reset to zero where an episode starts.

Departures from skrl, on purpose (see DESIGN.md, "Noted hazards"): the Gaussian noise uses ``std`` as given (skrl's
JAX version doubles it), the OU process decays as ``(1 - theta) * x`` in both backends (skrl's JAX version uses
``theta * x``), and the OU state is reset at episode ends (skrl never resets it).
"""

from __future__ import annotations

import numbers
import sys
from typing import TYPE_CHECKING, Any, Union

import jax
import jax.numpy as jnp
from flax import struct

if TYPE_CHECKING:  # distrax (and the TFP it loads, about a second) is imported by those who use it, not here
    import distrax


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    # Only Python numbers are validated: inside jit/vmap these fields hold tracers.
    if isinstance(value, numbers.Number) and not ok:
        raise ValueError(f"{name}={value!r} is invalid: expected {expected}")


@struct.dataclass
class GaussianNoise:
    """Independent Gaussian noise ``N(mean, std^2)`` on every action component."""

    mean: float = 0.0  # [] float
    std: float = 0.1  # [] float, >= 0

    def __post_init__(self):
        _check("GaussianNoise.std", self.std, self.std >= 0 if _num(self.std) else True, "std >= 0")


@struct.dataclass
class OrnsteinUhlenbeckNoise:
    """Discretised Ornstein-Uhlenbeck process (dt = 1, long-run mean 0).

    ``x_{t+1} = (1 - theta) * x_t + sigma * eps_t`` with ``eps_t ~ N(mean, std^2)``; the applied noise is
    ``base_scale * x_{t+1}``. With ``mean = 0`` and ``0 < theta < 2`` the stationary variance is
    ``sigma^2 std^2 / (theta (2 - theta))`` and the lag-k autocorrelation ``(1 - theta)^k``.
    """

    theta: float = 0.15  # [] float, mean-reversion rate in (0, 1]
    sigma: float = 0.2  # [] float, >= 0
    base_scale: float = 1.0  # [] float, >= 0
    mean: float = 0.0  # [] float, mean of the driving Gaussian
    std: float = 1.0  # [] float, std of the driving Gaussian

    def __post_init__(self):
        _check("OrnsteinUhlenbeckNoise.theta", self.theta, 0 < self.theta <= 1 if _num(self.theta) else True,
               "0 < theta <= 1")
        _check("OrnsteinUhlenbeckNoise.sigma", self.sigma, self.sigma >= 0 if _num(self.sigma) else True,
               "sigma >= 0")
        _check("OrnsteinUhlenbeckNoise.base_scale", self.base_scale,
               self.base_scale >= 0 if _num(self.base_scale) else True, "base_scale >= 0")
        _check("OrnsteinUhlenbeckNoise.std", self.std, self.std >= 0 if _num(self.std) else True, "std >= 0")


def _num(value: Any) -> bool:
    return isinstance(value, numbers.Number)


Noise = Union[GaussianNoise, OrnsteinUhlenbeckNoise, "distrax.Distribution"]


def is_distrax(noise: Any) -> bool:
    """Whether ``noise`` is a distrax distribution (without importing distrax: whoever made one has imported it)."""
    distrax = sys.modules.get("distrax")
    return distrax is not None and isinstance(noise, distrax.Distribution)


def is_supported(noise: Any) -> bool:
    """Whether :func:`sample` draws from ``noise``: Gaussian, Ornstein-Uhlenbeck or a distrax distribution."""
    return isinstance(noise, (GaussianNoise, OrnsteinUhlenbeckNoise)) or is_distrax(noise)


def validate(noise: Any) -> None:
    """Raises a ValueError unless ``noise`` is None or a supported noise (or any distrax distribution)."""
    if noise is None or is_supported(noise):
        return
    raise ValueError(
        f"exploration_noise={noise!r} is not supported: expected ddpgx.noise.GaussianNoise, "
        "ddpgx.noise.OrnsteinUhlenbeckNoise, a distrax.Distribution, or None"
    )


def init_state(num_envs: int, action_size: int) -> jax.Array:
    """The OU process value for each environment: zeros ``[num_envs, action_size]`` float32."""
    return jnp.zeros((num_envs, action_size), jnp.float32)


def reset(noise_state: jax.Array, episode_starts: jax.Array) -> jax.Array:
    """Zeros the process of each environment whose episode starts (``episode_starts``: bool ``[num_envs]``)."""
    return jnp.where(jnp.reshape(episode_starts, (-1, 1)), 0.0, noise_state)


def sample(noise: Noise, noise_state: jax.Array, key: jax.Array, shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """Draws noise of ``shape`` = ``[batch, action_size]``.

    Returns:
      ``(noise_values, new_noise_state)``; the state changes only for the OU process.

    Raises:
      ValueError: for an OU process whose state was made for another number of environments.
    """
    if isinstance(noise, GaussianNoise):
        return noise.mean + noise.std * jax.random.normal(key, shape, jnp.float32), noise_state
    if isinstance(noise, OrnsteinUhlenbeckNoise):
        if noise_state.shape != tuple(shape):
            raise ValueError(
                f"the Ornstein-Uhlenbeck state has shape {noise_state.shape} but actions have shape {tuple(shape)}: "
                "pass num_envs equal to the observation batch to ddpgx.init"
            )
        eps = noise.mean + noise.std * jax.random.normal(key, shape, jnp.float32)
        x = (1.0 - noise.theta) * noise_state + noise.sigma * eps
        return noise.base_scale * x, x
    # A distrax distribution: its batch and event dimensions fill the trailing action dimensions, and one draw is
    # made per leading index (a scalar distribution fills the whole action array).
    dist_ndim = len(noise.batch_shape) + len(noise.event_shape)
    values = noise.sample(seed=key, sample_shape=tuple(shape)[: len(shape) - dist_ndim])
    return jnp.broadcast_to(jnp.asarray(values, jnp.float32), shape), noise_state
