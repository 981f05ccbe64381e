"""The run configuration of ``ddpgx train``: every setting of a run in one validated, JSON-able structure.

A run is described by sections, each a flat table of plain values (numbers, strings, lists, dicts), so that one
configuration can be written as a TOML file, given as ``--set section.key=value`` flags, and saved as the run's
``run.json``:

* ``env``: ``id`` (a gymnasium id, ``module:Env-v0`` for your own, or ``gymnax:<id>``), ``kwargs`` (passed to
  ``gymnasium.make``), ``num_envs`` and ``vector_mode`` (``"sync"`` or ``"async"``).
* ``run``: ``timesteps`` (per environment), ``seed``, ``backend`` (``"jax"`` or ``"torch"``), ``device``,
  ``mixed_precision`` (torch) and ``preset`` (``"auto"``: by env id; a preset's name; ``"none"``).
* ``cfg``: every field of :class:`ddpgx.DDPG_CFG` (``experiment`` is a nested table of
  :class:`ddpgx.ExperimentCfg`'s fields). Classes and callables are given by name: ``exploration_noise`` is
  ``"GaussianNoise"``, ``"OrnsteinUhlenbeckNoise"`` or None; the preprocessors ``"RunningStandardScaler"`` or None;
  ``learning_rate_scheduler``, ``exploration_scheduler`` and ``rewards_shaper`` an import path
  ``"package.module:name"`` or None.
* ``networks``: ``policy_hidden_sizes`` and ``critic_hidden_sizes`` of the default ReLU MLPs.
* ``memory``: ``memory_size`` (transitions per environment).
* ``evaluation``: ``episodes`` (noiseless episodes after training), ``interval`` (timesteps between evaluations
  during training; 0 for none) and ``seed`` (of the first evaluation episode).
* checkpointing is ``cfg.experiment``'s: ``checkpoint_interval``, ``checkpoint_keep`` (agent checkpoints kept
  besides ``best_agent``; 0 keeps all) and ``checkpoint_memory`` (which checkpoints hold the replay buffer).

Resolution: the defaults (skrl's Pendulum example, as ``ddpgx train`` always trained), then the environment's
preset (:mod:`ddpgx.cli.presets`), then a ``--config`` file, then flags. Unknown keys and bad values raise a
``ValueError`` naming them and what is valid.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import json
import math
import numbers
import os
import tomllib
from typing import Any

from ddpgx.ddpg_cfg import DDPG_CFG, ExperimentCfg

__all__ = ["SECTIONS", "RunConfig", "apply_overrides", "build_ddpg_cfg", "default_config", "flatten",
           "load_file", "parse_assignment", "resolve"]

NOISES = ("GaussianNoise", "OrnsteinUhlenbeckNoise")
PREPROCESSORS = ("RunningStandardScaler",)
_CALLABLE_FIELDS = ("learning_rate_scheduler", "exploration_scheduler", "rewards_shaper")


def _int(low: int):
    return (lambda v: not isinstance(v, bool) and isinstance(v, numbers.Integral) and v >= low,
            f"an integer >= {low}")


def _choice(*options):
    return (lambda v: v in options, " or ".join(repr(o) for o in options))


_SIZES = (lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(
    not isinstance(s, bool) and isinstance(s, numbers.Integral) and s >= 1 for s in v),
    "a non-empty list of positive integers")

#: The sections other than ``cfg``: field -> (default, (check, what is expected)).
SECTIONS: dict[str, dict[str, tuple[Any, tuple]]] = {
    "env": {
        "id": ("Pendulum-v1", (lambda v: isinstance(v, str) and bool(v), "a gymnasium environment id")),
        "kwargs": ({}, (lambda v: isinstance(v, dict), "a table of keyword arguments of gymnasium.make")),
        "num_envs": (1, _int(1)),
        "vector_mode": ("sync", _choice("sync", "async")),
    },
    "run": {
        "timesteps": (15_000, _int(1)),
        "seed": (0, _int(0)),
        "backend": ("jax", _choice("jax", "torch")),
        "device": (None, (lambda v: v is None or isinstance(v, str), "a device name such as 'cpu' or 'cuda:0'")),
        "mixed_precision": (False, _choice(False, True, "bf16", "fp16")),
        "preset": ("auto", (lambda v: isinstance(v, str), "'auto', 'none' or a preset's name")),
    },
    "networks": {
        "policy_hidden_sizes": ([400, 300], _SIZES),
        "critic_hidden_sizes": ([400, 300], _SIZES),
    },
    "memory": {"memory_size": (15_000, _int(1))},
    "evaluation": {
        "episodes": (10, _int(0)),
        "interval": (0, _int(0)),
        "seed": (10_000, _int(0)),
    },
}


def _cfg_defaults() -> dict[str, Any]:
    """``DDPG_CFG``'s defaults as plain data (skrl's documented defaults)."""
    cfg = DDPG_CFG()
    data = {f.name: copy.deepcopy(getattr(cfg, f.name)) for f in dataclasses.fields(DDPG_CFG) if f.name != "experiment"}
    data["experiment"] = {f.name: copy.deepcopy(getattr(cfg.experiment, f.name))
                          for f in dataclasses.fields(ExperimentCfg)}
    return data


def default_config() -> dict[str, dict[str, Any]]:
    """The defaults of every section: skrl's Pendulum-v1 example, what ``ddpgx train`` trains without options."""
    config = {name: {key: copy.deepcopy(default) for key, (default, _) in fields.items()}
              for name, fields in SECTIONS.items()}
    config["cfg"] = _cfg_defaults()
    # skrl's DDPG example for Pendulum-v1 (skrl docs/source/examples/gymnasium/jax/jax_gymnasium_pendulum_ddpg.py):
    config["cfg"].update(exploration_noise="OrnsteinUhlenbeckNoise",
                         exploration_noise_kwargs={"theta": 0.15, "sigma": 0.1, "base_scale": 1.0},
                         gradient_steps=1, batch_size=100, discount_factor=0.99, polyak=0.005, learning_rate=1e-3,
                         random_timesteps=100, learning_starts=100)
    config["cfg"]["experiment"].update(directory="runs")
    return config


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A resolved, validated run configuration (``data[section][key]``, plain JSON-able values)."""

    data: dict[str, dict[str, Any]]

    def __post_init__(self):
        validate(self.data)

    def __getitem__(self, dotted: str) -> Any:
        value: Any = self.data
        for part in dotted.split("."):
            value = value[part]
        return value

    def replace(self, overrides: dict[str, Any]) -> RunConfig:
        return RunConfig(apply_overrides(self.data, overrides))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.data)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"cfg": {"batch_size": 1}}`` -> ``{"cfg.batch_size": 1}`` (nested tables of known sections only; dict
    values such as ``env.kwargs`` stay whole)."""
    out = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and (dotted in SECTIONS or dotted in ("cfg", "cfg.experiment")):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def valid_keys() -> list[str]:
    return sorted(flatten(default_config()))


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with dotted-key ``overrides`` applied (``"env.kwargs.continuous"`` sets one key of a dict
    field). Raises ``ValueError`` for an unknown key, listing the valid ones."""
    data = copy.deepcopy(data)
    known = valid_keys()
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node: Any = data
        walked: list[str] = []
        for i, part in enumerate(parts):
            here = ".".join(walked + [part])
            if not isinstance(node, dict) or (part not in node and not _is_dict_field(".".join(walked))):
                section = ".".join(walked)
                options = [k for k in known if k.startswith(section + ".")] if section else sorted(SECTIONS) + ["cfg"]
                raise ValueError(f"unknown configuration key {dotted!r}: valid keys"
                                 f"{' of ' + section if section else ''} are {', '.join(options)}")
            if i == len(parts) - 1:
                if isinstance(node.get(part), dict) and not _is_dict_field(here) and not isinstance(value, dict):
                    raise ValueError(f"{dotted!r} is a table: set one of its keys ({', '.join(sorted(node[part]))})")
                if isinstance(node.get(part), dict) and isinstance(value, dict) and not _is_dict_field(here):
                    node[part] = _merge_table(node[part], value, here)
                else:
                    node[part] = copy.deepcopy(value)
            else:
                node = node.setdefault(part, {}) if _is_dict_field(".".join(walked)) else node[part]
            walked.append(part)
    return data


def _merge_table(table: dict, value: dict, where: str) -> dict:
    table = copy.deepcopy(table)
    for key, item in value.items():
        if key not in table:
            raise ValueError(f"unknown configuration key {where + '.' + key!r}: valid keys of {where} are "
                             f"{', '.join(where + '.' + k for k in sorted(table))}")
        table[key] = copy.deepcopy(item)
    return table


_DICT_FIELDS = ("env.kwargs", "cfg.exploration_noise_kwargs", "cfg.learning_rate_scheduler_kwargs",
                "cfg.observation_preprocessor_kwargs", "cfg.state_preprocessor_kwargs", "cfg.experiment.wandb_kwargs")


def _is_dict_field(dotted: str) -> bool:
    return any(dotted == f or dotted.startswith(f + ".") for f in _DICT_FIELDS)


def validate(data: dict[str, Any]) -> None:
    """Raises ``ValueError`` naming the first unknown section or key, or bad value, of a configuration."""
    expected = set(SECTIONS) | {"cfg"}
    unknown = sorted(set(data) - expected)
    missing = sorted(expected - set(data))
    if unknown or missing:
        raise ValueError(f"configuration sections {sorted(data)} are invalid: expected exactly {sorted(expected)}")
    for section, fields in SECTIONS.items():
        extra = sorted(set(data[section]) - set(fields))
        if extra:
            raise ValueError(f"unknown configuration key {section + '.' + extra[0]!r}: valid keys of {section} are "
                             f"{', '.join(section + '.' + k for k in fields)}")
        for key, (_, (check, what)) in fields.items():
            if key not in data[section]:
                raise ValueError(f"configuration key {section}.{key} is missing")
            value = data[section][key]
            if not check(value):
                raise ValueError(f"{section}.{key}={value!r} is invalid: expected {what}")
    try:
        build_ddpg_cfg(data["cfg"], "jax", check_only=True)
    except ValueError as error:  # DDPG_CFG names its fields without the section
        message = str(error)
        raise ValueError(message if message.startswith(("cfg.", "unknown")) else f"cfg.{message}") from None


def _import(path: str, field: str) -> Any:
    if not isinstance(path, str) or ":" not in path:
        raise ValueError(f"cfg.{field}={path!r} is invalid: expected None or an import path 'package.module:name'")
    module, _, name = path.partition(":")
    try:
        value = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cfg.{field}={path!r} could not be imported: {error}") from error
    if not callable(value):
        raise ValueError(f"cfg.{field}={path!r} is not callable")
    return value


def build_ddpg_cfg(cfg: dict[str, Any], backend: str, *, check_only: bool = False) -> Any:
    """The backend's ``DDPG_CFG`` (``ddpgx.DDPG_CFG`` or ``ddpgx_torch.DDPG_CFG``) for the ``cfg`` section, validated.

    With ``check_only`` only the names and values are checked (no callable is imported, no backend loaded)."""
    known = [f.name for f in dataclasses.fields(DDPG_CFG)]
    extra = sorted(set(cfg) - set(known))
    if extra:
        raise ValueError(f"unknown configuration key {'cfg.' + extra[0]!r}: valid keys of cfg are "
                         f"{', '.join('cfg.' + k for k in known)}")
    values = copy.deepcopy(cfg)
    noise = values.get("exploration_noise")
    if noise is not None and noise not in NOISES:
        raise ValueError(f"cfg.exploration_noise={noise!r} is invalid: expected one of {', '.join(NOISES)} or None")
    for name in ("observation_preprocessor", "state_preprocessor"):
        if values.get(name) is not None and values[name] not in PREPROCESSORS:
            raise ValueError(f"cfg.{name}={values[name]!r} is invalid: expected 'RunningStandardScaler' or None")
    for name in _CALLABLE_FIELDS:
        value = values.get(name)
        if value is None:
            continue
        if check_only:
            if not (isinstance(value, str) and ":" in value) and not (
                    name == "learning_rate_scheduler" and isinstance(value, list)):
                raise ValueError(f"cfg.{name}={value!r} is invalid: expected None or an import path "
                                 "'package.module:name'")
        elif isinstance(value, list):
            values[name] = [None if v is None else _import(v, name) for v in value]
        else:
            values[name] = _import(value, name)
    if isinstance(values.get("learning_rate"), list):
        values["learning_rate"] = tuple(values["learning_rate"])
    for name in ("learning_rate_scheduler", "learning_rate_scheduler_kwargs"):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    if check_only:
        stand_in = {n: (None if values.get(n) is None else (lambda *a: a)) for n in _CALLABLE_FIELDS}
        noise_cls = None if noise is None else object
        pre = {n: None if values.get(n) is None else object for n in ("observation_preprocessor",
                                                                    "state_preprocessor")}
        ddpg_cfg = DDPG_CFG(**{**values, **stand_in, **pre, "exploration_noise": noise_cls})
        ddpg_cfg.validate()
        return ddpg_cfg
    if backend == "torch":
        from ddpgx_torch import noises, preprocessors
        from ddpgx_torch.agent import DDPG_CFG as cls
    else:
        from ddpgx import noises, preprocessors

        cls = DDPG_CFG
    if noise is not None:
        values["exploration_noise"] = getattr(noises, noise)
    for name in ("observation_preprocessor", "state_preprocessor"):
        if values.get(name) is not None:
            values[name] = preprocessors.RunningStandardScaler
    ddpg_cfg = cls(**values)
    ddpg_cfg.validate()
    return ddpg_cfg


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"cfg.batch_size=256"`` -> ``("cfg.batch_size", 256)``: the value a Python literal (``1e-3``, ``[64, 64]``,
    ``{"continuous": True}``, ``None``), ``true``/``false``/``none``/``null`` in any case, or else a plain string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"--set {text!r} is invalid: expected KEY=VALUE, e.g. cfg.batch_size=256")
    return key, parse_value(raw.strip())


def parse_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def load_file(path: str) -> dict[str, Any]:
    """The dotted-key settings of a ``.toml`` or ``.json`` configuration file (sections as tables). In TOML, which
    has no null, the string ``"none"`` stands for None."""
    if not os.path.isfile(path):
        raise ValueError(f"--config {path!r} is not a file")
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension == ".toml":
            with open(path, "rb") as file:
                data = tomllib.load(file)
        elif extension == ".json":
            with open(path) as file:
                data = json.load(file)
        else:
            raise ValueError(f"--config {path!r} is invalid: expected a .toml or .json file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--config {path!r} could not be parsed: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"--config {path!r} is invalid: expected a table of sections")
    return {key: _none(value) for key, value in flatten(data).items()}


def _none(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("none", "null"):
        return None
    if isinstance(value, dict):
        return {k: _none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_none(v) for v in value]
    return value


def resolve(overrides: dict[str, Any], preset_overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then a preset's settings, then ``overrides`` (dotted keys)."""
    data = apply_overrides(default_config(), preset_overrides or {})
    return RunConfig(apply_overrides(data, overrides))


def same(a: Any, b: Any) -> bool:
    """Equality of configuration values as JSON would keep them (tuples as lists, 1 == 1.0)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b
