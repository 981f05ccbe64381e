"""Exploration noise for DDPG (torch), the twin of :mod:`ddpgx.noise`: same parameters, same formulas.

DDPG explores by adding noise to its deterministic actions (Lillicrap et al. 2015, Sec. 3: ``mu'(s) = mu(s) + N``):
an Ornstein-Uhlenbeck process for temporally correlated noise, or plain Gaussian noise (Fujimoto et al. 2018).
Any ``torch.distributions.Distribution`` can be plugged in, as any distrax distribution can in ``ddpgx``.

The noise *parameters* are small frozen dataclasses; the OU process value is a separate ``[num_envs, action_size]``
tensor held in the train state, reset to zero where an episode starts. Randomness comes from an explicit
``torch.Generator`` (never torch's global one).

Departures from skrl, on purpose and shared with ``ddpgx`` (DESIGN.md, "Noted hazards"): Gaussian noise uses
``std`` as given; the OU process decays as ``(1 - theta) * x``; the OU state is reset at episode ends.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Union

import torch


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)) or not ok:
        raise ValueError(f"{name}={value!r} is invalid: expected {expected}")


@dataclasses.dataclass(frozen=True)
class GaussianNoise:
    """Independent Gaussian noise ``N(mean, std^2)`` on every action component."""

    mean: float = 0.0
    std: float = 0.1  # >= 0

    def __post_init__(self):
        _check("GaussianNoise.mean", self.mean, True, "a finite number")
        _check("GaussianNoise.std", self.std, self.std >= 0, "std >= 0")


@dataclasses.dataclass(frozen=True)
class OrnsteinUhlenbeckNoise:
    """Discretised Ornstein-Uhlenbeck process (dt = 1, long-run mean 0).

    ``x_{t+1} = (1 - theta) * x_t + sigma * eps_t`` with ``eps_t ~ N(mean, std^2)``; the applied noise is
    ``base_scale * x_{t+1}``. With ``mean = 0`` and ``0 < theta < 2`` the stationary variance is
    ``sigma^2 std^2 / (theta (2 - theta))`` and the lag-k autocorrelation ``(1 - theta)^k``.
    """

    theta: float = 0.15  # mean-reversion rate in (0, 1]
    sigma: float = 0.2  # >= 0
    base_scale: float = 1.0  # >= 0
    mean: float = 0.0  # mean of the driving Gaussian
    std: float = 1.0  # std of the driving Gaussian, >= 0

    def __post_init__(self):
        _check("OrnsteinUhlenbeckNoise.theta", self.theta, 0 < self.theta <= 1, "0 < theta <= 1")
        _check("OrnsteinUhlenbeckNoise.sigma", self.sigma, self.sigma >= 0, "sigma >= 0")
        _check("OrnsteinUhlenbeckNoise.base_scale", self.base_scale, self.base_scale >= 0, "base_scale >= 0")
        _check("OrnsteinUhlenbeckNoise.mean", self.mean, True, "a finite number")
        _check("OrnsteinUhlenbeckNoise.std", self.std, self.std >= 0, "std >= 0")


Noise = Union[GaussianNoise, OrnsteinUhlenbeckNoise, torch.distributions.Distribution]


def validate(noise: Any) -> None:
    """Raises a ValueError unless ``noise`` is None or a supported noise (or any torch distribution)."""
    if noise is None or isinstance(noise, (GaussianNoise, OrnsteinUhlenbeckNoise, torch.distributions.Distribution)):
        return
    raise ValueError(
        f"exploration_noise={noise!r} is not supported: expected ddpgx_torch.noise.GaussianNoise, "
        "ddpgx_torch.noise.OrnsteinUhlenbeckNoise, a torch.distributions.Distribution, or None"
    )


def init_state(num_envs: int, action_size: int, device: Any = None) -> torch.Tensor:
    """The OU process value for each environment: zeros ``[num_envs, action_size]`` float32."""
    return torch.zeros((num_envs, action_size), dtype=torch.float32, device=device)


def reset(noise_state: torch.Tensor, episode_starts: torch.Tensor) -> torch.Tensor:
    """Zeros the process of each environment whose episode starts (``episode_starts``: bool ``[num_envs]``)."""
    return torch.where(episode_starts.reshape(-1, 1).to(torch.bool), 0.0, noise_state)


def sample(
    noise: Noise, noise_state: torch.Tensor, generator: torch.Generator | None, shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws noise of ``shape`` = ``[batch, action_size]``.

    Returns:
      ``(noise_values, new_noise_state)``; the state changes only for the OU process.

    Raises:
      ValueError: for an OU process whose state was made for another number of environments.
    """
    shape = tuple(shape)
    device = noise_state.device
    if isinstance(noise, GaussianNoise):
        eps = torch.randn(shape, generator=generator, dtype=torch.float32, device=device)
        return noise.mean + noise.std * eps, noise_state
    if isinstance(noise, OrnsteinUhlenbeckNoise):
        if tuple(noise_state.shape) != shape:
            raise ValueError(
                f"the Ornstein-Uhlenbeck state has shape {tuple(noise_state.shape)} but actions have shape {shape}: "
                "pass num_envs equal to the observation batch to ddpgx_torch.init"
            )
        eps = noise.mean + noise.std * torch.randn(shape, generator=generator, dtype=torch.float32, device=device)
        x = (1.0 - noise.theta) * noise_state + noise.sigma * eps
        return noise.base_scale * x, x
    # A torch distribution: its batch and event dimensions fill the trailing action dimensions. torch distributions
    # draw from the global generator; it is forked from ours so that a seeded train state stays reproducible.
    dist_ndim = len(noise.batch_shape) + len(noise.event_shape)
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device if generator else "cpu"))
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(seed)
        values = noise.sample(shape[: len(shape) - dist_ndim])
    return torch.broadcast_to(values.to(device=device, dtype=torch.float32), shape), noise_state
