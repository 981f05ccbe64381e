"""skrl-style models for flax: a ``Model`` base and a ``DeterministicMixin``, and their adapters to the core.

A skrl 2.x script defines its networks as flax modules that take a dict of inputs and a role, and return an
``(output, extra_outputs)`` pair::

    class Actor(DeterministicMixin, Model):
        def __init__(self, observation_space, state_space, action_space, device=None, clip_actions=False, **kwargs):
            Model.__init__(self, observation_space=observation_space, state_space=state_space,
                           action_space=action_space, device=device, **kwargs)
            DeterministicMixin.__init__(self, clip_actions=clip_actions)

        @nn.compact
        def __call__(self, inputs, role):
            x = nn.relu(nn.Dense(400)(inputs["observations"]))
            ...
            return 2 * nn.tanh(nn.Dense(self.num_actions)(x)), {}

    policy = Actor(observation_space=..., state_space=..., action_space=..., device=device)
    policy.init_state_dict(role="policy")

The inputs are ``"observations"`` (flattened, float32, ``[batch, num_observations]``), ``"states"`` (the privileged
state when the agent has a state space, else None) and, for critics, ``"taken_actions"``. With a state space the
functional core feeds the critic the states only, so a critic reads ``inputs["states"]`` (its
``inputs["observations"]`` is None).

The core (:mod:`ddpgx.core`) wants a policy ``observations -> actions`` and a critic ``(inputs, actions) -> q``;
:class:`PolicyAdapter` and :class:`CriticAdapter` present a skrl-style model that way with the model's own parameter
tree, so ``model.state_dict`` (from ``init_state_dict``) is the core's parameters as it is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from ddpgx import spaces

__all__ = ["CriticAdapter", "DeterministicMixin", "Model", "PolicyAdapter", "set_seed"]

_SEED = [0]  # the default seed of models and agents; set_seed changes it (skrl's skrl.utils.set_seed)


def set_seed(seed: int | None = None, deterministic: bool = False) -> int:
    """skrl's ``skrl.utils.set_seed``: sets the seed that models (``init_state_dict``) and agents use when no key is
    given, seeds Python's ``random`` and NumPy's global generator (and torch's, where torch is already imported),
    sets ``PYTHONHASHSEED`` for child processes, logs ``Seed: <seed>`` on the ``ddpgx`` logger, and returns the seed.

    ``seed=None`` draws one from the operating system's randomness (below 2**31, as skrl). In a multi-process JAX job
    (``jax.distributed`` initialised) each process adds its index, as skrl adds its rank. ``deterministic=True``
    asks XLA for deterministic GPU reductions (``--xla_gpu_deterministic_ops``, effective only before JAX's backend
    starts; JAX on the CPU is deterministic anyway) and torch, where imported, for its deterministic algorithms, and
    logs a warning, as skrl.

    Raises:
      ValueError: if ``seed`` is not an integer in ``[0, 2**32)`` (NumPy's legacy seeding range) or None, or
        ``deterministic`` is not a bool.
    """
    import logging
    import os
    import random
    import sys

    if not isinstance(deterministic, bool):
        raise ValueError(f"deterministic={deterministic!r} is invalid: expected True or False")
    if seed is None:
        seed = int.from_bytes(os.urandom(4), sys.byteorder) % 2**31
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed={seed!r} is invalid: expected an integer in [0, 2**32) or None")
    seed = int(seed)
    if jax.distributed.is_initialized():  # (asking jax.process_index() otherwise would start the backend)
        seed += jax.process_index()
    logger = logging.getLogger("ddpgx")  # the package's logger (shared by name)
    logger.info(f"Seed: {seed}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    if deterministic:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_gpu_deterministic_ops=true").strip()
        if torch is not None:
            torch.use_deterministic_algorithms(True)
        logger.warning("Deterministic operations are enabled (XLA GPU reductions, torch where imported). This may "
                       "affect performance")
    _SEED[0] = seed
    return seed


def default_key(salt: int = 0) -> jax.Array:
    """A key derived from the seed set with :func:`set_seed` and a per-use salt."""
    return jax.random.fold_in(jax.random.key(_SEED[0]), salt)


def _space_size(space: Any) -> int:
    if space is None:
        return 0
    if isinstance(space, gymnasium.spaces.Dict):
        return spaces.input_layout(space, "space").size
    return int(np.prod(space.shape)) if space.shape else 1


class Model(nn.Module):
    """Base of skrl-style flax models: holds the spaces and their sizes (``num_observations``, ``num_states``,
    ``num_actions``) and initialises its own parameters into ``state_dict``."""

    observation_space: Any = None
    state_space: Any = None
    action_space: Any = None
    device: Any = None

    def __init__(
        self,
        *,
        observation_space: Any = None,
        state_space: Any = None,
        action_space: Any = None,
        device: Any = None,
        parent: Any = None,
        name: str | None = None,
    ) -> None:
        self.observation_space = observation_space
        self.state_space = state_space
        self.action_space = action_space
        self.device = device
        self.num_observations = _space_size(observation_space)
        self.num_states = _space_size(state_space)
        self.num_actions = _space_size(action_space)
        self.training = False
        self.parent = parent
        self.name = name

    def example_inputs(self, batch: int = 1) -> dict[str, Any]:
        """Zero inputs of the documented keys, ``[batch, size]`` float32 (None for a missing space)."""
        zeros = lambda n: jnp.zeros((batch, n), jnp.float32) if n else None  # noqa: E731
        return {
            "observations": zeros(self.num_observations),
            "states": zeros(self.num_states),
            "taken_actions": zeros(self.num_actions),
        }

    def init_state_dict(self, inputs: dict[str, Any] | None = None, *, role: str = "", key: Any = None) -> None:
        """Initialises the parameters (``self.state_dict``) from example ``inputs`` (zeros of the spaces' sizes by
        default) with ``key`` (derived from :func:`set_seed`'s seed and the role by default)."""
        if key is None:
            key = jax.random.fold_in(default_key(1), sum(map(ord, role)))
        # jitted: one compilation instead of one per layer operation
        self.state_dict = jax.jit(self.init, static_argnums=2)(key, inputs or self.example_inputs(), role)

    def enable_training_mode(self, enabled: bool = True) -> None:
        """Deterministic MLPs behave the same in both modes; kept for skrl's method surface."""
        object.__setattr__(self, "training", bool(enabled))

    def get_specification(self) -> dict[str, Any]:
        return {}


class DeterministicMixin:
    """skrl's deterministic mixin: ``act`` returns the module's output, optionally clipped to the action space."""

    def __init__(self, *, clip_actions: bool = False, role: str = "") -> None:
        if not isinstance(clip_actions, bool):
            raise ValueError(f"clip_actions={clip_actions!r} is invalid: expected True or False")
        self._d_clip_actions = clip_actions
        nn.Module.__post_init__(self)  # finishes flax's construction (the subclass defined its own __init__)

    def act(self, inputs: dict[str, Any], *, role: str = "", params: Any = None) -> tuple[jax.Array, dict]:
        output, outputs = self.apply(self.state_dict if params is None else params, inputs, role)
        if self._d_clip_actions:
            output = jnp.clip(output, self.action_space.low, self.action_space.high)
        return output, outputs


def is_skrl_style(model: Any) -> bool:
    return isinstance(model, Model)


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: flax modules holding spaces are unhashable
class PolicyAdapter:
    """A skrl-style policy as the core's ``observations -> actions`` network (same parameters)."""

    model: Any
    role: str = "policy"

    def _inputs(self, obs: jax.Array) -> dict[str, Any]:
        return {"observations": obs, "states": None}

    def init(self, key: jax.Array, obs: jax.Array) -> Any:
        return self.model.init(key, self._inputs(obs), self.role)

    def apply(self, params: Any, obs: jax.Array) -> jax.Array:
        actions, _ = self.model.apply(params, self._inputs(obs), self.role)
        if getattr(self.model, "_d_clip_actions", False):
            actions = jnp.clip(actions, self.model.action_space.low, self.model.action_space.high)
        return actions


@dataclasses.dataclass(frozen=True, eq=False)
class CriticAdapter:
    """A skrl-style critic as the core's ``(inputs, actions) -> q`` network (same parameters); ``inputs`` are the
    observations, or the states when the agent has a state space."""

    model: Any
    with_states: bool = False
    role: str = "critic"

    def _inputs(self, x: jax.Array, actions: jax.Array) -> dict[str, Any]:
        if self.with_states:
            return {"observations": None, "states": x, "taken_actions": actions}
        return {"observations": x, "states": None, "taken_actions": actions}

    def init(self, key: jax.Array, x: jax.Array, actions: jax.Array) -> Any:
        return self.model.init(key, self._inputs(x, actions), self.role)

    def apply(self, params: Any, x: jax.Array, actions: jax.Array) -> jax.Array:
        q, _ = self.model.apply(params, self._inputs(x, actions), self.role)
        return q
