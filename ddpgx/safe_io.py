"""Checkpoint files that are data, never code, and survive a kill at any moment: framework-free helpers.

A process can die at any instant (SIGKILL, power loss, a full disk). A checkpoint written in place can then be left
half-written where the previous good one was. The helpers here make every write atomic and every read verified:

* :func:`atomic_write` writes a file under a temporary name in the same directory (``<name>.partial-<pid>``),
  flushes it to disk (``os.fsync``), renames it over the final name (``os.replace`` is atomic on POSIX) and flushes
  the directory, so the final name holds either the old complete file or the new complete one, never a mix.
* :func:`seal_zip` / :func:`verify_zip` protect zip-based files (what ``torch.save`` writes): the seal is one more
  record in the archive holding the SHA-256 of every other record's name and bytes. The file stays a plain torch
  file (``torch.load`` ignores the extra record); :func:`verify_zip` refuses a truncated file (no central directory),
  an altered one (a record's CRC-32, or the seal's SHA-256, no longer matches) with a ``ValueError`` naming it.
* :func:`write_manifest` / :func:`verify_manifest` do the same for a checkpoint directory (orbax's): a
  ``ddpgx_manifest.json`` with the size and SHA-256 of every file, written last, so a directory without it is
  incomplete.
* :func:`restricted_load` unpickles with an allow-list (NumPy arrays and scalars, numbers, strings, bytes and
  containers): a pickle naming any other global, such as ``os.system``, is refused with a ``ValueError`` naming it,
  before anything is called. skrl's JAX checkpoints are pickles; this is how ddpgx reads them.
* :func:`newest` finds the newest complete checkpoint among ``<prefix><timestep><suffix>`` names, and
  :func:`retention` decides which ones to delete (all but the last N) and which to strip of their replay buffer (all
  but the newest): the policy both backends apply to their own files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shutil
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

__all__ = ["MANIFEST", "atomic_write", "fsync_dir", "manifest_files", "newest", "remove", "remove_stale",
           "restricted_load", "retention", "seal_zip", "verify_manifest", "verify_zip", "write_manifest"]

MANIFEST = "ddpgx_manifest.json"
SEAL = "ddpgx_sha256"  # the record holding a zip's digest (inside the archive's top folder, as torch's records are)
_FORMAT = "ddpgx-checkpoint-1"


def fsync_dir(path: str) -> None:
    """Makes a rename or creation inside directory ``path`` durable (POSIX: the directory's entry is flushed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def partial_name(path: str) -> str:
    """The temporary name that :func:`atomic_write` writes ``path`` under."""
    return f"{path}.partial-{os.getpid()}"


def atomic_write(path: str, write: Callable[[BinaryIO], None] | bytes) -> str:
    """Writes ``path`` atomically: ``write(file)`` (or the bytes given) into a temporary file beside it, ``fsync``,
    rename into place, ``fsync`` of the directory. A kill at any moment leaves ``path`` as it was before or complete
    (and at worst a ``.partial-<pid>`` file beside it). Returns ``path``."""
    path = os.path.abspath(path)
    tmp = partial_name(path)
    try:
        with open(tmp, "wb") as file:
            if isinstance(write, (bytes, bytearray, memoryview)):
                file.write(write)
            else:
                write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fsync_dir(os.path.dirname(path))
    return path


def _zip_digest(archive: zipfile.ZipFile) -> str:
    digest = hashlib.sha256()
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        if os.path.basename(info.filename) != SEAL:
            digest.update(info.filename.encode() + b"\0" + str(info.file_size).encode() + b"\0")
            digest.update(archive.read(info))  # zipfile also checks each record's CRC-32 here
    return digest.hexdigest()


def seal_zip(data: bytes) -> bytes:
    """``data`` (a zip archive, e.g. ``torch.save``'s output) with a record holding the SHA-256 of its contents."""
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        names = archive.namelist()
        top = names[0].split("/")[0] + "/" if names and "/" in names[0] else ""
        archive.writestr(top + SEAL, _zip_digest(archive))
    return buffer.getvalue()


def verify_zip(path: str, *, require_seal: bool = False) -> bool:
    """Checks a zip-based checkpoint file: every record's CRC-32 and, where it has one, its seal's SHA-256.

    Returns whether the file was sealed (written by ddpgx).

    Raises:
      ValueError: naming ``path``, if it is missing, truncated, altered, or (with ``require_seal``) unsealed.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            seals = [info for info in archive.infolist() if os.path.basename(info.filename) == SEAL]
            if not seals:
                if require_seal:
                    raise ValueError(f"checkpoint {path!r} is not sealed by ddpgx (no {SEAL} record): written by "
                                     "another program or its write was interrupted")
                bad = archive.testzip()
                if bad is not None:
                    raise ValueError(f"checkpoint {path!r} is corrupted: record {bad} does not match its CRC-32")
                return False
            recorded = archive.read(seals[-1]).decode("ascii", "replace")
            if _zip_digest(archive) != recorded:
                raise ValueError(f"checkpoint {path!r} is corrupted: its contents do not match their recorded SHA-256")
            return True
    except FileNotFoundError as error:
        raise ValueError(f"checkpoint {path!r} does not exist") from error
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        # a truncated file has no central directory; an altered record fails its CRC-32 (BadZipFile) as it is read
        raise ValueError(f"checkpoint {path!r} is truncated or corrupted: {error}") from error


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(directory: str) -> list[str]:
    found = []
    for root, _, names in os.walk(directory):
        found += [os.path.relpath(os.path.join(root, name), directory) for name in names]
    return sorted(name for name in found if name != MANIFEST)


def write_manifest(directory: str, exclude: str | None = None) -> None:
    """Seals the checkpoint ``directory``: ``fsync`` of every file, then (atomically) a manifest of their sizes and
    SHA-256 digests. Written last, so a directory without a manifest is incomplete. Files under the relative path
    ``exclude`` are left out (about to be removed)."""
    files = {}
    for name in _files(directory):
        if exclude is not None and name.startswith(exclude):
            continue
        path = os.path.join(directory, name)
        with open(path, "rb") as file:
            os.fsync(file.fileno())
        files[name] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
    atomic_write(os.path.join(directory, MANIFEST), json.dumps({"format": _FORMAT, "files": files}).encode())


def manifest_files(directory: str) -> dict[str, Any]:
    """The files a checkpoint directory's manifest lists (relative path -> size and SHA-256).

    Raises:
      ValueError: if the manifest is missing (an interrupted write) or unreadable.
    """
    manifest_path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise ValueError(f"checkpoint {directory!r} is incomplete (no {MANIFEST}: its write was interrupted, or it "
                         "was not written by ddpgx)")
    try:
        with open(manifest_path) as file:
            return dict(json.load(file)["files"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"checkpoint {directory!r} is corrupted: unreadable {MANIFEST} ({error})") from error


def verify_manifest(directory: str) -> None:
    """Raises ``ValueError`` unless ``directory`` is a complete, intact checkpoint (every file of its manifest
    present with the recorded size and SHA-256)."""
    for name, expected in manifest_files(directory).items():
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise ValueError(f"checkpoint {directory!r} is corrupted: {name} is missing")
        if os.path.getsize(path) != expected["size"] or _sha256(path) != expected["sha256"]:
            raise ValueError(f"checkpoint {directory!r} is corrupted: {name} does not match its recorded size and "
                             "SHA-256")


def _timesteps(folder: str, prefix: str, suffix: str) -> list[tuple[int, str]]:
    """``(timestep, path)`` of the ``<prefix><timestep><suffix>`` entries of ``folder``, newest first."""
    if not os.path.isdir(folder):
        return []
    pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
    return sorted(((int(m.group(1)), os.path.join(folder, name)) for name in os.listdir(folder)
                   if (m := pattern.match(name))), reverse=True)


def newest(folder: str, prefix: str, suffix: str, verify: Callable[[str], Any]) -> str | None:
    """The path of the newest ``<prefix><timestep><suffix>`` entry of ``folder`` that ``verify`` accepts (does not
    raise ``ValueError`` for); None if there is none. Damaged or incomplete entries are skipped."""
    for _, path in _timesteps(folder, prefix, suffix):
        try:
            verify(path)
        except ValueError:
            continue  # interrupted or damaged: fall back to an older one
        return path
    return None


MEMORY_POLICIES = ("newest", "all", "none")


def retention(folder: str, prefix: str, suffix: str, keep: int, memory: str) -> tuple[list[str], list[str]]:
    """What retention does after a new checkpoint: ``(delete, strip)``, the ``<prefix><timestep><suffix>`` entries
    to delete (all but the newest ``keep``; none if ``keep <= 0``) and those to strip of their replay buffer (every
    kept one but the newest, with ``memory="newest"``). Other entries (``best_agent``) are never touched; what
    killed processes left behind is deleted (:func:`remove_stale`)."""
    if isinstance(keep, bool) or not isinstance(keep, int):
        raise ValueError(f"checkpoint_keep={keep!r} is invalid: expected an integer (<= 0 keeps every checkpoint)")
    if memory not in MEMORY_POLICIES:
        raise ValueError(f"checkpoint_memory={memory!r} is invalid: expected one of {MEMORY_POLICIES}")
    remove_stale(folder)
    paths = [path for _, path in _timesteps(folder, prefix, suffix)]
    kept = paths if keep <= 0 else paths[:keep]
    return paths[len(kept):], kept[1:] if memory == "newest" else []


def remove_stale(folder: str) -> list[str]:
    """Deletes what killed processes left in ``folder``: ``.partial-<pid>`` (an interrupted write) and
    ``.deleting-<pid>`` entries whose process no longer runs. Returns their names."""
    stale = []
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        match = re.search(r"\.(partial|deleting)-(\d+)$", name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(2)), 0)
            continue  # that process still runs (it may be writing right now)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's live process
        path = os.path.join(folder, name)
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
        stale.append(name)
    return stale


def remove(path: str) -> None:
    """Deletes a checkpoint file or directory; a directory is first renamed (atomically) out of its checkpoint name,
    so a kill during the deletion never leaves a partial checkpoint under it."""
    if os.path.isdir(path):
        doomed = f"{path}.deleting-{os.getpid()}"
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


# What a data pickle may name: NumPy's array and scalar reconstructors (both module paths, NumPy 1 and 2), and the
# helpers that protocols 0-2 use for bytes and sets. Everything else (functions, classes with side effects) is refused.
_ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5's arrays
    ("numpy", "float32"), ("numpy", "float64"), ("numpy", "int32"), ("numpy", "int64"), ("numpy", "bool_"),
    ("_codecs", "encode"), ("collections", "OrderedDict"),
    *((module, name) for module in ("builtins", "__builtin__")  # (protocols 0-2 name Python 2's module)
      for name in ("set", "frozenset", "bytearray", "complex")),
})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, path: str) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise ValueError(f"{self._path!r} refused: its pickle names {module}.{name}, which is not data (only NumPy "
                         "arrays, numbers, strings, bytes and containers are allowed; loading it could run code)")

    def persistent_load(self, pid: Any) -> Any:
        raise ValueError(f"{self._path!r} refused: its pickle uses persistent ids ({pid!r}), which are not data")


def restricted_load(path: str) -> Any:
    """Unpickles ``path`` admitting only data (see ``_ALLOWED_GLOBALS``).

    Raises:
      ValueError: naming ``path`` and the refused global, or if the file is missing, truncated or not a pickle.
    """
    try:
        with open(path, "rb") as file:
            return _RestrictedUnpickler(file, path).load()
    except FileNotFoundError as error:
        raise ValueError(f"{path!r} does not exist") from error
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as error:
        raise ValueError(f"{path!r} is not a readable pickle (truncated or corrupted?): {error}") from error
