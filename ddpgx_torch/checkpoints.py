"""Torch checkpoint files: written atomically and sealed, read as data only (``weights_only=True``) and verified.

A checkpoint is what ``torch.save`` writes (a zip archive), with one more record, the SHA-256 of the others
(:func:`ddpgx.safe_io.seal_zip`), so it still loads with a plain ``torch.load``. :func:`save` writes it with
:func:`ddpgx.safe_io.atomic_write` (temporary file, ``fsync``, rename, directory ``fsync``): a kill at any moment
leaves the previous file of that name (``best_agent.pt`` included) or the new one, complete. :func:`load` verifies
the file first (a truncated or altered one is refused with a ``ValueError`` naming it), then reads it with
``torch.load(weights_only=True)``: tensors and plain containers only, so a file whose pickle names a function (say
``os.system``) is refused, with a ``ValueError`` naming the global, before it can run. :func:`latest` finds the newest
complete ``agent_<timestep>.pt`` of a run (for ``--resume``) and :func:`retain` keeps the last few, the replay
memory only in the newest. The file-level logic is :mod:`ddpgx.safe_io`'s, shared
with the JAX backend.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from typing import Any

import torch

from ddpgx import safe_io

__all__ = ["check_data", "latest", "load", "retain", "save", "verify"]


_PLAIN = (str, bytes, int, float, bool, complex, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)


def check_data(obj: Any, where: str = "checkpoint") -> None:
    """Raises ``ValueError`` naming the first value of ``obj`` that is not a tensor, a plain value or a container of
    them (what ``torch.load(weights_only=True)`` reads back)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            check_data(key, f"{where} key")
            check_data(value, f"{where}[{key!r}]")
    elif isinstance(obj, (list, tuple, set, frozenset)) and type(obj) in (list, tuple, set, frozenset, torch.Size):
        for i, value in enumerate(obj):
            check_data(value, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise ValueError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}: a checkpoint holds tensors, "
                         "numbers, strings and containers only (what torch.load(weights_only=True) reads)")


def save(obj: Any, path: str) -> str:
    """Writes ``obj`` (tensors and plain containers, checked by :func:`check_data`) to ``path`` atomically, sealed
    with its SHA-256."""
    check_data(obj)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return safe_io.atomic_write(path, safe_io.seal_zip(buffer.getvalue()))


def verify(path: str, *, require_seal: bool = True) -> None:
    """Raises ``ValueError`` (naming ``path``) unless it is a complete, intact checkpoint written by :func:`save`
    (with ``require_seal=False``: or any intact torch file, e.g. skrl's)."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} does not exist (expected a file written by torch.save)")
    safe_io.verify_zip(path, require_seal=require_seal)


def load(path: str, map_location: Any = None) -> Any:
    """Reads a checkpoint as data: verified first (seal or, for files from other programs such as skrl, every
    record's CRC-32), then ``torch.load(weights_only=True)``.

    Raises:
      ValueError: naming ``path``: missing, truncated, altered, or holding something other than tensors and plain
        containers (the refused global is named; nothing in the file has run).
    """
    verify(path, require_seal=False)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only's refusal names the global it met
        lines = [line for line in str(error).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        reason = lines[0].strip() if lines else str(error).splitlines()[-1]
        raise ValueError(f"{path!r} refused: it holds something other than tensors and plain containers, which "
                         f"could run code when loaded ({reason})") from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"checkpoint {path!r} is truncated or corrupted: {error}") from error


def latest(folder: str) -> str | None:
    """The newest complete and intact ``agent_<timestep>.pt`` in ``folder`` (None if there is none): the one to
    resume from after a crash (damaged or unsealed files are skipped)."""
    return safe_io.newest(folder, "agent_", ".pt", verify)


def _drop_memory(path: str) -> None:
    """Rewrites the checkpoint ``path`` without its replay memory (atomically: the file is whole before and after)."""
    with zipfile.ZipFile(path) as archive:  # a cheap look at the pickle (no tensor data) before a full read
        pickled = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if pickled and b"memory" not in archive.read(pickled[0]):
            return
    modules = load(path)
    if isinstance(modules, dict) and "memory" in modules:
        del modules["memory"]
        save(modules, path)


def retain(folder: str, keep: int, memory: str) -> None:
    """Retention after a new checkpoint: keeps the newest ``keep`` ``agent_<timestep>.pt`` files (all if
    ``keep <= 0``; ``best_agent.pt`` is never touched) and, with ``memory="newest"``, the replay memory only in the
    newest one: :func:`ddpgx.safe_io.retention`'s policy, the same as the JAX backend's."""
    delete, strip = safe_io.retention(folder, "agent_", ".pt", keep, memory)
    for path in strip:
        _drop_memory(path)
    for path in delete:
        safe_io.remove(path)
