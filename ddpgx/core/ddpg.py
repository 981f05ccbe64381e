"""DDPG as pure functions: ``init``, ``act``, ``update`` and ``update_from_replay``.

Deep Deterministic Policy Gradient (Lillicrap et al. 2015, arXiv:1509.02971) learns a deterministic policy
``mu_theta(s)`` and a critic ``Q_phi(s, a)`` off-policy. Each gradient step (Algorithm 1):

1. target ``y = r + gamma (1 - terminated) Q'(s', mu'(s'))`` from the target networks, held constant;
2. one Adam step on the critic's mean squared TD error;
3. one Adam step on the policy's loss ``-mean Q(s, mu(s))``, using the critic just updated (the order of skrl and
   SB3);
4. Polyak averaging of both target networks, ``theta' <- polyak theta + (1 - polyak) theta'``.

``update`` runs ``gradient_steps`` of these as one ``lax.scan`` inside one jitted call, with the train state
donated, and returns a flat dict of metric arrays (no host synchronisation). Everything ``update`` needs is in the
:class:`TrainState`, so ``jax.lax.scan(ddpgx.update, train_state, batches)`` and
``jax.vmap(lambda k: ddpgx.init(k, config, obs_space, act_space))(keys)`` work as they are.

Examples:
  >>> import gymnasium, jax, jax.numpy as jnp, ddpgx
  >>> env = gymnasium.make("Pendulum-v1")
  >>> config = ddpgx.DDPGConfig(batch_size=4, exploration_noise=ddpgx.GaussianNoise(std=0.1))
  >>> ts = ddpgx.init(jax.random.key(0), config, env.observation_space, env.action_space)
  >>> actions, ts, info = ddpgx.act(ts, jnp.zeros((1, 3)), timestep=0, timesteps=100)
  >>> actions.shape
  (1, 1)
  >>> batch = ddpgx.Transition(jnp.zeros((4, 3)), jnp.zeros((4, 1)), jnp.ones(4), jnp.zeros((4, 3)),
  ...                          jnp.zeros(4, bool))
  >>> ts, metrics = ddpgx.update(ts, batch)
  >>> sorted(metrics)[:3]
  ['critic_learning_rate', 'critic_loss', 'policy_learning_rate']
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from ddpgx.core import losses, networks, packing, replay, scaler, spaces, threefry, xla_cpu
from ddpgx.core import noise as noise_lib
from ddpgx.core.config import DDPGConfig
from ddpgx.core.types import Transition
from ddpgx.core.validation import check_numeric


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """The static part of a train state: configuration, layouts, networks and optimizers (all hashable)."""

    config: DDPGConfig
    observation: spaces.InputLayout
    state: Optional[spaces.InputLayout]  # None without a state space
    action: spaces.ActionLayout
    policy: Any  # a flax module, or anything with its init/apply (e.g. ddpgx.models.PolicyAdapter)
    critic: Any
    policy_optimizer: optax.GradientTransformation
    critic_optimizer: optax.GradientTransformation
    mesh: Optional[jax.sharding.Mesh] = None  # data-parallel mesh (axis "data"); set by ddpgx.sharding.shard


class Hyperparams(NamedTuple):
    """Numbers one may sweep with ``jax.vmap`` or change between updates without recompiling."""

    discount_factor: jax.Array  # [] float32
    polyak: jax.Array  # [] float32


@struct.dataclass
class TrainState:
    """Everything DDPG's pure functions read and write. Replace fields with ``train_state.replace(...)``."""

    policy_params: Any  # flax params of mu_theta
    critic_params: Any  # flax params of Q_phi
    target_policy_params: Any  # mu_theta'
    target_critic_params: Any  # Q_phi'
    policy_opt_state: Any  # optax state (learning rate at .hyperparams["learning_rate"] for the defaults)
    critic_opt_state: Any
    observation_stats: scaler.ScalerState  # running statistics of observations, [obs_size]
    state_stats: Optional[scaler.ScalerState]  # of states, [state_size]; None without a state space
    noise: Any  # exploration noise parameters (a pytree) or None
    noise_state: jax.Array  # [num_envs, action_size] float32, Ornstein-Uhlenbeck process value
    hyperparams: Hyperparams
    step: jax.Array  # [] int32, gradient steps taken
    key: jax.Array  # PRNG key, never used before being split
    spec: AgentSpec = struct.field(pytree_node=False)


@functools.lru_cache(maxsize=None)
def adam(learning_rate: Any, grad_norm_clip: float) -> optax.GradientTransformation:
    """Adam with the learning rate injected as a state leaf, after optional global-norm gradient clipping.

    Cached, so train states made from equal configurations share one optimizer object (and one compilation).
    """
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)
    if grad_norm_clip > 0:
        opt = optax.chain(optax.clip_by_global_norm(grad_norm_clip), opt)
    return opt


def init(
    key: jax.Array,
    config: DDPGConfig,
    observation_space: gymnasium.Space,
    action_space: gymnasium.Space,
    *,
    state_space: Optional[gymnasium.Space] = None,
    policy: Optional[nn.Module] = None,
    critic: Optional[nn.Module] = None,
    policy_optimizer: Optional[optax.GradientTransformation] = None,
    critic_optimizer: Optional[optax.GradientTransformation] = None,
    num_envs: int = 1,
    policy_params: Any = None,
    critic_params: Any = None,
) -> TrainState:
    """Creates a train state: networks, their targets (copies), optimizers, statistics and noise.

    Args:
      key: PRNG key.
      config: the static configuration.
      observation_space: a ``Box`` or ``Dict``-of-``Box`` gymnasium space (Dict observations are flattened).
      action_space: a bounded ``Box``.
      state_space: optional privileged critic input (skrl 2.x ``states``), ``Box`` or ``Dict``.
      policy: a flax module ``observations [B, obs_size] -> actions [B, *action_shape]``; defaults to
        :class:`ddpgx.core.networks.DeterministicPolicy` (400-300 ReLU, tanh scaled to the bounds).
      critic: a flax module ``(inputs [B, n], actions [B, action_size]) -> q [B]``; defaults to
        :class:`ddpgx.core.networks.QFunction`.
      policy_optimizer: an optax transformation replacing the policy's default Adam built from
        ``config.learning_rate`` and ``config.grad_norm_clip``.
      critic_optimizer: the same for the critic.
      num_envs: environments acting in parallel (the Ornstein-Uhlenbeck state has one row per environment).
      policy_params: parameters the policy starts from (e.g. a model's own, already initialised) instead of an
        initialisation from ``key``; the train state holds copies (updates donate their buffers).
      critic_params: the same for the critic. Given parameters are checked against the network's (tree structure,
        shapes and dtypes) by tracing its ``init``, which compiles and runs nothing.

    Raises:
      ValueError: for an unsupported space, a bad ``num_envs`` or a network whose output has the wrong shape.
    """
    if not isinstance(config, DDPGConfig):
        raise ValueError(f"config={config!r} is invalid: expected a ddpgx.DDPGConfig")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} is invalid: expected an integer >= 1")
    obs_layout = spaces.input_layout(observation_space, "observation_space")
    state_layout = None if state_space is None else spaces.input_layout(state_space, "state_space")
    act_layout = spaces.action_layout(action_space)
    if policy is None:
        policy = networks.DeterministicPolicy(act_layout.low, act_layout.high, act_layout.shape)
    if critic is None:
        critic = networks.QFunction()
    for name, module in (("policy", policy), ("critic", critic)):
        if not (callable(getattr(module, "init", None)) and callable(getattr(module, "apply", None))):
            raise ValueError(
                f"{name}={module!r} is invalid: expected a flax.linen.Module, or an object with flax's init and apply "
                "(or None for the default)"
            )
        try:
            hash(module)
        except TypeError as error:
            raise ValueError(
                f"{name}={type(module).__name__} is unhashable ({error}); jit needs hashable networks: wrap it in "
                "ddpgx.models.PolicyAdapter / CriticAdapter, or give it hashable attributes"
            ) from error
    for name, opt in (("policy_optimizer", policy_optimizer), ("critic_optimizer", critic_optimizer)):
        if opt is not None and not isinstance(opt, optax.GradientTransformation):
            raise ValueError(f"{name}={opt!r} is invalid: expected an optax.GradientTransformation (or None)")
    policy_lr, critic_lr = config.learning_rates
    spec = AgentSpec(
        config=config,
        observation=obs_layout,
        state=state_layout,
        action=act_layout,
        policy=policy,
        critic=critic,
        policy_optimizer=policy_optimizer or adam(policy_lr, float(config.grad_norm_clip)),
        critic_optimizer=critic_optimizer or adam(critic_lr, float(config.grad_norm_clip)),
    )

    key, policy_key, critic_key = jax.random.split(key, 3)
    obs = jnp.zeros((1, obs_layout.size), jnp.float32)
    critic_inputs = obs if state_layout is None else _critic_inputs(
        critic, obs, jnp.zeros((1, state_layout.size), jnp.float32))
    actions = jnp.zeros((1, act_layout.size), jnp.float32)
    policy_params = _start_params("policy", policy_params, policy, policy_key, obs)
    critic_params = _start_params("critic", critic_params, critic, critic_key, critic_inputs, actions)
    # Validates output shapes now, with a clear message, by tracing only (nothing is compiled or run).
    jax.eval_shape(functools.partial(_policy_actions, spec), policy_params, obs)
    jax.eval_shape(functools.partial(_critic_values, spec), critic_params, critic_inputs, actions)

    return TrainState(
        policy_params=policy_params,
        critic_params=critic_params,
        # Distinct buffers, so that donating the train state never donates one buffer twice.
        target_policy_params=jax.tree.map(jnp.copy, policy_params),
        target_critic_params=jax.tree.map(jnp.copy, critic_params),
        policy_opt_state=spec.policy_optimizer.init(policy_params),
        critic_opt_state=spec.critic_optimizer.init(critic_params),
        observation_stats=scaler.init(obs_layout.size),
        state_stats=None if state_layout is None else scaler.init(state_layout.size),
        # Noise parameters become float32 leaves, so they can be swept with vmap like the other hyperparameters.
        noise=jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), config.exploration_noise),
        noise_state=noise_lib.init_state(num_envs, act_layout.size),
        hyperparams=Hyperparams(
            discount_factor=jnp.asarray(config.discount_factor, jnp.float32),
            polyak=jnp.asarray(config.polyak, jnp.float32),
        ),
        step=jnp.zeros((), jnp.int32),
        key=key,
        spec=spec,
    )


@functools.partial(jax.jit, static_argnums=0)
def _init_network(module: Any, key: jax.Array, *inputs: jax.Array) -> Any:
    """``module.init`` as one compiled program, cached across equal (hashable) modules."""
    return module.init(key, *inputs)


def _start_params(name: str, given: Any, module: Any, key: jax.Array, *inputs: jax.Array) -> Any:
    """A network's initial parameters: ``module.init`` as one compiled program (instead of an eager dispatch, and
    compilation, per layer operation), or copies of the ``given`` ones once checked against what ``init`` would
    return (traced only)."""
    if given is None:
        return _init_network(module, key, *inputs)
    expected = jax.eval_shape(module.init, key, *inputs)
    if jax.tree.structure(given) != jax.tree.structure(expected):
        raise ValueError(f"{name}_params do not match the {name}'s parameters: expected the tree "
                         f"{jax.tree.structure(expected)}, got {jax.tree.structure(given)}")
    for (path, leaf), want in zip(jax.tree_util.tree_flatten_with_path(given)[0], jax.tree.leaves(expected),
                                  strict=True):
        got = (tuple(np.shape(leaf)), np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype)))
        if got != (tuple(want.shape), np.dtype(want.dtype)):
            raise ValueError(f"{name}_params{jax.tree_util.keystr(path)} has shape {got[0]} and dtype {got[1]}, the "
                             f"{name} expects {tuple(want.shape)} and {np.dtype(want.dtype)}")
    return jax.tree.map(jnp.copy, given)


def _policy_actions(spec: AgentSpec, params: Any, obs: jax.Array) -> jax.Array:
    """The policy's actions for preprocessed observations ``[B, obs_size]``, flattened to ``[B, action_size]``."""
    actions = spec.policy.apply(params, obs)
    expected = (obs.shape[0],) + spec.action.shape
    if actions.shape not in (expected, (obs.shape[0], spec.action.size)):
        raise ValueError(f"the policy returned actions of shape {actions.shape}, expected {expected}")
    return actions.reshape(obs.shape[0], spec.action.size).astype(jnp.float32)


def _critic_inputs(critic: Any, observations: jax.Array, states: jax.Array) -> jax.Array:
    """What the critic reads when there is a state space: the states, or, for a critic that declares
    ``observations_and_states = True`` (skrl 2.x's critics, through :class:`ddpgx.models.CriticAdapter`), the
    observations and states concatenated on the last axis (each standardised with its own statistics)."""
    if getattr(critic, "observations_and_states", False):
        return jnp.concatenate([observations, states], axis=-1)
    return states


def _critic_values(spec: AgentSpec, params: Any, inputs: jax.Array, actions: jax.Array) -> jax.Array:
    """The critic's values ``[B]`` (a trailing dimension of 1 is accepted)."""
    q = spec.critic.apply(params, inputs, actions)
    if q.shape not in ((inputs.shape[0],), (inputs.shape[0], 1)):
        raise ValueError(f"the critic returned values of shape {q.shape}, expected ({inputs.shape[0]},)")
    return q.reshape(inputs.shape[0])


def _standardize(config: DDPGConfig, stats: scaler.ScalerState, x: jax.Array, enabled: bool) -> jax.Array:
    if not enabled:
        return x
    return scaler.standardize(stats, x, config.preprocessor_epsilon, config.preprocessor_clip)


def act(
    train_state: TrainState,
    observations: Any,
    *,
    timestep: Any = 0,
    timesteps: Any = 1,
    explore: bool = True,
    episode_starts: Optional[jax.Array] = None,
    scale: Any = None,
) -> tuple[jax.Array, TrainState, dict[str, jax.Array]]:
    """Actions for a batch of observations ``[num_envs, ...]`` (an array, or a dict for a Dict space).

    With ``explore=False``: the deterministic policy ``mu(s)`` clipped to the bounds; the train state is returned
    unchanged. With ``explore=True``: where ``timestep < config.random_timesteps``, actions uniform in the bounds;
    otherwise ``mu(s) + scale * noise`` with ``scale = exploration_scheduler(timestep, timesteps)`` (1 without a
    scheduler), clipped to the bounds. ``episode_starts`` (bool ``[num_envs]``) zeros the Ornstein-Uhlenbeck state of
    environments whose episode starts at this step, before the noise is drawn. ``scale`` (a number or [] array),
    when given, is the noise scale in place of ``exploration_scheduler``: a caller whose scheduler is plain Python
    (skrl's ``max(1 - t / T, 1e-2)``) evaluates it on the host and passes the value in, without recompiling.

    Returns:
      ``(actions [num_envs, *action_shape], train_state, info)``, ``info["noise"]`` the scaled noise added
      (zeros where no noise applied) and ``info["noise_max/min/mean"]`` its statistics.
    """
    check_numeric(observations, "observations")
    with threefry.unrolled():
        actions, key, noise_state, info = _act(train_state, observations, timestep, timesteps, explore,
                                               episode_starts, scale)
    return actions, train_state.replace(key=key, noise_state=noise_state), info


@functools.partial(jax.jit, static_argnums=(4,))
def _act(train_state, observations, timestep, timesteps, explore, episode_starts, scale=None):
    """The jitted body of :func:`act`. It returns only what changes (key and noise state), not the whole train
    state: a jitted function's outputs are fresh buffers, and copying all parameters at each step costs more than
    acting."""
    spec = train_state.spec
    config = spec.config
    key, noise_state = train_state.key, train_state.noise_state
    obs = spaces.flatten(spec.observation, observations, "observations")
    if obs.ndim != 2:
        raise ValueError(f"observations must have one batch dimension [num_envs, ...]; got flattened shape {obs.shape}")
    obs = _standardize(config, train_state.observation_stats, obs, config.observation_preprocessor)
    actions = _policy_actions(spec, train_state.policy_params, obs)
    low = jnp.asarray(spec.action.low, jnp.float32)
    high = jnp.asarray(spec.action.high, jnp.float32)
    applied = jnp.zeros_like(actions)

    if explore:
        key, noise_key, uniform_key = jax.random.split(key, 3)
        if episode_starts is not None:
            if jnp.shape(episode_starts) != (obs.shape[0],):
                raise ValueError(
                    f"episode_starts has shape {jnp.shape(episode_starts)}, expected ({obs.shape[0]},): one flag per "
                    "environment"
                )
            noise_state = noise_lib.reset(noise_state, jnp.asarray(episode_starts, bool))
        random_phase = jnp.asarray(timestep) < config.random_timesteps
        if train_state.noise is not None:
            values, new_noise_state = noise_lib.sample(train_state.noise, noise_state, noise_key, actions.shape)
            if scale is not None:
                values = values * jnp.asarray(scale, jnp.float32)
            elif config.exploration_scheduler is not None:
                values = values * jnp.asarray(config.exploration_scheduler(timestep, timesteps), jnp.float32)
            # skrl draws no noise while acting randomly; the OU process is held still there.
            applied = jnp.where(random_phase, 0.0, values)
            noise_state = jnp.where(random_phase, noise_state, new_noise_state)
            actions = actions + applied
        if config.random_timesteps > 0:
            uniform = jax.random.uniform(uniform_key, actions.shape, jnp.float32, low, high)
            actions = jnp.where(random_phase, uniform, actions)

    actions = jnp.clip(actions, low, high)
    info = {"noise": applied, "noise_max": jnp.max(applied), "noise_min": jnp.min(applied),
            "noise_mean": jnp.mean(applied)}
    return actions.reshape((obs.shape[0],) + spec.action.shape), key, noise_state, info


def _prepare_batch(spec: AgentSpec, batch: Transition) -> Transition:
    """Validates a batch and returns it flattened, float32, with leading ``[gradient_steps, batch]``."""
    if not isinstance(batch, Transition):
        raise ValueError(f"batch must be a ddpgx.Transition, got {type(batch).__name__}")
    steps = spec.config.gradient_steps
    observations, lead = spaces.flatten_with_batch_shape(spec.observation, batch.observations, "batch.observations")
    if len(lead) == 1 and steps != 1:
        raise ValueError(
            f"gradient_steps={steps} needs a batch with leading dimensions [{steps}, batch_size] (one minibatch "
            f"per step), got observations with batch shape {lead}; or use ddpgx.update_from_replay"
        )
    if len(lead) == 2 and lead[0] != steps:
        raise ValueError(f"the batch has {lead[0]} minibatches (leading dimension) but gradient_steps={steps}")
    if len(lead) not in (1, 2) or lead[-1] < 1:
        raise ValueError(f"batch.observations has batch shape {lead}, expected [batch] or [gradient_steps, batch]")

    def to_steps(x):
        return x.reshape((steps, lead[-1]) + x.shape[len(lead) :])

    def vector(x, name):
        x = jnp.asarray(x)
        if x.shape not in (lead, lead + (1,)):
            raise ValueError(f"batch.{name} has shape {x.shape}, expected {lead} or {lead + (1,)}")
        return to_steps(x.reshape(lead).astype(jnp.float32))

    def inputs(x, layout, name):
        flat, got = spaces.flatten_with_batch_shape(layout, x, f"batch.{name}")
        if got != lead:
            raise ValueError(f"batch.{name} has batch shape {got}, expected {lead}")
        return to_steps(flat)

    actions = jnp.asarray(batch.actions)
    if actions.shape not in (lead + spec.action.shape, lead + (spec.action.size,)):
        raise ValueError(f"batch.actions has shape {actions.shape}, expected {lead + spec.action.shape}")
    if spec.state is None and (batch.states is not None or batch.next_states is not None):
        raise ValueError("batch has states but the train state was made without a state_space")
    if spec.state is not None and (batch.states is None or batch.next_states is None):
        raise ValueError("the train state was made with a state_space, so the batch needs states and next_states")
    prepared = Transition(
        observations=to_steps(observations),
        actions=to_steps(actions.reshape(lead + (spec.action.size,)).astype(jnp.float32)),
        rewards=vector(batch.rewards, "rewards"),
        next_observations=inputs(batch.next_observations, spec.observation, "next_observations"),
        terminated=vector(batch.terminated, "terminated"),
        states=None if spec.state is None else inputs(batch.states, spec.state, "states"),
        next_states=None if spec.state is None else inputs(batch.next_states, spec.state, "next_states"),
    )
    if spec.mesh is None:
        return prepared
    # Data parallelism: each device takes a slice of every minibatch; XLA all-reduces the gradients (the losses are
    # means over the whole minibatch, so the gradient is exactly the single-device one, not N times it).
    devices = spec.mesh.shape[DATA_AXIS]
    if lead[-1] % devices:
        raise ValueError(f"a minibatch of {lead[-1]} transitions cannot be split over {devices} devices: use a batch "
                         f"size divisible by {devices}")
    sharding = jax.sharding.NamedSharding(spec.mesh, jax.sharding.PartitionSpec(None, DATA_AXIS))
    return jax.lax.with_sharding_constraint(prepared, sharding)


def _learning_rate(opt_state: Any) -> Optional[jax.Array]:
    """The injected learning rate of an optax state (``optax.inject_hyperparams``), if it has one."""
    is_injected = lambda s: isinstance(getattr(s, "hyperparams", None), dict)  # noqa: E731
    for state in jax.tree.leaves(opt_state, is_leaf=is_injected):
        if is_injected(state) and "learning_rate" in state.hyperparams:
            return jnp.asarray(state.hyperparams["learning_rate"], jnp.float32)
    return None


def _gradient_step(ts: TrainState, batch: Transition) -> tuple[TrainState, dict[str, jax.Array]]:
    """One DDPG gradient step on a prepared minibatch ``[batch, ...]``."""
    spec, config, hp = ts.spec, ts.spec.config, ts.hyperparams

    # Running statistics are updated from the sampled batch (observations and next observations together) and the
    # same statistics standardise both; skrl updates them twice, once per half.
    obs_stats, state_stats = ts.observation_stats, ts.state_stats
    if config.observation_preprocessor:
        obs_stats = scaler.update(obs_stats, jnp.concatenate([batch.observations, batch.next_observations]))
    obs_tm1 = _standardize(config, obs_stats, batch.observations, config.observation_preprocessor)
    obs_t = _standardize(config, obs_stats, batch.next_observations, config.observation_preprocessor)
    if spec.state is None:
        critic_in_tm1, critic_in_t = obs_tm1, obs_t
    else:
        if config.state_preprocessor:
            state_stats = scaler.update(state_stats, jnp.concatenate([batch.states, batch.next_states]))
        critic_in_tm1 = _critic_inputs(spec.critic, obs_tm1, _standardize(config, state_stats, batch.states,
                                                                          config.state_preprocessor))
        critic_in_t = _critic_inputs(spec.critic, obs_t, _standardize(config, state_stats, batch.next_states,
                                                                      config.state_preprocessor))

    # 1. Target from the target networks.
    a_t = _policy_actions(spec, ts.target_policy_params, obs_t)
    q_t = _critic_values(spec, ts.target_critic_params, critic_in_t, a_t)
    discount_t = hp.discount_factor * (1.0 - batch.terminated)
    target = losses.td_target(batch.rewards, discount_t, q_t)

    # 2. Critic step. With skip_nonfinite_updates, a step whose loss or gradients are NaN or infinite, or whose
    # gradients' sum of squares overflows, is dropped: its parameters, optimizer state and scaler statistics stay as
    # they were. Given a finite loss and that finite sum, Adam (optax's, clipped or not) writes finite parameters and
    # moments. The check reads the gradients, not the outputs, and each step is a ``lax.cond`` on it: selecting
    # between new and old values instead made XLA copy the old parameters and moments (14 % of the agent's step at
    # batch 100 on a CPU); the conditional updates them in place.
    guard = config.skip_nonfinite_updates

    def step_if(ok, step, *args):  # ``step(*args)`` if ``ok``, else the arguments it would update, unchanged
        return jax.lax.cond(ok, step, lambda *unchanged: unchanged, *args) if guard else step(*args)

    def critic_objective(params):
        return losses.critic_loss(_critic_values(spec, params, critic_in_tm1, batch.actions), target)

    def critic_step(params, opt_state, old_obs_stats, old_state_stats):  # the statistics updated above are kept
        updates, opt_state = spec.critic_optimizer.update(critic_grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, obs_stats, state_stats

    (critic_loss, critic_aux), critic_grads = jax.value_and_grad(critic_objective, has_aux=True)(ts.critic_params)
    critic_ok = jnp.isfinite(critic_loss) & _finite_sum_of_squares(critic_grads) if guard else True
    critic_params, critic_opt_state, obs_stats, state_stats = step_if(
        critic_ok, critic_step, ts.critic_params, ts.critic_opt_state, ts.observation_stats, ts.state_stats)

    # 3. Policy step through the critic just updated. It is dropped with the critic's step, or on its own when its
    # loss or gradients are not finite (the critic's step then stays), as in ddpgx_torch.
    def policy_objective(params):
        actions = _policy_actions(spec, params, obs_tm1)
        return losses.policy_loss(_critic_values(spec, critic_params, critic_in_tm1, actions))

    def policy_step(params, opt_state):
        updates, opt_state = spec.policy_optimizer.update(policy_grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    (policy_loss, _), policy_grads = jax.value_and_grad(policy_objective, has_aux=True)(ts.policy_params)
    ok = critic_ok & jnp.isfinite(policy_loss) & _finite_sum_of_squares(policy_grads) if guard else True
    policy_params, policy_opt_state = step_if(ok, policy_step, ts.policy_params, ts.policy_opt_state)

    # 4. Polyak averaging, theta' <- polyak * theta + (1 - polyak) * theta', after a whole step only.
    target_policy_params, target_critic_params = step_if(
        ok, lambda policy, critic: (optax.incremental_update(policy_params, policy, hp.polyak),
                                    optax.incremental_update(critic_params, critic, hp.polyak)),
        ts.target_policy_params, ts.target_critic_params)

    q, y = critic_aux["q"], critic_aux["target"]
    metrics = {
        "critic_loss": critic_loss,
        "policy_loss": policy_loss,
        "q_mean": jnp.mean(q),
        "q_min": jnp.min(q),
        "q_max": jnp.max(q),
        "target_mean": jnp.mean(y),
        "target_min": jnp.min(y),
        "target_max": jnp.max(y),
    }
    if config.grad_norm_clip > 0:
        # Clipping computes these norms anyway (XLA shares the computation); without clipping they would cost an
        # extra pass over every gradient (about 7% of an update at batch 64), so they are only reported here.
        metrics["critic_grad_norm"] = optax.tree.norm(critic_grads)
        metrics["policy_grad_norm"] = optax.tree.norm(policy_grads)
    for name, opt_state in (("policy", policy_opt_state), ("critic", critic_opt_state)):
        lr = _learning_rate(opt_state)
        if lr is not None:
            metrics[f"{name}_learning_rate"] = lr
    step = ts.step + 1
    if guard:
        step = ts.step + ok.astype(ts.step.dtype)
        metrics["skipped_updates"] = 1.0 - ok.astype(jnp.float32)
    new = ts.replace(step=step, policy_params=policy_params, critic_params=critic_params,
                     target_policy_params=target_policy_params, target_critic_params=target_critic_params,
                     policy_opt_state=policy_opt_state, critic_opt_state=critic_opt_state,
                     observation_stats=obs_stats, state_stats=state_stats)
    return _replicated(new), metrics


def _finite_sum_of_squares(tree: Any) -> jax.Array:
    """True when the sum of squares of every floating-point leaf of ``tree`` is finite (a [] bool): every value is
    finite and none is so large (about 1e19 in float32) that its square overflows."""
    squares = [jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)
               if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.isfinite(sum(squares)) if squares else jnp.asarray(True)


DATA_AXIS = "data"


def _replicated(tree: Any) -> Any:
    """With a mesh, pins a train state (or any pytree of it) to full replication on every device."""
    mesh = tree.spec.mesh if isinstance(tree, TrainState) else None
    if mesh is None:
        return tree
    return jax.lax.with_sharding_constraint(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def _scan_updates(ts: TrainState, batch: Transition) -> tuple[TrainState, dict[str, jax.Array]]:
    """``gradient_steps`` gradient steps as one ``lax.scan``; metrics are reduced over the steps as skrl's tracking
    reduces what each step recorded: ``*_min`` by the minimum, ``*_max`` by the maximum, the others by the mean."""
    if ts.spec.config.gradient_steps == 1:
        # A one-trip XLA while loop still copies its carry and blocks fusion across its boundary; skip it.
        return _gradient_step(ts, jax.tree.map(lambda x: x[0], batch))
    ts, metrics = jax.lax.scan(_gradient_step, ts, batch)
    return ts, {name: _reduce_over_steps(name, values) for name, values in metrics.items()}


def _reduce_over_steps(name: str, values: jax.Array) -> jax.Array:
    if name.endswith("_min"):
        return jnp.min(values)
    if name.endswith("_max"):
        return jnp.max(values)
    return jnp.mean(values)


def _config_rows(train_state: Any, *args: Any, **kwargs: Any) -> int:
    """The minibatch rows of an update of ``train_state`` (or of its packed form) that samples them itself."""
    if isinstance(train_state, packing.Packed):
        train_state = packing.skeleton(train_state)
    return train_state.spec.config.batch_size


def _batch_rows(train_state: Any, batch: Any) -> Optional[int]:
    """The minibatch rows of :func:`update` on ``batch``: the last leading dimension of its actions (None where
    there is none; :func:`update` then says what is wrong)."""
    shape = np.shape(getattr(batch, "actions", None))
    lead = shape[:len(shape) - len(train_state.spec.action.shape)]
    return lead[-1] if lead else None


@xla_cpu.jit(_batch_rows, donate_argnums=0)
def update(train_state: TrainState, batch: Transition) -> tuple[TrainState, dict[str, jax.Array]]:
    """DDPG update on a given batch: ``gradient_steps`` gradient steps in one jitted call.

    Args:
      train_state: the state; it is donated (do not use it after the call; use the returned one).
      batch: a :class:`~ddpgx.core.types.Transition` with leading ``[batch]`` (``gradient_steps == 1``) or
        ``[gradient_steps, batch]``; rewards and terminated may carry a trailing dimension of 1.

    Returns:
      ``(train_state, metrics)``, metrics a dict of scalar arrays: ``critic_loss``, ``policy_loss``,
      ``q_mean/min/max`` (critic on the sampled actions), ``target_mean/min/max``, with ``grad_norm_clip > 0``
      ``critic_grad_norm`` and ``policy_grad_norm`` (before clipping), and, for injected learning rates,
      ``policy_learning_rate`` and ``critic_learning_rate`` (the rates this update used), and with
      ``skip_nonfinite_updates`` (the default) ``skipped_updates``: the fraction of gradient steps dropped because a
      loss was NaN or infinite (their parameters, optimizer states and scaler statistics are left unchanged).
    """
    return _scan_updates(train_state, _prepare_batch(train_state.spec, batch))


@xla_cpu.jit(_config_rows, donate_argnums=0)
def update_from_replay(train_state: TrainState, buffer: replay.ReplayState) -> tuple[TrainState, dict[str, jax.Array]]:
    """DDPG update sampling ``gradient_steps`` minibatches of ``batch_size`` uniformly from ``buffer``, in one
    jitted call (sampling included). The train state is donated; the buffer is only read."""
    return _update_sampled(train_state, functools.partial(replay.sample, buffer))


def _update_sampled(train_state: TrainState, draw: Any) -> tuple[TrainState, dict[str, jax.Array]]:
    """The update on minibatches ``draw(key, (gradient_steps, batch_size))``, with a key split off the state's."""
    config = train_state.spec.config
    key, sample_key = jax.random.split(train_state.key)
    batch = draw(sample_key, (config.gradient_steps, config.batch_size))
    return _scan_updates(train_state.replace(key=key), _prepare_batch(train_state.spec, batch))


def add_and_update(
    train_state: TrainState, buffer: replay.ReplayState, transitions: Transition
) -> tuple[TrainState, replay.ReplayState, dict[str, jax.Array]]:
    """Adds a batch of transitions (one per environment) to ``buffer``, then :func:`update_from_replay`: what an
    environment loop runs each step once learning has started. Both states are donated.

    These are two jitted calls, in this order: the update, which samples the buffer as it will be after the write
    (:func:`ddpgx.core.replay.sample_after_add`: the same minibatch as writing first) and only reads it, then the
    write (:func:`ddpgx.core.replay.add`, in place), dispatched while the update computes. Compiled as one program,
    XLA copies the buffer's columns on every call to sample from them while writing them in place: 14 ms a step for
    a million-transition buffer, against 0.04 ms for the separate write.
    """
    with threefry.unrolled():
        train_state, metrics = _update_after_add(train_state, buffer, transitions)
    return train_state, replay.add(buffer, transitions), metrics


@xla_cpu.jit(_config_rows, donate_argnums=0)
def _update_after_add(train_state: TrainState, buffer: replay.ReplayState,
                      transitions: Transition) -> tuple[TrainState, dict[str, jax.Array]]:
    """:func:`update_from_replay` on ``buffer`` with ``transitions`` written (read, not written)."""
    return _update_sampled(train_state, functools.partial(replay.sample_after_add, buffer, transitions))


def add_update_act(
    train_state: TrainState,
    buffer: replay.ReplayState,
    transitions: Transition,
    next_observations: Any,
    timestep: Any,
    timesteps: Any,
    episode_starts: jax.Array,
    scale: Any = None,
    *,
    metrics: bool = True,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array], TrainState, replay.ReplayState, dict, dict]:
    """:func:`add_and_update`, then the exploring action for ``next_observations`` with the updated policy: what an
    environment loop runs between two environment steps.

    These are two jitted calls, as in :func:`add_and_update`: the update (sampling the buffer as it will be after
    the write) and the action in one, then the buffer's write, dispatched while the first computes.
    ``metrics=False`` skips the metrics and the noise statistics (both returned as ``{}``): a loop that records
    neither saves their computation and their transfer.

    The action's randomness is *not* committed to the returned train state: the call returns
    ``(actions, (key, noise_state), train_state, buffer, metrics, info)`` and the caller that uses ``actions`` sets
    ``train_state.replace(key=key, noise_state=noise_state)``, which then equals ``add_and_update`` followed by
    :func:`act` (``explore=True``, with the same ``scale``). A caller that ends up acting on other observations drops
    them and calls ``act``.
    """
    with threefry.unrolled():
        actions, (key, noise_state), train_state, metrics_, info = _update_act(
            train_state, buffer, transitions, next_observations, timestep, timesteps, episode_starts, scale,
            with_metrics=metrics)
    return actions, (key, noise_state), train_state, replay.add(buffer, transitions), metrics_, info


@xla_cpu.jit(_config_rows, donate_argnums=0, static_argnames="with_metrics")
def _update_act(train_state, buffer, transitions, next_observations, timestep, timesteps, episode_starts, scale,
                with_metrics=True):
    """The update on the buffer with ``transitions`` written (read, not written) and the exploring action of
    :func:`add_update_act`, in one jitted call."""
    train_state, metrics = _update_after_add(train_state, buffer, transitions)
    actions, key, noise_state, info = _act(train_state, next_observations, timestep, timesteps, True, episode_starts,
                                           scale)
    if not with_metrics:
        metrics, info = {}, {}
    return actions, (key, noise_state), train_state, metrics, info


def add_update_act_packed(
    packed: packing.Packed,
    buffer: replay.ReplayState,
    transitions: Transition,
    next_observations: Any,
    timestep: Any,
    timesteps: Any,
    episode_starts: jax.Array,
    scale: Any = None,
    *,
    metrics: bool = True,
) -> tuple[jax.Array, packing.Packed, tuple[jax.Array, jax.Array], replay.ReplayState, dict, dict]:
    """:func:`add_update_act` on a train state held packed (``ddpgx.core.packing.pack(train_state)``), for an
    environment loop that calls it at every step: the call passes about 20 buffers of state each way instead of about
    70 (:mod:`ddpgx.core.packing`), which saves 0.1-0.3 ms a call on CPU. The computation is the same, bit for bit.

    Unlike :func:`add_update_act`, the action's randomness *is* committed to the returned (packed) state. Returns
    ``(actions, packed, (key, noise_state), buffer, metrics, info)`` with ``(key, noise_state)`` the train state's
    before the action: a caller that does not use ``actions`` sets them back
    (``packing.unpack(packed).replace(key=key, noise_state=noise_state)``), which then equals
    :func:`add_and_update`.
    """
    with threefry.unrolled():
        actions, undo, packed, metrics_, info = _packed_update_act(
            packed, buffer, transitions, next_observations, timestep, timesteps, episode_starts, scale,
            with_metrics=metrics)
    return actions, packed, undo, replay.add(buffer, transitions), metrics_, info


@xla_cpu.jit(_config_rows, donate_argnums=0, static_argnames="with_metrics")
def _packed_update_act(packed, buffer, transitions, next_observations, timestep, timesteps, episode_starts, scale,
                       with_metrics=True):
    """:func:`_update_act` between :func:`ddpgx.core.packing.unpack` and :func:`ddpgx.core.packing.pack`."""
    actions, (key, noise_state), train_state, metrics, info = _update_act(
        packing.unpack(packed), buffer, transitions, next_observations, timestep, timesteps, episode_starts, scale,
        with_metrics=with_metrics)
    undo = (train_state.key, train_state.noise_state)
    return actions, undo, packing.pack(train_state.replace(key=key, noise_state=noise_state)), metrics, info
