"""Whole DDPG training runs as one compiled program, for environments written in JAX (gymnax's API).

When the environment itself is a pure JAX function, nothing forces a round trip to the host between steps: acting,
stepping every environment, writing the replay buffer and the DDPG update can all live in one ``jax.lax.scan``
inside one ``jax.jit`` (the "Anakin" architecture of Hessel et al. 2021, arXiv:2104.06272, as in PureJaxRL and
rejax). The run then costs one compilation and no per-step dispatch, and ``jax.vmap`` turns one run into many
(seeds, hyperparameters) executed together.

The loop body per vector step ``t`` (``num_envs`` environments in parallel, one DDPG update per vector step once
``t >= learning_starts``, as in the agent's loop, :class:`ddpgx.DDPG`)::

    actions          = act(train_state, observations, t)                # ddpgx.core: noise, random phase, clipping
    obs', r, term, trunc, info = vmap(env.step)(keys, env_states, actions, env_params)
    replay           = replay.add(replay, Transition(obs, actions, r, info["final_observation"], term))
    train_state      = update_from_replay(train_state, replay)         # ddpgx.core, unchanged

Time limits: gymnax (>= 1.0) ``step`` returns six values ``(obs, state, reward, terminated, truncated, info)`` and
resets finished environments itself, so the returned ``obs`` of a finished episode is already the *next* episode's
first observation. The transition therefore stores ``info["final_observation"]`` (the observation the episode really
ended in) as ``s'``, and only ``terminated`` cuts the bootstrap: an episode cut by its time limit (``truncated``) is
not over for the value function, so ``y = r + gamma Q'(s', mu'(s'))`` (Pardo et al. 2018, arXiv:1712.00378). The
Ornstein-Uhlenbeck exploration state is reset where an episode ends.

The run is split into intervals of ``eval_interval`` steps; at the end of each, the deterministic policy is evaluated
on ``eval_episodes`` fresh environments (inside the same program), and the interval's metrics (training-episode
returns, mean losses and Q statistics over its updates, evaluation returns) are stacked into the output and, when a
``callback`` is given, sent to the host with ``jax.debug.callback`` (one call per interval, so it does not slow the
loop). :class:`ddpgx.cli.jitted_run.ProgressLogger` is such a callback: a progress line and TensorBoard scalars
under skrl's tag names.

Sweeps: every number one may sweep is an array leaf of the train state (see :func:`with_hyperparams`), so
``jax.jit(jax.vmap(train))`` over seeds and hyperparameter values compiles once for the whole grid.

Examples:
  >>> import gymnax, jax, ddpgx
  >>> env, env_params = gymnax.make("Pendulum-v1")
  >>> settings = ddpgx.JittedConfig(timesteps=200, learning_starts=50, memory_size=200, eval_interval=100,
  ...                               eval_episodes=2)
  >>> config = ddpgx.DDPGConfig(batch_size=16, exploration_noise=ddpgx.GaussianNoise(std=0.1))
  >>> train = ddpgx.make_train(env, env_params, config, settings)
  >>> train_state, metrics = jax.jit(train)(jax.random.key(0))
  >>> metrics["eval_return"].shape, int(train_state.step)
  ((2,), 150)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, Mapping, Optional

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from ddpgx.core import ddpg as core
from ddpgx.core import replay
from ddpgx.core.config import DDPGConfig
from ddpgx.core.types import Transition

Metrics = dict[str, jax.Array]

#: Metric keys per interval that :func:`make_train` adds to the update's own (``critic_loss``, ``q_mean``, ...).
LOOP_METRICS = ("timestep", "episode_return", "episode_count", "eval_return", "eval_returns", "update_count", "run")


@dataclasses.dataclass(frozen=True)
class JittedConfig:
    """What the jitted environment loop decides (static: it shapes the compiled program).

    Defaults are skrl's Pendulum-v1 DDPG example (as in :mod:`ddpgx.cli.runner`).

    Attributes:
      timesteps: vector steps of the run (each steps all ``num_envs`` environments once).
      num_envs: environments stepped in parallel (``jax.vmap`` over the environment).
      learning_starts: vector steps that only fill the replay buffer before the first update.
      memory_size: replay capacity in transitions.
      eval_interval: vector steps per interval; metrics, evaluation and callbacks happen once per interval. A
        remainder of ``timesteps`` forms one last, shorter interval.
      eval_episodes: evaluation episodes (run in parallel) at the end of each interval; 0 disables evaluation.
      eval_max_steps: steps per evaluation episode; ``None`` takes ``env_params.max_steps_in_episode``. Episodes still
        running after it are cut there.
    """

    timesteps: int = 15_000
    num_envs: int = 1
    learning_starts: int = 100
    memory_size: int = 15_000
    eval_interval: int = 1_000
    eval_episodes: int = 10
    eval_max_steps: Optional[int] = None

    def __post_init__(self):
        for name in ("timesteps", "num_envs", "memory_size", "eval_interval"):
            _check_int(name, getattr(self, name), 1)
        for name in ("learning_starts", "eval_episodes"):
            _check_int(name, getattr(self, name), 0)
        if self.eval_max_steps is not None:
            _check_int("eval_max_steps", self.eval_max_steps, 1)
        if self.num_envs > self.memory_size:
            raise ValueError(
                f"memory_size={self.memory_size} is invalid: it must hold at least one step of num_envs={self.num_envs}"
            )

    @property
    def intervals(self) -> tuple[int, ...]:
        """The length of each interval, in vector steps."""
        full, rest = divmod(self.timesteps, self.eval_interval)
        return (self.eval_interval,) * full + ((rest,) if rest else ())


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: expected an integer >= {minimum}")


# ----------------------------------------------------------------------------------------------------------------
# Spaces and environment checks


def _to_gymnasium(space: Any, name: str) -> gymnasium.Space:
    """A gymnax space as the gymnasium space ``ddpgx.init`` takes (gymnasium spaces pass through)."""
    if isinstance(space, gymnasium.Space):
        return space
    try:
        from gymnax.environments import spaces as gymnax_spaces
    except ImportError:  # pragma: no cover - an environment object without gymnax installed
        gymnax_spaces = None
    if gymnax_spaces is not None and isinstance(space, gymnax_spaces.Box):
        low = np.broadcast_to(np.asarray(space.low, np.float32), space.shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), space.shape)
        return gymnasium.spaces.Box(low, high, tuple(space.shape), np.float32)
    if gymnax_spaces is not None and isinstance(space, gymnax_spaces.Dict):
        return gymnasium.spaces.Dict({k: _to_gymnasium(v, f"{name}[{k!r}]") for k, v in space.spaces.items()})
    raise ValueError(f"{name}={space!r} is not supported: expected a gymnax or gymnasium Box (or Dict of Box) space")


def spaces_of(env: Any, env_params: Any) -> tuple[gymnasium.Space, gymnasium.Space]:
    """The environment's observation and action spaces, as gymnasium spaces.

    Raises:
      ValueError: if ``env`` lacks the gymnax methods, or a space is not a (Dict of) Box.
    """
    for method in ("reset", "step", "observation_space", "action_space"):
        if not callable(getattr(env, method, None)):
            raise ValueError(f"env={env!r} is not a gymnax-style environment: it has no method {method}()")
    # gymnax builds bounds with jax.numpy; evaluate them eagerly even when called inside a trace.
    with jax.ensure_compile_time_eval():
        return (_to_gymnasium(env.observation_space(env_params), "observation_space"),
                _to_gymnasium(env.action_space(env_params), "action_space"))


def _step(env: Any, env_params: Any, keys: jax.Array, env_states: Any, actions: jax.Array):
    """Steps every environment; returns ``(next_obs, env_states, reward, terminated, truncated, final_obs)``."""
    out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, env_states, actions, env_params)
    if not isinstance(out, tuple) or len(out) != 6:
        got = len(out) if isinstance(out, tuple) else type(out).__name__
        raise ValueError(
            f"env.step returned {got} values; ddpgx needs gymnax >= 1.0's six "
            "(obs, state, reward, terminated, truncated, info), which separate time limits from terminal states"
        )
    next_obs, env_states, reward, terminated, truncated, info = out
    if not isinstance(info, Mapping) or "final_observation" not in info:
        raise ValueError(
            "env.step's info has no 'final_observation': ddpgx needs the observation an episode ended in (gymnax >= "
            "1.0 provides it when it auto-resets) to bootstrap a truncated episode from its true last state"
        )
    n = actions.shape[0]
    reward = jnp.reshape(reward, (n,)).astype(jnp.float32)
    terminated = jnp.reshape(terminated, (n,)).astype(bool)
    truncated = jnp.reshape(truncated, (n,)).astype(bool)
    return next_obs, env_states, reward, terminated, truncated, info["final_observation"]


def _max_steps(env_params: Any, settings: JittedConfig) -> int:
    if settings.eval_max_steps is not None:
        return settings.eval_max_steps
    value = getattr(env_params, "max_steps_in_episode", None)
    try:
        return int(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
        raise ValueError(
            f"env_params.max_steps_in_episode={value!r} cannot fix the evaluation length; set "
            "JittedConfig.eval_max_steps"
        ) from None


# ----------------------------------------------------------------------------------------------------------------
# Hyperparameters as leaves


def _injected(state: Any) -> bool:
    return isinstance(getattr(state, "hyperparams", None), dict) and "learning_rate" in state.hyperparams


def _set_learning_rate(opt_state: Any, value: Any, name: str) -> Any:
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=_injected) if _injected(s)]
    if not found:
        raise ValueError(
            f"{name} cannot be set: the optimizer has no injected learning rate (use the default Adam, or wrap your "
            "optimizer in optax.inject_hyperparams)"
        )

    def replace(s):
        if not _injected(s):
            return s
        old = s.hyperparams["learning_rate"]
        return s._replace(hyperparams={**s.hyperparams, "learning_rate": jnp.asarray(value, jnp.result_type(old))})

    return jax.tree.map(replace, opt_state, is_leaf=_injected)


def _check_number(name: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    # Only concrete Python/NumPy scalars are checked; under vmap/jit the values are tracers.
    if isinstance(value, (numbers.Real, np.ndarray, np.generic)) and not isinstance(value, bool):
        array = np.asarray(value, np.float64)
        ok = np.all(np.isfinite(array)) and np.all(array > low if low_open else array >= low) and np.all(array <= high)
        if not ok:
            bounds = f"{'(' if low_open else '['}{low}, {high}]"
            raise ValueError(f"{name}={value!r} is invalid: expected finite values in {bounds}")
    elif isinstance(value, bool) or not isinstance(value, (jax.Array, numbers.Real)):
        raise ValueError(f"{name}={value!r} is invalid: expected a number or an array of numbers")


def with_hyperparams(
    train_state: core.TrainState,
    *,
    discount_factor: Any = None,
    polyak: Any = None,
    learning_rate: Any = None,
    policy_learning_rate: Any = None,
    critic_learning_rate: Any = None,
    noise: Optional[Mapping[str, Any]] = None,
) -> core.TrainState:
    """Returns ``train_state`` with new values for the numbers one may sweep; ``None`` keeps a value.

    The values become array leaves of the train state (never static configuration), so a function of them traced once
    under ``jax.jit``/``jax.vmap`` serves every value without recompiling. Python numbers are validated here; traced
    values (inside ``vmap``/``jit``) cannot be.

    Args:
      train_state: the state to change (not modified).
      discount_factor: gamma, in [0, 1].
      polyak: the target-network step, in [0, 1] (skrl's 0.005 meaning).
      learning_rate: both networks' Adam step size (> 0); ``policy_learning_rate``/``critic_learning_rate`` set one.
      noise: fields of the exploration noise to replace, e.g. ``{"std": 0.2}`` for ``GaussianNoise`` or
        ``{"sigma": 0.2}`` / ``{"base_scale": 0.5}`` for ``OrnsteinUhlenbeckNoise``.

    Raises:
      ValueError: for an out-of-range number, a learning rate on an optimizer without an injected one (or driven by a
        schedule), or a noise field the configured noise does not have.

    Examples:
      >>> import gymnasium, jax, jax.numpy as jnp, ddpgx
      >>> space = gymnasium.spaces.Box(-1.0, 1.0, (1,))
      >>> ts = ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(), space, space)
      >>> ts = ddpgx.with_hyperparams(ts, discount_factor=0.9, learning_rate=3e-4)
      >>> round(float(ts.hyperparams.discount_factor), 3), round(float(ddpgx.jitted.learning_rates(ts)[0]), 6)
      (0.9, 0.0003)
    """
    if not isinstance(train_state, core.TrainState):
        raise ValueError(f"train_state must be a ddpgx.TrainState, got {type(train_state).__name__}")
    hp = train_state.hyperparams
    changes: dict[str, Any] = {}
    if discount_factor is not None:
        _check_number("discount_factor", discount_factor, 0.0, 1.0)
        hp = hp._replace(discount_factor=jnp.asarray(discount_factor, jnp.float32))
    if polyak is not None:
        _check_number("polyak", polyak, 0.0, 1.0)
        hp = hp._replace(polyak=jnp.asarray(polyak, jnp.float32))
    changes["hyperparams"] = hp
    rates = {"policy": policy_learning_rate, "critic": critic_learning_rate}
    if learning_rate is not None:
        if policy_learning_rate is not None or critic_learning_rate is not None:
            raise ValueError("pass learning_rate, or policy_learning_rate/critic_learning_rate, not both")
        rates = {"policy": learning_rate, "critic": learning_rate}
    schedules = train_state.spec.config.learning_rates
    for (name, value), schedule in zip(rates.items(), schedules, strict=True):
        if value is None:
            continue
        label = f"{name}_learning_rate" if learning_rate is None else "learning_rate"
        _check_number(label, value, 0.0, math.inf, low_open=True)
        if callable(schedule):
            raise ValueError(
                f"{label} cannot be set: config.learning_rate is a schedule ({schedule!r}), recomputed at every step"
            )
        field = f"{name}_opt_state"
        changes[field] = _set_learning_rate(getattr(train_state, field), value, label)
    if noise is not None:
        current = train_state.noise
        if current is None or not dataclasses.is_dataclass(current):
            raise ValueError(
                f"noise={dict(noise)!r} cannot be set: the exploration noise is {current!r} (set a GaussianNoise or "
                "OrnsteinUhlenbeckNoise in the config; a distrax distribution is replaced through train_state.noise)"
            )
        fields = {f.name for f in dataclasses.fields(current)}
        for key, value in noise.items():
            if key not in fields:
                raise ValueError(
                    f"noise field {key!r} is invalid: {type(current).__name__} has fields {sorted(fields)}"
                )
            if key != "mean":
                _check_number(f"noise.{key}", value, 0.0, math.inf)
        changes["noise"] = current.replace(**{k: jnp.asarray(v, jnp.float32) for k, v in noise.items()})
    return train_state.replace(**changes)


def learning_rates(train_state: core.TrainState) -> tuple[Optional[jax.Array], Optional[jax.Array]]:
    """The injected ``(policy, critic)`` learning rates of a train state (``None`` where an optimizer has none)."""
    return (core._learning_rate(train_state.policy_opt_state), core._learning_rate(train_state.critic_opt_state))


# ----------------------------------------------------------------------------------------------------------------
# The compiled run


def init(
    key: jax.Array,
    env: Any,
    env_params: Any,
    config: DDPGConfig,
    settings: JittedConfig = JittedConfig(),
    **init_kwargs: Any,
) -> core.TrainState:
    """:func:`ddpgx.init` with the spaces of a gymnax environment and ``num_envs`` from ``settings``.

    ``init_kwargs`` go to :func:`ddpgx.init` (``policy``, ``critic``, optimizers).
    """
    if not isinstance(settings, JittedConfig):
        raise ValueError(f"settings={settings!r} is invalid: expected a ddpgx.JittedConfig")
    observation_space, action_space = spaces_of(env, env_params)
    return core.init(key, config, observation_space, action_space, num_envs=settings.num_envs, **init_kwargs)


def evaluate(
    train_state: core.TrainState,
    key: jax.Array,
    env: Any,
    env_params: Any,
    episodes: int = 10,
    max_steps: Optional[int] = None,
) -> jax.Array:
    """Returns ``[episodes]`` of the deterministic policy (no exploration noise), all episodes run in parallel.

    Jittable. Each episode is run for ``max_steps`` steps (default ``env_params.max_steps_in_episode``) and its
    return is summed until it first ends.
    """
    _check_int("episodes", episodes, 1)
    steps = _max_steps(env_params, JittedConfig(eval_max_steps=max_steps))
    reset_key, key = jax.random.split(key)
    obs, env_states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, episodes), env_params)

    def step(carry, step_key):
        obs, env_states, total, alive = carry
        actions, _, _, _ = core._act(train_state, obs, 0, 1, False, None)
        obs, env_states, reward, terminated, truncated, _ = _step(
            env, env_params, jax.random.split(step_key, episodes), env_states, actions
        )
        total = total + jnp.where(alive, reward, 0.0)
        return (obs, env_states, total, alive & ~(terminated | truncated)), None

    init = (obs, env_states, jnp.zeros(episodes, jnp.float32), jnp.ones(episodes, bool))
    (_, _, total, _), _ = jax.lax.scan(step, init, jax.random.split(key, steps))
    return total


def make_train(
    env: Any,
    env_params: Any,
    config: DDPGConfig,
    settings: JittedConfig = JittedConfig(),
    *,
    callback: Optional[Callable[[dict[str, np.ndarray]], None]] = None,
    mesh: Any = None,
    **init_kwargs: Any,
) -> Callable[..., tuple[core.TrainState, Metrics]]:
    """Builds ``train(key, hyperparams=None, run=0) -> (train_state, metrics)``, a pure function of arrays.

    ``train`` initialises a train state (:func:`init`), applies ``hyperparams`` (a dict of :func:`with_hyperparams`
    keyword arguments, whose values may be traced), and runs the whole training: ``settings.timesteps`` vector steps
    of act, environment step, replay add and (from ``learning_starts`` on) one :func:`ddpgx.update_from_replay`, with
    an evaluation after each interval. Wrap it in ``jax.jit``; ``jax.vmap`` it over keys and hyperparameter arrays
    to run many trainings as one program.

    Args:
      env: a gymnax environment (``step`` returning six values).
      env_params: its parameters.
      config: the algorithm's configuration.
      settings: the loop's configuration.
      callback: host function called once per interval with that interval's metrics as NumPy values (under
        ``vmap``, once per run, told apart by ``metrics["run"]``), e.g. a :class:`ddpgx.cli.jitted_run.ProgressLogger`.
      mesh: data parallelism inside the program (:mod:`ddpgx.core.sharding`): a mesh with a ``"data"`` axis or a device
        count. The train state is replicated, the replay storage and every minibatch split over the devices.
      init_kwargs: passed to :func:`ddpgx.init` (custom ``policy``/``critic`` modules, optimizers).

    Returns:
      ``train``. Its ``metrics`` is a dict of arrays with a leading ``[intervals]`` axis: ``timestep`` (vector steps
      done at the interval's end), ``episode_return`` (mean return of the training episodes that ended in the
      interval; NaN if none did) and ``episode_count``, ``eval_return`` (mean over the evaluation episodes; NaN
      without evaluation) and ``eval_returns`` ``[intervals, eval_episodes]``, the update's metrics over the interval's
      updates (``critic_loss``, ``policy_loss``, ``q_mean/min/max``, ``target_mean/min/max``, learning rates;
      ``*_min`` the minimum, ``*_max`` the maximum, the others the mean, as skrl's tracking reduces them; NaN in an
      interval without updates) with ``update_count``, and ``run``.

    Raises:
      ValueError: for a bad environment, configuration or settings (at build time, naming the value).
    """
    if not isinstance(config, DDPGConfig):
        raise ValueError(f"config={config!r} is invalid: expected a ddpgx.DDPGConfig")
    if not isinstance(settings, JittedConfig):
        raise ValueError(f"settings={settings!r} is invalid: expected a ddpgx.JittedConfig")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback={callback!r} is invalid: expected a callable or None")
    observation_space, action_space = spaces_of(env, env_params)  # validated now, with a clear message
    if mesh is not None:
        from ddpgx.core import sharding

        mesh = sharding.make_mesh(mesh) if isinstance(mesh, int) else sharding._check_mesh(mesh)
        devices = mesh.shape[core.DATA_AXIS]
        for name, value in (("batch_size", config.batch_size), ("memory_size", settings.memory_size)):
            if value % devices:
                raise ValueError(f"{name}={value} cannot be split over {devices} devices: use a multiple of {devices}")
    eval_steps = _max_steps(env_params, settings) if settings.eval_episodes else 0
    n = settings.num_envs
    hyperparam_names = {"discount_factor", "polyak", "learning_rate", "policy_learning_rate",
                        "critic_learning_rate", "noise"}

    def train(key: jax.Array, hyperparams: Optional[Mapping[str, Any]] = None, run: Any = 0):
        init_key, env_key, eval_key = jax.random.split(key, 3)
        train_state = core.init(init_key, config, observation_space, action_space, num_envs=n, **init_kwargs)
        if hyperparams:
            unknown = set(hyperparams) - hyperparam_names
            if unknown:
                raise ValueError(f"hyperparams has unknown keys {sorted(unknown)}; expected some of "
                                 f"{sorted(hyperparam_names)}")
            train_state = with_hyperparams(train_state, **hyperparams)
        reset_key, env_key = jax.random.split(env_key)
        obs, env_states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, n), env_params)
        example = Transition(
            observations=jax.tree.map(lambda x: jnp.zeros(x.shape[1:], jnp.float32), obs),
            actions=jnp.zeros(train_state.spec.action.shape, jnp.float32),
            rewards=jnp.zeros((), jnp.float32),
            next_observations=jax.tree.map(lambda x: jnp.zeros(x.shape[1:], jnp.float32), obs),
            terminated=jnp.zeros((), bool),
        )
        buffer = replay.init(settings.memory_size, example)
        if mesh is not None:  # replicated train state, replay storage split over the devices
            train_state = core._replicated(train_state.replace(spec=dataclasses.replace(train_state.spec, mesh=mesh)))
            buffer = buffer.replace(data=jax.lax.with_sharding_constraint(
                buffer.data, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(core.DATA_AXIS))))
        update_shapes = jax.eval_shape(lambda ts, b: core.update_from_replay(ts, b)[1], train_state, buffer)
        zero_metrics = {k: jnp.zeros(s.shape, s.dtype) for k, s in update_shapes.items()}

        def env_step(carry, t):
            ts, buffer, env_states, obs, starts, env_key, running, ep_sum, ep_count, upd_sum, upd_count = carry
            actions, act_key, noise_state, _ = core._act(ts, obs, t, settings.timesteps, True, starts)
            ts = ts.replace(key=act_key, noise_state=noise_state)
            env_key, step_key = jax.random.split(env_key)
            next_obs, env_states, reward, terminated, truncated, final_obs = _step(
                env, env_params, jax.random.split(step_key, n), env_states, actions
            )
            transition = Transition(
                observations=jax.tree.map(lambda x: x.astype(jnp.float32), obs),
                actions=actions,
                rewards=reward,
                # The observation the episode really reached: gymnax already replaced next_obs by a reset one.
                next_observations=jax.tree.map(lambda x: x.astype(jnp.float32), final_obs),
                # Only termination cuts the target; truncation (a time limit) bootstraps.
                terminated=terminated,
            )
            buffer = replay.add(buffer, transition)
            ts, metrics = jax.lax.cond(
                t >= settings.learning_starts,
                lambda ts: core.update_from_replay(ts, buffer),
                lambda ts: (ts, zero_metrics),
                ts,
            )
            learned = t >= settings.learning_starts
            upd_sum = {k: _accumulate(k, upd_sum[k], metrics[k], learned) for k in upd_sum}
            done = terminated | truncated
            running = running + reward
            ep_sum = ep_sum + jnp.sum(jnp.where(done, running, 0.0))
            ep_count = ep_count + jnp.sum(done)
            running = jnp.where(done, 0.0, running)
            carry = (ts, buffer, env_states, next_obs, done, env_key, running, ep_sum, ep_count, upd_sum,
                     upd_count + learned.astype(jnp.float32))
            return carry, None

        def run_interval(carry, start, length):
            ts, buffer, env_states, obs, starts, env_key, running, eval_key = carry
            empty = {k: jnp.asarray(_EMPTY[_reduction(k)], jnp.float32) for k in zero_metrics}
            inner = (ts, buffer, env_states, obs, starts, env_key, running, jnp.zeros(()), jnp.zeros((), jnp.int32),
                     empty, jnp.zeros(()))
            inner, _ = jax.lax.scan(env_step, inner, start + jnp.arange(length))
            ts, buffer, env_states, obs, starts, env_key, running, ep_sum, ep_count, upd_sum, upd_count = inner
            metrics = {k: _finish(k, v, upd_count) for k, v in upd_sum.items()}
            eval_key, this_eval = jax.random.split(eval_key)
            if settings.eval_episodes:
                returns = evaluate(ts, this_eval, env, env_params, settings.eval_episodes, eval_steps)
                eval_return = jnp.mean(returns)
            else:
                returns, eval_return = jnp.zeros((0,), jnp.float32), jnp.asarray(jnp.nan, jnp.float32)
            metrics.update(
                timestep=start + length,
                episode_return=jnp.where(ep_count > 0, ep_sum / jnp.maximum(ep_count, 1), jnp.nan),
                episode_count=ep_count,
                eval_return=eval_return,
                eval_returns=returns,
                update_count=upd_count.astype(jnp.int32),
                run=jnp.asarray(run, jnp.int32),
            )
            if callback is not None:
                jax.debug.callback(_host_call(callback), metrics)
            return (ts, buffer, env_states, obs, starts, env_key, running, eval_key), metrics

        carry = (train_state, buffer, env_states, obs, jnp.ones(n, bool), env_key, jnp.zeros(n, jnp.float32),
                 eval_key)
        intervals = settings.intervals
        full = sum(1 for length in intervals if length == settings.eval_interval)
        starts = jnp.arange(full, dtype=jnp.int32) * settings.eval_interval
        carry, metrics = jax.lax.scan(lambda c, s: run_interval(c, s, settings.eval_interval), carry, starts)
        if len(intervals) > full:  # one shorter interval for the remainder
            carry, last = run_interval(carry, jnp.asarray(full * settings.eval_interval, jnp.int32), intervals[-1])
            metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), metrics, last)
        return carry[0], metrics

    return train


# How a metric is reduced over an interval's updates: skrl's rule (ddpgx.tracking.reduce_by_tag) for its tags,
# "(min)" tags keep the minimum, "(max)" the maximum, others the mean.
_EMPTY = {"mean": 0.0, "min": math.inf, "max": -math.inf}


def _reduction(key: str) -> str:
    return "min" if key.endswith("_min") else "max" if key.endswith("_max") else "mean"


def _accumulate(key: str, total: jax.Array, value: jax.Array, learned: jax.Array) -> jax.Array:
    value = value.astype(jnp.float32)
    how = _reduction(key)
    if how == "mean":
        return total + jnp.where(learned, value, 0.0)
    combined = jnp.minimum(total, value) if how == "min" else jnp.maximum(total, value)
    return jnp.where(learned, combined, total)


def _finish(key: str, total: jax.Array, count: jax.Array) -> jax.Array:
    if _reduction(key) == "mean":
        return jnp.where(count > 0, total / jnp.maximum(count, 1.0), jnp.nan)
    return jnp.where(count > 0, total, jnp.nan)


def _host_call(callback: Callable[[dict[str, np.ndarray]], None]) -> Callable[[dict[str, Any]], None]:
    def call(metrics):
        callback({k: np.asarray(v) for k, v in metrics.items()})

    return call


# ----------------------------------------------------------------------------------------------------------------
# Environments


def make_env(env_id: str) -> tuple[Any, Any]:
    """``gymnax.make(env_id)``; ``env_id`` may carry a ``gymnax:`` prefix (``gymnax:Pendulum-v1``).

    Raises:
      ValueError: if gymnax is not installed or does not know ``env_id``.
    """
    if not isinstance(env_id, str):
        raise ValueError(f"env_id={env_id!r} is invalid: expected a string such as 'gymnax:Pendulum-v1'")
    name = env_id.removeprefix("gymnax:")
    try:
        import gymnax
    except ImportError:
        raise ValueError(f"env_id={env_id!r} needs gymnax: pip install 'ddpgx[gymnax]'") from None
    try:
        return gymnax.make(name)
    except (ValueError, KeyError) as error:
        raise ValueError(f"env_id={env_id!r} is not a gymnax environment: {error}") from None


__all__ = [
    "JittedConfig",
    "LOOP_METRICS",
    "evaluate",
    "init",
    "learning_rates",
    "make_env",
    "make_train",
    "spaces_of",
    "with_hyperparams",
]
