"""DDPG in PyTorch as functions over a train state: ``init``, ``act``, ``update`` and ``update_from_replay``.

The torch twin of :mod:`ddpgx.core`: same steps, same order, same metric keys (a reader can diff the two files).
Each gradient step (Lillicrap et al. 2015, arXiv:1509.02971, Algorithm 1):

1. target ``y = r + gamma (1 - terminated) Q'(s', mu'(s'))`` from the target networks, under ``torch.no_grad``;
2. one Adam step on the critic's mean squared TD error;
3. one Adam step on the policy's loss ``-mean Q(s, mu(s))`` through the critic just updated (skrl/SB3 order); the
   backward pass asks for the policy's gradients only, so the critic's unused weight gradients are not computed;
4. Polyak averaging of both targets, ``theta' <- polyak theta + (1 - polyak) theta'`` (one ``_foreach_lerp_``).

torch is imperative, so the train state's modules and optimizers are updated in place; the functions still return
the train state, so code written against ``ddpgx`` reads the same. Metrics are a flat dict of 0-d tensors; nothing
calls ``.item()`` (no host synchronisation on an accelerator).

Gradients come from autograd, except on the built-in networks (:mod:`ddpgx_torch.core.networks`) in float32 (CPU or
CUDA), which pull them back themselves (``value_and_pullback``) with the same operations autograd's backward would run,
without the engine's and the modules' per-call costs, about a fifth of a batch-64 update (:func:`_explicit_gradients`;
the parity tests run both ways against the JAX core).

Optional parts of the one implementation (no copied variants, STYLE.md 11):

* **Recurrent core** (``DDPG_RNN``): a policy whose ``get_specification()`` has an ``"rnn"`` entry (skrl's
  convention: ``{"rnn": {"sequence_length": L, "sizes": [(num_layers, num_envs, hidden), ...]}}``). Batches are
  sequences ``[batch, L]``, flattened batch-major to ``[batch * L]`` for the models, with the policy's stored hidden
  states (``inputs["rnn"]``, each ``[num_layers, batch * L, hidden]``) and the ``terminated``/``truncated`` flags,
  exactly what skrl's recurrent models expect; each model takes the hidden state of sequence step 0, and the target
  models (roles ``target_policy``/``target_critic``) that of step 1, since they read the next observations.
* **Mixed precision**: ``torch.autocast`` around the network calls, one ``torch.amp.GradScaler`` shared by both
  optimizers (``unscale_`` before clipping, ``step`` per optimizer, one ``update`` per gradient step).
* **Distributed SPMD** (``torch.distributed``, e.g. launched by ``torchrun``): :func:`init` joins the job (it starts
  the process group from ``torchrun``'s environment when the script has not, see :mod:`ddpgx_torch.distributed`)
  and broadcasts rank 0's parameters; gradients are all-reduced and averaged before clipping and stepping;
  running statistics are merged from every rank's batch. With a per-rank batch of ``B / world_size`` this gives
  the numbers of one process on a batch of ``B``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import gymnasium
import torch
from torch import nn
from torch.optim import optimizer as torch_optimizer

from ddpgx_torch.core import distributed, linear, losses, networks, scaler, spaces, traced
from ddpgx_torch.core import noise as noise_lib
from ddpgx_torch.core import replay as replay_lib
from ddpgx_torch.core.config import DDPGConfig
from ddpgx_torch.core.types import Transition


@dataclasses.dataclass(frozen=True)
class RNNSpec:
    """A recurrent policy's hidden-state layout, from its ``get_specification()``."""

    sequence_length: int
    sizes: tuple[tuple[int, int, int], ...]  # (num_layers, num_envs, hidden) per state tensor


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """The static part of a train state: configuration, layouts and how to call the networks."""

    config: DDPGConfig
    observation: spaces.InputLayout
    state: spaces.InputLayout | None  # None without a state space
    action: spaces.ActionLayout
    model_api: str  # "module": policy(obs), critic(inputs, actions); "skrl": model.act(inputs_dict, role=...)
    rnn: RNNSpec | None  # None for a feed-forward policy
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: float32
    world_size: int  # > 1 under torch.distributed
    # the action bounds as float32 tensors on the device (made once: acting clips with them at every step)
    action_bounds: tuple[torch.Tensor, torch.Tensor] = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.action_bounds is None:
            bounds = tuple(torch.as_tensor(b, dtype=torch.float32, device=self.device)
                           for b in (self.action.low, self.action.high))
            object.__setattr__(self, "action_bounds", bounds)

    def autocast(self) -> Any:
        """``torch.autocast`` for the networks' calls: with mixed precision enabled, in float32 disabled (also inside
        a caller's autocast region), and a no-op context where autocast is off anyway (a disabled autocast costs about
        5 us per use)."""
        if self.autocast_dtype is None and not torch.is_autocast_enabled(self.device.type):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)


class Hyperparams(NamedTuple):
    """Numbers one may change between updates (learning rates live in the optimizers' param groups)."""

    discount_factor: float
    polyak: float


@dataclasses.dataclass
class TrainState:
    """Everything DDPG's functions read and write. Replace fields with ``train_state.replace(...)``."""

    policy: nn.Module  # mu_theta
    critic: nn.Module  # Q_phi
    target_policy: nn.Module  # mu_theta' (parameters frozen: requires_grad False)
    target_critic: nn.Module  # Q_phi'
    policy_optimizer: torch.optim.Optimizer
    critic_optimizer: torch.optim.Optimizer
    grad_scaler: torch.amp.GradScaler  # enabled only for fp16 mixed precision
    observation_stats: scaler.ScalerState  # [obs_size]
    state_stats: scaler.ScalerState | None  # [state_size]; None without a state space
    noise: Any  # exploration noise parameters or None
    noise_state: torch.Tensor  # [num_envs, action_size] float32, Ornstein-Uhlenbeck process value
    rnn_states: list[torch.Tensor]  # the policy's hidden states while acting, each [num_layers, num_envs, hidden]
    hyperparams: Hyperparams
    step: int  # gradient steps taken
    generator: torch.Generator  # all of this train state's randomness
    spec: AgentSpec
    # each module's parameter list, built once (not per gradient step); keyed by role, checked by module identity
    param_cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def replace(self, **changes) -> TrainState:
        return dataclasses.replace(self, **changes)


def adam(params: Sequence[torch.Tensor], learning_rate: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam (torch's defaults: betas 0.9/0.999, eps 1e-8, as optax's), with the fused kernel where torch has one."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=learning_rate, fused=device.type in ("cpu", "cuda"))
    except (RuntimeError, ValueError):  # an unsupported device or dtype for the fused kernel
        return torch.optim.Adam(params, lr=learning_rate, foreach=True)


def _rnn_spec(policy: nn.Module) -> RNNSpec | None:
    get = getattr(policy, "get_specification", None)
    spec = get() if callable(get) else {}
    rnn = (spec or {}).get("rnn")
    if not rnn or not rnn.get("sizes"):
        return None
    length = rnn.get("sequence_length", 1)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"the policy's get_specification()['rnn']['sequence_length']={length!r} is invalid: "
                         "expected an integer >= 1")
    sizes = tuple(tuple(int(d) for d in size) for size in rnn["sizes"])
    if any(len(size) != 3 for size in sizes):
        raise ValueError(f"the policy's get_specification()['rnn']['sizes']={rnn['sizes']!r} is invalid: expected "
                         "(num_layers, num_envs, hidden) triples")
    return RNNSpec(length, sizes)


def init(
    seed: int | torch.Generator,
    config: DDPGConfig,
    observation_space: gymnasium.Space,
    action_space: gymnasium.Space,
    *,
    state_space: gymnasium.Space | None = None,
    policy: nn.Module | None = None,
    critic: nn.Module | None = None,
    target_policy: nn.Module | None = None,
    target_critic: nn.Module | None = None,
    num_envs: int = 1,
    device: Any = None,
) -> TrainState:
    """Creates a train state: networks, their targets (copies), Adam optimizers, statistics and noise.

    Args:
      seed: an integer seed (for the default networks' initialisation, the same on every device, and all later
        randomness) or a ``torch.Generator`` (whose draws then also decide the initialisation: a CUDA generator
        gives other weights than a CPU one).
      config: the configuration.
      observation_space: a ``Box`` or ``Dict``-of-``Box`` gymnasium space (Dict observations are flattened).
      action_space: a bounded ``Box``.
      state_space: optional privileged critic input (skrl 2.x ``states``).
      policy: a ``torch.nn.Module`` (``policy(obs [B, obs_size]) -> [B, *action_shape]``) or a skrl-style model
        (:class:`ddpgx_torch.models.Model` with ``act(inputs, role=...)``); default: a 400-300 ReLU MLP.
      critic: likewise, ``critic(inputs [B, n], actions [B, action_size]) -> [B]``; default: a 400-300 ReLU MLP.
      target_policy: the target policy (its parameters are overwritten by copies of the online ones); default: a
        deep copy.
      target_critic: the same for the target critic.
      num_envs: environments acting in parallel.
      device: torch device (default: CPU).

    Raises:
      ValueError: for an unsupported space, a bad ``num_envs``, a model of the wrong kind or output shape.
    """
    if not isinstance(config, DDPGConfig):
        raise ValueError(f"config={config!r} is invalid: expected a ddpgx_torch.DDPGConfig")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} is invalid: expected an integer >= 1")
    device = torch.device(device if device is not None else "cpu")
    if isinstance(seed, torch.Generator):
        generator = seed
    elif isinstance(seed, int) and not isinstance(seed, bool):
        generator = torch.Generator(device=device).manual_seed(seed)
    else:
        raise ValueError(f"seed={seed!r} is invalid: expected an int or a torch.Generator")
    obs_layout = spaces.input_layout(observation_space, "observation_space")
    state_layout = None if state_space is None else spaces.input_layout(state_space, "state_space")
    act_layout = spaces.action_layout(action_space)
    critic_in = obs_layout.size if state_layout is None else state_layout.size
    if policy is None or critic is None:
        # An integer seed gives the same default networks on every device: a CUDA generator draws other numbers
        # than a CPU one, so the draw comes from a CPU generator seeded alike there.
        draw = generator if generator.device.type == "cpu" or isinstance(seed, torch.Generator) else (
            torch.Generator().manual_seed(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (), generator=draw)))
            if policy is None:
                policy = networks.DeterministicPolicy(obs_layout.size, act_layout.low, act_layout.high,
                                                      act_layout.shape)
            if critic is None:
                critic = networks.QFunction(critic_in, act_layout.size)
    for name, module in (("policy", policy), ("critic", critic), ("target_policy", target_policy),
                         ("target_critic", target_critic)):
        if module is not None and not isinstance(module, nn.Module):
            raise ValueError(f"{name}={module!r} is invalid: expected a torch.nn.Module")
    skrl_style = [hasattr(m, "act") and hasattr(m, "compute") for m in (policy, critic)]
    if skrl_style[0] != skrl_style[1]:
        raise ValueError("policy and critic must both be plain torch modules or both skrl-style models "
                         f"(policy is {type(policy).__name__}, critic is {type(critic).__name__})")
    policy, critic = policy.to(device), critic.to(device)
    target_policy = copy.deepcopy(policy) if target_policy is None else target_policy.to(device)
    target_critic = copy.deepcopy(critic) if target_critic is None else target_critic.to(device)
    world_size = distributed.join(device)  # starts torchrun's process group if the script has not
    if world_size > 1:  # every rank starts from rank 0's parameters
        for module in (policy, critic):
            distributed.broadcast(list(module.parameters()) + list(module.buffers()))
    with torch.no_grad():
        for target, online in ((target_policy, policy), (target_critic, critic)):
            target_params, online_params = list(target.parameters()), list(online.parameters())
            if [p.shape for p in target_params] != [p.shape for p in online_params]:
                raise ValueError(f"the target network {type(target).__name__} does not have the parameter shapes "
                                 f"of its online network {type(online).__name__}")
            for t, o in zip(target_params, online_params, strict=True):
                t.copy_(o)
                t.requires_grad_(False)
    rnn = _rnn_spec(policy) if skrl_style[0] else None
    policy_lr, critic_lr = config.learning_rates
    autocast_dtype = config.autocast_dtype(device.type)
    spec = AgentSpec(
        config=config, observation=obs_layout, state=state_layout, action=act_layout,
        model_api="skrl" if skrl_style[0] else "module", rnn=rnn, device=device, autocast_dtype=autocast_dtype,
        world_size=world_size,
    )  # fmt: skip
    ts = TrainState(
        policy=policy,
        critic=critic,
        target_policy=target_policy,
        target_critic=target_critic,
        policy_optimizer=adam(policy.parameters(), policy_lr, device),
        critic_optimizer=adam(critic.parameters(), critic_lr, device),
        grad_scaler=torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16),
        observation_stats=scaler.init(obs_layout.size, device),
        state_stats=None if state_layout is None else scaler.init(state_layout.size, device),
        noise=config.exploration_noise,
        noise_state=noise_lib.init_state(num_envs, act_layout.size, device),
        rnn_states=[torch.zeros((s[0], num_envs, s[2]), device=device) for s in rnn.sizes] if rnn else [],
        hyperparams=Hyperparams(float(config.discount_factor), float(config.polyak)),
        step=0,
        generator=generator,
        spec=spec,
    )
    # Validate the output shapes now, with a clear message.
    with torch.no_grad():
        obs = torch.zeros((num_envs, obs_layout.size), device=device)
        states = None if state_layout is None else torch.zeros((num_envs, state_layout.size), device=device)
        _set_training(ts, False)
        extras = {"rnn": ts.rnn_states} if rnn else {}
        actions, _ = _policy_actions(spec, policy, obs, states, extras, "policy")
        if rnn is None:
            _critic_values(spec, critic, obs, states, actions, extras, "critic")
        else:
            # A recurrent critic is only called on training sequences (skrl's models reshape every input to
            # [-1, sequence_length, ...]), so it is checked on one sequence of zeros in training mode, the way
            # _gradient_step calls it.
            length = rnn.sequence_length
            seq_obs = torch.zeros((length, obs_layout.size), device=device)
            seq_states = None if state_layout is None else torch.zeros((length, state_layout.size), device=device)
            flags = torch.zeros((length, 1), dtype=torch.bool, device=device)
            seq_extras = {"rnn": [torch.zeros((s[0], length, s[2]), device=device) for s in rnn.sizes],
                          "terminated": flags, "truncated": flags}
            seq_actions = torch.zeros((length, act_layout.size), device=device)
            _set_training(ts, True)
            try:
                _critic_values(spec, critic, seq_obs, seq_states, seq_actions, seq_extras, "critic")
            finally:
                _set_training(ts, False)
    return ts


def _policy_actions(spec, module, obs, states, extras, role) -> tuple[torch.Tensor, dict]:
    """The policy's actions ``[N, action_size]`` for preprocessed inputs, and the model's extra outputs."""
    if spec.model_api == "skrl":
        actions, outputs = module.act({"observations": obs, "states": states, **extras}, role=role)
    else:
        actions, outputs = module(obs), {}
    n = obs.shape[0]
    if actions.shape[0] != n or actions.numel() != n * spec.action.size:
        raise ValueError(f"the {role} returned actions of shape {tuple(actions.shape)}, expected "
                         f"{(n,) + spec.action.shape}")
    # (a reshape to the same shape would still add a node to the autograd graph)
    return (actions if actions.shape == (n, spec.action.size) else actions.reshape(n, spec.action.size)), outputs


def _critic_values(spec, module, obs, states, actions, extras, role) -> torch.Tensor:
    """The critic's values ``[N]`` (a trailing dimension of 1 is accepted)."""
    if spec.model_api == "skrl":
        q, _ = module.act({"observations": obs, "states": states, "taken_actions": actions, **extras}, role=role)
    else:
        q = module(obs if states is None else states, actions)
    n = obs.shape[0]
    if q.shape not in ((n,), (n, 1)):
        raise ValueError(f"the {role} returned values of shape {tuple(q.shape)}, expected ({n},)")
    return q if q.dim() == 1 else q.reshape(n)


def _standardize(config: DDPGConfig, stats: scaler.ScalerState, x: torch.Tensor, enabled: bool) -> torch.Tensor:
    if not enabled:
        return x
    return scaler.standardize(stats, x, config.preprocessor_epsilon, config.preprocessor_clip)


def _set_training(ts: TrainState, enabled: bool) -> None:
    """skrl-style recurrent models read ``self.training`` to tell a rollout step from training sequences."""
    for module in (ts.policy, ts.critic, ts.target_policy, ts.target_critic):
        if module.training != enabled:
            module.train(enabled)


def act(
    train_state: TrainState,
    observations: Any,
    *,
    timestep: int = 0,
    timesteps: int = 1,
    explore: bool = True,
    episode_starts: Any = None,
    states: Any = None,
    metrics: bool = True,
) -> tuple[torch.Tensor, TrainState, dict[str, Any]]:
    """Actions for a batch of observations ``[num_envs, ...]`` (a tensor/array, or a dict for a Dict space).

    As :func:`ddpgx.act`: with ``explore=False`` the deterministic policy clipped to the bounds; with
    ``explore=True`` uniform random actions while ``timestep < random_timesteps``, then ``mu(s) + scale * noise``,
    clipped. ``episode_starts`` (bool ``[num_envs]``) zeros the OU state, and a recurrent policy's hidden state, of
    environments whose episode starts at this step. ``states`` is the environment's state (skrl 2.x), passed to
    skrl-style models.

    Returns:
      ``(actions [num_envs, *action_shape], train_state, info)``: ``info["noise"]`` the scaled noise added (and
      ``info["noise_max/min/mean"]`` its statistics, as :func:`ddpgx.act`, left out with ``metrics=False``), and for
      a recurrent policy ``info["rnn_states"]``, the hidden states this step started from (each
      ``[num_envs, num_layers, hidden]``, to store with the transition).
    """
    spec, config = train_state.spec, train_state.spec.config
    obs = spaces.flatten(spec.observation, observations, "observations", spec.device)
    if obs.ndim != 2:
        raise ValueError(f"observations must have one batch dimension [num_envs, ...]; got flattened shape "
                         f"{tuple(obs.shape)}")
    n = obs.shape[0]
    if episode_starts is not None:
        episode_starts = torch.as_tensor(episode_starts, device=spec.device).to(torch.bool)
        if tuple(episode_starts.shape) != (n,):
            raise ValueError(f"episode_starts has shape {tuple(episode_starts.shape)}, expected ({n},): one flag "
                             "per environment")
    state_in = None
    if states is not None and spec.state is not None:
        state_in = _standardize(config, train_state.state_stats,
                                spaces.flatten(spec.state, states, "states", spec.device), config.state_preprocessor)
    info: dict[str, Any] = {}
    extras = {}
    if spec.rnn:
        rnn_states = train_state.rnn_states
        if episode_starts is not None and bool(episode_starts.any()):
            rnn_states = [torch.where(episode_starts.view(1, -1, 1), 0.0, s) for s in rnn_states]
        extras = {"rnn": rnn_states}
        info["rnn_states"] = [s.transpose(0, 1) for s in rnn_states]
    with torch.no_grad():
        _set_training(train_state, False)
        obs = _standardize(config, train_state.observation_stats, obs, config.observation_preprocessor)
        plans = _forward_plans(train_state, ("policy",), obs)
        if plans is not None:  # a user's MLP, recognised: the fused kernels, no module calls
            actions, outputs = plans[0].forward(obs), {}
        else:
            with spec.autocast():
                actions, outputs = _policy_actions(spec, train_state.policy, obs, state_in, extras, "policy")
        actions = actions.float()
        if spec.rnn:
            train_state.rnn_states = [s.detach() for s in outputs.get("rnn", extras["rnn"])]
        low, high = spec.action_bounds
        applied = torch.zeros_like(actions)
        if explore:
            if episode_starts is not None:
                train_state.noise_state = noise_lib.reset(train_state.noise_state, episode_starts)
            if timestep < config.random_timesteps:
                # skrl draws no noise while acting randomly; the OU process is held still there.
                u = torch.rand(actions.shape, generator=train_state.generator, device=spec.device)
                actions = low + u * (high - low)
            elif train_state.noise is not None:
                values, train_state.noise_state = noise_lib.sample(train_state.noise, train_state.noise_state,
                                                                   train_state.generator, tuple(actions.shape))
                if config.exploration_scheduler is not None:
                    values = values * float(config.exploration_scheduler(timestep, timesteps))
                applied = values
                actions = actions + applied
        actions = torch.clamp(actions, low, high)
    info["noise"] = applied
    if metrics:
        info.update(noise_max=applied.max(), noise_min=applied.min(), noise_mean=applied.mean())
    return actions.reshape((n,) + spec.action.shape), train_state, info


def _prepare_batch(spec: AgentSpec, batch: Transition) -> Transition:
    """Validates a batch and returns it flattened, float32 on the device, with leading ``[gradient_steps, batch]``
    (recurrent: ``[gradient_steps, batch, L]``)."""
    if not isinstance(batch, Transition):
        raise ValueError(f"batch must be a ddpgx_torch.Transition, got {type(batch).__name__}")
    steps = spec.config.gradient_steps
    seq = () if spec.rnn is None else (spec.rnn.sequence_length,)
    device = spec.device
    observations, lead = spaces.flatten_with_batch_shape(spec.observation, batch.observations,
                                                         "batch.observations", device)
    core = lead[: len(lead) - len(seq)]
    if seq and tuple(lead[len(core):]) != seq:
        raise ValueError(f"batch.observations has batch shape {lead}: a recurrent policy with sequence_length "
                         f"{seq[0]} needs [batch, {seq[0]}] or [gradient_steps, batch, {seq[0]}]")
    if len(core) == 1 and steps != 1:
        raise ValueError(
            f"gradient_steps={steps} needs a batch with leading dimensions [{steps}, batch_size] (one minibatch "
            f"per step), got observations with batch shape {lead}; or use ddpgx_torch.update_from_replay"
        )
    if len(core) == 2 and core[0] != steps:
        raise ValueError(f"the batch has {core[0]} minibatches (leading dimension) but gradient_steps={steps}")
    if len(core) not in (1, 2) or core[-1] < 1:
        raise ValueError(f"batch.observations has batch shape {lead}, expected [batch] or [gradient_steps, batch]")

    def to_steps(x):
        return x.reshape((steps, core[-1]) + seq + tuple(x.shape[len(lead):]))

    def as_tensor(x):
        return x.to(device) if isinstance(x, torch.Tensor) else torch.as_tensor(x, device=device)

    def vector(x, name):
        x = as_tensor(x)
        if tuple(x.shape) not in (lead, lead + (1,)):
            raise ValueError(f"batch.{name} has shape {tuple(x.shape)}, expected {lead} or {lead + (1,)}")
        return to_steps(x.reshape(lead).float())

    def inputs(x, layout, name):
        flat, got = spaces.flatten_with_batch_shape(layout, x, f"batch.{name}", device)
        if got != lead:
            raise ValueError(f"batch.{name} has batch shape {got}, expected {lead}")
        return to_steps(flat)

    actions = as_tensor(batch.actions)
    if tuple(actions.shape) not in (lead + spec.action.shape, lead + (spec.action.size,)):
        raise ValueError(f"batch.actions has shape {tuple(actions.shape)}, expected {lead + spec.action.shape}")
    if spec.state is None and (batch.states is not None or batch.next_states is not None):
        raise ValueError("batch has states but the train state was made without a state_space")
    if spec.state is not None and (batch.states is None or batch.next_states is None):
        raise ValueError("the train state was made with a state_space, so the batch needs states and next_states")
    rnn_states = None
    if spec.rnn is not None:
        if batch.rnn_states is None or len(batch.rnn_states) != len(spec.rnn.sizes):
            raise ValueError(f"a recurrent policy needs batch.rnn_states: {len(spec.rnn.sizes)} tensors "
                             "[*batch, num_layers, hidden]")
        rnn_states = []
        for i, (s, size) in enumerate(zip(batch.rnn_states, spec.rnn.sizes, strict=True)):
            s = as_tensor(s).float()
            if tuple(s.shape) != lead + (size[0], size[2]):
                raise ValueError(f"batch.rnn_states[{i}] has shape {tuple(s.shape)}, expected "
                                 f"{lead + (size[0], size[2])}")
            rnn_states.append(to_steps(s))
    truncated = batch.truncated if batch.truncated is not None else torch.zeros(lead, dtype=torch.bool)
    return Transition(
        observations=to_steps(observations),
        actions=to_steps(actions.reshape(lead + (spec.action.size,)).float()),
        rewards=vector(batch.rewards, "rewards"),
        next_observations=inputs(batch.next_observations, spec.observation, "next_observations"),
        terminated=vector(batch.terminated, "terminated"),
        states=None if spec.state is None else inputs(batch.states, spec.state, "states"),
        next_states=None if spec.state is None else inputs(batch.next_states, spec.state, "next_states"),
        truncated=vector(truncated, "truncated"),
        rnn_states=rnn_states,
    )


def _params(ts: TrainState, role: str) -> list[torch.Tensor]:
    """``list(module.parameters())`` of the module in field ``role``, cached on the train state."""
    module = getattr(ts, role)
    cached = ts.param_cache.get(role)
    if cached is None or cached[0] is not module:
        cached = ts.param_cache[role] = (module, list(module.parameters()))
    return cached[1]


@contextlib.contextmanager
def _frozen(params: list[torch.Tensor]):
    """``requires_grad=False`` on ``params`` inside the block (restored afterwards, also on error)."""
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def _optimizer_step(ts: TrainState, loss: torch.Tensor, params: list[torch.Tensor],
                    optimizer: torch.optim.Optimizer, metrics: dict, name: str, guard: bool,
                    pullback: Any = None) -> bool:
    """Gradients of ``loss`` for ``params`` only, all-reduce, clipping on unscaled gradients, and the optimizer
    step through the scaler. With ``guard`` a step whose loss or gradients are not finite is skipped; returns whether
    it was taken. ``pullback()``, where given, returns the gradients instead of autograd (see
    :func:`_explicit_gradients`).

    ``torch.autograd.grad`` with ``inputs=params`` computes only what those gradients need, and nothing
    accumulates into ``.grad``, so there is nothing to zero.

    The guard checks what would be written, not only the loss: a finite loss can have an infinite or NaN gradient
    (``sqrt`` at 0, an overflow in the backward pass), and Adam would write it into every later step's parameters.
    It reads ``loss + sum_i ||g_i||_2`` on the host (one sync per step; a gradient whose norm overflows float32 is
    treated as non-finite too), and the norms are reused for clipping. With fp16 mixed precision the gradient scaler
    already skips steps with non-finite gradients (and lowers its scale), so only the loss is checked there. Under
    ``torch.distributed`` the decision must be the same on every rank (a rank that skipped the all-reduce would leave
    the others waiting in it forever), so each rank's loss travels in the gradients' all-reduce and the check reads
    the averaged loss and gradients, which are the same on every rank (a non-finite value anywhere makes the mean
    non-finite).
    """
    spec, config = ts.spec, ts.spec.config
    scaled = ts.grad_scaler.is_enabled()
    if pullback is not None:
        all_grads = pullback()
    elif all(p.requires_grad for p in params):
        all_grads = torch.autograd.grad(ts.grad_scaler.scale(loss), params, allow_unused=True)
    else:  # a frozen parameter gets no gradient (and Adam leaves it as it is)
        trainable = [p for p in params if p.requires_grad]
        found = iter(torch.autograd.grad(ts.grad_scaler.scale(loss), trainable, allow_unused=True) if trainable
                     else ())
        all_grads = [next(found) if p.requires_grad else None for p in params]
    # torch.autograd.grad hands gradients back in whatever layout the backward made (einsum's and bmm's weight
    # gradients come out transposed); fused Adam and the collectives read them as laid out like the parameter.
    all_grads = [g if g is None or g.stride() == p.stride() else torch.empty_like(p).copy_(g)
                 for p, g in zip(params, all_grads, strict=True)]
    grads = [g for g in all_grads if g is not None]
    checked_loss = loss.detach().float().reshape(1)
    if spec.world_size > 1:
        distributed.all_reduce_mean([*grads, checked_loss])
    norms = None  # the gradients' 2-norms, where the guard computed them (unscaled gradients only)
    if guard:
        if scaled or not grads:
            finite = math.isfinite(checked_loss.item())
        else:
            norms = torch._foreach_norm(grads)
            finite = math.isfinite((checked_loss + torch.stack(norms).sum()).item())
        if not finite:
            return False
    for p, g in zip(params, all_grads, strict=True):
        p.grad = g
    if config.grad_norm_clip > 0 and grads:
        ts.grad_scaler.unscale_(optimizer)
        # optax.clip_by_global_norm's formula: g * min(1, clip / ||g||) (torch's clip_grad_norm_ adds 1e-6 to the
        # norm; this keeps the two backends equal).
        norm = torch.linalg.vector_norm(torch.stack(norms if norms is not None else torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, torch.clamp(config.grad_norm_clip / norm, max=1.0))
        metrics[f"{name}_grad_norm"] = norm.detach()
    if scaled or not _fused_adam_step(ts, optimizer, params, grads):
        ts.grad_scaler.step(optimizer)
    return True


def _fused_adam_step(ts: TrainState, optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
                     grads: list[torch.Tensor]) -> bool:
    """``optimizer.step()`` for a fused, initialised, hook-free Adam as one ``torch._fused_adam_`` call (what
    ``Adam.step`` ends in, without its Python bookkeeping: about 22 us less per call here, 36 against 58 us for the
    critic on 2 threads, so about 2 % of a batch-64 update).

    The optimizer's own state tensors are updated, so its ``state_dict`` is unaffected. Returns False, doing nothing,
    wherever this does not apply (the first step, which creates the state; other optimizers or options; step hooks;
    a parameter without a gradient): the caller then calls ``optimizer.step()``.
    """
    if (type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1 or len(grads) != len(params)
            or optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
            or torch_optimizer._global_optimizer_pre_hooks or torch_optimizer._global_optimizer_post_hooks):
        return False
    group = optimizer.param_groups[0]
    if (not group.get("fused") or group["amsgrad"] or group["maximize"] or group["differentiable"]
            or group.get("decoupled_weight_decay")):
        return False
    key = ("adam", id(optimizer))
    cached = ts.param_cache.get(key)
    if cached is None or cached[0] is not optimizer.state or cached[1] is not params:
        state = optimizer.state
        if (len(group["params"]) != len(params) or any(a is not b for a, b in zip(group["params"], params, strict=True))
                or any(p not in state or "exp_avg" not in state[p] for p in params)):
            return False
        cached = ts.param_cache[key] = (state, params, [state[p]["exp_avg"] for p in params],
                                        [state[p]["exp_avg_sq"] for p in params], [state[p]["step"] for p in params])
    _, _, exp_avgs, exp_avg_sqs, steps = cached
    beta1, beta2 = group["betas"]
    torch._foreach_add_(steps, 1)
    torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
                       beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                       grad_scale=None, found_inf=None)
    return True


# Tests switch this off to run the autograd path on the built-in networks too.
EXPLICIT_GRADIENTS = True


def _explicit_gradients(ts: TrainState, obs: torch.Tensor) -> bool:
    """Whether this gradient step pulls gradients back without autograd (see :func:`_gradient_functions`, whose
    result it leaves in ``ts.param_cache["gradient_functions"]`` for the step to use)."""
    functions = ts.param_cache["gradient_functions"] = _gradient_functions(ts, obs)
    return functions is not None


def _gradient_functions(ts: TrainState, obs: torch.Tensor) -> Optional[tuple[Any, Any]]:
    """``(policy_vp, critic_vp)`` where this gradient step takes explicit pullbacks instead of autograd, else None:
    ``policy_vp(obs) -> (actions, pullback(d_actions) -> parameter gradients)`` and ``critic_vp(inputs, actions,
    wrt_params=, wrt_actions=) -> (q, pullback(dq) -> (parameter gradients, action gradient))``.

    They run the very products and elementwise operations of autograd's backward, so the numbers are the same
    (tested), without what autograd costs around them at DDPG's sizes: the engine, one graph node per operation,
    the module calls, and freezing the critic for the policy step. On the development machine that is about a
    fifth of a batch-64 update. Two kinds of networks qualify:

    * the exact built-in classes (:mod:`ddpgx_torch.core.networks`; a subclass may have its own forward), with their own
      ``value_and_pullback``;
    * a user's model (skrl-style or a plain module) that :func:`ddpgx_torch.core.traced.plan` recognises as a ReLU
      MLP of ``nn.Linear`` layers with a ``tanh``/scale head, such as skrl's example models: traced once per role and
      training mode (cached on the train state), then run with the same fused kernels on its own parameters. Only
      without a state space and without a recurrent core (the critic then reads the observations and actions).

    Both need float32 on the CPU or CUDA without autocast, every parameter trainable and no module hooks anywhere in
    the networks; anything else goes through autograd. (On CUDA the products are cuBLAS calls in another arrangement
    than autograd's, so equal to float32 rounding rather than bit for bit; benchmarks/gpu_check.py compares.)
    """
    spec = ts.spec
    if not (EXPLICIT_GRADIENTS and spec.autocast_dtype is None and spec.rnn is None
            and spec.device.type in ("cpu", "cuda") and obs.dtype is torch.float32
            and not torch.is_autocast_enabled(spec.device.type)):
        return None
    builtin = (spec.model_api == "module" and type(ts.policy) is networks.DeterministicPolicy
               and type(ts.critic) is networks.QFunction)
    if not builtin and spec.state is not None:
        return None
    for role in ("policy", "critic"):
        if not all(p.requires_grad for p in _params(ts, role)):
            return None
        modules = _modules(ts, role)
        if linear.has_hooks(modules):
            return None
        if builtin:
            if linear.fused_params(obs, [m for m in modules if isinstance(m, nn.Linear)]) is None:
                return None
        else:
            found = _plan(ts, role)
            if found is None or not found.applies(obs):
                return None
    if builtin:
        return ts.policy.value_and_pullback, ts.critic.value_and_pullback
    return (functools.partial(traced.policy_value_and_pullback, _plan(ts, "policy")),
            functools.partial(traced.critic_value_and_pullback, _plan(ts, "critic")))


def _forward_plans(ts: TrainState, roles: tuple[str, ...], obs: torch.Tensor) -> Optional[list[traced.MLPPlan]]:
    """The traced plans of the users' models in ``roles`` where every one of them runs its forward on the fused
    kernels (the conditions of :func:`_gradient_functions`, less trainability), else None. The built-in networks
    are not planned: their forward is already the fused MLP."""
    spec = ts.spec
    if not (EXPLICIT_GRADIENTS and spec.autocast_dtype is None and spec.rnn is None and spec.state is None
            and obs.dtype is torch.float32 and spec.device.type in ("cpu", "cuda")
            and not torch.is_autocast_enabled(spec.device.type)):
        return None
    plans = []
    for role in roles:
        if type(getattr(ts, role)) in (networks.DeterministicPolicy, networks.QFunction):
            return None
        found = _plan(ts, role)
        if found is None or not found.applies(obs) or linear.has_hooks(_modules(ts, role)):
            return None
        plans.append(found)
    return plans


def _modules(ts: TrainState, role: str) -> list[nn.Module]:
    """``list(module.modules())`` of the module in field ``role``, cached on the train state."""
    module = getattr(ts, role)
    cached = ts.param_cache.get(("modules", role))
    if cached is None or cached[0] is not module:
        cached = ts.param_cache[("modules", role)] = (module, list(module.modules()))
    return cached[1]


def _plan(ts: TrainState, role: str) -> Optional[traced.MLPPlan]:
    """The traced MLP plan of a user's model in ``role`` (``"policy"``, ``"critic"``, ``"target_policy"`` or
    ``"target_critic"``) in its current training mode, or None; traced once per module, role and mode."""
    module = getattr(ts, role)
    key = ("plan", role, module.training)
    cached = ts.param_cache.get(key)
    if cached is None or cached[0] is not module:
        found = traced.plan(module, role, critic=role.endswith("critic"), skrl_api=ts.spec.model_api == "skrl")
        cached = ts.param_cache[key] = (module, found)
    return cached[1]


def _updated_stats(spec: AgentSpec, stats: scaler.ScalerState, current: torch.Tensor,
                   following: torch.Tensor) -> scaler.ScalerState:
    """Running statistics updated from a sampled batch's values and next values together (over every rank's batch
    in a distributed run)."""
    both = torch.cat([current, following])
    return scaler.update(stats, distributed.all_gather(both) if spec.world_size > 1 else both)


def _gradient_step(ts: TrainState, batch: Transition, with_metrics: bool = True) -> dict[str, torch.Tensor]:
    """One DDPG gradient step on a prepared minibatch ``[batch, ...]`` (recurrent: ``[batch, L, ...]``); its
    metrics, or ``{}`` without ``with_metrics``."""
    spec, config, hp = ts.spec, ts.spec.config, ts.hyperparams
    if spec.rnn is not None:  # skrl's layout: sequences flattened batch-major, hidden states [layers, B * L, H]
        flat = lambda x: None if x is None else x.reshape((-1,) + tuple(x.shape[2:]))
        extras = {
            "rnn": [s.reshape((-1,) + tuple(s.shape[2:])).transpose(0, 1) for s in batch.rnn_states],
            "terminated": flat(batch.terminated).bool().unsqueeze(-1),
            "truncated": flat(batch.truncated).bool().unsqueeze(-1),
        }
        batch = Transition(*(flat(x) for x in batch[:8]))
        _set_training(ts, True)
    else:
        extras = {}

    stats_before = (ts.observation_stats, ts.state_stats)
    with torch.no_grad():
        # Running statistics are updated from the sampled batch (observations and next observations together) and
        # the same statistics standardise both, as in ddpgx.
        if config.observation_preprocessor:
            ts.observation_stats = _updated_stats(spec, ts.observation_stats, batch.observations,
                                                  batch.next_observations)
        obs_tm1 = _standardize(config, ts.observation_stats, batch.observations, config.observation_preprocessor)
        obs_t = _standardize(config, ts.observation_stats, batch.next_observations, config.observation_preprocessor)
        states_tm1 = states_t = None
        if spec.state is not None:
            if config.state_preprocessor:
                ts.state_stats = _updated_stats(spec, ts.state_stats, batch.states, batch.next_states)
            states_tm1 = _standardize(config, ts.state_stats, batch.states, config.state_preprocessor)
            states_t = _standardize(config, ts.state_stats, batch.next_states, config.state_preprocessor)

        # 1. Target from the target networks.
        plans = _forward_plans(ts, ("target_policy", "target_critic"), obs_t)
        if plans is not None:  # a user's MLPs, recognised: the fused kernels, no module calls
            a_t = plans[0].forward(obs_t)
            q_t = traced.critic_forward(plans[1], obs_t, a_t)
        else:
            with spec.autocast():
                a_t, _ = _policy_actions(spec, ts.target_policy, obs_t, states_t, extras, "target_policy")
                q_t = _critic_values(spec, ts.target_critic, obs_t, states_t, a_t, extras, "target_critic")
        discount_t = hp.discount_factor * (1.0 - batch.terminated)
        target = losses.td_target(batch.rewards, discount_t, q_t)

    metrics: dict[str, torch.Tensor] = {}
    explicit = ts.param_cache["gradient_functions"] if _explicit_gradients(ts, obs_tm1) else None
    if explicit is not None:
        policy_vp, critic_vp = explicit
    critic_in_tm1 = obs_tm1 if states_tm1 is None else states_tm1
    # 2. Critic step. With skip_nonfinite_updates a NaN or infinite loss or gradient never reaches the parameters
    # (as ddpgx): the step is dropped and the scaler statistics restored. This reads the loss and the gradients'
    # norms on the host (one sync per step).
    guard = config.skip_nonfinite_updates
    critic_pullback = None
    if explicit is not None:
        q, pull = critic_vp(critic_in_tm1, batch.actions)
        critic_pullback = lambda: pull(losses.critic_loss_grad(q, target))[0]  # noqa: E731
    else:
        with spec.autocast():
            q = _critic_values(spec, ts.critic, obs_tm1, states_tm1, batch.actions, extras, "critic")
    critic_loss, critic_aux = losses.critic_loss(q, target)
    critic_ok = _optimizer_step(ts, critic_loss, _params(ts, "critic"), ts.critic_optimizer, metrics, "critic",
                                guard, critic_pullback)
    if not critic_ok:
        ts.observation_stats, ts.state_stats = stats_before

    # 3. Policy step through the critic just updated; only the policy's gradients are computed (the critic's
    # pullback is asked for the action gradient alone). On the autograd path the critic's parameters are frozen
    # while the graph is built: torch's own kernels would skip their gradients anyway (they are not asked for), but
    # custom autograd functions such as ddpgx_torch.linear's cannot tell.
    policy_pullback = None
    if explicit is not None:
        actions, pull_policy = policy_vp(obs_tm1)
        q_policy, pull_critic = critic_vp(critic_in_tm1, actions, wrt_params=False, wrt_actions=True)
        policy_pullback = lambda: pull_policy(pull_critic(losses.policy_loss_grad(q_policy))[1])  # noqa: E731
    else:
        with spec.autocast():
            actions, _ = _policy_actions(spec, ts.policy, obs_tm1, states_tm1, extras, "policy")
            with _frozen(_params(ts, "critic")):
                q_policy = _critic_values(spec, ts.critic, obs_tm1, states_tm1, actions, extras, "critic")
    policy_loss, _ = losses.policy_loss(q_policy)
    # As in ddpgx: a non-finite policy loss or gradient after a finite critic step drops the policy step and the
    # Polyak update, but the critic's step stays.
    ok = critic_ok and _optimizer_step(ts, policy_loss, _params(ts, "policy"), ts.policy_optimizer, metrics,
                                       "policy", guard, policy_pullback)
    if critic_ok and ts.grad_scaler.is_enabled():
        ts.grad_scaler.update()  # once, after both optimizers have stepped

    # 4. Polyak averaging: theta' <- theta' + polyak * (theta - theta').
    if ok:
        with torch.no_grad():
            for target_net, online in (("target_policy", "policy"), ("target_critic", "critic")):
                torch._foreach_lerp_(_params(ts, target_net), _params(ts, online), hp.polyak)
    ts.step += int(ok)
    if not with_metrics:
        return {}
    if config.grad_norm_clip > 0:  # the same keys whether or not the step was dropped
        for name in ("critic", "policy"):
            metrics.setdefault(f"{name}_grad_norm", torch.tensor(float("nan")))

    q, y = critic_aux["q"], critic_aux["target"]
    q_min, q_max = torch.aminmax(q)
    y_min, y_max = torch.aminmax(y)
    metrics = {
        "critic_loss": critic_loss.detach(),
        "policy_loss": policy_loss.detach(),
        "q_mean": q.mean(),
        "q_min": q_min,
        "q_max": q_max,
        "target_mean": y.mean(),
        "target_min": y_min,
        "target_max": y_max,
        **metrics,
    }
    metrics["policy_learning_rate"] = torch.tensor(ts.policy_optimizer.param_groups[0]["lr"])
    metrics["critic_learning_rate"] = torch.tensor(ts.critic_optimizer.param_groups[0]["lr"])
    if guard:
        metrics["skipped_updates"] = torch.tensor(0.0 if ok else 1.0)
    return metrics


def _run_steps(ts: TrainState, batch: Transition, metrics: bool) -> tuple[TrainState, dict[str, torch.Tensor]]:
    return ts, _reduce_steps([_gradient_step(ts, Transition(*(_index(x, i) for x in batch)), metrics)
                              for i in range(ts.spec.config.gradient_steps)])


def _reduce_steps(all_metrics: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One metrics dict for several gradient steps: ``*_min`` keys by their minimum, ``*_max`` keys by their maximum
    (skrl's and :mod:`ddpgx.tracking`'s rule for ``(min)``/``(max)`` tags), the others by their mean."""
    if len(all_metrics) == 1 or not all_metrics[0]:
        return all_metrics[0]
    reduced = {}
    for name in all_metrics[0]:
        values = torch.stack([m[name] for m in all_metrics])
        reduced[name] = values.min() if name.endswith("_min") else values.max() if name.endswith("_max") else (
            values.mean())
    return reduced


def _index(x: Any, i: int) -> Any:
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return [s[i] for s in x]
    return x[i]


def update(train_state: TrainState, batch: Transition, *, metrics: bool = True
           ) -> tuple[TrainState, dict[str, torch.Tensor]]:
    """DDPG update on a given batch: ``gradient_steps`` gradient steps.

    Args:
      train_state: the state (updated in place and returned).
      batch: a :class:`~ddpgx_torch.core.types.Transition` with leading ``[batch]`` (``gradient_steps == 1``) or
        ``[gradient_steps, batch]`` (recurrent: followed by ``[sequence_length]``, with ``rnn_states``); tensors
        or arrays; rewards and terminated may carry a trailing dimension of 1.

    Returns:
      ``(train_state, metrics)``, metrics a dict of 0-d tensors with the keys of :func:`ddpgx.update`:
      ``critic_loss``, ``policy_loss``, ``q_mean/min/max`` (critic on the sampled actions),
      ``target_mean/min/max``, ``policy_learning_rate``, ``critic_learning_rate``, and with
      ``grad_norm_clip > 0`` ``critic_grad_norm`` and ``policy_grad_norm`` (before clipping), and with
      ``skip_nonfinite_updates`` (the default) ``skipped_updates``, the fraction of gradient steps dropped for a NaN
      or infinite loss or gradient; ``q_min``/``target_min`` are the minimum and ``q_max``/``target_max`` the
      maximum over the gradient steps, the other metrics the mean. ``metrics=False`` returns ``{}`` instead and
      skips computing them (about ten small tensor operations per gradient step), for a loop that records none.
    """
    return _run_steps(train_state, _prepare_batch(train_state.spec, batch), metrics)


def update_from_replay(
    train_state: TrainState, buffer: replay_lib.ReplayState, *, metrics: bool = True
) -> tuple[TrainState, dict[str, torch.Tensor]]:
    """DDPG update sampling ``gradient_steps`` minibatches of ``batch_size`` (sequences, for a recurrent policy)
    uniformly from ``buffer`` with the train state's generator; metrics as :func:`update`'s."""
    spec = train_state.spec
    config = spec.config
    length = spec.rnn.sequence_length if spec.rnn else 1
    metrics_list = []
    for _ in range(config.gradient_steps):
        batch = replay_lib.sample(buffer, train_state.generator, config.batch_size, length)
        lead = tuple(batch.terminated.shape[: 1 + (length > 1)])
        truncated = None
        if spec.rnn is not None:  # only the recurrent core reads the truncation flags (to reset hidden states)
            truncated = batch.truncated if batch.truncated is not None else torch.zeros_like(batch.terminated)
            truncated = truncated.reshape(lead).float()
        batch = batch._replace(rewards=batch.rewards.reshape(lead).float(),
                               terminated=batch.terminated.reshape(lead).float(), truncated=truncated)
        metrics_list.append(_gradient_step(train_state, batch, metrics))
    return train_state, _reduce_steps(metrics_list)
