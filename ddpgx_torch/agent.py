"""The skrl-style ``DDPG`` facade over the torch core: ``DDPG``, ``DDPG_RNN`` (the same class) and ``DDPG_CFG``.

The constructor and methods are skrl 2.x's documented ones (``act``, ``record_transition``, ``pre_interaction``,
``post_interaction``, ``update``, ``init``, ``save``, ``load``, ``write_checkpoint``, ``track_data``,
``write_tracking_data``, ``enable_training_mode``, ``enable_models_training_mode``). The facade adds no algorithm
math: it holds a :class:`ddpgx_torch.TrainState` and calls :func:`ddpgx_torch.act` and
:func:`ddpgx_torch.update_from_replay`. A policy whose ``get_specification()`` declares RNN sizes turns on the
recurrent core (sequence sampling, per-transition hidden states); ``DDPG_RNN`` is the documented name for it.

Departures from skrl, on purpose: exploration noise is only added in training mode (skrl also adds it while
evaluating); the OU process and hidden states reset at episode ends; ``load`` restores optimizer states and
running statistics too; tracking writes with ``ddpgx.tracking`` (TensorBoard event files, skrl's tag names).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import math
import os
from collections.abc import Mapping
from typing import Any, Optional

import gymnasium
import numpy as np
import torch
from torch import nn

from ddpgx import tracking
from ddpgx.core.validation import check_numeric
from ddpgx.ddpg_cfg import DDPG_CFG as _SharedCFG
from ddpgx.ddpg_cfg import ExperimentCfg, experiment_dir, make_cfg, pair, resolve_interval
from ddpgx.envs import true_next_observations
from ddpgx_torch.core import config as config_lib
from ddpgx_torch import checkpoints, core, preprocessors
from ddpgx_torch.core import distributed, noise, replay, scaler
from ddpgx_torch.memories import RandomMemory
from ddpgx_torch import settings
from ddpgx_torch.core.types import Transition

__all__ = ["DDPG", "DDPG_CFG", "DDPG_RNN", "ExperimentCfg"]

_MODULE_NAMES = ("policy", "target_policy", "critic", "target_critic")


@dataclasses.dataclass(kw_only=True, slots=True)
class DDPG_CFG(_SharedCFG):  # noqa: N801 -- skrl's documented name
    """skrl 2.x's torch ``DDPG_CFG``: every field of :class:`ddpgx.DDPG_CFG` (shared, with its validation) plus
    ``mixed_precision``: ``False`` (float32), ``True`` (bf16 on CPU, fp16 on CUDA), ``"bf16"`` or ``"fp16"``.

    ``learning_rate_scheduler`` here is a ``torch.optim.lr_scheduler`` class (skrl torch's convention), constructed
    with the optimizer and ``learning_rate_scheduler_kwargs`` and stepped after every gradient step.
    """

    mixed_precision: bool | str = False

    def validate(self) -> None:
        _SharedCFG.validate(self)  # (slotted dataclasses cannot use zero-argument super())
        if not any(self.mixed_precision is m or (isinstance(m, str) and self.mixed_precision == m)
                   for m in config_lib.MIXED_PRECISION):
            raise ValueError(f"mixed_precision={self.mixed_precision!r} is invalid: expected False, True, 'bf16' or "
                             "'fp16'")


def _make_cfg(cfg: Any) -> DDPG_CFG:
    """A validated torch ``DDPG_CFG`` from one, a dict of its fields, or a JAX ``ddpgx.DDPG_CFG`` (fields copied)."""
    if cfg is None:
        cfg = DDPG_CFG()
    elif isinstance(cfg, Mapping):
        cfg = copy.deepcopy(dict(cfg))
    elif isinstance(cfg, _SharedCFG) and not isinstance(cfg, DDPG_CFG):
        cfg = DDPG_CFG(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(_SharedCFG)})
    return make_cfg(cfg, DDPG_CFG)


def _preprocessor_settings(cls: Any, kwargs: dict, name: str) -> tuple[bool, float, float]:
    if cls is None:
        return False, 1e-8, 5.0
    if cls is not preprocessors.RunningStandardScaler and getattr(cls, "__name__", "") != "RunningStandardScaler":
        raise ValueError(f"{name}={cls!r} is not supported: expected ddpgx_torch.preprocessors.RunningStandardScaler "
                         "or None")
    return True, float(kwargs.get("epsilon", 1e-8)), float(kwargs.get("clip_threshold", 5.0))


def _make_noise(cls: Any, kwargs: dict) -> Any:
    if cls is None or isinstance(cls, (noise.GaussianNoise, noise.OrnsteinUhlenbeckNoise,
                                       torch.distributions.Distribution)):
        return cls
    if callable(cls):
        return cls(**kwargs)
    raise ValueError(f"exploration_noise={cls!r} is invalid: expected a noise class (with exploration_noise_kwargs), "
                     "a noise instance, or None")


class _ZeroCritic(nn.Module):
    """Stands in for the critic of an evaluation-only agent (``models`` holding only a plain-module policy)."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # optimizers refuse a module without parameters

    def forward(self, inputs, actions):
        return torch.zeros(actions.shape[0], device=actions.device)


class _ZeroSkrlCritic(_ZeroCritic):
    """The stand-in critic for a skrl-style policy (the core wants policy and critic of the same kind)."""

    def act(self, inputs, role=""):
        return torch.zeros(inputs["taken_actions"].shape[0], 1, device=inputs["taken_actions"].device), {}

    compute = act


class DDPG:
    """Deep Deterministic Policy Gradient (Lillicrap et al. 2015, arXiv:1509.02971), skrl's documented interface.

    Raises:
      KeyError: a model needed is missing (its key is named): 'policy', and 'critic' with a memory.
      ValueError: for a bad configuration value, naming it.
    """

    def __init__(
        self,
        *,
        models: dict[str, nn.Module],
        memory: RandomMemory | None = None,
        observation_space: gymnasium.Space | None = None,
        state_space: gymnasium.Space | None = None,
        action_space: gymnasium.Space | None = None,
        device: str | torch.device | None = None,
        cfg: DDPG_CFG | dict | None = None,
    ) -> None:
        cfg = self.cfg = _make_cfg(cfg)
        if not isinstance(models, Mapping):
            raise ValueError(f"models={models!r} is invalid: expected a dict of models")
        if models.get("policy") is None:
            raise KeyError("models has no 'policy': DDPG needs models['policy'] (and 'critic' to train)")
        if memory is not None and not isinstance(memory, RandomMemory):
            raise ValueError(f"memory={memory!r} is invalid: expected a ddpgx_torch.memories.RandomMemory or None")
        if memory is not None and models.get("critic") is None:
            raise KeyError("models has no 'critic': training (a memory was given) needs 'policy' and 'critic' "
                           "(targets are copied from them when absent)")
        self.models, self.memory = models, memory
        self.observation_space, self.state_space, self.action_space = observation_space, state_space, action_space
        self.device = settings.config.torch.parse_device(device)
        self.training = False
        self.explore_in_evaluation = False  # evaluation with exploration noise (the trainer's stochastic_evaluation)
        self.skipped_transitions = 0  # non-finite transitions dropped (cfg.nonfinite_transitions="skip")

        obs_on, obs_eps, obs_clip = _preprocessor_settings(cfg.observation_preprocessor,
                                                           cfg.observation_preprocessor_kwargs,
                                                           "observation_preprocessor")
        state_on, state_eps, state_clip = _preprocessor_settings(cfg.state_preprocessor, cfg.state_preprocessor_kwargs,
                                                                 "state_preprocessor")
        if obs_on and state_on and (obs_eps, obs_clip) != (state_eps, state_clip):
            raise ValueError("observation_preprocessor_kwargs and state_preprocessor_kwargs must agree on epsilon and "
                             "clip_threshold (one setting in the core)")
        self.core_config = config_lib.DDPGConfig(
            batch_size=cfg.batch_size, gradient_steps=cfg.gradient_steps, discount_factor=cfg.discount_factor,
            polyak=cfg.polyak, learning_rate=pair(cfg.learning_rate),
            grad_norm_clip=float(cfg.grad_norm_clip), random_timesteps=cfg.random_timesteps,
            exploration_noise=_make_noise(cfg.exploration_noise, cfg.exploration_noise_kwargs),
            exploration_scheduler=cfg.exploration_scheduler, observation_preprocessor=obs_on,
            state_preprocessor=state_on and state_space is not None,
            preprocessor_epsilon=obs_eps if obs_on else state_eps, preprocessor_clip=obs_clip if obs_on else state_clip,
            mixed_precision=cfg.mixed_precision,
        )  # fmt: skip
        policy, critic = models["policy"], models.get("critic")
        if critic is None:
            critic = _ZeroSkrlCritic() if hasattr(policy, "compute") else _ZeroCritic()
            if hasattr(policy, "compute"):
                critic.compute = critic.act
        num_envs = memory.num_envs if memory is not None else 1
        seed = int(torch.randint(0, 2**62, ()))  # from torch's global generator: skrl's set_seed applies
        self.train_state = core.init(
            seed, self.core_config, observation_space, action_space, state_space=state_space, policy=policy,
            critic=critic, target_policy=models.get("target_policy"), target_critic=models.get("target_critic"),
            num_envs=num_envs, device=self.device,
        )  # fmt: skip
        ts = self.train_state
        self.policy, self.critic = ts.policy, ts.critic
        self.target_policy, self.target_critic = ts.target_policy, ts.target_critic
        self.policy_optimizer, self.critic_optimizer = ts.policy_optimizer, ts.critic_optimizer
        self.scaler = ts.grad_scaler
        schedulers, scheduler_kwargs = pair(cfg.learning_rate_scheduler), pair(cfg.learning_rate_scheduler_kwargs)
        self.policy_scheduler = None if schedulers[0] is None else schedulers[0](ts.policy_optimizer,
                                                                                 **scheduler_kwargs[0])
        self.critic_scheduler = None if schedulers[1] is None else schedulers[1](ts.critic_optimizer,
                                                                                 **scheduler_kwargs[1])
        self._episode_starts: torch.Tensor | None = None
        self._last_rnn_states: list | None = None

        # tracking and checkpoints (skrl's layout: <directory>/<experiment_name>/checkpoints/agent_<timestep>.pt)
        self.experiment_dir = experiment_dir(cfg.experiment, type(self).__name__)
        self.write_interval = self.checkpoint_interval = 0  # resolved by init()
        self.tracker = tracking.Tracker()
        self._wandb = None  # the Weights & Biases run, with cfg.experiment.wandb (started by init)
        self._submodules: dict[int, tuple[torch.nn.Module, Optional[list[torch.nn.Module]]]] = {}
        self.checkpoint_best_modules = {"timestep": 0, "reward": -math.inf, "saved": False, "modules": {}}

    # ---------------------------------------------------------------------------------------------------------------
    @property
    def tracking_data(self) -> dict[str, list]:
        return self.tracker.data

    def init(self, *, trainer_cfg: Any = None) -> None:
        """Resolves the ``"auto"`` intervals from the trainer's ``timesteps``; opens the TensorBoard writer and the
        checkpoint directory (rank 0 only under ``torch.distributed``)."""
        if dataclasses.is_dataclass(trainer_cfg):
            trainer_cfg = dataclasses.asdict(trainer_cfg)
        trainer_cfg = dict(trainer_cfg or {})
        timesteps = trainer_cfg.get("timesteps")
        experiment = self.cfg.experiment
        self.write_interval = resolve_interval(experiment.write_interval, timesteps, 100)
        self.checkpoint_interval = resolve_interval(experiment.checkpoint_interval, timesteps, 10)
        if not distributed.is_main_process():  # only rank 0 writes
            self.write_interval = self.checkpoint_interval = 0
        if self.write_interval > 0 and self.tracker.writer is None:
            self.tracker.writer = tracking.SummaryWriter(self.experiment_dir)
        if self.checkpoint_interval > 0:
            os.makedirs(os.path.join(self.experiment_dir, "checkpoints"), exist_ok=True)
        if self.cfg.experiment.wandb and self._wandb is None and distributed.is_main_process():
            self._wandb = tracking.start_wandb(experiment, self.experiment_dir, self.cfg, trainer_cfg)
        self.enable_models_training_mode(False)

    def reset_episodes(self) -> None:
        """Marks every environment as starting a new episode (the shared trainer calls it when it resets the
        environments at the start of ``train()``/``eval()``): the noise process and hidden states restart."""
        n = self.train_state.noise_state.shape[0]
        self._episode_starts = torch.ones(n, dtype=torch.bool, device=self.device)

    def enable_training_mode(self, enabled: bool = True, *, apply_to_models: bool = False) -> None:
        self.training = bool(enabled)
        if apply_to_models:
            self.enable_models_training_mode(enabled)

    def enable_models_training_mode(self, enabled: bool = True) -> None:
        """``module.train(enabled)`` on the four networks.

        Where no submodule overrides ``train``, the flags are set directly on a cached list of the submodules, which
        is what ``nn.Module.train`` does: it walks the children through ``Module.__setattr__``, about 100 us per
        environment step for the two calls around each update. The list is taken once per network, so submodules
        added to a network after its first use here are not covered.
        """
        for module in (self.policy, self.critic, self.target_policy, self.target_critic):
            cached = self._submodules.get(id(module))
            if cached is None or cached[0] is not module:
                submodules = list(module.modules())
                plain = all(type(m).train is torch.nn.Module.train for m in submodules)
                cached = self._submodules[id(module)] = (module, submodules if plain else None)
            if cached[1] is None:
                module.train(enabled)
            else:
                for m in cached[1]:
                    m.__dict__["training"] = enabled

    # ---------------------------------------------------------------------------------------------------------------
    def act(self, observations: Any, states: Any = None, *, timestep: int, timesteps: int
            ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Actions for the environments' observations: the policy plus exploration noise in training mode (uniform
        random actions before ``random_timesteps``), clipped to the action bounds."""
        if not isinstance(observations, torch.Tensor):
            check_numeric(observations, "observations")
        if _single(self.observation_space, observations):  # one observation without a batch axis: one action
            batch = lambda x: x.unsqueeze(0) if isinstance(x, torch.Tensor) else np.asarray(x)[None]  # noqa: E731
            observations = {k: batch(v) for k, v in observations.items()} if isinstance(observations, dict) \
                else batch(observations)
            if states is not None:
                states = {k: batch(v) for k, v in states.items()} if isinstance(states, dict) else batch(states)
            actions, info = self.act(observations, states, timestep=timestep, timesteps=timesteps)
            return actions[0], info
        ts = self.train_state
        n = _batch_size(observations)
        if ts.noise_state.shape[0] != n:  # the number of environments is known from the first observations
            ts.noise_state = noise.init_state(n, ts.spec.action.size, self.device)
            if ts.spec.rnn:
                ts.rnn_states = [torch.zeros((s[0], n, s[2]), device=self.device) for s in ts.spec.rnn.sizes]
            self._episode_starts = None
        actions, ts, info = core.act(ts, observations, timestep=timestep, timesteps=timesteps,
                                     explore=self.training or self.explore_in_evaluation,
                                     episode_starts=self._episode_starts, states=states,
                                     metrics=self.write_interval > 0)
        self._episode_starts = None
        self._last_rnn_states = info.get("rnn_states")
        exploring = self.training and ts.noise is not None and timestep >= self.cfg.random_timesteps
        if exploring and self.write_interval > 0:
            self.tracker.track_metrics({k: info[k] for k in ("noise_max", "noise_min", "noise_mean")})
        outputs = {"rnn": list(ts.rnn_states)} if ts.spec.rnn else {}
        return actions, outputs

    def record_transition(self, *, observations: Any, states: Any, actions: Any, rewards: Any,
                          next_observations: Any, next_states: Any, terminated: Any, truncated: Any, infos: Any,
                          timestep: int, timesteps: int) -> None:
        """Tracks rewards and episodes, and (in training mode) stores the transition with the hidden states the
        policy started this step from; an episode end resets the noise process and hidden state at the next act."""
        spec = self.train_state.spec
        rewards_t = torch.as_tensor(np.asarray(rewards) if not isinstance(rewards, torch.Tensor) else rewards,
                                    device=self.device).reshape(-1).float()
        terminated_t = _flags(terminated, self.device)
        truncated_t = _flags(truncated, self.device)
        if self.write_interval > 0:
            self.tracker.track_step(rewards_t.cpu().numpy(), terminated_t.cpu().numpy(), truncated_t.cpu().numpy())
        if self.training:
            if self.memory is None:
                raise ValueError("this agent has no memory: construct it with memory=RandomMemory(...) to train")
            if self.cfg.rewards_shaper is not None:
                rewards_t = torch.as_tensor(self.cfg.rewards_shaper(rewards_t, timestep, timesteps),
                                            device=self.device).reshape(-1).float()
            fields = dict(
                observations=_flat(spec.observation, observations, self.device),
                actions=torch.as_tensor(actions, device=self.device).reshape(-1, spec.action.size).float(),
                rewards=rewards_t,
                # same-step autoreset: finished episodes' true last observations are in infos["final_obs"]
                next_observations=_flat(spec.observation, true_next_observations(next_observations, infos),
                                        self.device),
                terminated=terminated_t, truncated=truncated_t,
            )  # fmt: skip
            if spec.state is not None:
                fields["states"] = _flat(spec.state, states, self.device)
                fields["next_states"] = _flat(spec.state, true_next_observations(next_states, infos, "final_state"),
                                              self.device)
            if spec.rnn:
                fields["rnn_states"] = self._last_rnn_states
            if self._finite(fields, timestep):
                self.memory.add_samples(**fields)
        starts = terminated_t | truncated_t
        self._episode_starts = starts if bool(starts.any()) else None  # None: nothing to reset (the common case)

    def _finite(self, fields: dict[str, Any], timestep: int) -> bool:
        """``cfg.nonfinite_transitions``, as in ``ddpgx.DDPG``: ``"raise"`` names the first environment and field
        holding a NaN or infinity; ``"skip"`` drops the step and counts it in ``skipped_transitions``. The memory
        stores one row per step for all environments, so with several environments the whole step is dropped (all
        its transitions counted), where ``ddpgx`` drops only the bad environments' transitions."""
        names = [name for name in ("observations", "actions", "rewards", "next_observations", "states",
                                   "next_states") if fields.get(name) is not None]
        rows = [fields[name].reshape(fields[name].shape[0], -1) for name in names]
        if bool(torch.cat(rows, dim=1).isfinite().all()):  # the common case, in 4 tensor ops (about 10 us)
            return True
        bad = []
        for name, value in zip(names, rows, strict=True):
            bad += [(int(env), name) for env in torch.nonzero(~value.isfinite().all(dim=1)).flatten().tolist()]
        if self.cfg.nonfinite_transitions == "raise":
            env, name = min(bad)
            raise ValueError(f"non-finite {name} (NaN or inf) from environment {env} at timestep {timestep}; set "
                             "cfg.nonfinite_transitions='skip' to drop such transitions instead")
        n = fields["rewards"].shape[0]
        self.skipped_transitions += n
        self.tracker.track("Stats / Skipped transitions (non-finite)", float(n))
        return False

    def pre_interaction(self, *, timestep: int, timesteps: int) -> None:
        pass

    def post_interaction(self, *, timestep: int, timesteps: int) -> None:
        """Updates once ``timestep >= learning_starts`` (training mode), then writes checkpoints and tracking data at
        their intervals."""
        if self.training and timestep >= self.cfg.learning_starts and self.memory is not None \
                and len(self.memory) > 0:
            self.enable_models_training_mode(True)
            self.update(timestep=timestep, timesteps=timesteps)
            self.enable_models_training_mode(False)
        timestep += 1
        if timestep > 1 and self.checkpoint_interval > 0 and not timestep % self.checkpoint_interval:
            reward = self.tracker.mean("Reward / Total reward (mean)", -(2**31))
            if reward > self.checkpoint_best_modules["reward"]:
                self.checkpoint_best_modules.update(timestep=timestep, reward=reward, saved=False,
                                                    modules=copy.deepcopy(self._checkpoint(include_memory=False)))
            self.write_checkpoint(timestep=timestep, timesteps=timesteps)
        if timestep > 1 and self.write_interval > 0 and not timestep % self.write_interval:
            self.write_tracking_data(timestep=timestep, timesteps=timesteps)

    def update(self, *, timestep: int, timesteps: int) -> None:
        """``gradient_steps`` DDPG gradient steps on minibatches sampled from the memory."""
        buffer = self.memory.buffer
        length = self.train_state.spec.rnn.sequence_length if self.train_state.spec.rnn else 1
        if buffer is None or buffer.size < length:
            return
        for _ in range(self.cfg.gradient_steps):
            self.train_state, metrics = core.update_from_replay(self._one_step_state(), buffer,
                                                                metrics=self.write_interval > 0)
            for scheduler in (self.policy_scheduler, self.critic_scheduler):
                if scheduler is not None:
                    scheduler.step()
            if self.write_interval > 0:  # gradient norms are returned but, as in ddpgx, not tracked
                self.tracker.track_metrics({k: v for k, v in metrics.items()
                                            if k in tracking.METRIC_TAGS and not k.endswith("grad_norm")})

    def _one_step_state(self) -> core.TrainState:
        """The train state with a one-gradient-step configuration (the schedulers step between gradient steps)."""
        ts = self.train_state
        if ts.spec.config.gradient_steps == 1:
            return ts
        if not hasattr(self, "_single_spec"):
            self._single_spec = dataclasses.replace(ts.spec, config=ts.spec.config.replace(gradient_steps=1))
        ts.spec = self._single_spec
        return ts

    def block_until_ready(self) -> None:
        """Waits for every queued computation on the agent's device (for timing; the shared trainer calls it)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def track_data(self, tag: str, value: Any) -> None:
        self.tracker.track(tag, value)

    def write_tracking_data(self, *, timestep: int, timesteps: int) -> None:
        """Writes everything tracked since the last write to TensorBoard (and Weights & Biases when enabled)."""
        values = self.tracker.write(timestep)
        if self._wandb is not None and values:
            self._wandb.log(values, step=timestep)

    # ---------------------------------------------------------------------------------------------------------------
    def _checkpoint(self, include_memory: bool = True) -> dict[str, Any]:
        """Everything needed to resume, under skrl's module names where skrl has one; with ``include_memory`` the
        replay memory's contents too (skrl's checkpoints leave it out)."""
        ts = self.train_state
        modules = {name: getattr(ts, name).state_dict() for name in _MODULE_NAMES}
        modules["policy_optimizer"] = ts.policy_optimizer.state_dict()
        modules["critic_optimizer"] = ts.critic_optimizer.state_dict()
        if ts.spec.config.observation_preprocessor:
            modules["observation_preprocessor"] = _scaler_dict(ts.observation_stats)
        if ts.state_stats is not None and ts.spec.config.state_preprocessor:
            modules["state_preprocessor"] = _scaler_dict(ts.state_stats)
        for name, sched in (("policy_scheduler", self.policy_scheduler), ("critic_scheduler", self.critic_scheduler)):
            if sched is not None:
                modules[name] = sched.state_dict()
        modules["grad_scaler"] = ts.grad_scaler.state_dict()
        modules["ddpgx_torch"] = {"step": ts.step, "generator": ts.generator.get_state(),
                                  "noise_state": ts.noise_state, "hyperparams": ts.hyperparams._asdict(),
                                  "episode_starts": self._episode_starts}
        buffer = None if self.memory is None else self.memory.buffer
        if include_memory and buffer is not None:
            modules["memory"] = {"data": {k: v for k, v in buffer.data._asdict().items() if v is not None},
                                 "position": buffer.position, "size": buffer.size}
        return modules

    def save(self, path: str, include_memory: bool = True) -> None:
        """Writes the agent's state to ``path`` (a ``torch.save`` file, written atomically and sealed with its
        SHA-256: :mod:`ddpgx_torch.checkpoints`): :meth:`load` resumes from it exactly; without ``include_memory``
        the replay memory's contents are left out (as in skrl's checkpoints)."""
        checkpoints.save(self._checkpoint(include_memory), path)

    def _load_memory(self, saved: dict[str, Any], path: str) -> None:
        """Refills the memory from a checkpoint's ``"memory"``, after checking that it fits."""
        if self.memory is None:
            return
        data = Transition(**{k: v.to(self.memory.device) if isinstance(v, torch.Tensor)
                             else tuple(s.to(self.memory.device) for s in v) for k, v in saved["data"].items()})
        rows, envs = data.observations.shape[:2]
        if (rows, envs) != (self.memory.memory_size, self.memory.num_envs):
            raise ValueError(f"{path!r} holds a memory of {rows} steps x {envs} environments, but this agent's "
                             f"memory is RandomMemory(memory_size={self.memory.memory_size}, "
                             f"num_envs={self.memory.num_envs}); nothing was loaded into it")
        self.memory.buffer = replay.ReplayState(data=data, position=int(saved["position"]), size=int(saved["size"]),
                                                replacement=self.memory.replacement)

    def load(self, path: str) -> None:
        """Restores a checkpoint written by :meth:`save`/:meth:`write_checkpoint` (models, optimizers, running
        statistics, scheduler and scaler states, step, generator and, where saved, the replay memory's contents), or
        a skrl checkpoint's models.

        The file is read as data only (``torch.load(weights_only=True)``, after checking its seal or CRC-32s).

        Raises:
          ValueError: if ``path`` is truncated or altered, holds anything but tensors and plain containers (a pickle
            that would run code is refused before it runs), does not hold a checkpoint dict, or holds a memory of
            another size than this agent's (nothing is loaded then).
        """
        modules = checkpoints.load(path, map_location=self.device)
        if not isinstance(modules, dict):
            raise ValueError(f"{path!r} does not hold an agent checkpoint (a dict of modules)")
        if "memory" in modules:  # checked first: a mismatch leaves the agent as it was
            self._load_memory(modules["memory"], path)
        ts = self.train_state
        for name in _MODULE_NAMES:
            if name in modules:
                getattr(ts, name).load_state_dict(modules[name])
        for name in ("policy_optimizer", "critic_optimizer"):
            if name in modules:
                getattr(ts, name).load_state_dict(modules[name])
        if "observation_preprocessor" in modules:
            ts.observation_stats = _scaler_state(modules["observation_preprocessor"], self.device)
        if "state_preprocessor" in modules and ts.state_stats is not None:
            ts.state_stats = _scaler_state(modules["state_preprocessor"], self.device)
        for name, sched in (("policy_scheduler", self.policy_scheduler), ("critic_scheduler", self.critic_scheduler)):
            if sched is not None and name in modules:
                sched.load_state_dict(modules[name])
        if "grad_scaler" in modules:
            ts.grad_scaler.load_state_dict(modules["grad_scaler"])
        extra = modules.get("ddpgx_torch")
        if extra:
            ts.step = int(extra["step"])
            ts.generator.set_state(extra["generator"])
            ts.noise_state = extra["noise_state"].to(self.device)
            ts.hyperparams = core.Hyperparams(**extra["hyperparams"])
            starts = extra.get("episode_starts")
            self._episode_starts = None if starts is None else starts.to(self.device)
        for p in list(ts.target_policy.parameters()) + list(ts.target_critic.parameters()):
            p.requires_grad_(False)

    def write_checkpoint(self, *, timestep: int | None, timesteps: int) -> None:
        """``<experiment_dir>/checkpoints/agent_<timestep>.pt`` and, when the best mean return improved,
        ``best_agent.pt`` (or one file per module with ``store_separately``); each written atomically and sealed
        (:func:`ddpgx_torch.checkpoints.save`), so a kill at any moment leaves the previous files intact. Then
        applies retention (``cfg.experiment.checkpoint_keep`` and ``checkpoint_memory``, as in ``ddpgx.DDPG``)."""
        tag = str(timestep if timestep is not None else datetime.datetime.now().strftime("%y-%m-%d_%H-%M-%S-%f"))
        folder = os.path.join(self.experiment_dir, "checkpoints")
        os.makedirs(folder, exist_ok=True)
        modules = self._checkpoint(include_memory=self.cfg.experiment.checkpoint_memory != "none")
        if self.cfg.experiment.store_separately:
            for name, module in modules.items():
                checkpoints.save(module, os.path.join(folder, f"{name}_{tag}.pt"))
        else:
            checkpoints.save(modules, os.path.join(folder, f"agent_{tag}.pt"))
        best = self.checkpoint_best_modules
        if best["modules"] and not best["saved"]:
            if self.cfg.experiment.store_separately:
                for name, module in best["modules"].items():
                    checkpoints.save(module, os.path.join(folder, f"best_{name}.pt"))
            else:
                checkpoints.save(best["modules"], os.path.join(folder, "best_agent.pt"))
            best["saved"] = True
        if not self.cfg.experiment.store_separately:
            checkpoints.retain(folder, self.cfg.experiment.checkpoint_keep, self.cfg.experiment.checkpoint_memory)


#: skrl's documented name for the recurrent variant: the same class (the recurrent core turns on from the policy's
#: ``get_specification()``).
DDPG_RNN = DDPG


def _single(space: Any, observations: Any) -> bool:
    """Whether ``observations`` is one observation of ``space`` without a batch axis."""
    if isinstance(space, gymnasium.spaces.Dict) and isinstance(observations, dict):
        key = next(iter(space.spaces))
        return _single(space.spaces[key], observations[key])
    shape = getattr(space, "shape", None)
    return shape is not None and len(np.shape(observations)) == len(shape)


def _batch_size(observations: Any) -> int:
    if isinstance(observations, dict):
        return _batch_size(next(iter(observations.values())))
    return int(np.shape(observations)[0]) if np.ndim(observations) > 1 else 1


def _flags(x: Any, device: torch.device) -> torch.Tensor:
    x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return x.to(device).reshape(-1).bool()


def _flat(layout: Any, x: Any, device: torch.device) -> torch.Tensor:
    from ddpgx_torch.core import spaces

    return spaces.flatten(layout, x, "observations", device)


def _scaler_dict(state: scaler.ScalerState) -> dict[str, torch.Tensor]:
    return {"running_mean": state.mean, "running_variance": state.var, "current_count": state.count}


def _scaler_state(d: dict, device: torch.device) -> scaler.ScalerState:
    return scaler.ScalerState(d["running_mean"].to(device), d["running_variance"].to(device),
                              d["current_count"].to(device))
