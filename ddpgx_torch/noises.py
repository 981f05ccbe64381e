"""skrl-style noise classes (``skrl.resources.noises.torch``): ``GaussianNoise(mean, std, device=None)`` and
``OrnsteinUhlenbeckNoise(theta, sigma, base_scale, mean=0, std=1, device=None)``, with skrl's ``sample(size)`` and
``sample_like(tensor)``.

Each is also the core's noise parameters (a subclass of :class:`ddpgx_torch.core.noise.GaussianNoise` /
:class:`~ddpgx_torch.core.noise.OrnsteinUhlenbeckNoise`), so a skrl script's ``cfg.exploration_noise = GaussianNoise``
with ``exploration_noise_kwargs = {"mean": 0, "std": 0.1, "device": device}`` (or a noise instance, skrl 1.x style)
works unchanged: the agent draws its exploration noise in the core, from its own generator and with its OU state
per environment. ``sample`` is for a user's own code, as in skrl: it draws on ``device`` from torch's global
generator (so ``set_seed`` applies), and the OU process keeps its value between calls (reset to zeros when the
requested size changes, or by :meth:`OrnsteinUhlenbeckNoise.reset`). The formulas are ddpgx's (see
:mod:`ddpgx_torch.noise`): skrl's torch OU decays by ``1 - theta`` too; Gaussian noise is ``mean + std * N(0, 1)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from ddpgx_torch.core import noise


def _device(device: Any) -> torch.device:
    return torch.device(device if device is not None else "cpu")


def _same(a: Any, b: Any, base: type) -> bool:
    """Equal as the core's noise parameters (the device and sampling state do not count)."""
    return isinstance(b, base) and all(getattr(a, f.name) == getattr(b, f.name) for f in dataclasses.fields(base))


class GaussianNoise(noise.GaussianNoise):
    """``N(mean, std^2)`` noise on ``device``; also the core's :class:`ddpgx_torch.core.noise.GaussianNoise`."""

    def __init__(self, mean: float = 0.0, std: float = 0.1, device: Any = None) -> None:
        super().__init__(mean=mean, std=std)
        object.__setattr__(self, "device", _device(device))

    def __eq__(self, other: Any) -> bool:
        return _same(self, other, noise.GaussianNoise)

    __hash__ = noise.GaussianNoise.__hash__

    def sample(self, size: Sequence[int] | torch.Size) -> torch.Tensor:
        """Noise of shape ``size`` (float32, on ``device``)."""
        values, _ = noise.sample(self, torch.empty(0, device=self.device), None, tuple(size))
        return values

    def sample_like(self, tensor: torch.Tensor) -> torch.Tensor:
        """Noise of ``tensor``'s shape."""
        return self.sample(tensor.shape)


class OrnsteinUhlenbeckNoise(noise.OrnsteinUhlenbeckNoise):
    """Ornstein-Uhlenbeck noise on ``device``; also the core's
    :class:`ddpgx_torch.core.noise.OrnsteinUhlenbeckNoise`."""

    def __init__(self, theta: float = 0.15, sigma: float = 0.2, base_scale: float = 1.0, mean: float = 0.0,
                 std: float = 1.0, device: Any = None) -> None:
        super().__init__(theta=theta, sigma=sigma, base_scale=base_scale, mean=mean, std=std)
        object.__setattr__(self, "device", _device(device))
        object.__setattr__(self, "state", None)  # the process value of sample(); None: zeros at the next call

    def __eq__(self, other: Any) -> bool:
        return _same(self, other, noise.OrnsteinUhlenbeckNoise)

    __hash__ = noise.OrnsteinUhlenbeckNoise.__hash__

    def sample(self, size: Sequence[int] | torch.Size) -> torch.Tensor:
        """The next value of the process, ``base_scale * x`` with ``x <- (1 - theta) x + sigma * N(mean, std^2)``,
        of shape ``size`` (float32, on ``device``)."""
        shape = tuple(size)
        state = self.state
        if state is None or tuple(state.shape) != shape:
            state = torch.zeros(shape, dtype=torch.float32, device=self.device)
        values, state = noise.sample(self, state, None, shape)
        object.__setattr__(self, "state", state)
        return values

    def sample_like(self, tensor: torch.Tensor) -> torch.Tensor:
        """The next value of the process, of ``tensor``'s shape."""
        return self.sample(tensor.shape)

    def reset(self) -> None:
        """Sets the process of :meth:`sample` back to zero."""
        object.__setattr__(self, "state", None)


__all__ = ["GaussianNoise", "OrnsteinUhlenbeckNoise"]
