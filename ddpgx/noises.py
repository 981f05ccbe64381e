"""skrl-style exploration noises: ``ddpgx.noises.GaussianNoise`` and ``OrnsteinUhlenbeckNoise``.

A skrl 2.x script names a noise class and its keyword arguments (``cfg.exploration_noise = OrnsteinUhlenbeckNoise``,
``cfg.exploration_noise_kwargs = {"theta": 0.15, "sigma": 0.1, "base_scale": 1.0, "device": device}``), and may use
a noise object on its own as skrl documents it: ``noise.sample(size)`` and ``noise.sample_like(tensor)``.

The classes here are those objects. Each holds the functional core's noise parameters (:mod:`ddpgx.noise`, a pytree
that the agent puts in its train state, where the noise is drawn inside the jitted ``act``) in ``params``, and, for
use on its own, a PRNG key and (for the Ornstein-Uhlenbeck process) the process value, drawn with the same pure
function :func:`ddpgx.core.noise.sample`. ``device`` is accepted as in skrl (a string such as ``"cpu"``, a
``jax.Device`` or None); samples are made on it.

Departures from skrl kept on purpose (see :mod:`ddpgx.noise`): the OU process decays as ``(1 - theta) x``, and
inside the agent its state is reset where an episode ends.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp

from ddpgx.core import noise as noise_lib
from ddpgx.models import default_key

__all__ = ["GaussianNoise", "Noise", "OrnsteinUhlenbeckNoise"]

_COUNTER = itertools.count()


def _device(device: Any) -> jax.Device:
    if device is None:
        return jax.devices()[0]
    if isinstance(device, jax.Device):
        return device
    if isinstance(device, str):
        platform, _, index = device.partition(":")
        try:
            return jax.devices({"cuda": "gpu"}.get(platform, platform))[int(index) if index else 0]
        except (RuntimeError, IndexError, ValueError) as error:
            raise ValueError(f"device={device!r} is not available here ({error})") from error
    raise ValueError(f"device={device!r} is invalid: expected None, a jax.Device or a string such as 'cpu'")


class Noise:
    """Base of the skrl-style noises: ``params`` (the core's noise), ``device``, ``sample`` and ``sample_like``."""

    def __init__(self, params: Any, *, device: Any = None, key: jax.Array | None = None) -> None:
        noise_lib.validate(params)
        self.params = params
        self.device = _device(device)
        self._key = key if key is not None else jax.random.fold_in(default_key(6), next(_COUNTER))
        self._state: jax.Array | None = None  # the OU process value of the last sample (None: zero)

    def sample(self, size: Any) -> jax.Array:
        """Noise of shape ``size`` (a sequence of ints); for the Ornstein-Uhlenbeck process, the next value of the
        process, which restarts from zero when ``size`` changes."""
        shape = tuple(int(n) for n in ((size,) if isinstance(size, int) else size))
        self._key, key = jax.random.split(self._key)
        state = self._state if self._state is not None and self._state.shape == shape else jnp.zeros(shape)
        with jax.default_device(self.device):
            values, self._state = noise_lib.sample(self.params, state, key, shape)
        return values

    def sample_like(self, tensor: Any) -> jax.Array:
        """Noise shaped like ``tensor`` (``sample(tensor.shape)``)."""
        return self.sample(jnp.shape(tensor))

    def reset(self) -> None:
        """Restarts the Ornstein-Uhlenbeck process from zero (nothing to do for Gaussian noise)."""
        self._state = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params}, device={self.device})"


class GaussianNoise(Noise):
    """Gaussian noise ``N(mean, std^2)`` (skrl's ``GaussianNoise(mean=..., std=..., device=...)``)."""

    def __init__(self, *, mean: float = 0.0, std: float = 0.1, device: Any = None, key: jax.Array | None = None):
        super().__init__(noise_lib.GaussianNoise(mean=mean, std=std), device=device, key=key)


class OrnsteinUhlenbeckNoise(Noise):
    """Ornstein-Uhlenbeck noise ``x <- (1 - theta) x + sigma N(mean, std^2)``, returned as ``base_scale x`` (skrl's
    ``OrnsteinUhlenbeckNoise(theta=..., sigma=..., base_scale=..., mean=0, std=1, device=...)``)."""

    def __init__(self, *, theta: float = 0.15, sigma: float = 0.2, base_scale: float = 1.0, mean: float = 0.0,
                 std: float = 1.0, device: Any = None, key: jax.Array | None = None):
        super().__init__(noise_lib.OrnsteinUhlenbeckNoise(theta=theta, sigma=sigma, base_scale=base_scale, mean=mean,
                                                          std=std), device=device, key=key)
