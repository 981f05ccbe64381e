"""The pure layer of ddpgx: the train state and ``init``/``act``/``update``, and the functions they are made of.

No I/O and no imports from the layers above (the skrl-style objects at :mod:`ddpgx`'s top level, the command line
in :mod:`ddpgx.cli`). The modules:

- :mod:`ddpgx.core.ddpg`: the train state, :func:`init`, :func:`act`, :func:`update`, :func:`update_from_replay`;
- :mod:`ddpgx.core.config`: :class:`DDPGConfig`, the algorithm's frozen configuration;
- :mod:`ddpgx.core.losses`, :mod:`ddpgx.core.networks`: the loss functions and the default flax networks;
- :mod:`ddpgx.core.noise`, :mod:`ddpgx.core.replay`, :mod:`ddpgx.core.scaler`: exploration noise, the device
  replay buffer and the running standard scaler;
- :mod:`ddpgx.core.spaces`, :mod:`ddpgx.core.types`: gymnasium spaces as flat layouts, the :class:`Transition`;
- :mod:`ddpgx.core.packing`: a pytree in few buffers, for loops bound by the cost of a jitted call;
- :mod:`ddpgx.core.threefry`: ``jax.random``'s hash unrolled on CPU while ddpgx's programs compile (the same bits);
- :mod:`ddpgx.core.xla_cpu`: XLA:CPU options for ddpgx's update programs (products fused with bias and ReLU);
- :mod:`ddpgx.core.sharding`: meshes and shardings over several devices and hosts;
- :mod:`ddpgx.core.jitted`: whole training runs on JAX-native environments as one compiled program;
- :mod:`ddpgx.core.validation`: checks of user input, shared with ``ddpgx_torch`` (no JAX);
- :mod:`ddpgx.core.lazy`: names that load on first use (here and in :mod:`ddpgx`).

Every name here loads on first use, so that ``ddpgx_torch`` can use :mod:`ddpgx.core.validation` without JAX.
"""

from typing import TYPE_CHECKING

from ddpgx.core.lazy import lazy_names

if TYPE_CHECKING:  # what the names below are; at run time they load on first use
    from ddpgx.core import config, ddpg, jitted, losses, networks, noise, packing, replay, scaler, sharding, spaces
    from ddpgx.core import threefry, types, validation, xla_cpu
    from ddpgx.core.config import DDPGConfig
    from ddpgx.core.ddpg import (
        DATA_AXIS,
        AgentSpec,
        Hyperparams,
        TrainState,
        act,
        adam,
        add_and_update,
        add_update_act,
        add_update_act_packed,
        init,
        update,
        update_from_replay,
    )
    from ddpgx.core.types import Transition
    from ddpgx.core.validation import check_numeric

# Public name -> the module it is, or the module that holds it; each loads on first use.
_SUBMODULES = {name: f"ddpgx.core.{name}" for name in (
    "config", "ddpg", "jitted", "losses", "networks", "noise", "packing", "replay", "scaler", "sharding", "spaces",
    "threefry", "types", "validation", "xla_cpu")}
_NAMES = {"DDPGConfig": "ddpgx.core.config", "Transition": "ddpgx.core.types", "check_numeric": "ddpgx.core.validation",
          **{name: "ddpgx.core.ddpg" for name in ("DATA_AXIS", "AgentSpec", "Hyperparams", "TrainState", "act", "adam",
                                                  "add_and_update", "add_update_act", "add_update_act_packed", "init",
                                                  "update", "update_from_replay")}}
__getattr__, __dir__ = lazy_names("ddpgx.core", globals(), _SUBMODULES, _NAMES)

__all__ = [
    "DATA_AXIS",
    "AgentSpec",
    "DDPGConfig",
    "Hyperparams",
    "TrainState",
    "Transition",
    "act",
    "adam",
    "add_and_update",
    "add_update_act",
    "add_update_act_packed",
    "check_numeric",
    "config",
    "ddpg",
    "init",
    "jitted",
    "losses",
    "networks",
    "noise",
    "packing",
    "replay",
    "scaler",
    "sharding",
    "spaces",
    "threefry",
    "types",
    "update",
    "update_from_replay",
    "validation",
    "xla_cpu",
]
