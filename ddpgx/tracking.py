"""Tracking: skrl's TensorBoard tags, their aggregation, and a scalar writer on ``tensorboard``'s event-file writer.

The event files are written by the ``tensorboard`` package's own writer and protos, as skrl 2.x writes them: no
TensorFlow, and no ``tensorboardX`` (which imports torch whenever torch is installed, about a second at start-up).

Aggregation follows skrl's agents: every ``track_data(tag, value)`` appends to a list; at each write interval a tag
ending in ``(min)`` is written as the minimum of its list, ``(max)`` as the maximum, anything else as the mean, and
the lists are cleared. Episode returns and lengths are kept for the last 100 finished episodes.

This module is framework-free (NumPy, the standard library and, once a writer is made, ``tensorboard``), shared by
``ddpgx`` and ``ddpgx_torch``.
"""

from __future__ import annotations

import collections
import os
import time
from typing import Any, Iterable, Mapping, Optional

import numpy as np

__all__ = ["METRIC_TAGS", "NOISE_TAGS", "EpisodeTracker", "SummaryWriter", "Tracker", "reduce_by_tag"]

#: Metric keys returned by ``ddpgx.update`` (and ``ddpgx_torch``'s update) -> skrl's TensorBoard tag names.
METRIC_TAGS: dict[str, str] = {
    "critic_loss": "Loss / Critic loss",
    "policy_loss": "Loss / Policy loss",
    "q_max": "Q-network / Q1 (max)",
    "q_min": "Q-network / Q1 (min)",
    "q_mean": "Q-network / Q1 (mean)",
    "target_max": "Target / Target (max)",
    "target_min": "Target / Target (min)",
    "target_mean": "Target / Target (mean)",
    "policy_learning_rate": "Learning / Policy learning rate",
    "critic_learning_rate": "Learning / Critic learning rate",
    "policy_grad_norm": "Gradient / Policy gradient norm",
    "critic_grad_norm": "Gradient / Critic gradient norm",
    "skipped_updates": "Stats / Skipped updates (non-finite)",
}

#: Exploration-noise statistics (``noise_max/min/mean``) -> skrl's tags.
NOISE_TAGS: dict[str, str] = {
    "noise_max": "Exploration / Exploration noise (max)",
    "noise_min": "Exploration / Exploration noise (min)",
    "noise_mean": "Exploration / Exploration noise (mean)",
}


class SummaryWriter:
    """Writes scalars to a new TensorBoard event file in ``log_dir`` (created if missing).

    The writing is ``tensorboard``'s own (as in skrl 2.x): its ``EventFileWriter`` frames ``Event`` protos, which a
    background thread appends to the file; ``flush`` waits until everything added is on disk, and the thread also
    flushes every ``flush_seconds``. ``tensorboard`` is imported only here, when a writer is made (about 0.1 s), so
    ``import ddpgx`` does not pay for it. It needs neither TensorFlow nor torch (where TensorFlow is installed,
    ``tensorboard`` uses its file I/O, as skrl's writer then does). ``EventFileWriter`` is looked up when the writer is
    made, so Weights & Biases' ``sync_tensorboard`` (which patches that class) sees these events.

    Examples:
      >>> import tempfile
      >>> with SummaryWriter(tempfile.mkdtemp()) as writer:
      ...     writer.add_scalar("Loss / Critic loss", 0.5, 100)
    """

    def __init__(self, log_dir: str, *, flush_seconds: float = 10.0):
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise ValueError(f"log_dir={log_dir!r} is invalid: expected a directory path")
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer import event_file_writer

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self.log_dir = str(log_dir)
        self._writer = event_file_writer.EventFileWriter(self.log_dir, flush_secs=flush_seconds)

    def add_scalar(self, tag: str, value: Any, step: int, *, timestep: Optional[int] = None) -> None:
        """Appends one scalar. ``timestep`` is accepted as an alias of ``step`` (skrl's writer names it so)."""
        if self._writer is None:
            raise ValueError(f"the writer for {self.log_dir!r} is closed")
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tag={tag!r} is invalid: expected a non-empty string")
        value = float(np.asarray(value))  # raises for non-scalars, with NumPy's message
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=value)])
        step = int(step if timestep is None else timestep)
        self._writer.add_event(self._event(wall_time=time.time(), step=step, summary=summary))

    def flush(self) -> None:
        """Blocks until every scalar added so far is written to the file."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()  # flushes first
            self._writer = None

    def __enter__(self) -> "SummaryWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------------------------
# Aggregation, as skrl's agents do it.


def reduce_by_tag(tag: str, values: Iterable[float]) -> float:
    """skrl's rule: ``(min)`` tags keep the minimum, ``(max)`` tags the maximum, other tags the mean."""
    values = np.asarray(list(values), np.float64)
    if tag.endswith("(min)"):
        return float(np.min(values))
    if tag.endswith("(max)"):
        return float(np.max(values))
    return float(np.mean(values))


class EpisodeTracker:
    """Running episode returns and lengths per environment; keeps the last ``maxlen`` finished episodes."""

    def __init__(self, maxlen: int = 100):
        self.returns: collections.deque = collections.deque(maxlen=maxlen)
        self.lengths: collections.deque = collections.deque(maxlen=maxlen)
        self.finished = 0  # episodes finished in all
        self._running_return: Optional[np.ndarray] = None
        self._running_length: Optional[np.ndarray] = None

    def add(self, rewards: Any, terminated: Any, truncated: Any) -> list[float]:
        """Accounts one step of ``num_envs`` environments; returns the returns of the episodes that finished in it
        (in environment order)."""
        rewards = np.asarray(rewards, np.float64).reshape(-1)
        done = np.logical_or(np.asarray(terminated, bool).reshape(-1), np.asarray(truncated, bool).reshape(-1))
        if self._running_return is None or self._running_return.shape != rewards.shape:
            self._running_return = np.zeros_like(rewards)
            self._running_length = np.zeros(rewards.shape, np.int64)
        self._running_return += rewards
        self._running_length += 1
        if not done.any():
            return []
        ended = self._running_return[done].tolist()
        self.returns.extend(ended)
        self.lengths.extend(self._running_length[done].tolist())
        self.finished += len(ended)
        self._running_return[done] = 0.0
        self._running_length[done] = 0
        return ended

    def clear(self) -> None:
        self.returns.clear()
        self.lengths.clear()


class Tracker:
    """skrl's ``track_data`` / ``write_tracking_data`` bookkeeping, with an optional writer.

    Values may be device arrays: they are only converted to floats when written, in one transfer per interval.
    """

    def __init__(self, writer: Optional[SummaryWriter] = None):
        self.writer = writer
        self.data: dict[str, list] = collections.defaultdict(list)
        self.episodes = EpisodeTracker()
        self.history: dict[str, list[tuple[int, float]]] = collections.defaultdict(list)  # what was written

    def track(self, tag: str, value: Any) -> None:
        self.data[tag].append(value)

    def track_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Tracks a dict of metrics from an update, under skrl's tag names (unknown keys under ``Metrics / key``)."""
        for key, value in metrics.items():
            self.data[METRIC_TAGS.get(key, NOISE_TAGS.get(key, f"Metrics / {key}"))].append(value)

    def track_step(self, rewards: Any, terminated: Any, truncated: Any) -> None:
        """Instantaneous rewards and, once an episode has finished, total rewards and episode lengths."""
        rewards = np.asarray(rewards, np.float64).reshape(-1)
        self.episodes.add(rewards, terminated, truncated)
        series = {"Reward / Instantaneous reward": rewards}
        if self.episodes.returns:
            series["Reward / Total reward"] = np.asarray(self.episodes.returns)
            series["Episode / Total timesteps"] = np.asarray(self.episodes.lengths)
        for name, values in series.items():
            for stat, reduce in (("max", np.max), ("min", np.min), ("mean", np.mean)):
                self.data[f"{name} ({stat})"].append(float(reduce(values)))

    def mean(self, tag: str, default: float) -> float:
        """The mean of what is tracked under ``tag`` since the last write (``default`` if nothing is)."""
        values = self.data.get(tag)
        return float(np.mean(np.asarray(_to_host(values), np.float64))) if values else default

    def write(self, step: int) -> dict[str, float]:
        """Reduces every tag, writes it (if there is a writer), clears the lists; returns what was reduced."""
        reduced = {tag: reduce_by_tag(tag, _to_host(values)) for tag, values in self.data.items() if values}
        for tag, value in reduced.items():
            self.history[tag].append((int(step), value))
            if self.writer is not None:
                self.writer.add_scalar(tag, value, step)
        if self.writer is not None:
            self.writer.flush()
        self.data.clear()
        self.episodes.clear()
        return reduced


def _to_host(values: list) -> list:
    """Floats from a list of Python numbers and 0-d device arrays, with one device transfer for all of them."""
    if any(type(v).__module__.startswith("jax") for v in values):
        import jax  # only reached with JAX arrays

        values = jax.device_get(values)
    return [float(v.item()) if hasattr(v, "item") else float(v) for v in values]


def start_wandb(experiment: Any, experiment_dir: str, agent_cfg: Any, trainer_cfg: Any) -> Any:
    """``wandb.init`` for an agent whose ``cfg.experiment.wandb`` is set (both backends): ``experiment.wandb_kwargs``,
    with the run named after the experiment directory and the agent's and trainer's configurations as its config
    unless given; returns the run (its ``log(values, step=timestep)`` takes what :meth:`Tracker.write` returns).

    Raises:
      ValueError: if the ``wandb`` package is not installed.
    """
    try:
        import wandb
    except ImportError as error:
        raise ValueError("experiment.wandb=True needs the wandb package (pip install wandb)") from error
    kwargs = dict(experiment.wandb_kwargs)
    kwargs.setdefault("name", os.path.basename(experiment_dir))
    kwargs.setdefault("config", {"agent": repr(agent_cfg), "trainer": dict(trainer_cfg or {})})
    return wandb.init(**kwargs)
