"""``SequentialTrainer``: skrl's environment loop, calling an agent's documented methods in skrl's order.

Each timestep: ``pre_interaction`` -> ``act`` -> ``env.step`` -> ``record_transition`` -> ``post_interaction`` (which
updates the agent, writes TensorBoard data and checkpoints at their intervals). ``train`` runs it with the agent in
training mode; ``eval`` with training mode off (no exploration noise, no memory writes, no updates). The
environment is wrapped with :func:`ddpgx.envs.wrap_env`, so finished episodes are reset in the same step and the
next timestep continues from the new episode's first observation.

As in skrl: ``close_environment_at_exit`` closes the environment when the program ends; the scalar entries of
``infos[environment_info]`` are tracked as ``Info / <name>``; ``stochastic_evaluation`` evaluates with the agent's
exploration noise (ddpgx's agents otherwise evaluate the deterministic policy, where skrl's DDPG always adds noise).
At the start of ``train()``/``eval()`` all environments are reset, and the agent is told so (``reset_episodes``), so
its Ornstein-Uhlenbeck state starts afresh.

This module is framework-free: the same trainer drives ``ddpgx.DDPG`` (JAX) and ``ddpgx_torch.DDPG``.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ddpgx import tracking
from ddpgx.ddpg_cfg import make_cfg
from ddpgx.envs import wrap_env

__all__ = ["SequentialTrainer", "SequentialTrainerCfg"]


@dataclasses.dataclass(kw_only=True, slots=True)
class SequentialTrainerCfg:
    """skrl's trainer configuration. ddpgx additions: ``seed``, the seed of the first environment reset, and
    ``initial_timestep``, the timestep to start counting from (to resume a run: schedules, ``random_timesteps``,
    ``learning_starts`` and checkpoint names continue from there)."""

    timesteps: int = 100_000
    headless: bool = False
    render_interval: int = 1
    disable_progressbar: bool | None = False
    close_environment_at_exit: bool = True
    environment_info: str = "episode"
    stochastic_evaluation: bool = False
    seed: int | None = None
    initial_timestep: int = 0

    def validate(self) -> None:
        if not isinstance(self.environment_info, str):
            raise ValueError(f"trainer environment_info={self.environment_info!r} is invalid: expected a string")
        for name in ("close_environment_at_exit", "stochastic_evaluation", "headless"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"trainer {name}={getattr(self, name)!r} is invalid: expected True or False")
        for name, low in (("timesteps", 1), ("render_interval", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"trainer {name}={value!r} is invalid: expected an integer >= {low}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"trainer seed={self.seed!r} is invalid: expected an integer >= 0 or None")
        start = self.initial_timestep
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < self.timesteps:
            raise ValueError(f"trainer initial_timestep={start!r} is invalid: expected an integer in [0, timesteps)")


class SequentialTrainer:
    """Trains or evaluates one agent on a (wrapped) gymnasium environment.

    Args:
      env: a gymnasium ``Env``/``VectorEnv`` or a :func:`ddpgx.envs.wrap_env` wrapper.
      agents: the agent, or a list holding exactly one agent.
      scopes: accepted for skrl compatibility; simultaneous agents are not supported.
      cfg: a :class:`SequentialTrainerCfg` or a dict of its fields.
      callback: (ddpgx) called after every timestep as ``callback(timestep, returns)``, ``timestep`` the number of
        timesteps done and ``returns`` the returns of the episodes that ended in it; a true result stops the run
        there (the summary's ``stopped_at`` is that timestep, else None).

    If the environment raises in a step, the error propagates unchanged (with a note naming the timestep), after
    ``failed_at`` is set to that timestep and ``summary`` to the run so far: every earlier timestep was recorded and
    learned from, so the agent can be saved there (the command line's ``ddpgx train`` does).
    """

    def __init__(self, *, env: Any, agents: Any, scopes: list[int] | None = None,
                 cfg: SequentialTrainerCfg | Mapping = {},  # noqa: B006 -- skrl's signature; never mutated
                 callback: Callable[[int, list[float]], Any] | None = None) -> None:
        self.cfg = make_cfg(cfg if isinstance(cfg, SequentialTrainerCfg) else dict(cfg), SequentialTrainerCfg,
                            "trainer cfg")
        if isinstance(agents, (list, tuple)):
            if len(agents) != 1:
                raise ValueError(f"{len(agents)} agents given: ddpgx's SequentialTrainer trains exactly one agent")
            agents = agents[0]
        self.env = wrap_env(env)
        self.agents = agents
        self.scopes = [(0, self.env.num_envs)]
        self.summary: dict[str, Any] = {}
        self.failed_at: int | None = None  # the timestep whose environment step raised (see the class docstring)
        self.callback = callback
        self.agents.init(trainer_cfg=dataclasses.asdict(self.cfg))
        if self.cfg.close_environment_at_exit:
            atexit.register(self.env.close)

    def train(self) -> dict[str, Any]:
        """Trains for ``cfg.timesteps`` timesteps; returns a summary (wall time, env steps/s, episode returns)."""
        self.agents.enable_training_mode(True)
        return self._run(training=True)

    def eval(self) -> dict[str, Any]:
        """Runs ``cfg.timesteps`` timesteps without exploration or learning; returns the same summary."""
        self.agents.enable_training_mode(False)
        stochastic = self.cfg.stochastic_evaluation
        if stochastic:
            self.agents.explore_in_evaluation = True
        try:
            return self._run(training=False)
        finally:
            if stochastic:
                self.agents.explore_in_evaluation = False

    def _run(self, training: bool) -> dict[str, Any]:
        agent, env, timesteps = self.agents, self.env, self.cfg.timesteps
        timed = getattr(agent, "write_interval", 0) > 0  # per-step timings only when they are written
        observations, infos = env.reset(seed=self.cfg.seed)
        states = env.state()
        agent.reset_episodes()  # every environment starts an episode here (the agent's noise process too)
        info_key = self.cfg.environment_info
        returns: list[float] = []
        ends: list[int] = []  # timestep at which each of those episodes ended
        episodes = tracking.EpisodeTracker(maxlen=10)  # the progress bar shows the mean of the last 10
        first = self.cfg.initial_timestep
        progress = _progress(timesteps, self.cfg.disable_progressbar, first)
        start = time.perf_counter()
        stopped_at = None
        done_steps = timesteps
        self.failed_at = None
        finished = False
        try:
            for timestep in range(first, timesteps):
                agent.pre_interaction(timestep=timestep, timesteps=timesteps)
                t0 = time.perf_counter()
                actions, _ = agent.act(observations, states, timestep=timestep, timesteps=timesteps)
                actions = _numpy(actions)
                t1 = time.perf_counter()
                try:
                    next_observations, rewards, terminated, truncated, infos = env.step(actions)
                    next_states = env.state()
                except Exception as error:
                    self.failed_at = done_steps = timestep
                    error.add_note(f"(raised by the environment's step at timestep {timestep}; every earlier "
                                   "timestep is complete)")
                    raise
                if timed:
                    agent.track_data("Stats / Inference time (ms)", (t1 - t0) * 1e3)
                    agent.track_data("Stats / Env stepping time (ms)", (time.perf_counter() - t1) * 1e3)
                if timed and isinstance(infos, Mapping) and isinstance(infos.get(info_key), Mapping):
                    for name, value in infos[info_key].items():
                        if np.size(value) == 1 and np.asarray(value).dtype.kind in "biuf":
                            agent.track_data(name if "/" in name else f"Info / {name}", float(np.asarray(value)))
                if not self.cfg.headless and timestep % self.cfg.render_interval == 0:
                    env.render()
                agent.record_transition(
                    observations=observations, states=states, actions=actions, rewards=rewards,
                    next_observations=next_observations, next_states=next_states, terminated=terminated,
                    truncated=truncated, infos=infos, timestep=timestep, timesteps=timesteps,
                )
                agent.post_interaction(timestep=timestep, timesteps=timesteps)
                observations, states = next_observations, next_states
                ended = episodes.add(rewards, terminated, truncated)
                if ended:
                    returns.extend(ended)
                    ends.extend([timestep + 1] * len(ended))
                    if progress is not None:
                        progress.set_postfix_str(f"return(last 10) {np.mean(episodes.returns):.1f}", refresh=False)
                if progress is not None:
                    progress.update(1)
                if self.callback is not None and self.callback(timestep + 1, ended):
                    stopped_at = done_steps = timestep + 1
                    break
            if hasattr(agent, "block_until_ready"):
                agent.block_until_ready()
            finished = True
        finally:
            if progress is not None:
                progress.close()
            if finished or self.failed_at is not None:  # not after an error of the agent's
                seconds = time.perf_counter() - start
                self.summary = {"seconds": seconds, "env_steps_per_second": (done_steps - first) * env.num_envs
                                / seconds, "episode_returns": returns, "episode_end_timesteps": ends,
                                "training": training, "stopped_at": stopped_at}
        return self.summary


def _numpy(actions: Any) -> np.ndarray:
    """Host NumPy actions from any backend: JAX and CPU arrays directly, a torch tensor on an accelerator through
    its ``.cpu()`` (``np.asarray`` refuses CUDA tensors)."""
    if type(actions).__module__.startswith("torch") and hasattr(actions, "cpu"):
        actions = actions.detach().cpu()
    return np.asarray(actions)


def _secondary_process() -> bool:
    """A launcher's process other than the first (``torchrun``'s ``RANK``, :mod:`ddpgx.cli.launch`'s
    ``DDPGX_PROCESS_ID``): it trains without a progress bar, as skrl's trainers do in distributed runs."""
    return any(os.environ.get(name, "0").strip() not in ("", "0") for name in ("RANK", "DDPGX_PROCESS_ID"))


def _progress(total: int, disable: bool | None, initial: int):
    if disable or _secondary_process():
        return None
    if disable is None and not sys.stdout.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, file=sys.stdout, mininterval=0.5, smoothing=0.05)
