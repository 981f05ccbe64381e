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
            return 2 * nn.tanh(x), {}

    policy = Actor(observation_space=..., state_space=..., action_space=..., device=device)
    policy.init_state_dict(role="policy")
    policy.init_parameters(method_name="normal", stddev=0.1)

The inputs are ``"observations"`` (flattened, float32, ``[batch, num_observations]``), ``"states"`` (the privileged
state when the agent has a state space, else None) and, for critics, ``"taken_actions"``. As in skrl 2.x, a critic
receives both the observations and the states, so asymmetric critics port as they are (policies receive
``"states": None``).

``model.state_dict`` is a :class:`StateDict` (``apply_fn``, ``params``) as in skrl. Once a model is given to
:class:`ddpgx.DDPG`, its ``state_dict`` is a view of the agent's current parameters: reading it returns a copy of
them (the agent's jitted update donates, i.e. reuses, its own buffers, so what a user holds must never be those
buffers), and setting it (``load``, ``update_parameters``, ``init_parameters``, assignment) writes into the agent.

The core (:mod:`ddpgx.core`) wants a policy ``observations -> actions`` and a critic ``(inputs, actions) -> q``;
:class:`PolicyAdapter` and :class:`CriticAdapter` present a skrl-style model that way with the model's own parameter
tree, so ``model.state_dict.params`` is the core's parameters as it is.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable

import flax
import flax.linen as nn
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ddpgx.core import spaces
from ddpgx import settings

__all__ = ["CriticAdapter", "DeterministicMixin", "Model", "PolicyAdapter", "StateDict", "set_seed"]

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

    from ddpgx.seeding import resolve_seed

    seed = resolve_seed(seed, deterministic)
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
    settings.config.jax.key = seed
    return seed


def default_key(salt: int = 0) -> jax.Array:
    """A key derived from ``config.jax.key`` (the seed set with :func:`set_seed`) and a per-use salt."""
    return settings.config.jax.derive_key(salt)


def _space_size(space: Any) -> int:
    if space is None:
        return 0
    if isinstance(space, gymnasium.spaces.Dict):
        return spaces.input_layout(space, "space").size
    return int(np.prod(space.shape)) if space.shape else 1


class StateDict(struct.PyTreeNode):
    """skrl's JAX state dict: a model's ``apply`` function and its variables (``{"params": ...}``)."""

    apply_fn: Callable = struct.field(pytree_node=False)
    params: Any = struct.field(pytree_node=True)

    @classmethod
    def create(cls, *, apply_fn: Callable, params: Any) -> "StateDict":
        return cls(apply_fn=apply_fn, params=params)


_KEY_COUNTER = itertools.count()  # distinct keys for successive init_parameters/random_act calls


def _next_key(salt: int) -> jax.Array:
    return jax.random.fold_in(default_key(salt), next(_KEY_COUNTER))


def _initializer(method_name: str, args: tuple, kwargs: dict) -> Callable:
    """A ``flax.linen.initializers`` function by name (``"normal"``, ``"uniform"``, ``"constant"``, ``"zeros"``...)."""
    method = getattr(nn.initializers, method_name, None) if isinstance(method_name, str) else None
    if method is None or not callable(method):
        raise ValueError(f"method_name={method_name!r} is not a flax.linen.initializers method (e.g. 'normal', "
                         "'uniform', 'constant', 'orthogonal', 'zeros', 'ones')")
    if method_name in ("ones", "zeros"):  # initializers themselves, not factories
        return method
    return method(*args, **kwargs)


class Model(nn.Module):
    """Base of skrl-style flax models: holds the spaces and their sizes (``num_observations``, ``num_states``,
    ``num_actions``) and its parameters in ``state_dict`` (a :class:`StateDict`), with skrl's methods to initialise,
    copy, save and load them."""

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

    # The parameters: a StateDict of the model's own, or, once an agent holds the model, a view of the agent's.
    @property
    def state_dict(self) -> StateDict:
        view = self.__dict__.get("_ddpgx_view")
        if view is not None:
            return StateDict(apply_fn=self.apply, params=view[0]())
        if "_ddpgx_state_dict" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__} has no state_dict yet: call init_state_dict(role=...) first")
        return self.__dict__["_ddpgx_state_dict"]

    @state_dict.setter
    def state_dict(self, value: Any) -> None:
        if not isinstance(value, StateDict):  # a bare variables tree {"params": ...}
            value = StateDict(apply_fn=self.apply, params=value)
        view = self.__dict__.get("_ddpgx_view")
        if view is not None:
            view[1](value.params)
        else:
            object.__setattr__(self, "_ddpgx_state_dict", value)

    def bind_parameters(self, get: Callable[[], Any], set_: Callable[[Any], None]) -> None:
        """Makes ``state_dict`` a view: ``get()`` returns the current variables, ``set_(variables)`` replaces them
        (what :class:`ddpgx.DDPG` does with the models it is given)."""
        object.__setattr__(self, "_ddpgx_view", (get, set_))

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
        # Eager, as skrl's: each layer operation is compiled once per shape and reused by every model that has it
        # (a model's own jit would compile anew for each model: these models are not hashable).
        variables = self.init(key, inputs or self.example_inputs(), role)
        self.state_dict = StateDict(apply_fn=self.apply, params=variables)

    def _reinitialize(self, method: Callable, which: Callable[[str], bool]) -> None:
        # Eager: each leaf shape's draw is compiled once and reused by every model (one program per model compiles
        # more slowly than the shapes it shares with the others).
        variables = self.state_dict.params
        paths = jax.tree_util.tree_leaves_with_path(variables)
        keys = iter(jax.random.split(_next_key(3), max(len(paths), 1)))

        def init(path, param):
            key = next(keys)  # one key per leaf, in tree order (skrl reuses a single key for every leaf)
            name = getattr(path[-1], "key", str(path[-1]))
            return jnp.asarray(method(key, param.shape, param.dtype), param.dtype) if which(name) else param

        self.state_dict = StateDict(apply_fn=self.apply, params=jax.tree_util.tree_map_with_path(init, variables))

    def init_parameters(self, method_name: str = "normal", *args: Any, **kwargs: Any) -> None:
        """Re-initialises every parameter with a ``flax.linen.initializers`` method, e.g.
        ``init_parameters("normal", stddev=0.1)`` or ``init_parameters("orthogonal", scale=0.5)``."""
        self._reinitialize(_initializer(method_name, args, kwargs), lambda name: True)

    def init_weights(self, method_name: str = "normal", *args: Any, **kwargs: Any) -> None:
        """Re-initialises the weights (flax's ``kernel`` leaves), e.g. ``init_weights("normal", stddev=0.25)``."""
        self._reinitialize(_initializer(method_name, args, kwargs), lambda name: name == "kernel")

    def init_biases(self, method_name: str = "constant", *args: Any, **kwargs: Any) -> None:
        """Re-initialises the biases (flax's ``bias`` leaves), e.g. ``init_biases("constant", 0.0)``."""
        self._reinitialize(_initializer(method_name, args, kwargs), lambda name: name == "bias")

    def freeze_parameters(self, freeze: bool = True) -> None:
        """Does nothing, as in skrl's JAX models (JAX parameters have no ``requires_grad``; the agent only
        differentiates the online networks): kept for skrl's method surface."""
        if not isinstance(freeze, bool):
            raise ValueError(f"freeze={freeze!r} is invalid: expected True or False")

    def update_parameters(self, model: "Model", *, polyak: float = 1.0) -> None:
        """Hard (``polyak=1``: ``theta = theta_model``) or soft (``theta = polyak theta_model + (1 - polyak) theta``)
        update of this model's parameters from ``model``'s."""
        if isinstance(polyak, bool) or not isinstance(polyak, (int, float, np.floating)) or not 0 <= polyak <= 1:
            raise ValueError(f"polyak={polyak!r} is invalid: expected a number in [0, 1]")
        source, own = model.state_dict.params, self.state_dict.params
        if jax.tree.structure(source) != jax.tree.structure(own):
            raise ValueError(f"update_parameters: {type(model).__name__}'s parameters do not match "
                             f"{type(self).__name__}'s")
        if polyak == 1:
            params = jax.tree.map(jnp.copy, source)  # distinct buffers: never two names for one array
        else:
            params = jax.tree.map(lambda s, o: polyak * s + (1 - polyak) * o, source, own)
        self.state_dict = StateDict(apply_fn=self.apply, params=params)

    def save(self, path: str, *, state_dict: StateDict | None = None) -> None:
        """Writes the parameters (or those of ``state_dict``) to ``path`` with ``flax.serialization`` (skrl's
        ``.flax`` model file)."""
        params = (self.state_dict if state_dict is None else state_dict).params
        with open(path, "wb") as file:
            file.write(flax.serialization.to_bytes(jax.device_get(params)))

    def load(self, path: str) -> None:
        """Reads parameters written by :meth:`save` (or by skrl's JAX ``Model.save``) and sets evaluation mode."""
        template = self.state_dict.params
        with open(path, "rb") as file:
            data = file.read()
        try:
            params = flax.serialization.from_bytes(template, data)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path} does not hold parameters of {type(self).__name__}: {error}") from error
        for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(template), strict=True):
            if np.shape(got) != np.shape(want):
                raise ValueError(f"{path} holds a parameter of shape {np.shape(got)} where {type(self).__name__} "
                                 f"has {np.shape(want)}")
        self.state_dict = StateDict(apply_fn=self.apply, params=jax.tree.map(jnp.asarray, params))
        self.enable_training_mode(False)

    def random_act(self, inputs: dict[str, Any], *, role: str = "", params: Any = None
                   ) -> tuple[jax.Array, dict[str, Any]]:
        """Actions uniform in the (bounded ``Box``) action space, as many as ``inputs["observations"]`` rows."""
        space = self.action_space
        if not isinstance(space, gymnasium.spaces.Box) or not space.is_bounded():
            raise ValueError(f"random_act needs a bounded Box action space, got {space}")
        batch = jnp.shape(inputs["observations"])[0]
        actions = jax.random.uniform(_next_key(5), (batch, self.num_actions), jnp.float32,
                                     np.asarray(space.low, np.float32).reshape(-1),
                                     np.asarray(space.high, np.float32).reshape(-1))
        return actions, {}

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
        output, outputs = self.apply(self.state_dict.params if params is None else params, inputs, role)
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
    """A skrl-style critic as the core's ``(inputs, actions) -> q`` network (same parameters).

    Without a state space ``inputs`` are the observations. With one (``with_states``) and ``observation_size`` > 0,
    the core passes the observations and states concatenated (``observations_and_states``) and the model receives
    them apart, as skrl 2.x's agents give them: ``{"observations": ..., "states": ..., "taken_actions": ...}``
    (with ``observation_size`` 0, the states alone).
    """

    model: Any
    with_states: bool = False
    role: str = "critic"
    observation_size: int = 0

    @property
    def observations_and_states(self) -> bool:
        return self.with_states and self.observation_size > 0

    def _inputs(self, x: jax.Array, actions: jax.Array) -> dict[str, Any]:
        if self.observations_and_states:
            n = self.observation_size
            return {"observations": x[..., :n], "states": x[..., n:], "taken_actions": actions}
        if self.with_states:  # without observation_size: the states alone (the core's default critic input)
            return {"observations": None, "states": x, "taken_actions": actions}
        return {"observations": x, "states": None, "taken_actions": actions}

    def init(self, key: jax.Array, x: jax.Array, actions: jax.Array) -> Any:
        return self.model.init(key, self._inputs(x, actions), self.role)

    def apply(self, params: Any, x: jax.Array, actions: jax.Array) -> jax.Array:
        q, _ = self.model.apply(params, self._inputs(x, actions), self.role)
        return q
