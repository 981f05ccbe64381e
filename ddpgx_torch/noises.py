"""skrl-style noise constructors (``skrl.resources.noises.torch``): ``GaussianNoise(mean, std, device=None)`` and
``OrnsteinUhlenbeckNoise(theta, sigma, base_scale, mean=0, std=1, device=None)``.

They return the core's noise parameters (:mod:`ddpgx_torch.noise`), so a skrl script's
``cfg.exploration_noise = GaussianNoise`` with ``exploration_noise_kwargs = {"mean": 0, "std": 0.1}`` (or a noise
instance, skrl 1.x style) works unchanged; the formulas are ddpgx's (see :mod:`ddpgx_torch.noise`).
"""

from __future__ import annotations

from typing import Any

from ddpgx_torch.core import noise


class GaussianNoise:
    """``GaussianNoise(mean, std, device=None)`` -> :class:`ddpgx_torch.core.noise.GaussianNoise`."""

    def __new__(cls, mean: float = 0.0, std: float = 0.1, device: Any = None) -> noise.GaussianNoise:
        return noise.GaussianNoise(mean=mean, std=std)


class OrnsteinUhlenbeckNoise:
    """``OrnsteinUhlenbeckNoise(theta, sigma, base_scale, mean=0, std=1, device=None)`` ->
    :class:`ddpgx_torch.core.noise.OrnsteinUhlenbeckNoise`."""

    def __new__(cls, theta: float = 0.15, sigma: float = 0.2, base_scale: float = 1.0, mean: float = 0.0,
                std: float = 1.0, device: Any = None) -> noise.OrnsteinUhlenbeckNoise:
        return noise.OrnsteinUhlenbeckNoise(theta=theta, sigma=sigma, base_scale=base_scale, mean=mean, std=std)


__all__ = ["GaussianNoise", "OrnsteinUhlenbeckNoise"]
