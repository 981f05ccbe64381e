"""The command line's path to the one-program loop: its progress line and TensorBoard callback, and the main job.

:func:`train_gymnax` runs :func:`ddpgx.core.jitted.make_train` on a gymnax environment with skrl's example settings
(:func:`pendulum_config`) and a :class:`ProgressLogger` (a progress line per interval, TensorBoard scalars under
skrl's tag names); :func:`train_jitted`, what ``ddpgx train --env gymnax:<id>`` runs, adds the outputs of the
gymnasium job (:func:`ddpgx.cli.runner.train`): a checkpoint, ``learning_curve.png`` and ``summary.json``.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from typing import Any, Optional, TextIO

import jax
import numpy as np

from ddpgx import agent, checkpoints
from ddpgx.cli import runner
from ddpgx.core import ddpg as core
from ddpgx.core import threefry, xla_cpu
from ddpgx.core.config import DDPGConfig
from ddpgx.core.jitted import JittedConfig, _check_int, make_env, make_train


class ProgressLogger:
    """A ``callback`` for :func:`make_train`: a progress line per interval and TensorBoard scalars.

    TensorBoard tags are the facade's (skrl's): the update's metrics through ``ddpgx.tracking.METRIC_TAGS``, the
    training-episode return as ``Reward / Total reward (mean)`` and the evaluation return as
    ``Reward / Evaluation return (mean)``, at step = environment steps (vector steps x ``num_envs``). Runs of a
    ``vmap`` are told apart by ``metrics["run"]``; each run ``r`` writes to ``<logdir>/run_<r>`` when ``runs > 1``.

    Args:
      timesteps: vector steps of the run (for the progress fraction).
      num_envs: environments per vector step (for TensorBoard steps and rates).
      logdir: TensorBoard directory, or None for no event files.
      runs: how many runs (vmapped) report to this logger.
      progress: print a progress line per interval (to ``stream``).
    """

    def __init__(self, timesteps: int, num_envs: int = 1, *, logdir: Optional[str] = None, runs: int = 1,
                 progress: bool = True, stream: Optional[TextIO] = None):
        _check_int("timesteps", timesteps, 1)
        _check_int("num_envs", num_envs, 1)
        _check_int("runs", runs, 1)
        self.timesteps, self.num_envs, self.runs = timesteps, num_envs, runs
        self.progress, self.stream = progress, stream
        self.logdir = logdir
        self._writers: dict[int, Any] = {}
        self._start = time.perf_counter()
        self.history: list[dict[str, np.ndarray]] = []

    def reset_clock(self) -> None:
        """Starts the rate measurement now (call it right before running the compiled program)."""
        self._start = time.perf_counter()

    def _writer(self, run: int):
        if run not in self._writers:
            from ddpgx import tracking

            path = self.logdir if self.runs == 1 else f"{self.logdir}/run_{run}"
            self._writers[run] = tracking.SummaryWriter(path)
        return self._writers[run]

    def __call__(self, metrics: dict[str, np.ndarray]) -> None:
        self.history.append(metrics)
        run, t = int(metrics["run"]), int(metrics["timestep"])
        env_steps = t * self.num_envs
        if self.logdir is not None:
            from ddpgx import tracking

            writer = self._writer(run)
            for key, tag in tracking.METRIC_TAGS.items():
                if key in metrics and int(metrics["update_count"]) > 0:
                    writer.add_scalar(tag, float(metrics[key]), env_steps)
            if int(metrics["episode_count"]) > 0:
                writer.add_scalar("Reward / Total reward (mean)", float(metrics["episode_return"]), env_steps)
            if np.isfinite(metrics["eval_return"]):
                writer.add_scalar("Reward / Evaluation return (mean)", float(metrics["eval_return"]), env_steps)
            writer.flush()
        if self.progress:
            elapsed = time.perf_counter() - self._start
            width = 20
            filled = int(width * t / self.timesteps)
            bar = "#" * filled + "." * (width - filled)
            prefix = f"run {run} " if self.runs > 1 else ""
            stream = self.stream or sys.stdout
            print(
                f"{prefix}[{bar}] {t:>7}/{self.timesteps}  return {float(metrics['episode_return']):9.2f}  "
                f"eval {float(metrics['eval_return']):9.2f}  critic loss {float(metrics['critic_loss']):8.4f}  "
                f"{elapsed:6.1f} s",
                file=stream, flush=True,
            )

    def close(self) -> None:
        """Closes the TensorBoard writers."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def pendulum_config() -> DDPGConfig:
    """skrl's Pendulum-v1 DDPG example (:func:`ddpgx.cli.runner.skrl_example_cfg`) as the core's :class:`DDPGConfig`:
    batch 100, OU noise (theta 0.15, sigma 0.1), 100 random timesteps, lr 1e-3, gamma 0.99, polyak 0.005."""
    return agent.core_config(runner.skrl_example_cfg())


def train_gymnax(
    env_id: str,
    *,
    timesteps: int = 15_000,
    num_envs: int = 1,
    seed: int = 0,
    config: Optional[DDPGConfig] = None,
    learning_starts: int = 100,
    memory_size: int = 15_000,
    eval_interval: int = 1_000,
    eval_episodes: int = 10,
    logdir: Optional[str] = None,
    progress: bool = True,
    stream: Optional[TextIO] = None,
) -> tuple[core.TrainState, dict[str, Any]]:
    """The main job on a gymnax environment: one compiled program for the whole training run.

    Args:
      env_id: a gymnax id, with or without the ``gymnax:`` prefix (``"gymnax:Pendulum-v1"``).
      timesteps: vector steps; ``num_envs`` environments each take that many steps.
      seed: the run's PRNG seed (``jax.random.key(seed)``).
      config: the algorithm's configuration; default :func:`pendulum_config` (skrl's example settings).
      learning_starts: see :class:`JittedConfig`.
      memory_size: see :class:`JittedConfig`.
      eval_interval: see :class:`JittedConfig`.
      eval_episodes: see :class:`JittedConfig`.
      logdir: TensorBoard directory (skrl's tags), or None.
      progress: print a progress line per interval.

    Returns:
      ``(train_state, summary)``, summary a dict: ``train_seconds`` (the compiled run, evaluations included),
      ``compile_seconds``, ``env_steps_per_second``, ``episode_returns`` (per interval, the mean return of the
      training episodes that ended in it; intervals where none ended are left out), ``eval_returns`` (the last
      evaluation's per-episode returns), ``eval_return`` (their mean) and ``metrics`` (all per-interval arrays,
      NumPy).

    Raises:
      ValueError: for an unknown environment or bad settings, naming the value.
    """
    _check_int("seed", seed, 0)
    settings = JittedConfig(timesteps=timesteps, num_envs=num_envs, learning_starts=learning_starts,
                            memory_size=memory_size, eval_interval=eval_interval, eval_episodes=eval_episodes)
    env, env_params = make_env(env_id)
    config = config or pendulum_config()
    logger = ProgressLogger(timesteps, num_envs, logdir=logdir, progress=progress, stream=stream)
    callback = logger if (progress or logdir is not None) else None
    train = make_train(env, env_params, config, settings, callback=callback)
    key = jax.random.key(seed)
    start = time.perf_counter()
    with threefry.unrolled():
        compiled = jax.jit(train).lower(key).compile(compiler_options=xla_cpu.for_rows(config.batch_size))
    compile_seconds = time.perf_counter() - start
    logger.reset_clock()
    start = time.perf_counter()
    train_state, metrics = jax.block_until_ready(compiled(key))
    seconds = time.perf_counter() - start
    logger.close()
    metrics = jax.tree.map(np.asarray, metrics)
    counts = metrics["episode_count"]
    eval_returns = metrics["eval_returns"][-1].tolist() if eval_episodes else []
    return train_state, {
        "train_seconds": seconds,
        "compile_seconds": compile_seconds,
        "env_steps_per_second": timesteps * num_envs / seconds,
        "episode_returns": metrics["episode_return"][counts > 0].tolist(),
        "eval_returns": eval_returns,
        "eval_return": float(np.mean(eval_returns)) if eval_returns else float("nan"),
        "metrics": metrics,
    }


def train_jitted(run: runner.RunPlan, *, progress: bool | None = None, log: Any = print) -> dict[str, Any]:
    """The main job on a gymnax environment (``env.id`` ``"gymnax:<id>"``): the whole run as one compiled program
    (:func:`train_gymnax`) with the ``cfg`` section as the algorithm's configuration (and its
    ``learning_starts``), the default 400-300 networks, ``memory.memory_size``, and an evaluation of
    ``evaluation.episodes`` episodes every ``evaluation.interval`` timesteps (every 1,000 when 0: the program's
    logging interval); then the same outputs as :func:`ddpgx.cli.runner.train`: TensorBoard logs, a checkpoint of
    the final train state, ``episodes.csv``, ``learning_curve.png`` and ``summary.json`` (resuming is not supported
    on this path)."""
    config = run.config
    if run.checkpoint is not None:
        raise ValueError("--resume is not supported for gymnax environments (one compiled program)")
    if config["run.backend"] != "jax":
        raise ValueError("gymnax environments run on the JAX backend only (run.backend='jax')")
    for key in ("networks.policy_hidden_sizes", "networks.critic_hidden_sizes"):
        if config[key] != [400, 300]:
            raise ValueError(f"{key}={config[key]!r} is not supported on gymnax environments: the compiled program "
                             "uses the default 400-300 networks")
    cfg = runner.config_lib.build_ddpg_cfg(config["cfg"], "jax")
    os.makedirs(run.run_dir, exist_ok=True)
    runner._write_run_file(run, [{"start": 0, "target": config["run.timesteps"],
                           "started": datetime.datetime.now().isoformat(timespec="seconds")}])
    timesteps = config["run.timesteps"]
    interval = config["evaluation.interval"] or min(1_000, timesteps)
    ts, summary = train_gymnax(config["env.id"], timesteps=timesteps, num_envs=config["env.num_envs"],
                                      seed=config["run.seed"], config=agent.core_config(cfg),
                                      learning_starts=cfg.learning_starts, memory_size=config["memory.memory_size"],
                                      eval_interval=interval, eval_episodes=max(config["evaluation.episodes"], 1),
                                      logdir=run.run_dir, progress=progress is not False)
    checkpoints.save(os.path.join(run.run_dir, "checkpoints", f"agent_{timesteps}"),
                     {"train_state": checkpoints.train_state_tree(ts)}, {"timestep": timesteps})
    metrics = summary["metrics"]
    ended = metrics["episode_count"] > 0
    log_file = runner.EpisodeLog(run.run_dir, None)
    for t, r in zip(metrics["timestep"][ended].astype(int).tolist(), summary["episode_returns"], strict=False):
        log_file.add(t, "train", float(r))  # per interval: the mean return of the episodes that ended in it
    if config["evaluation.interval"] and config["evaluation.episodes"]:
        for t, returns in zip(metrics["timestep"].astype(int).tolist(), metrics["eval_returns"], strict=True):
            log_file.add(t, "eval", float(np.mean(returns)), float(np.std(returns)))
    log_file.close()
    result = {"experiment_dir": run.run_dir, "env_id": config["env.id"], "backend": "jax", "preset": run.preset,
              "train_seconds": summary["train_seconds"], "compile_seconds": summary["compile_seconds"],
              "env_steps_per_second": summary["env_steps_per_second"], "start_timestep": 0,
              "end_timestep": timesteps, "target_timesteps": timesteps, "interrupted": None}
    if config["evaluation.episodes"]:
        returns = [float(r) for r in summary["eval_returns"]]
        result.update(eval_returns=returns, eval_mean=float(np.mean(returns)), eval_std=float(np.std(returns)))
    return runner._summary(run, result)
