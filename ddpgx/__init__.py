"""ddpgx: Deep Deterministic Policy Gradient (Lillicrap et al. 2015) as pure, jitted JAX functions.

The functional core::

    train_state = ddpgx.init(key, ddpgx.DDPGConfig(...), observation_space, action_space)
    actions, train_state, info = ddpgx.act(train_state, observations, timestep=t, timesteps=T)
    train_state, metrics = ddpgx.update(train_state, batch)            # or update_from_replay(train_state, buffer)

with a device replay buffer in :mod:`ddpgx.core.replay`, exploration noise in :mod:`ddpgx.noise`, the running
standard scaler in :mod:`ddpgx.scaler` and default networks in :mod:`ddpgx.core.networks`. Whole training runs on
JAX-native (gymnax) environments compile to one program with :func:`ddpgx.make_train` (:mod:`ddpgx.jitted`).
These pure functions live in :mod:`ddpgx.core` (re-exported here); the command line's jobs in :mod:`ddpgx.cli`.

skrl's agent interface over it: :class:`ddpgx.DDPG` with :class:`ddpgx.DDPG_CFG`, and the pieces a skrl script uses
in :mod:`ddpgx.models`, :mod:`ddpgx.memories`, :mod:`ddpgx.noises`, :mod:`ddpgx.preprocessors`,
:mod:`ddpgx.trainers` and :mod:`ddpgx.envs`; TensorBoard tracking in :mod:`ddpgx.tracking`, orbax checkpoints in
:mod:`ddpgx.checkpoints`; skrl's ``config`` (default device and PRNG key) and ``logger`` in :mod:`ddpgx.settings`.

Every name here loads on first use: ``import ddpgx`` alone imports neither JAX nor the rest of ddpgx.
"""

from typing import TYPE_CHECKING

from ddpgx.core.lazy import lazy_names

if TYPE_CHECKING:  # what the names below are, for readers and type checkers; at run time they load on first use
    from ddpgx.agent import DDPG
    from ddpgx.core import (
        AgentSpec,
        DDPGConfig,
        Hyperparams,
        TrainState,
        Transition,
        act,
        add_and_update,
        add_update_act,
        init,
        jitted,
        losses,
        networks,
        noise,
        replay,
        scaler,
        sharding,
        spaces,
        update,
        update_from_replay,
    )
    from ddpgx.core.jitted import JittedConfig, make_train, with_hyperparams
    from ddpgx.core.noise import GaussianNoise, OrnsteinUhlenbeckNoise
    from ddpgx.ddpg_cfg import DDPG_CFG, ExperimentCfg
    from ddpgx.settings import config, logger

# Public name -> the module that holds it. Nothing is imported until a name is used, so that ``import ddpgx`` and
# ``ddpgx --help`` cost next to nothing; ``ddpgx.init`` (say) then loads JAX, flax, optax and the core.
_SUBMODULES = {
    **{name: f"ddpgx.core.{name}" for name in ("jitted", "losses", "networks", "noise", "replay", "scaler",
                                               "sharding", "spaces")},
    **{name: f"ddpgx.{name}" for name in ("agent", "checkpoints", "core", "ddpg_cfg", "envs", "memories", "models",
                                          "noises", "preprocessors", "settings", "tracking", "trainers")},
}
_NAMES = {
    "DDPG": "ddpgx.agent",
    **{name: "ddpgx.core" for name in ("AgentSpec", "DDPGConfig", "Hyperparams", "TrainState", "Transition", "act",
                                       "add_and_update", "add_update_act", "init", "update", "update_from_replay")},
    **{name: "ddpgx.core.jitted" for name in ("JittedConfig", "make_train", "with_hyperparams")},
    **{name: "ddpgx.core.noise" for name in ("GaussianNoise", "OrnsteinUhlenbeckNoise")},
    **{name: "ddpgx.ddpg_cfg" for name in ("DDPG_CFG", "ExperimentCfg")},
    **{name: "ddpgx.settings" for name in ("config", "logger")},
}


__getattr__, __dir__ = lazy_names("ddpgx", globals(), _SUBMODULES, _NAMES)

__version__ = "0.1.0"


def load_policy(path: str):
    """The deterministic policy of a ``ddpgx train`` run (a run directory or one of its checkpoints) as a function
    from an observation (or a batch) to an action; see :func:`ddpgx.cli.policy.load_policy`."""
    from ddpgx.cli.policy import load_policy as _load_policy  # the application layer, imported on first use

    return _load_policy(path)


__all__ = [
    "DDPG",
    "DDPG_CFG",
    "AgentSpec",
    "DDPGConfig",
    "ExperimentCfg",
    "GaussianNoise",
    "Hyperparams",
    "JittedConfig",
    "OrnsteinUhlenbeckNoise",
    "TrainState",
    "Transition",
    "act",
    "add_and_update",
    "add_update_act",
    "config",
    "init",
    "jitted",
    "logger",
    "load_policy",
    "losses",
    "make_train",
    "networks",
    "noise",
    "replay",
    "scaler",
    "sharding",
    "spaces",
    "update",
    "update_from_replay",
    "with_hyperparams",
]
