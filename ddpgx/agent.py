"""``ddpgx.DDPG``: skrl's documented DDPG agent surface, as a thin stateful shell over the pure functions.

The agent holds a :class:`ddpgx.TrainState` and a replay buffer and calls :mod:`ddpgx.core`'s jitted functions; it
adds no algorithm math. What it adds is skrl's bookkeeping: the configuration (:class:`ddpgx.DDPG_CFG`), training
mode, ``learning_starts``, ``rewards_shaper``, TensorBoard tracking (:mod:`ddpgx.tracking`), checkpoints
(:mod:`ddpgx.checkpoints`) and the best agent.

Per environment step the trainer calls ``act``, ``record_transition`` and ``post_interaction``. Once learning has
started, ``post_interaction`` runs :func:`ddpgx.core.add_update_act_packed`: one jitted call runs the update, sampling
the buffer as it will be once the transition is written, and already computes the next exploring action for the
observations just recorded; a second one, dispatched while the first computes, writes the transition. Between these
calls the train state stays packed in few buffers (:mod:`ddpgx.core.packing`), since on CPU a call's cost grows with
its number of buffers; reading ``agent.train_state`` unpacks it. The next
``act`` on those same observations returns the precomputed action without another call (acting on anything else
computes a fresh action, and the result is the same either way). Metrics stay on the device until a write interval;
with ``write_interval=0`` they are not computed at all.

Departures from skrl, on purpose: no exploration noise in evaluation mode (skrl adds it), the Ornstein-Uhlenbeck
state is reset where an episode ends, and ``load`` restores everything (skrl's JAX ``load`` drops optimizer state).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from ddpgx import checkpoints, core, host_memory, noises, skrl_checkpoint, tracking
from ddpgx.core import networks, packing, replay, sharding, spaces, threefry
from ddpgx import models as models_lib
from ddpgx.core import noise as noise_lib
from ddpgx.core.config import DDPGConfig
from ddpgx.ddpg_cfg import DDPG_CFG, make_cfg, pair, resolve_interval
from ddpgx.ddpg_cfg import experiment_dir as make_experiment_dir
from ddpgx.envs import true_next_observations
from ddpgx.memories import RandomMemory
from ddpgx.preprocessors import RunningStandardScaler
from ddpgx import settings
from ddpgx.core.types import Transition

__all__ = ["DDPG", "core_config"]

_TRAINING_MODELS = ("critic", "target_policy", "target_critic")


def _scheduled(rate: float, factory: Any, kwargs: Mapping) -> Any:
    if factory is None:
        return float(rate)
    schedule = factory(**kwargs)
    if not callable(schedule):
        raise ValueError(f"learning_rate_scheduler {factory!r} returned {schedule!r}, expected a schedule "
                         "step -> factor")
    return lambda count: rate * schedule(count)


def _noise(cfg: DDPG_CFG) -> Any:
    """The core's noise parameters for ``cfg.exploration_noise``: a skrl-style noise class of :mod:`ddpgx.noises`
    (constructed with ``exploration_noise_kwargs``) or instance, a core noise class (:mod:`ddpgx.noise`, ``device``
    dropped) or instance, a distrax distribution, or None."""
    noise = cfg.exploration_noise
    if noise is None:
        return None
    if isinstance(noise, type) or (callable(noise) and not (noise_lib.is_supported(noise)
                                                            or isinstance(noise, noises.Noise))):
        skrl_style = isinstance(noise, type) and issubclass(noise, noises.Noise)
        kwargs = {k: v for k, v in cfg.exploration_noise_kwargs.items() if skrl_style or k != "device"}
        try:
            noise = noise(**kwargs)
        except TypeError as error:
            raise ValueError(f"exploration_noise {cfg.exploration_noise!r} does not take exploration_noise_kwargs "
                             f"{kwargs}: {error}") from error
    if isinstance(noise, noises.Noise):
        noise = noise.params
    noise_lib.validate(noise)
    return noise


def _preprocessor(name: str, factory: Any, kwargs: Mapping) -> RunningStandardScaler | None:
    if not factory:
        return None
    scaler = factory if isinstance(factory, RunningStandardScaler) else None
    if scaler is None:
        if factory is not RunningStandardScaler:
            raise ValueError(f"{name}={factory!r} is not supported: expected ddpgx.preprocessors.RunningStandardScaler "
                             "or None")
        scaler = RunningStandardScaler(**kwargs)
    return scaler


def core_config(cfg: DDPG_CFG) -> DDPGConfig:
    """The functional core's configuration for a skrl ``DDPG_CFG`` (the one place where they are translated)."""
    schedulers, scheduler_kwargs = pair(cfg.learning_rate_scheduler), pair(cfg.learning_rate_scheduler_kwargs)
    rates = tuple(_scheduled(rate, f, kw) for rate, f, kw in zip(pair(cfg.learning_rate), schedulers,
                                                                  scheduler_kwargs, strict=True))
    obs_scaler = _preprocessor("observation_preprocessor", cfg.observation_preprocessor,
                               cfg.observation_preprocessor_kwargs)
    state_scaler = _preprocessor("state_preprocessor", cfg.state_preprocessor, cfg.state_preprocessor_kwargs)
    scalers = [s for s in (obs_scaler, state_scaler) if s is not None]
    if len(scalers) == 2 and (obs_scaler.epsilon, obs_scaler.clip_threshold) != (state_scaler.epsilon,
                                                                                 state_scaler.clip_threshold):
        raise ValueError(f"observation and state preprocessors must share epsilon and clip_threshold: {obs_scaler} "
                         f"vs {state_scaler}")
    return DDPGConfig(
        batch_size=cfg.batch_size,
        gradient_steps=cfg.gradient_steps,
        discount_factor=cfg.discount_factor,
        polyak=cfg.polyak,
        learning_rate=rates if rates[0] != rates[1] or callable(rates[0]) else rates[0],
        grad_norm_clip=float(cfg.grad_norm_clip),
        random_timesteps=cfg.random_timesteps,
        exploration_noise=_noise(cfg),
        # skrl's schedulers are plain Python (``max(1 - t / T, 1e-2)``): the agent evaluates them on the host and
        # passes the scale to the jitted act (core.act's ``scale``), so the core's config holds none to trace.
        exploration_scheduler=None,
        observation_preprocessor=obs_scaler is not None,
        state_preprocessor=state_scaler is not None,
        preprocessor_epsilon=scalers[0].epsilon if scalers else 1e-8,
        preprocessor_clip=scalers[0].clip_threshold if scalers else 5.0,
    )


def _zeros(space: gymnasium.Space) -> Any:
    if isinstance(space, gymnasium.spaces.Dict):
        return {k: _zeros(s) for k, s in space.spaces.items()}
    return np.zeros(space.shape, np.float32)


_pack = jax.jit(packing.pack)
_unpack = jax.jit(packing.unpack)


def _float32(tree: Any) -> Any:
    """An owned float32 copy: an environment may hand back its internal buffer and change it in place later, so
    what the agent records (or matches a precomputed action against) must not be that buffer."""
    return {k: _float32(v) for k, v in tree.items()} if isinstance(tree, Mapping) else np.array(tree, np.float32)


def _same_values(a: Any, b: Any) -> bool:
    """Whether ``b`` holds the values of ``a`` (an owned float32 copy, see :func:`_float32`) as the policy sees them:
    equal structure and shapes, and bit for bit the same values once in float32 (NaN never equal). Comparing in
    float32 matters: environments such as MuJoCo's return float64, which never equals its float32 copy exactly."""
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return (isinstance(a, Mapping) and isinstance(b, Mapping) and a.keys() == b.keys()
                and all(_same_values(a[k], b[k]) for k in a))
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.array_equal(a, b.astype(a.dtype, copy=False)))


def _check_timesteps(timestep: Any, timesteps: Any) -> None:
    for name, value in (("timestep", timestep), ("timesteps", timesteps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**31:
            raise ValueError(f"{name}={value!r} is invalid: expected an integer in [0, 2**31)")


def _nonfinite_rows(transition: Transition, n: int) -> list[tuple[int, str]]:
    """``(environment, field)`` of every NaN or infinite value in a ``[n, ...]`` transition (first field per env)."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(transition) if np.asarray(x).dtype.kind == "f"]
    if all(np.isfinite(x).all() for x in leaves):
        return []  # the common case: one pass, no per-environment bookkeeping
    bad: dict[int, str] = {}
    for name in ("observations", "actions", "rewards", "next_observations", "states", "next_states"):
        for path, leaf in jax.tree_util.tree_leaves_with_path(getattr(transition, name)):
            finite = np.isfinite(np.asarray(leaf).reshape(n, -1)).all(axis=1)
            for env in np.nonzero(~finite)[0]:
                bad.setdefault(int(env), name + jax.tree_util.keystr(path))
    return sorted(bad.items())


def _network(model: Any, role: str, observation_size: int = 0) -> Any:
    """The core network for a model given in ``models``: adapters for skrl-style models, others as they are. With a
    state space (``observation_size`` > 0) a skrl-style critic receives observations and states, as in skrl 2.x."""
    if models_lib.is_skrl_style(model):
        return (models_lib.PolicyAdapter(model, role) if role == "policy"
                else models_lib.CriticAdapter(model, observation_size > 0, role, observation_size))
    return model


class DDPG:
    """Deep Deterministic Policy Gradient (DDPG), https://arxiv.org/abs/1509.02971, with skrl's agent interface.

    Args:
      models: ``"policy"`` (always), ``"critic"``, ``"target_policy"`` and ``"target_critic"`` (for training, i.e.
        with a memory). Each is a skrl-style model (:class:`ddpgx.models.Model` with
        :class:`~ddpgx.models.DeterministicMixin`) or a flax module with the core's signature (policy
        ``observations -> actions``, critic ``(inputs, actions) -> q``); None selects the default 400-300 MLPs. The
        targets start as copies of the online networks.
      memory: a :class:`ddpgx.memories.RandomMemory` (needed for training).
      observation_space: ``Box`` or ``Dict`` of ``Box``.
      state_space: optional privileged critic input (``Box`` or ``Dict``).
      action_space: bounded ``Box``.
      device: ``"cpu"``, ``"cuda:0"``, a ``jax.Device`` or None (JAX's default device).
      cfg: a :class:`ddpgx.DDPG_CFG` or a dict of its fields.
      seed: seed of the networks' initialisation and of exploration (default: :func:`ddpgx.models.set_seed`'s).
      mesh: data-parallel training over devices: a ``jax.sharding.Mesh`` with a ``"data"`` axis
        (:func:`ddpgx.core.sharding.make_mesh`) or a device count. The train state is replicated, the replay memory and
        every minibatch split over the devices (see :mod:`ddpgx.core.sharding`).

    Raises:
      KeyError: a model needed is missing (its key is named).
      ValueError: any other bad argument (named, with what was expected).
    """

    def __init__(
        self,
        *,
        models: Mapping[str, Any],
        memory: RandomMemory | None = None,
        observation_space: gymnasium.Space | None = None,
        state_space: gymnasium.Space | None = None,
        action_space: gymnasium.Space | None = None,
        device: Any = None,
        cfg: DDPG_CFG | Mapping = {},  # noqa: B006 -- skrl's signature; never mutated
        seed: int | None = None,
        mesh: Any = None,
    ) -> None:
        self.cfg = make_cfg(copy.deepcopy(cfg) if isinstance(cfg, Mapping) else cfg, DDPG_CFG)
        if not isinstance(models, Mapping):
            raise ValueError(f"models={models!r} is invalid: expected a dict of models")
        if "policy" not in models:
            raise KeyError("models has no 'policy': DDPG needs models['policy'] (and 'critic', 'target_policy', "
                           "'target_critic' to train)")
        if memory is not None:
            for key in _TRAINING_MODELS:
                if key not in models:
                    raise KeyError(f"models has no {key!r}: training (an agent with a memory) needs 'policy', "
                                   "'critic', 'target_policy' and 'target_critic'")
        if memory is not None and not isinstance(memory, RandomMemory):
            raise ValueError(f"memory={memory!r} is invalid: expected a ddpgx.memories.RandomMemory or None")
        for name, space in (("observation_space", observation_space), ("action_space", action_space)):
            if space is None:
                raise ValueError(f"{name} is required (a gymnasium space)")
        self.models = dict(models)
        self.policy = self.models.get("policy")
        self.critic = self.models.get("critic")
        self.target_policy = self.models.get("target_policy")
        self.target_critic = self.models.get("target_critic")
        self.memory = memory
        self.observation_space, self.state_space, self.action_space = observation_space, state_space, action_space
        self.device = settings.config.jax.parse_device(device)
        if self.device.platform == "cpu":
            host_memory.keep_freed_memory()  # XLA:CPU's per-call buffers stop faulting pages in every step
        self.training = False
        # Evaluation with exploration noise (the trainer's stochastic_evaluation); training mode always explores.
        self.explore_in_evaluation = False

        config = core_config(self.cfg)
        num_envs = memory.num_envs if memory is not None else 1
        key = jax.random.key(seed) if seed is not None else models_lib.default_key(2)
        critic = self.critic if self.critic is not None else networks.QFunction()  # unused outside training
        with jax.default_device(self.device):
            ts = core.init(key, config, observation_space, action_space, state_space=state_space,
                           policy=_network(self.policy, "policy"),
                           critic=_network(critic, "critic", 0 if state_space is None else
                                           spaces.input_layout(observation_space, "observation_space").size),
                           num_envs=num_envs, policy_params=self._model_params("policy"),
                           critic_params=self._model_params("critic"))
            self.mesh = None if mesh is None else sharding.make_mesh(mesh) if isinstance(mesh, int) else mesh
            self.train_state = self._place(ts)
            if memory is not None:
                example = Transition(
                    observations=_zeros(observation_space), actions=np.zeros(action_space.shape, np.float32),
                    rewards=np.float32(0), next_observations=_zeros(observation_space), terminated=np.bool_(False),
                    states=None if state_space is None else _zeros(state_space),
                    next_states=None if state_space is None else _zeros(state_space),
                )
                memory.create(example)
                self._example = example
                if self.mesh is not None:
                    memory.state = sharding.shard_replay(memory.state, self.mesh)
                else:  # committed to the device like the train state (jit specialises on placement)
                    memory.state = jax.device_put(memory.state, self.device)

        self._episode_starts = np.ones(num_envs, bool)
        self._pending: Transition | None = None
        self._prefetch: tuple | None = None  # (observations copy, timestep, actions, (key, noise_state) before, info)
        self.skipped_transitions = 0  # non-finite transitions dropped (cfg.nonfinite_transitions="skip")
        self.tracker = tracking.Tracker()
        self.tracking_data = self.tracker.data  # skrl's attribute name
        self.write_interval: int = 0
        self.checkpoint_interval: int = 0
        self.checkpoint_include_memory = True  # checkpoints hold the replay buffer (for an exact resume)
        self.compile_seconds = 0.0  # XLA compilation of the training step, done in init()
        self.experiment_dir = make_experiment_dir(self.cfg.experiment, type(self).__name__)
        self.checkpoint_best = {"timestep": 0, "reward": -math.inf, "saved": True, "items": None}
        self._wandb = None
        self._bind_models()

    @property
    def train_state(self) -> core.TrainState:
        """The train state. Between updates the training loop holds it packed (:mod:`ddpgx.core.packing`, fewer
        buffers per call); the first read after an update unpacks it and the next update packs it again, two extra
        calls, so a per-step callback should not read it."""
        if isinstance(self._state, packing.Packed):
            self._state = _unpack(self._state)
        return self._state

    @train_state.setter
    def train_state(self, value: core.TrainState) -> None:
        self._state, self._spec = value, value.spec

    # ----------------------------------------------------------------------------------------------------------------
    # construction helpers

    def _model_params(self, role: str) -> Any:
        """The parameters a skrl-style model already initialised (``init_state_dict``), which the train state starts
        from instead of fresh ones (None for other models)."""
        model = self.models.get(role)
        if models_lib.is_skrl_style(model) and "_ddpgx_state_dict" in model.__dict__:
            return model.state_dict.params
        return None

    def _bind_models(self) -> None:
        """Makes each skrl-style model's ``state_dict`` a view of the train state's parameters: reading gives a copy
        of the current ones (the jitted update donates the train state's buffers, so a user must never hold them),
        writing (``model.load``, ``update_parameters``...) replaces them in the agent."""
        for role, field in (("policy", "policy_params"), ("critic", "critic_params"),
                            ("target_policy", "target_policy_params"), ("target_critic", "target_critic_params")):
            model = self.models.get(role)
            if models_lib.is_skrl_style(model) and (role == "policy" or self.memory is not None):
                model.bind_parameters(lambda field=field: self._get_params(field),
                                      lambda params, field=field: self._set_params(field, params))

    def _get_params(self, field: str) -> Any:
        return jax.tree.map(jnp.copy, getattr(self.train_state, field))

    def _set_params(self, field: str, params: Any) -> None:
        current = getattr(self.train_state, field)
        same = jax.tree.structure(params) == jax.tree.structure(current)
        if not same or any(np.shape(a) != np.shape(b)
                           for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(current), strict=True)):
            raise ValueError(f"the parameters set for {field} do not match the agent's (structure or shapes differ)")
        # Copied: the agent's buffers are donated to its updates, so they must never be the caller's arrays.
        params = jax.tree.map(lambda new, old: jnp.array(new, dtype=old.dtype), params, current)
        self._drop_prefetch()
        self.train_state = self._place(self.train_state.replace(**{field: params}))

    # ----------------------------------------------------------------------------------------------------------------
    # skrl's method surface

    def init(self, *, trainer_cfg: Mapping | Any | None = None) -> None:
        """Resolves the write and checkpoint intervals (``"auto"`` from the trainer's timesteps), opens the
        TensorBoard writer and creates the checkpoint directory."""
        if trainer_cfg is not None and dataclasses.is_dataclass(trainer_cfg):
            trainer_cfg = dataclasses.asdict(trainer_cfg)
        timesteps = (trainer_cfg or {}).get("timesteps")
        experiment = self.cfg.experiment
        self.write_interval = resolve_interval(experiment.write_interval, timesteps, 100)
        self.checkpoint_interval = resolve_interval(experiment.checkpoint_interval, timesteps, 10)
        if jax.process_index() != 0:  # only process 0 writes
            self.write_interval = self.checkpoint_interval = 0
        if self.write_interval > 0 and self.tracker.writer is None:
            self.tracker.writer = tracking.SummaryWriter(self.experiment_dir)
        if self.checkpoint_interval > 0:
            os.makedirs(os.path.join(self.experiment_dir, "checkpoints"), exist_ok=True)
        if experiment.wandb and self._wandb is None:
            self._wandb = tracking.start_wandb(experiment, self.experiment_dir, self.cfg, trainer_cfg)
        if self.memory is not None:
            self._compile_step_functions()

    def act(self, observations: Any, states: Any = None, *, timestep: int, timesteps: int) -> tuple[jax.Array, dict]:
        """Actions for ``[num_envs, ...]`` observations: exploring in training mode (uniform for
        ``random_timesteps``, then policy plus scheduled noise), the deterministic policy otherwise. One observation
        without the batch axis gives one action without it."""
        _check_timesteps(timestep, timesteps)
        prefetch = self._prefetch
        # The action precomputed in post_interaction is for the observations recorded then (an owned copy): it
        # applies only to equal values at the same timestep, whatever object holds them now.
        if prefetch is not None and prefetch[1] == timestep and _same_values(prefetch[0], observations):
            _, _, actions, _, info = prefetch
            self._prefetch = None  # its randomness is already in the train state
        else:
            self._drop_prefetch()
            core.check_numeric(observations, "observations")
            ts = self.train_state
            num_envs = spaces.batch_shape(ts.spec.observation, observations, "observations")
            if num_envs == ():  # one observation without a batch axis: one action without it
                batched = jax.tree.map(lambda x: np.asarray(x)[None], observations)
                states = None if states is None else jax.tree.map(lambda x: np.asarray(x)[None], states)
                actions, info = self.act(batched, states, timestep=timestep, timesteps=timesteps)
                return actions[0], info
            if len(num_envs) == 1 and ts.noise_state.shape[0] != num_envs[0]:
                ts = ts.replace(noise_state=noise_lib.init_state(num_envs[0], ts.spec.action.size))
                self._episode_starts = np.ones(num_envs[0], bool)
            actions, ts, info = core.act(ts, observations, timestep=timestep, timesteps=timesteps,
                                         explore=self.training or self.explore_in_evaluation,
                                         episode_starts=self._episode_starts,
                                         scale=self._noise_scale(timestep, timesteps))
            self.train_state = ts
        exploring = (self.training and self._spec.config.exploration_noise is not None
                     and timestep >= self.cfg.random_timesteps)
        if exploring and self._tracking:
            self.tracker.track_metrics({k: info[k] for k in ("noise_max", "noise_min", "noise_mean")})
        return actions, {}

    def record_transition(self, *, observations: Any, states: Any, actions: Any, rewards: Any,
                          next_observations: Any, next_states: Any, terminated: Any, truncated: Any, infos: Any,
                          timestep: int, timesteps: int) -> None:
        """Tracks rewards and episodes and, in training mode, stores the transition (with ``rewards_shaper``
        applied and the true final observation of finished episodes, from ``infos["final_obs"]``)."""
        _check_timesteps(timestep, timesteps)
        for name, value in (("observations", observations), ("actions", actions), ("rewards", rewards),
                            ("next_observations", next_observations), ("terminated", terminated),
                            ("truncated", truncated), ("states", states), ("next_states", next_states)):
            if value is not None:
                core.check_numeric(value, name)
        rewards = np.asarray(rewards, np.float32)
        terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
        if rewards.size != terminated.size or rewards.size != truncated.size or rewards.size == 0:
            raise ValueError(f"rewards, terminated and truncated must hold one value per environment; got shapes "
                             f"{rewards.shape}, {terminated.shape} and {truncated.shape}")
        if self._tracking:
            self.tracker.track_step(rewards, terminated, truncated)
        done = np.logical_or(terminated, truncated).reshape(-1)
        self._episode_starts = done
        if not self.training:
            return
        if self.memory is None:
            raise ValueError("this agent has no memory: construct it with memory=RandomMemory(...) to train")
        if self.cfg.rewards_shaper is not None:
            rewards = np.asarray(self.cfg.rewards_shaper(rewards, timestep, timesteps), np.float32)
        n = done.shape[0]
        if self.state_space is not None and (states is None or next_states is None):
            raise ValueError("this agent has a state_space: record_transition needs states and next_states")
        spec = self._spec
        inputs = [("observations", observations, spec.observation), ("next_observations", next_observations,
                                                                       spec.observation)]
        if spec.state is not None:
            inputs += [("states", states, spec.state), ("next_states", next_states, spec.state)]
        for name, value, layout in inputs:
            lead = spaces.batch_shape(layout, value, name)
            if lead != (n,):
                raise ValueError(f"{name} has batch shape {lead}, expected ({n},): one row per environment (as many "
                                 "as rewards)")
        if np.size(actions) != n * spec.action.size:
            expected = (n,) + spec.action.shape
            raise ValueError(f"actions have shape {np.shape(actions)}, expected {expected}")
        self._flush()
        transition = Transition(
            observations=_float32(observations),
            actions=np.asarray(actions, np.float32).reshape((n,) + tuple(self.action_space.shape)),
            rewards=rewards.reshape(n),
            next_observations=_float32(true_next_observations(next_observations, infos)),
            terminated=terminated.reshape(n),
            states=None if self.state_space is None else _float32(states),
            next_states=None if self.state_space is None else _float32(
                true_next_observations(next_states, infos, "final_state")),
        )
        bad = _nonfinite_rows(transition, n)
        if bad:
            if self.cfg.nonfinite_transitions == "raise":
                env, field = bad[0]
                raise ValueError(f"non-finite {field} (NaN or inf) from environment {env} at timestep {timestep}; set "
                                 "cfg.nonfinite_transitions='skip' to drop such transitions instead")
            rows = np.setdiff1d(np.arange(n), [env for env, _ in bad])
            self.skipped_transitions += n - rows.size
            self.tracker.track("Stats / Skipped transitions (non-finite)", float(n - rows.size))
            if rows.size == 0:
                return
            transition = jax.tree.map(lambda x: x[rows], transition)
        self._pending = transition
        self._pending_next = (_float32(next_observations), timestep + 1, timesteps)

    def pre_interaction(self, *, timestep: int, timesteps: int) -> None:
        """Nothing to do before an environment step (kept for skrl's method surface)."""

    def post_interaction(self, *, timestep: int, timesteps: int) -> None:
        """Stores the recorded transition and, from ``learning_starts`` on, updates (one jitted call); then writes
        TensorBoard data and checkpoints when their intervals come."""
        _check_timesteps(timestep, timesteps)
        if self.training and self._pending is not None:
            if timestep >= self.cfg.learning_starts:
                next_observations, next_timestep, next_timesteps = self._pending_next
                packed = self._state if isinstance(self._state, packing.Packed) else _pack(self._state)
                actions, packed, undo, buffer, metrics, info = core.add_update_act_packed(
                    packed, self.memory.state, self._pending, next_observations, next_timestep, next_timesteps,
                    self._episode_starts, self._noise_scale(next_timestep, next_timesteps), metrics=self._tracking)
                self._state, self.memory.state, self._pending = packed, buffer, None
                self._prefetch = (next_observations, next_timestep, actions, undo, info)
                self._track_update(metrics)
            else:
                self._flush()
        self._after_step(timestep + 1, timesteps)

    def update(self, *, timestep: int, timesteps: int) -> None:
        """One update (``gradient_steps`` gradient steps on minibatches sampled from memory)."""
        if self.memory is None or len(self.memory) == 0 and self._pending is None:
            raise ValueError("cannot update: the memory is empty (record transitions first)")
        self._flush()
        self._drop_prefetch()
        with threefry.unrolled():
            self.train_state, metrics = core.update_from_replay(self.train_state, self.memory.state)
        self._track_update(metrics)

    def track_data(self, tag: str, value: float) -> None:
        """Tracks a scalar under ``tag`` until the next write (min/max/mean by the tag's suffix, as skrl)."""
        self.tracker.track(tag, value)

    def write_tracking_data(self, *, timestep: int, timesteps: int) -> None:
        """Writes everything tracked since the last write to TensorBoard (and Weights & Biases when enabled)."""
        values = self.tracker.write(timestep)
        if self._wandb is not None and values:
            self._wandb.log(values, step=timestep)

    def write_checkpoint(self, *, timestep: int | None, timesteps: int) -> None:
        """Writes ``agent_<timestep>`` (and ``best_agent`` when a better mean total reward has been seen) under
        ``<experiment_dir>/checkpoints``; with ``store_separately`` one checkpoint per module. Then applies retention
        (``cfg.experiment.checkpoint_keep`` newest checkpoints kept, the replay buffer only in the newest with
        ``checkpoint_memory="newest"``: :func:`ddpgx.checkpoints.retain`)."""
        tag = str(timestep) if timestep is not None else f"{np.datetime64('now')}".replace(":", "-")
        directory = os.path.join(self.experiment_dir, "checkpoints")
        experiment = self.cfg.experiment
        include_memory = self.checkpoint_include_memory and experiment.checkpoint_memory != "none"
        self._save_items(directory, tag, self._checkpoint_items(include_memory), timestep)
        best = self.checkpoint_best
        if best["items"] is not None and not best["saved"]:
            self._save_items(directory, "best", best["items"], best["timestep"])
            best["saved"] = True
        if not experiment.store_separately:
            checkpoints.retain(directory, experiment.checkpoint_keep, experiment.checkpoint_memory)

    def save(self, path: str, *, include_memory: bool = True) -> None:
        """Saves everything needed to resume (networks, targets, optimizers, scaler statistics, noise state, RNG,
        step, and with ``include_memory`` the replay buffer) as an orbax checkpoint directory at ``path``."""
        checkpoints.save(path, self._checkpoint_items(include_memory), self._metadata(None))

    def load(self, path: str) -> None:
        """Restores what :meth:`save` (or a checkpoint) wrote; the replay buffer too when it was saved and this
        agent has a memory. A file (rather than a checkpoint directory) is read as a skrl JAX agent checkpoint
        (``agent_<timestep>.pickle``): models, optimizer states and preprocessor statistics
        (:mod:`ddpgx.skrl_checkpoint`; the pickle is read as data only).

        Raises:
          ValueError: if the checkpoint is incomplete, damaged, does not match this agent, or (skrl's) holds
            anything but data.
        """
        self._flush()
        if os.path.isfile(path):
            self._load_skrl(path)
            return
        target = self._checkpoint_items(include_memory=self.memory is not None)
        saved = set(checkpoints.metadata(path).get("items", ()))
        target = {name: item for name, item in target.items() if name in saved or name == "train_state"}
        items, metadata = checkpoints.load(path, target)
        with jax.default_device(self.device):
            ts = checkpoints.restore_train_state(self.train_state, items["train_state"])
            self.train_state = self._place(ts)
            if "memory" in items and self.memory is not None:
                saved = items["memory"]
                self.memory.state = self.memory.state.replace(
                    data=jax.tree.map(jnp.asarray, saved["data"]), position=jnp.asarray(saved["position"]),
                    size=jnp.asarray(saved["size"]))
                if self.mesh is not None:
                    self.memory.state = sharding.shard_replay(self.memory.state, self.mesh)
                else:
                    self.memory.state = jax.device_put(self.memory.state, self.device)
        if "agent" in items:
            self._episode_starts = np.asarray(items["agent"]["episode_starts"], bool)
        self._prefetch = None

    def reset_episodes(self) -> None:
        """Marks every environment as starting a new episode (the trainer calls it when it resets the environments
        at the start of ``train()``/``eval()``): the Ornstein-Uhlenbeck state is zeroed at the next exploring act."""
        self._episode_starts = np.ones_like(self._episode_starts, bool)

    def _load_skrl(self, path: str) -> None:
        """Loads a skrl JAX agent checkpoint file (see :meth:`load`)."""
        modules = skrl_checkpoint.read(path)
        with jax.default_device(self.device):
            self.train_state = self._place(skrl_checkpoint.restore(self.train_state, modules, path))
        self._prefetch = None

    def enable_training_mode(self, enabled: bool = True, *, apply_to_models: bool = False) -> None:
        """Training mode (exploration, memory writes, updates) on or off; queried with the ``training`` attribute."""
        self.training = bool(enabled)
        self._drop_prefetch()
        if apply_to_models:
            self.enable_models_training_mode(enabled)

    def enable_models_training_mode(self, enabled: bool = True) -> None:
        """Sets the models' ``training`` flag (DDPG's deterministic MLPs compute the same in both modes)."""
        for model in self.models.values():
            if hasattr(model, "enable_training_mode"):
                model.enable_training_mode(enabled)

    # ----------------------------------------------------------------------------------------------------------------
    # ddpgx additions

    @property
    def policy_params(self) -> Any:
        """The current policy parameters (a flax parameter tree)."""
        return self.train_state.policy_params

    def block_until_ready(self) -> None:
        """Waits for every dispatched computation (for timing)."""
        jax.block_until_ready(self._state)

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer."""
        if self.tracker.writer is not None:
            self.tracker.writer.close()
            self.tracker.writer = None

    # ----------------------------------------------------------------------------------------------------------------
    # internals

    def _compile_step_functions(self) -> None:
        """Compiles what a training step runs (act, replay add, the fused add-update-act) by calling each once on
        copies of the state, so that ``init`` (the agent's set-up, as in skrl) pays for XLA compilation rather than
        the first training steps. ``compile_seconds`` records the time."""
        start = time.perf_counter()
        n = self.memory.num_envs
        batched = jax.tree.map(lambda x: np.zeros((n,) + np.shape(x), np.asarray(x).dtype), self._example)
        observations = jax.tree.map(lambda x: np.zeros((n,) + np.shape(x), np.asarray(x).dtype),
                                    _zeros(self.observation_space))
        if not isinstance(self.observation_space, gymnasium.spaces.Dict):
            observations = observations.astype(self.observation_space.dtype)
        starts = np.ones(n, bool)
        copy = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731 -- the calls donate their inputs
        ts, buffer = copy(self.train_state), copy(self.memory.state)
        scale = self._noise_scale(0, 1)
        jax.block_until_ready(core.act(ts, observations, timestep=0, timesteps=1, episode_starts=starts, scale=scale))
        buffer = replay.add(buffer, batched)
        jax.block_until_ready(core.add_update_act_packed(_pack(ts), buffer, batched, observations, 0, 1, starts,
                                                         scale, metrics=self._tracking))
        self.compile_seconds = time.perf_counter() - start

    @property
    def _tracking(self) -> bool:
        """Whether tracked data is ever written: only then do updates and exploring acts report metrics and are
        rewards tracked."""
        return self.write_interval > 0

    def _noise_scale(self, timestep: int, timesteps: int) -> np.ndarray | None:
        """``exploration_scheduler(timestep, timesteps)`` evaluated on the host (None without a scheduler)."""
        scheduler = self.cfg.exploration_scheduler
        if scheduler is None:
            return None
        value = scheduler(timestep, timesteps)
        try:
            return np.asarray(value, np.float32).reshape(())
        except (TypeError, ValueError) as error:
            raise ValueError(f"exploration_scheduler({timestep}, {timesteps}) returned {value!r}: expected a "
                             "number") from error

    def _place(self, ts: core.TrainState) -> core.TrainState:
        """On the agent's device, or replicated over its mesh."""
        return jax.device_put(ts, self.device) if self.mesh is None else sharding.shard(ts, self.mesh)

    def _drop_prefetch(self) -> None:
        """Forgets the action precomputed by the last update, and takes its randomness (key and noise state, already
        committed) back out of the train state, as if it had never been drawn."""
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            key, noise_state = prefetch[3]
            self.train_state = self.train_state.replace(key=key, noise_state=noise_state)

    def _flush(self) -> None:
        """Adds a recorded transition that no update has consumed yet to the memory."""
        if self._pending is not None:
            self.memory.state = replay.add(self.memory.state, self._pending)
            self._pending = None

    def _track_update(self, metrics: dict) -> None:
        if self._tracking:
            self.tracker.track_metrics({k: v for k, v in metrics.items()
                                        if k in tracking.METRIC_TAGS and not k.endswith("grad_norm")})

    def _after_step(self, timestep: int, timesteps: int) -> None:
        """skrl's base ``post_interaction``: best agent and checkpoint at the checkpoint interval, then a write."""
        if timestep > 1 and self.checkpoint_interval > 0 and timestep % self.checkpoint_interval == 0:
            reward = self.tracker.mean("Reward / Total reward (mean)", -math.inf)
            if reward > self.checkpoint_best["reward"]:
                self._flush()
                self.checkpoint_best.update(timestep=timestep, reward=reward, saved=False,
                                            items=jax.device_get(self._checkpoint_items(include_memory=False)))
            self._flush()
            self.write_checkpoint(timestep=timestep, timesteps=timesteps)
        if timestep > 1 and self.write_interval > 0 and timestep % self.write_interval == 0:
            self.write_tracking_data(timestep=timestep, timesteps=timesteps)

    def _checkpoint_items(self, include_memory: bool) -> dict[str, Any]:
        # What is saved excludes a precomputed action: a run resumed from it acts afresh, so this one does too.
        self._drop_prefetch()
        items = {"train_state": checkpoints.train_state_tree(self.train_state),
                 "agent": {"episode_starts": np.asarray(self._episode_starts, bool)}}
        if include_memory and self.memory is not None and self.memory.state is not None:
            buffer = self.memory.state
            items["memory"] = {"data": buffer.data, "position": buffer.position, "size": buffer.size}
        return items

    def _metadata(self, timestep: int | None) -> dict[str, Any]:
        return {"timestep": timestep, "agent": type(self).__name__}

    def _save_items(self, directory: str, tag: str, items: dict[str, Any], timestep: int | None) -> None:
        if self.cfg.experiment.store_separately:
            modules = {
                "policy": {"params": items["train_state"]["policy_params"]},
                "target_policy": {"params": items["train_state"]["target_policy_params"]},
                "critic": {"params": items["train_state"]["critic_params"]},
                "target_critic": {"params": items["train_state"]["target_critic_params"]},
                "policy_optimizer": {"state": items["train_state"]["policy_opt_state"]},
                "critic_optimizer": {"state": items["train_state"]["critic_opt_state"]},
            }
            for name, item in modules.items():
                target = f"best_{name}" if tag == "best" else f"{name}_{tag}"
                checkpoints.save(os.path.join(directory, target), item, self._metadata(timestep))
        name = "best_agent" if tag == "best" else f"agent_{tag}"
        checkpoints.save(os.path.join(directory, name), items, self._metadata(timestep))
