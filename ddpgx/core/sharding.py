"""Data-parallel DDPG over devices and hosts with ``jax.sharding``: the same functions, any number of devices.

DDPG's update is a mean over a minibatch, so it parallelises over data: every device holds the whole train state
(replicated) and a slice of each minibatch; XLA computes each slice's share of the gradient and all-reduces it. No
``pmap`` and no hand-written ``pmean``: the train state's static spec carries the mesh, the core constrains each
minibatch to be split on the ``"data"`` axis and the new train state to be replicated, and ``jax.jit`` inserts the
collectives. Because the losses are means over the *whole* minibatch, the gradient equals the single-device one (a
``pmean`` of per-device ``grad``\\ s inside ``shard_map`` would be N times it), and 1, 8 or 2x4 devices give the same
numbers up to float summation order.

Usage::

    mesh = ddpgx.sharding.make_mesh()                      # all devices (or make_mesh(4))
    ts = ddpgx.sharding.shard(ts, mesh)                    # replicated train state, mesh in its spec
    batch = ddpgx.sharding.shard_batch(batch, mesh)        # leading (batch) axis split over the devices
    ts, metrics = ddpgx.update(ts, batch)                  # the same update function
    buffer = ddpgx.sharding.shard_replay(buffer, mesh)     # replay storage split over the devices

Several hosts: start one process per host with :func:`initialize` (coordinator address, process count and id from
its arguments or the ``DDPGX_COORDINATOR_ADDRESS``, ``DDPGX_NUM_PROCESSES``, ``DDPGX_PROCESS_ID`` variables, as
:mod:`ddpgx.cli.launch` sets them), build the mesh over all processes' devices, and let each process pass *its own
share* of the global batch to :func:`shard_batch` (``jax.make_array_from_process_local_data``). Only process 0
writes logs and checkpoints (:func:`is_main_process`).

Checkpoints hold plain host arrays, so a state saved under one layout restores under any other: load it, then
:func:`shard` it onto the new mesh.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ddpgx.core import replay
from ddpgx.core.ddpg import DATA_AXIS, TrainState

__all__ = ["DATA_AXIS", "initialize", "is_main_process", "make_mesh", "shard", "shard_batch", "shard_replay",
           "unshard"]


def make_mesh(devices: int | Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis (``"data"``) mesh over ``devices``: all devices (of all processes) by default, the first N for an
    integer, or the given devices."""
    available = jax.devices()
    if devices is None:
        chosen = available
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices={devices} is invalid: expected 1 to {len(available)} (the devices available: "
                             f"{len(available)}; on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
                             "makes N)")
        chosen = available[:devices]
    elif isinstance(devices, Sequence) and devices and all(isinstance(d, jax.Device) for d in devices):
        chosen = list(devices)
    else:
        raise ValueError(f"devices={devices!r} is invalid: expected None, a device count or a list of jax devices")
    return Mesh(np.asarray(chosen), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def _check_mesh(mesh: Any) -> Mesh:
    if isinstance(mesh, (int, np.integer)) and not isinstance(mesh, bool):
        return make_mesh(int(mesh))
    if not isinstance(mesh, Mesh) or DATA_AXIS not in mesh.shape:
        raise ValueError(f"mesh={mesh!r} is invalid: expected a jax.sharding.Mesh with a {DATA_AXIS!r} axis "
                         "(ddpgx.sharding.make_mesh) or a device count")
    return mesh


def shard(train_state: TrainState, mesh: Mesh | int) -> TrainState:
    """The train state replicated on every device of ``mesh``, with the mesh recorded in its static spec (so
    ``update``, ``update_from_replay``, ``add_and_update`` and ``act`` run data-parallel over it)."""
    if not isinstance(train_state, TrainState):
        raise ValueError(f"train_state must be a ddpgx.TrainState, got {type(train_state).__name__}")
    mesh = _check_mesh(mesh)
    batch_size = train_state.spec.config.batch_size
    if batch_size % mesh.shape[DATA_AXIS]:
        raise ValueError(f"batch_size={batch_size} cannot be split over {mesh.shape[DATA_AXIS]} devices: use a "
                         f"batch size divisible by {mesh.shape[DATA_AXIS]}")
    spec = _replace_mesh(train_state.spec, mesh)
    placed = jax.tree.map(lambda x: _put(x, NamedSharding(mesh, PartitionSpec())), train_state)
    return placed.replace(spec=spec)


def _put(x: Any, sharding: NamedSharding) -> jax.Array:
    """``x`` placed with ``sharding``; with several processes, each passes its local share (the whole value for a
    replicated sharding)."""
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(_put(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))


def unshard(train_state: TrainState, device: jax.Device | None = None) -> TrainState:
    """The train state on one device (the first by default), without a mesh."""
    device = device or jax.devices()[0]
    return jax.device_put(train_state, device).replace(spec=_replace_mesh(train_state.spec, None))


def _replace_mesh(spec: Any, mesh: Mesh | None) -> Any:
    return dataclasses.replace(spec, mesh=mesh)


def shard_batch(batch: Any, mesh: Mesh | int, *, axis: int = 0) -> Any:
    """A global batch split over the devices on ``axis`` (0 for ``[batch, ...]``, 1 for ``[steps, batch, ...]``).

    In a multi-process run, each process passes its own share (its local rows); the result is the global array of
    all processes' rows in process order (``jax.make_array_from_process_local_data``).
    """
    mesh = _check_mesh(mesh)
    spec = PartitionSpec(*([None] * axis + [DATA_AXIS]))
    sharding = NamedSharding(mesh, spec)
    local_devices = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)

    def place(x):
        x = np.asarray(x)
        if x.ndim <= axis:
            raise ValueError(f"a batch leaf of shape {x.shape} has no axis {axis} to split")
        if x.shape[axis] % local_devices:
            raise ValueError(f"a batch of {x.shape[axis]} rows (axis {axis}) cannot be split over {local_devices} "
                             f"devices of this process: use a batch size divisible by {local_devices}")
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(place, batch)


def shard_replay(buffer: replay.ReplayState, mesh: Mesh | int) -> replay.ReplayState:
    """The replay storage split over the devices on its capacity axis (position and size replicated). With several
    processes, each process's buffer becomes its share of the global one."""
    mesh = _check_mesh(mesh)
    devices = mesh.shape[DATA_AXIS]
    if replay.capacity(buffer) % devices:
        raise ValueError(f"a replay capacity of {replay.capacity(buffer)} cannot be split over {devices} devices: use "
                         f"a capacity divisible by {devices}")
    return buffer.replace(
        data=jax.tree.map(lambda x: _put(x, NamedSharding(mesh, PartitionSpec(DATA_AXIS))), buffer.data),
        position=_put(buffer.position, NamedSharding(mesh, PartitionSpec())),
        size=_put(buffer.size, NamedSharding(mesh, PartitionSpec())),
    )


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """``jax.distributed.initialize`` from arguments or the environment (``DDPGX_COORDINATOR_ADDRESS``,
    ``DDPGX_NUM_PROCESSES``, ``DDPGX_PROCESS_ID``); on CPUs it selects gloo collectives. Does nothing for a single
    process."""
    coordinator_address = coordinator_address or os.environ.get("DDPGX_COORDINATOR_ADDRESS")
    num_processes = num_processes if num_processes is not None else _env_int("DDPGX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("DDPGX_PROCESS_ID")
    if num_processes in (None, 1) and coordinator_address is None:
        return
    if coordinator_address is None or num_processes is None or process_id is None:
        raise ValueError("a multi-process run needs coordinator_address, num_processes and process_id (arguments or "
                         "DDPGX_COORDINATOR_ADDRESS, DDPGX_NUM_PROCESSES, DDPGX_PROCESS_ID); got "
                         f"{coordinator_address!r}, {num_processes!r}, {process_id!r}")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id={process_id} is invalid: expected 0 <= process_id < {num_processes}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # used only where the devices are CPUs
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is invalid: expected an integer") from None


def is_main_process() -> bool:
    """Whether this process writes logs and checkpoints (process 0)."""
    return jax.process_index() == 0
