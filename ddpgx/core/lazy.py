"""Packages whose names load on first use: ``import ddpgx`` and ``import ddpgx.core`` import almost nothing."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, namespace: dict[str, Any], submodules: Mapping[str, str],
               names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` (whose ``globals()`` is ``namespace``): ``submodules`` maps
    a name to the module it is, ``names`` a name to the module that holds it; each is imported on first use."""

    def __getattr__(name: str) -> Any:
        if name in submodules:
            value = importlib.import_module(submodules[name])
        elif name in names:
            value = getattr(importlib.import_module(names[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value  # later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(submodules) | set(names))

    return __getattr__, __dir__
