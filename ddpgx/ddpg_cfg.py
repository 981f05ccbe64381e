"""skrl's documented DDPG configuration, ``DDPG_CFG`` with its ``ExperimentCfg``, shared by both facades.

Every field and default is skrl 2.x's (``skrl.agents.{jax,torch}.ddpg.DDPG_CFG``); ``ddpgx_torch`` adds
``mixed_precision``. Unlike skrl's, these dataclasses are slotted, so a misspelt field (``cfg.batchsize = 32``) raises
instead of being silently ignored, and :meth:`DDPG_CFG.validate` names any value out of range.

The JAX facade translates a ``DDPG_CFG`` into the functional core's frozen :class:`ddpgx.DDPGConfig` in one place,
:func:`ddpgx.agent.core_config`; the fields that belong to the loop around the algorithm (``learning_starts``,
``rewards_shaper``, ``experiment``) stay with the facade.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import numbers
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal

__all__ = ["DDPG_CFG", "ExperimentCfg", "make_cfg", "resolve_interval", "experiment_dir"]


@dataclasses.dataclass(kw_only=True, slots=True)
class ExperimentCfg:
    """Where and how often an agent writes TensorBoard data and checkpoints (skrl's ``ExperimentCfg``).

    Attributes:
      directory: root of the runs (default ``./runs``).
      experiment_name: sub-directory of this run (default ``YY-MM-DD_HH-MM-SS-ffffff_DDPG``).
      write_interval: timesteps between TensorBoard writes; ``"auto"`` is ``timesteps / 100``; ``<= 0`` disables.
      checkpoint_interval: timesteps between checkpoints; ``"auto"`` is ``timesteps / 10``; ``<= 0`` disables.
      store_separately: write each module (policy, critic, optimizers, ...) as its own checkpoint item directory.
      checkpoint_keep: ddpgx addition: how many ``agent_<timestep>`` checkpoints to keep, the newest ones (older ones
        are deleted after each new checkpoint; ``best_agent`` is always kept); ``<= 0`` keeps all (skrl's behaviour).
        Retention applies to whole-agent checkpoints: with ``store_separately`` every file is kept, as in skrl.
      checkpoint_memory: ddpgx addition: which checkpoints hold the replay buffer (needed for an exact resume):
        ``"newest"`` (it is removed from the previous one once a new checkpoint is written), ``"all"`` or ``"none"``.
      wandb: also log to Weights & Biases (needs the ``wandb`` package).
      wandb_kwargs: keyword arguments of ``wandb.init``.
    """

    directory: str = ""
    experiment_name: str = ""
    write_interval: int | Literal["auto"] = "auto"
    checkpoint_interval: int | Literal["auto"] = "auto"
    store_separately: bool = False
    checkpoint_keep: int = 3
    checkpoint_memory: Literal["newest", "all", "none"] = "newest"
    wandb: bool = False
    wandb_kwargs: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        for name in ("directory", "experiment_name"):
            if not isinstance(getattr(self, name), (str, os.PathLike)):
                raise ValueError(f"experiment.{name}={getattr(self, name)!r} is invalid: expected a string path")
        for name in ("write_interval", "checkpoint_interval"):
            value = getattr(self, name)
            if value != "auto" and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
                raise ValueError(f"experiment.{name}={value!r} is invalid: expected an integer or 'auto'")
        if isinstance(self.checkpoint_keep, bool) or not isinstance(self.checkpoint_keep, numbers.Integral):
            raise ValueError(f"experiment.checkpoint_keep={self.checkpoint_keep!r} is invalid: expected an integer "
                             "(<= 0 keeps every checkpoint)")
        if self.checkpoint_memory not in ("newest", "all", "none"):
            raise ValueError(f"experiment.checkpoint_memory={self.checkpoint_memory!r} is invalid: expected 'newest', "
                             "'all' or 'none'")
        for name in ("store_separately", "wandb"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"experiment.{name}={getattr(self, name)!r} is invalid: expected True or False")
        if not isinstance(self.wandb_kwargs, Mapping):
            raise ValueError(f"experiment.wandb_kwargs={self.wandb_kwargs!r} is invalid: expected a dict")


@dataclasses.dataclass(kw_only=True, slots=True)
class DDPG_CFG:  # noqa: N801 -- skrl's documented name
    """DDPG's configuration, field for field skrl's ``DDPG_CFG`` (see ``shared/reference/skrl-ddpg-api.txt``).

    Attributes:
      experiment: an :class:`ExperimentCfg` (or a dict of its fields).
      gradient_steps: gradient steps per update.
      batch_size: transitions sampled from memory per gradient step.
      discount_factor: gamma in ``[0, 1]``.
      polyak: weight of the online parameters in the target update, in ``[0, 1]``.
      learning_rate: Adam step size of both networks, or a ``(policy, critic)`` pair.
      learning_rate_scheduler: a factory (class or function) called with ``learning_rate_scheduler_kwargs`` that
        returns a schedule ``gradient_step -> factor``; the learning rate at step ``k`` is
        ``learning_rate * factor(k)`` (an optax schedule with ``init_value=1.0`` is such a factor). One for both
        networks or a ``(policy, critic)`` pair (``None`` for no schedule).
      learning_rate_scheduler_kwargs: keyword arguments of the scheduler factory (or a pair of dicts).
      observation_preprocessor: ``RunningStandardScaler`` (from ``ddpgx.preprocessors``) or None.
      observation_preprocessor_kwargs: its keyword arguments (``size``, ``epsilon``, ``clip_threshold``, ``device``).
      state_preprocessor: ``RunningStandardScaler`` or None, for the states (privileged critic input).
      state_preprocessor_kwargs: its keyword arguments.
      random_timesteps: timesteps at the start whose actions are uniform in the action bounds.
      learning_starts: timesteps before the first update.
      grad_norm_clip: global gradient-norm clip; ``<= 0`` disables it.
      exploration_noise: a noise class (``GaussianNoise`` or ``OrnsteinUhlenbeckNoise`` from ``ddpgx.noises``), a
        noise instance, or None.
      exploration_noise_kwargs: keyword arguments of the noise class.
      exploration_scheduler: ``(timestep, timesteps) -> scale`` of the noise.
      rewards_shaper: ``(rewards, timestep, timesteps) -> rewards`` applied before rewards are stored.
      nonfinite_transitions: (ddpgx) what ``record_transition`` does with a NaN or infinite observation, state,
        action or reward: ``"raise"`` a ``ValueError`` naming the environment, timestep and field, or ``"skip"`` the
        environment's transition and count it (``skipped_transitions``).
    """

    experiment: ExperimentCfg = dataclasses.field(default_factory=ExperimentCfg)
    gradient_steps: int = 1
    batch_size: int = 64
    discount_factor: float = 0.99
    polyak: float = 0.005
    learning_rate: float | tuple[float, float] = 1e-3
    learning_rate_scheduler: Any = None
    learning_rate_scheduler_kwargs: dict | tuple[dict, dict] = dataclasses.field(default_factory=dict)
    observation_preprocessor: type | None = None
    observation_preprocessor_kwargs: dict = dataclasses.field(default_factory=dict)
    state_preprocessor: type | None = None
    state_preprocessor_kwargs: dict = dataclasses.field(default_factory=dict)
    random_timesteps: int = 0
    learning_starts: int = 0
    grad_norm_clip: float = 0
    exploration_noise: Any = None
    exploration_noise_kwargs: dict = dataclasses.field(default_factory=dict)
    exploration_scheduler: Callable[[int, int], float] | None = None
    rewards_shaper: Callable | None = None
    nonfinite_transitions: Literal["raise", "skip"] = "raise"

    def validate(self) -> None:
        """Raises ``ValueError`` naming the first field whose value is out of range or of the wrong kind."""
        if isinstance(self.experiment, Mapping):
            self.experiment = make_cfg(self.experiment, ExperimentCfg, "experiment")
        if not isinstance(self.experiment, ExperimentCfg):
            raise ValueError(f"experiment={self.experiment!r} is invalid: expected an ExperimentCfg or a dict")
        self.experiment.validate()
        for name in ("gradient_steps", "batch_size"):
            _integer(name, getattr(self, name), 1)
        for name in ("random_timesteps", "learning_starts"):
            _integer(name, getattr(self, name), 0)
        for name in ("discount_factor", "polyak"):
            _real(name, getattr(self, name), 0.0, 1.0)
        _real("grad_norm_clip", self.grad_norm_clip, -math.inf, math.inf)
        rates = self.learning_rate if isinstance(self.learning_rate, (tuple, list)) else (self.learning_rate,) * 2
        if len(rates) != 2:
            raise ValueError(f"learning_rate={self.learning_rate!r} is invalid: expected a float or a pair")
        for rate in rates:
            if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not rate > 0:
                raise ValueError(f"learning_rate={self.learning_rate!r} is invalid: expected positive floats")
        for name in ("learning_rate_scheduler", "learning_rate_scheduler_kwargs"):
            value = getattr(self, name)
            if isinstance(value, (tuple, list)) and len(value) != 2:
                raise ValueError(f"{name}={value!r} is invalid: expected one value or a (policy, critic) pair")
        for scheduler in pair(self.learning_rate_scheduler):
            if scheduler is not None and not callable(scheduler):
                raise ValueError(f"learning_rate_scheduler={scheduler!r} is invalid: expected a callable or None")
        for kwargs in pair(self.learning_rate_scheduler_kwargs):
            if not isinstance(kwargs, Mapping):
                raise ValueError(f"learning_rate_scheduler_kwargs={kwargs!r} is invalid: expected a dict")
        for name in ("observation_preprocessor_kwargs", "state_preprocessor_kwargs", "exploration_noise_kwargs"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: expected a dict")
        if self.nonfinite_transitions not in ("raise", "skip"):
            raise ValueError(f"nonfinite_transitions={self.nonfinite_transitions!r} is invalid: expected 'raise' or "
                             "'skip'")
        for name in ("exploration_scheduler", "rewards_shaper"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ValueError(f"{name}={value!r} is invalid: expected a callable or None")


def pair(value: Any) -> tuple[Any, Any]:
    """skrl's "one value for both networks or a (policy, critic) pair" convention."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def make_cfg(cfg: Any, cls: type = DDPG_CFG, name: str = "cfg") -> Any:
    """A validated ``cls`` instance from an instance or a dict; an unknown key raises ``ValueError`` naming it."""
    if isinstance(cfg, cls):
        cfg.validate()
        return cfg
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{name}={cfg!r} is invalid: expected a {cls.__name__} or a dict")
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(cfg) - set(fields))
    if unknown:
        raise ValueError(f"{name} has no key {unknown[0]!r}: {cls.__name__}'s keys are {', '.join(fields)}")
    instance = cls(**cfg)
    instance.validate()
    return instance


def resolve_interval(value: int | str, timesteps: int | None, parts: int) -> int:
    """``"auto"`` -> ``timesteps // parts`` (0 without a known number of timesteps); an integer stays itself."""
    if value == "auto":
        return int(timesteps // parts) if timesteps else 0
    return int(value)


def experiment_dir(experiment: ExperimentCfg, agent_name: str) -> str:
    """``<directory>/<experiment_name>``, with skrl's defaults (``./runs`` and a time stamp), as an absolute path."""
    directory = str(experiment.directory) if experiment.directory else os.path.join(os.getcwd(), "runs")
    name = experiment.experiment_name or f"{datetime.datetime.now():%y-%m-%d_%H-%M-%S-%f}_{agent_name}"
    return os.path.abspath(os.path.join(directory, str(name)))


def _integer(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}={value!r} is invalid: expected an integer >= {low}")


def _real(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value) or not low <= value <= high:
        raise ValueError(f"{name}={value!r} is invalid: expected a number in [{low}, {high}]")
