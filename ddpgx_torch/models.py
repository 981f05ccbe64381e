"""skrl-style models: a ``Model`` base and a ``DeterministicMixin``, so skrl 2.x DDPG models port by import change.

A model is a ``torch.nn.Module`` whose ``compute(inputs, role)`` returns ``(output, outputs_dict)``; ``inputs`` is
a dict with ``"observations"``, ``"states"``, for critics ``"taken_actions"``, and for recurrent models ``"rnn"``
(the hidden states) plus ``"terminated"``/``"truncated"``. A recurrent model declares its hidden-state sizes in
``get_specification()``: ``{"rnn": {"sequence_length": L, "sizes": [(num_layers, num_envs, hidden), ...]}}``.
The mixin's ``act(inputs, role=...)`` calls ``compute`` and optionally clips the actions to the action space.

These are the documented skrl 2.x interfaces (``skrl.models.torch.Model``, ``DeterministicMixin``), written anew;
``Model.__init__`` also accepts skrl 1.x's positional ``(observation_space, action_space, device)``.

Two ready-made recurrent models (skrl's RNN DDPG example architecture) for :class:`ddpgx_torch.DDPG_RNN`:
:class:`RecurrentPolicy` and :class:`RecurrentQFunction`, a recurrent layer
(:class:`ddpgx_torch.core.networks._Recurrent`) before the default networks' heads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import gymnasium
import torch

from ddpgx_torch import checkpoints, settings
from ddpgx_torch.core import distributed
from ddpgx_torch.core.networks import DeterministicPolicy, QFunction, _Recurrent

# the ddpgx_torch logger (the same object as the package's ``logger``: loggers are shared by name)
_logger = logging.getLogger("ddpgx_torch")


def set_seed(seed: int | None = None, deterministic: bool = False) -> int:
    """skrl's ``skrl.utils.set_seed`` for torch scripts: seeds Python's ``random``, NumPy's and torch's global
    generators (CPU and CUDA; a fresh agent draws its own generator's seed from torch's), sets ``PYTHONHASHSEED``
    for child processes, logs ``Seed: <seed>`` on the ``ddpgx_torch`` logger and returns the seed.

    ``seed=None`` draws one from the operating system's randomness (below 2**31, as skrl). In a distributed run (a
    process group, or ``torchrun``'s ``WORLD_SIZE > 1``) each process adds its rank to the seed, as skrl does, so
    that ranks explore and sample differently; the returned seed is this process's. ``deterministic=True`` turns on
    torch's deterministic algorithms (and cuDNN's deterministic mode, ``CUBLAS_WORKSPACE_CONFIG=:4096:8``) and logs a
    warning, as skrl; ``False`` leaves cuDNN's autotuner on, as skrl.

    Raises:
      ValueError: if ``seed`` is not an integer in ``[0, 2**32)`` (NumPy's legacy seeding range) or None, or
        ``deterministic`` is not a bool.
    """
    import random

    import numpy as np

    from ddpgx.seeding import resolve_seed

    seed = resolve_seed(seed, deterministic)
    if distributed.world_size() > 1:
        seed += distributed.rank()
    else:
        rank, _, size = distributed.launch_env()
        seed += rank if size > 1 else 0
    _logger.info(f"Seed: {seed}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # (seeds every CUDA device too)
    settings.config.torch.key = seed
    if deterministic:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True)
        _logger.warning("PyTorch/cuDNN deterministic algorithms are enabled. This may affect performance")
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
    return seed


def _size(space: gymnasium.Space | None) -> int:
    if space is None:
        return 0
    if isinstance(space, (int, tuple, list)):
        return int(torch.Size(space).numel()) if not isinstance(space, int) else space
    return int(gymnasium.spaces.flatdim(space))


def _sample(space: gymnasium.Space, batch: int, device: Any) -> torch.Tensor:
    values = [gymnasium.spaces.flatten(space, space.sample()) for _ in range(batch)]
    return torch.as_tensor(values, dtype=torch.float32, device=device)


class Model(torch.nn.Module):
    """Base class of skrl-style models (``skrl.models.torch.Model``'s documented interface)."""

    def __init__(
        self,
        observation_space: gymnasium.Space | None = None,
        action_space: gymnasium.Space | None = None,
        device: Any = None,
        *,
        state_space: gymnasium.Space | None = None,
    ) -> None:
        super().__init__()
        self.device = settings.config.torch.parse_device(device)
        self.observation_space = observation_space
        self.state_space = state_space
        self.action_space = action_space
        self.num_observations = _size(observation_space)
        self.num_states = _size(state_space)
        self.num_actions = _size(action_space)

    def init_state_dict(self, inputs: dict[str, Any] = {}, *, role: str = "") -> None:  # noqa: B006
        """Runs ``compute`` once on sample inputs (materialises lazy modules)."""
        if not inputs:
            inputs = {"observations": _sample(self.observation_space, 1, self.device)}
            if self.state_space is not None:
                inputs["states"] = _sample(self.state_space, 1, self.device)
            if self.action_space is not None:
                inputs["taken_actions"] = _sample(self.action_space, 1, self.device)
        self.to(self.device)
        self.compute(inputs, role)

    def random_act(self, inputs: dict[str, Any], *, role: str = "") -> tuple[torch.Tensor, dict[str, Any]]:
        """Uniform random actions in the (bounded Box) action space, one per observation."""
        low = torch.as_tensor(self.action_space.low, dtype=torch.float32, device=self.device).reshape(-1)
        high = torch.as_tensor(self.action_space.high, dtype=torch.float32, device=self.device).reshape(-1)
        n = inputs["observations"].shape[0]
        return low + torch.rand((n, low.numel()), device=self.device) * (high - low), {}

    def init_parameters(self, method_name: str = "normal_", *args, **kwargs) -> None:
        """Initialises every parameter with ``torch.nn.init.<method_name>(param, *args, **kwargs)``."""
        for p in self.parameters():
            getattr(torch.nn.init, method_name)(p, *args, **kwargs)

    def init_weights(self, method_name: str = "orthogonal_", *args, **kwargs) -> None:
        """Initialises the weights of every ``nn.Linear`` layer."""
        for m in self.modules():
            if isinstance(m, torch.nn.Linear):
                getattr(torch.nn.init, method_name)(m.weight, *args, **kwargs)

    def init_biases(self, method_name: str = "constant_", *args, **kwargs) -> None:
        """Initialises the biases of every ``nn.Linear`` layer."""
        for m in self.modules():
            if isinstance(m, torch.nn.Linear) and m.bias is not None:
                getattr(torch.nn.init, method_name)(m.bias, *args, **kwargs)

    def get_specification(self) -> dict[str, Any]:
        """Advanced specification; recurrent models return ``{"rnn": {"sequence_length": L, "sizes": [...]}}``."""
        return {}

    def forward(self, inputs: dict[str, Any], *, role: str = "") -> tuple[torch.Tensor, dict[str, Any]]:
        return self.act(inputs, role=role)

    def compute(self, inputs: dict[str, Any], role: str = "") -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__}.compute(inputs, role) is not implemented")

    def act(self, inputs: dict[str, Any], *, role: str = "") -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} has no act(): put a mixin (e.g. DeterministicMixin) "
                                  "before Model in its bases")

    def enable_training_mode(self, enabled: bool = True) -> None:
        self.train(enabled)

    def save(self, path: str, *, state_dict: dict[str, Any] | None = None) -> None:
        """Writes the parameters (or ``state_dict``) to ``path`` with ``torch.save``, atomically and sealed with a
        SHA-256 (:func:`ddpgx_torch.checkpoints.save`)."""
        checkpoints.save(self.state_dict() if state_dict is None else state_dict, path)

    def load(self, path: str) -> None:
        """Loads parameters saved by :meth:`save` (or any torch state-dict file), as data only.

        Raises:
          ValueError: naming ``path``, if it is truncated, altered, or holds anything but tensors and plain
            containers (a pickle that would run code is refused before it runs).
        """
        self.load_state_dict(checkpoints.load(path, map_location=self.device))
        self.eval()

    def freeze_parameters(self, freeze: bool = True) -> None:
        for p in self.parameters():
            p.requires_grad_(not freeze)

    def update_parameters(self, model: torch.nn.Module, *, polyak: float = 1.0) -> None:
        """``self <- polyak * model + (1 - polyak) * self`` (a hard copy for ``polyak = 1``)."""
        with torch.no_grad():
            torch._foreach_lerp_(list(self.parameters()), list(model.parameters()), float(polyak))

    def broadcast_parameters(self, *, rank: int = 0) -> None:
        """Copies ``rank``'s parameters to every process (``torch.distributed``)."""
        distributed.broadcast(list(self.parameters()), src=rank)

    def reduce_parameters(self) -> None:
        """Averages the gradients over all processes (``torch.distributed``)."""
        distributed.all_reduce_mean([p.grad for p in self.parameters() if p.grad is not None])


class DeterministicMixin:
    """``act(inputs, role=...)`` returns ``compute``'s output, optionally clipped to the action space."""

    def __init__(self, clip_actions: bool = False, role: str = "") -> None:
        self._d_clip_actions = bool(clip_actions)
        space = getattr(self, "action_space", None)
        if self._d_clip_actions and isinstance(space, gymnasium.spaces.Box):
            self._d_low = torch.as_tensor(space.low, dtype=torch.float32, device=self.device).reshape(-1)
            self._d_high = torch.as_tensor(space.high, dtype=torch.float32, device=self.device).reshape(-1)
        else:
            self._d_clip_actions = False

    def act(self, inputs: dict[str, Any], *, role: str = "") -> tuple[torch.Tensor, dict[str, Any]]:
        actions, outputs = self.compute(inputs, role)
        if self._d_clip_actions:
            actions = torch.clamp(actions, min=self._d_low, max=self._d_high)
        return actions, outputs


class _RecurrentModel(DeterministicMixin, Model):
    """What the recurrent policy and critic share: ``cell`` (``"lstm"``, ``"gru"``, ``"rnn"``) over the
    observations, with skrl's ``get_specification`` of its hidden states."""

    def __init__(self, observation_space, action_space, device, cell: str, num_envs: int, num_layers: int,
                 hidden_size: int, sequence_length: int):
        Model.__init__(self, observation_space, action_space, device)
        DeterministicMixin.__init__(self, clip_actions=False)
        self.num_envs = num_envs
        self.core = _Recurrent(cell, self.num_observations, hidden_size, num_layers, sequence_length)

    def get_specification(self):
        size = (self.core.num_layers, self.num_envs, self.core.hidden_size)
        return {"rnn": {"sequence_length": self.core.sequence_length,
                        "sizes": [size] * self.core.state_count()}}


class RecurrentPolicy(_RecurrentModel):
    """skrl-style recurrent policy: ``cell`` (``"lstm"``, ``"gru"``, ``"rnn"``) over the observations, then a
    400-300 ReLU MLP and a tanh scaled to the action bounds (skrl's RNN DDPG example architecture)."""

    def __init__(self, observation_space, action_space, device=None, *, cell: str = "lstm", num_envs: int = 1,
                 num_layers: int = 1, hidden_size: int = 64, sequence_length: int = 16,
                 hidden_sizes: Sequence[int] = (400, 300)):
        super().__init__(observation_space, action_space, device, cell, num_envs, num_layers, hidden_size,
                         sequence_length)
        self.head = DeterministicPolicy(hidden_size, action_space.low.reshape(-1), action_space.high.reshape(-1),
                                        action_space.shape, hidden_sizes)

    def compute(self, inputs, role=""):
        features, states = self.core(inputs["observations"], inputs["rnn"], inputs, role)
        return self.head(features), {"rnn": states}


class RecurrentQFunction(_RecurrentModel):
    """skrl-style recurrent critic: ``cell`` over the observations (starting from the policy's stored hidden
    states, as in skrl's DDPG_RNN), then ``Q = MLP(concat(features, action))``."""

    def __init__(self, observation_space, action_space, device=None, *, cell: str = "lstm", num_envs: int = 1,
                 num_layers: int = 1, hidden_size: int = 64, sequence_length: int = 16,
                 hidden_sizes: Sequence[int] = (400, 300)):
        super().__init__(observation_space, action_space, device, cell, num_envs, num_layers, hidden_size,
                         sequence_length)
        self.head = QFunction(hidden_size, self.num_actions, hidden_sizes)

    def compute(self, inputs, role=""):
        features, states = self.core(inputs["observations"], inputs["rnn"], inputs, role)
        return self.head(features, inputs["taken_actions"]).unsqueeze(-1), {"rnn": states}  # skrl's [N, 1]
