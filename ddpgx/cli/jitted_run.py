"""The command line's path to the one-program loop: its progress line and TensorBoard callback, and the main job.

:func:`train_gymnax` runs :func:`ddpgx.core.jitted.make_train` on a gymnax environment with skrl's example settings
(:func:`pendulum_config`) and a :class:`ProgressLogger` (a progress line per interval, TensorBoard scalars under
skrl's tag names); :func:`train_jitted`, what ``ddpgx train --env gymnax:<id>`` runs, adds the outputs of the
gymnasium job (:func:`ddpgx.cli.runner.train`): a checkpoint, ``learning_curve.png`` and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
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
    compiled = jax.jit(train).lower(key).compile()
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


def train_jitted(settings: runner.RunSettings, *, progress: bool | None = None, log: Any = print) -> dict[str, Any]:
    """The main job on a gymnax environment (``settings.env_id`` ``"gymnax:<id>"``): the whole run as one compiled
    program (:func:`train_gymnax`) with skrl's example settings, then the same outputs as
    :func:`ddpgx.cli.runner.train`: TensorBoard logs, a checkpoint of the final train state, ``learning_curve.png`` and
    ``summary.json`` (resuming is not supported on this path)."""
    name = settings.experiment_name or f"{datetime.datetime.now():%y-%m-%d_%H-%M-%S-%f}_DDPG_jitted"
    run_dir = os.path.abspath(os.path.join(settings.directory, name))
    os.makedirs(run_dir, exist_ok=True)
    ts, summary = train_gymnax(settings.env_id, timesteps=settings.timesteps, num_envs=settings.num_envs,
                               seed=settings.seed, memory_size=settings.memory_size,
                               eval_episodes=max(settings.eval_episodes, 1), logdir=run_dir,
                               progress=progress is not False)
    runner._write_json(os.path.join(run_dir, "run.json"), dataclasses.asdict(settings))
    checkpoints.save(os.path.join(run_dir, "checkpoints", f"agent_{settings.timesteps}"),
                     {"train_state": checkpoints.train_state_tree(ts)}, {"timestep": settings.timesteps})
    metrics = summary["metrics"]
    ended = metrics["episode_count"] > 0
    result = {"experiment_dir": run_dir, "train_seconds": summary["train_seconds"],
              "compile_seconds": summary["compile_seconds"], "env_steps_per_second": summary["env_steps_per_second"],
              "episode_returns": summary["episode_returns"],
              "episode_end_timesteps": metrics["timestep"][ended].astype(int).tolist(), "start_timestep": 0}
    if settings.eval_episodes:
        returns = [float(r) for r in summary["eval_returns"]]
        result.update(eval_returns=returns, eval_mean=float(np.mean(returns)), eval_std=float(np.std(returns)))
    result["learning_curve"] = runner.plot_learning_curve(
        os.path.join(run_dir, "learning_curve.png"), result["episode_end_timesteps"], result["episode_returns"],
        title=f"DDPG on {settings.env_id}, one compiled program (seed {settings.seed})",
        eval_return=result.get("eval_mean"))
    runner._write_json(os.path.join(run_dir, "summary.json"), result)
    return result


__all__ = ["ProgressLogger", "pendulum_config", "train_gymnax", "train_jitted"]
