"""Checkpoints of a train state (and optionally its replay buffer) with orbax-checkpoint.

A checkpoint is a directory written by ``orbax.checkpoint.StandardCheckpointer``: every array of the train state
(policy, critic and target parameters, both optimizer states, scaler statistics, noise parameters and the
Ornstein-Uhlenbeck state, hyperparameters, step count and the PRNG key as raw key data), optionally the replay
buffer, and a small JSON of metadata (timestep, what is inside). :func:`save` writes it under a temporary name,
seals it with ``ddpgx_manifest.json`` (the size and SHA-256 of every file) and renames it into place, so a directory
named ``agent_<timestep>`` is always a whole checkpoint; :func:`verify` checks a checkpoint against its manifest
(detecting truncated or altered files), :func:`load` refuses a damaged one with a ``ValueError`` and :func:`latest`
finds the newest intact one.

Layout, as skrl documents it: ``<directory>/<experiment_name>/checkpoints/agent_<timestep>`` and ``best_agent``
(``<module>_<timestep>`` and ``best_<module>`` per module with ``store_separately``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FORMAT", "latest", "load", "metadata", "save", "train_state_tree", "verify"]

FORMAT = "ddpgx-checkpoint-1"

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
    fields = {name: tree[name] for name in _TRAIN_STATE_FIELDS}
    fields = jax.tree.map(jnp.asarray, fields)
    return ts.replace(key=jax.random.wrap_key_data(jnp.asarray(tree["key"])), **fields)


def _checkpointer():
    import orbax.checkpoint as ocp  # imported on first use: it is slow to import and only needed here

    return ocp.StandardCheckpointer()


def save(directory: str, items: dict[str, Any], metadata: dict[str, Any]) -> str:
    """Writes ``items`` (a dict of pytrees) to ``directory`` (replacing an older checkpoint there); returns its path.

    Crash safety: the checkpoint is written under a temporary name, sealed with a manifest of its files (sizes and
    SHA-256) and only then renamed into place; an older checkpoint of the same name is moved aside before and
    deleted after, so at every instant a complete checkpoint exists under ``directory`` or under
    ``directory + ".old"`` (which :func:`load` falls back to). A process killed at any moment never leaves a
    half-written directory under the final name.
    """
    directory = os.path.abspath(directory.rstrip("/"))
    host_items = jax.device_get(items)  # one transfer; the device state may be donated right after
    staging = f"{directory}.partial-{os.getpid()}"
    remove(staging)
    checkpointer = _checkpointer()
    try:
        checkpointer.save(staging, host_items, force=True,
                          custom_metadata={"format": FORMAT, "items": sorted(items), **metadata})
        checkpointer.wait_until_finished()
    finally:
        checkpointer.close()
    _write_manifest(staging)
    old = f"{directory}.old"
    if os.path.isdir(directory):
        remove(old)
        os.replace(directory, old)
    os.replace(staging, directory)
    remove(old)
    return directory


MANIFEST = "ddpgx_manifest.json"


def _files(directory: str) -> dict[str, int]:
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory)
            if relative != MANIFEST:
                found[relative] = os.path.getsize(path)
    return found


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(directory: str) -> None:
    files = {name: {"size": size, "sha256": _sha256(os.path.join(directory, name))}
             for name, size in _files(directory).items()}
    tmp = os.path.join(directory, MANIFEST + ".tmp")
    with open(tmp, "w") as file:
        json.dump({"format": FORMAT, "files": files}, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, os.path.join(directory, MANIFEST))


def verify(directory: str) -> None:
    """Raises ``ValueError`` unless ``directory`` is a complete, intact checkpoint (every file of its manifest
    present with the recorded size and SHA-256)."""
    manifest_path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise ValueError(f"checkpoint {directory!r} is incomplete (no {MANIFEST}: its write was interrupted, or it "
                         "was not written by ddpgx)")
    try:
        with open(manifest_path) as file:
            files = json.load(file)["files"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"checkpoint {directory!r} is corrupted: unreadable {MANIFEST} ({error})") from error
    for name, expected in files.items():
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise ValueError(f"checkpoint {directory!r} is corrupted: {name} is missing")
        if os.path.getsize(path) != expected["size"] or _sha256(path) != expected["sha256"]:
            raise ValueError(f"checkpoint {directory!r} is corrupted: {name} does not match its recorded size and "
                             "SHA-256")


def load(directory: str, target: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads the items of ``target`` (pytrees of the expected structure, shapes and dtypes) from a checkpoint.

    Returns ``(items, metadata)``.

    Raises:
      ValueError: if the path is not a complete ddpgx checkpoint, or its contents do not match ``target``.
    """
    directory = resolve(directory)
    verify(directory)
    checkpointer = _checkpointer()
    try:
        metadata = dict(checkpointer.metadata(directory).custom_metadata or {})
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{directory!r} is not a ddpgx checkpoint (format {metadata.get('format')!r}, expected "
                             f"{FORMAT!r})")
        missing = sorted(set(target) - set(metadata.get("items", ())))
        if missing:
            raise ValueError(f"checkpoint {directory!r} has no {missing[0]!r} (it holds {metadata.get('items')})")
        saved = {name: target[name] for name in metadata["items"] if name in target}
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
                                if not hasattr(x, "dtype") else jax.ShapeDtypeStruct(x.shape, x.dtype), saved)
        try:
            if set(saved) == set(metadata["items"]):
                items = checkpointer.restore(directory, abstract)
            else:  # some items (e.g. the replay buffer) are not wanted
                import orbax.checkpoint as ocp

                with ocp.PyTreeCheckpointer() as reader:
                    items = reader.restore(directory, args=ocp.args.PyTreeRestore(
                        item=abstract, restore_args=jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                                                 abstract), partial_restore=True))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"checkpoint {directory!r} does not match this agent (different networks, spaces or "
                             f"configuration?): {error}") from error
        _check_matches(directory, items, abstract)
    except FileNotFoundError as error:
        raise ValueError(f"checkpoint {directory!r} is incomplete or corrupted: {error}") from error
    finally:
        checkpointer.close()
    return items, metadata


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
    """The metadata a checkpoint was saved with (``timestep``, ``items``, ...)."""
    directory = resolve(directory)
    verify(directory)
    checkpointer = _checkpointer()
    try:
        return dict(checkpointer.metadata(directory).custom_metadata or {})
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"checkpoint {directory!r} is incomplete or not a checkpoint: {error}") from error
    finally:
        checkpointer.close()


def _check_matches(directory: str, items: Any, abstract: Any) -> None:
    """orbax restores what was saved even where the target differs: compare structure, shapes and dtypes."""
    got, want = jax.tree_util.tree_flatten_with_path(items)[0], jax.tree_util.tree_flatten_with_path(abstract)[0]
    if len(got) != len(want):
        raise ValueError(f"checkpoint {directory!r} does not match this agent: it holds {len(got)} arrays, the agent "
                         f"{len(want)} (different networks, spaces or configuration?)")
    for (path, leaf), (_, spec) in zip(got, want, strict=True):
        if np.shape(leaf) != tuple(spec.shape):
            raise ValueError(f"checkpoint {directory!r} does not match this agent: {jax.tree_util.keystr(path)} has "
                             f"shape {np.shape(leaf)}, the agent expects {tuple(spec.shape)} (different networks, "
                             "spaces or configuration?)")


_AGENT_NAME = re.compile(r"^agent_(\d+)$")


def latest(checkpoints_dir: str) -> str | None:
    """The newest complete and intact ``agent_<timestep>`` checkpoint in ``checkpoints_dir`` (None if none is)."""
    if not os.path.isdir(checkpoints_dir):
        return None
    found = [(int(m.group(1)), name) for name in os.listdir(checkpoints_dir) if (m := _AGENT_NAME.match(name))]
    for _, name in sorted(found, reverse=True):
        path = os.path.join(checkpoints_dir, name)
        try:
            verify(path)
        except ValueError:
            continue  # interrupted or damaged: fall back to an older one
        return path
    return None


def remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
