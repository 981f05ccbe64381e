"""Checkpoints of a train state (and optionally its replay buffer) with orbax-checkpoint, and their retention.

A checkpoint is a directory written by ``orbax.checkpoint.StandardCheckpointer``: every array of the train state
(policy, critic and target parameters, both optimizer states, scaler statistics, noise parameters and the
Ornstein-Uhlenbeck state, hyperparameters, step count and the PRNG key as raw key data) with a small JSON of metadata
(timestep, what is inside), and, optionally, the replay buffer in a ``memory`` sub-checkpoint. :func:`save` writes it
under a temporary name, seals it with a manifest of every file's size and SHA-256 (:func:`ddpgx.safe_io.write_manifest`:
orbax verifies no file contents on restore) and renames it into place, so a directory named ``agent_<timestep>`` is
always a whole checkpoint; :func:`verify` checks it against its manifest, :func:`load` refuses a damaged one with a
``ValueError`` and :func:`latest` finds the newest intact one. :func:`retain` keeps the last few checkpoints of a run
and the replay buffer only in the newest.

Layout, as skrl documents it: ``<directory>/<experiment_name>/checkpoints/agent_<timestep>`` and ``best_agent``
(``<module>_<timestep>`` and ``best_<module>`` per module with ``store_separately``).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ddpgx import safe_io

__all__ = ["FORMAT", "MANIFEST", "latest", "load", "metadata", "retain", "save", "train_state_tree", "verify"]

FORMAT = "ddpgx-checkpoint-1"
MANIFEST = safe_io.MANIFEST
_MEMORY = "memory"  # the replay buffer's sub-checkpoint (removable on its own: see retain)

_TRAIN_STATE_FIELDS = (
    "policy_params", "critic_params", "target_policy_params", "target_critic_params", "policy_opt_state",
    "critic_opt_state", "observation_stats", "state_stats", "noise", "noise_state", "hyperparams", "step",
)


def train_state_tree(ts: Any) -> dict[str, Any]:
    """The saved part of a :class:`ddpgx.TrainState`: every dynamic field, with the key as raw key data."""
    tree = {name: getattr(ts, name) for name in _TRAIN_STATE_FIELDS}
    tree["key"] = jax.random.key_data(ts.key)
    return tree


def restore_train_state(ts: Any, tree: dict[str, Any]) -> Any:
    """``ts`` with every saved field replaced by ``tree``'s (the inverse of :func:`train_state_tree`)."""
    fields = jax.tree.map(jnp.asarray, {name: tree[name] for name in _TRAIN_STATE_FIELDS})
    return ts.replace(key=jax.random.wrap_key_data(jnp.asarray(tree["key"])), **fields)


def _checkpointer():
    import orbax.checkpoint as ocp  # imported on first use: it is slow to import and only needed here

    return ocp.StandardCheckpointer()


def save(directory: str, items: dict[str, Any], metadata: dict[str, Any]) -> str:
    """Writes ``items`` (a dict of pytrees; ``"memory"``, the replay buffer, goes to its own sub-checkpoint) to
    ``directory``, replacing an older checkpoint there; returns its path.

    Crash safety: the checkpoint is written under a temporary name, sealed with its manifest and only then renamed
    into place; an older checkpoint of the same name is moved aside before and deleted after, so at every instant a
    complete checkpoint exists under ``directory`` or under ``directory + ".old"`` (which :func:`load` falls back
    to). A process killed at any moment never leaves a half-written directory under the final name.
    """
    directory = os.path.abspath(directory.rstrip("/"))
    host_items = jax.device_get(items)  # one transfer; the device state may be donated right after
    memory = host_items.pop(_MEMORY, None)
    staging = safe_io.partial_name(directory)
    shutil.rmtree(staging, ignore_errors=True)
    checkpointer = _checkpointer()
    try:
        checkpointer.save(staging, host_items, force=True,
                          custom_metadata={"format": FORMAT, "items": sorted(host_items), **metadata})
        if memory is not None:
            checkpointer.save(os.path.join(staging, _MEMORY), memory, force=True)
        checkpointer.wait_until_finished()
    finally:
        checkpointer.close()
    safe_io.write_manifest(staging)
    old = f"{directory}.old"
    if os.path.isdir(directory):
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(staging, directory)
    safe_io.fsync_dir(os.path.dirname(directory))
    shutil.rmtree(old, ignore_errors=True)
    return directory


def verify(directory: str) -> None:
    """Raises ``ValueError`` unless ``directory`` is a complete, intact checkpoint (every file of its manifest
    present with the recorded size and SHA-256)."""
    safe_io.verify_manifest(directory)


def _has_memory(directory: str) -> bool:
    """Whether the checkpoint's manifest lists a replay buffer (files present but unlisted are being removed)."""
    return any(name.startswith(_MEMORY + os.sep) for name in safe_io.manifest_files(directory))


def load(directory: str, target: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads the items of ``target`` (pytrees of the expected structure, shapes and dtypes) from a checkpoint.

    Returns ``(items, metadata)``.

    Raises:
      ValueError: if the path is not a complete ddpgx checkpoint, or its contents do not match ``target``.
    """
    directory = resolve(directory)
    meta = metadata(directory)
    missing = sorted(set(target) - set(meta["items"]))
    if missing:
        raise ValueError(f"checkpoint {directory!r} has no {missing[0]!r} (it holds {meta['items']})")
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype if hasattr(x, "dtype")
                                                           else np.asarray(x).dtype), target)
    checkpointer = _checkpointer()
    try:
        items = {}
        for name, path, wanted in ((None, directory, {k: v for k, v in abstract.items() if k != _MEMORY}),
                                   (_MEMORY, os.path.join(directory, _MEMORY), abstract.get(_MEMORY))):
            if wanted is not None:
                restored = checkpointer.restore(path, wanted)
                items.update(restored if name is None else {name: restored})
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"checkpoint {directory!r} does not match this agent (different networks, spaces or "
                         f"configuration?): {error}") from error
    except FileNotFoundError as error:
        raise ValueError(f"checkpoint {directory!r} is incomplete or corrupted: {error}") from error
    finally:
        checkpointer.close()
    _check_matches(directory, items, abstract)
    return items, meta


def resolve(directory: str) -> str:
    """The absolute path of the checkpoint ``directory`` (or of ``directory.old``, left by a save of the same name
    that was interrupted after moving it aside). Raises ``ValueError`` if neither exists."""
    directory = os.path.abspath(str(directory).rstrip("/"))
    if not os.path.isdir(directory) and os.path.isdir(f"{directory}.old"):
        return f"{directory}.old"
    if not os.path.isdir(directory):
        raise ValueError(f"checkpoint {directory!r} does not exist (expected a directory written by save)")
    return directory


def metadata(directory: str) -> dict[str, Any]:
    """The metadata a checkpoint was saved with (``timestep``, ``items``: ``"memory"`` among them when it holds the
    replay buffer). Raises ``ValueError`` if the checkpoint is incomplete, damaged or not ddpgx's."""
    directory = resolve(directory)
    verify(directory)
    checkpointer = _checkpointer()
    try:
        meta = dict(checkpointer.metadata(directory).custom_metadata or {})
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"checkpoint {directory!r} is incomplete or not a checkpoint: {error}") from error
    finally:
        checkpointer.close()
    if meta.get("format") != FORMAT:
        raise ValueError(f"{directory!r} is not a ddpgx checkpoint (format {meta.get('format')!r}, expected "
                         f"{FORMAT!r})")
    meta["items"] = sorted(set(meta["items"]) | ({_MEMORY} if _has_memory(directory) else set()))
    return meta


def _check_matches(directory: str, items: Any, abstract: Any) -> None:
    """orbax restores what was saved even where the target differs: compare structure and shapes."""
    got, want = jax.tree_util.tree_flatten_with_path(items)[0], jax.tree_util.tree_flatten_with_path(abstract)[0]
    if len(got) != len(want):
        raise ValueError(f"checkpoint {directory!r} does not match this agent: it holds {len(got)} arrays, the agent "
                         f"{len(want)} (different networks, spaces or configuration?)")
    for (path, leaf), (_, spec) in zip(got, want, strict=True):
        if np.shape(leaf) != tuple(spec.shape):
            raise ValueError(f"checkpoint {directory!r} does not match this agent: {jax.tree_util.keystr(path)} has "
                             f"shape {np.shape(leaf)}, the agent expects {tuple(spec.shape)} (different networks, "
                             "spaces or configuration?)")


def latest(checkpoints_dir: str) -> str | None:
    """The newest complete and intact ``agent_<timestep>`` checkpoint in ``checkpoints_dir`` (None if none is)."""
    return safe_io.newest(checkpoints_dir, "agent_", "", verify)


def _drop_memory(directory: str) -> None:
    """Removes the replay buffer from a checkpoint: the manifest first (atomically), then the files."""
    if _has_memory(directory):
        safe_io.write_manifest(directory, exclude=_MEMORY + os.sep)
    shutil.rmtree(os.path.join(directory, _MEMORY), ignore_errors=True)


def retain(checkpoints_dir: str, keep: int, memory: str) -> None:
    """Retention after a new checkpoint: keeps the newest ``keep`` ``agent_<timestep>`` checkpoints (all if
    ``keep <= 0``; ``best_agent`` is never touched) and, with ``memory="newest"``, the replay buffer only in the
    newest one (see :func:`ddpgx.safe_io.retention`)."""
    delete, strip = safe_io.retention(checkpoints_dir, "agent_", "", keep, memory)
    for path in strip:
        _drop_memory(path)
    for path in delete:
        safe_io.remove(path)
