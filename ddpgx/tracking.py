"""Tracking: skrl's TensorBoard tags, their aggregation, and an event-file writer needing no TensorFlow or torch.

TensorBoard reads *event files*: a sequence of TFRecords (``uint64 length``, masked CRC-32C of the length, the
payload, masked CRC-32C of the payload), each payload a serialized ``tensorflow.Event`` protocol buffer. A scalar is
an ``Event{wall_time, step, summary: Summary{value: [Value{tag, simple_value}]}}``. That is small enough to encode
here by hand, so JAX users get TensorBoard logs without installing TensorFlow, and without ``tensorboardX`` (which
imports torch whenever torch is installed, about a second at start-up).

Aggregation follows skrl's agents: every ``track_data(tag, value)`` appends to a list; at each write interval a tag
ending in ``(min)`` is written as the minimum of its list, ``(max)`` as the maximum, anything else as the mean, and
the lists are cleared. Episode returns and lengths are kept for the last 100 finished episodes.

This module is framework-free (NumPy and the standard library), shared by ``ddpgx`` and ``ddpgx_torch``.
"""

from __future__ import annotations

import collections
import os
import socket
import struct
import time
from typing import Any, Iterable, Mapping, Optional

import numpy as np

__all__ = ["METRIC_TAGS", "EpisodeTracker", "SummaryWriter", "Tracker", "crc32c"]

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


# ---------------------------------------------------------------------------------------------------------------------
# The event-file format.


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli polynomial, reflected
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as TFRecord framing uses.

    >>> hex(crc32c(b"123456789"))  # the standard check value
    '0xe3069283'
    """
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _field(number, 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, *, file_version: Optional[str] = None, summary: bytes = b"") -> bytes:
    """A serialized ``Event`` (fields: 1 wall_time double, 2 step int64, 3 file_version string, 5 summary)."""
    out = _field(1, 1) + struct.pack("<d", wall_time) + _field(2, 0) + _varint(step & 0xFFFFFFFFFFFFFFFF)
    if file_version is not None:
        out += _length_delimited(3, file_version.encode())
    if summary:
        out += _length_delimited(5, summary)
    return out


def _scalar_summary(tag: str, value: float) -> bytes:
    """A serialized ``Summary{value: [Value{tag: 1 string, simple_value: 2 float}]}``."""
    value_message = _length_delimited(1, tag.encode()) + _field(2, 5) + struct.pack("<f", value)
    return _length_delimited(1, value_message)


def _record(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", _masked_crc(header)) + payload + struct.pack("<I", _masked_crc(payload))


class SummaryWriter:
    """Writes scalars to a TensorBoard event file in ``log_dir`` (created if missing).

    Example:
      >>> import tempfile
      >>> with SummaryWriter(tempfile.mkdtemp()) as writer:
      ...     writer.add_scalar("Loss / Critic loss", 0.5, 100)
    """

    def __init__(self, log_dir: str, *, flush_seconds: float = 10.0):
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise ValueError(f"log_dir={log_dir!r} is invalid: expected a directory path")
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = str(log_dir)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}.ddpgx"
        self.path = os.path.join(self.log_dir, name)
        self._file = open(self.path, "ab")  # noqa: SIM115 -- held open for the writer's lifetime
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self._file.write(_record(_event(time.time(), 0, file_version="brain.Event:2")))
        self.flush()

    def add_scalar(self, tag: str, value: Any, step: int, *, timestep: Optional[int] = None) -> None:
        """Appends one scalar. ``timestep`` is accepted as an alias of ``step`` (skrl's writer names it so)."""
        if self._file is None:
            raise ValueError(f"the writer for {self.log_dir!r} is closed")
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tag={tag!r} is invalid: expected a non-empty string")
        step = step if timestep is None else timestep
        value = float(np.asarray(value))  # raises for non-scalars, with NumPy's message
        summary = _scalar_summary(tag, value)
        self._file.write(_record(_event(time.time(), int(step), summary=summary)))
        if time.monotonic() - self._last_flush > self._flush_seconds:
            self.flush()

    def add_scalars(self, values: Mapping[str, Any], step: int) -> None:
        """Appends several scalars at one step."""
        for tag, value in values.items():
            self.add_scalar(tag, value, step)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

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

    def add(self, rewards: Any, terminated: Any, truncated: Any) -> np.ndarray:
        """Accounts one step of ``num_envs`` environments; returns the indices whose episode finished."""
        rewards = np.asarray(rewards, np.float64).reshape(-1)
        done = np.logical_or(np.asarray(terminated, bool).reshape(-1), np.asarray(truncated, bool).reshape(-1))
        if self._running_return is None or self._running_return.shape != rewards.shape:
            self._running_return = np.zeros_like(rewards)
            self._running_length = np.zeros(rewards.shape, np.int64)
        self._running_return += rewards
        self._running_length += 1
        ended = np.nonzero(done)[0]
        if ended.size:
            self.returns.extend(self._running_return[ended].tolist())
            self.lengths.extend(self._running_length[ended].tolist())
            self.finished += int(ended.size)
            self._running_return[ended] = 0.0
            self._running_length[ended] = 0
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
        self.data["Reward / Instantaneous reward (max)"].append(float(np.max(rewards)))
        self.data["Reward / Instantaneous reward (min)"].append(float(np.min(rewards)))
        self.data["Reward / Instantaneous reward (mean)"].append(float(np.mean(rewards)))
        if self.episodes.returns:
            returns, lengths = np.asarray(self.episodes.returns), np.asarray(self.episodes.lengths)
            self.data["Reward / Total reward (max)"].append(float(np.max(returns)))
            self.data["Reward / Total reward (min)"].append(float(np.min(returns)))
            self.data["Reward / Total reward (mean)"].append(float(np.mean(returns)))
            self.data["Episode / Total timesteps (max)"].append(float(np.max(lengths)))
            self.data["Episode / Total timesteps (min)"].append(float(np.min(lengths)))
            self.data["Episode / Total timesteps (mean)"].append(float(np.mean(lengths)))

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
