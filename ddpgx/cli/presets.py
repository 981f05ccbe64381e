"""Presets: published DDPG settings per environment, chosen by ``ddpgx train`` from the env id.

A preset is a set of dotted configuration keys (:mod:`ddpgx.cli.config`) applied over the defaults and under
anything given in a ``--config`` file or as flags, so each of its values can be overridden. ``run.preset`` picks
one by name (``"auto"``: the preset of ``env.id``; ``"none"``: the defaults alone). Each cites its source.

* ``Pendulum-v1``: skrl's DDPG example (the defaults of ``ddpgx train``).
* ``MountainCarContinuous-v0``: RL Baselines3 Zoo's tuned DDPG (``hyperparams/ddpg.yml``): Ornstein-Uhlenbeck noise
  with ``noise_std`` 0.5, batch 256, 400-300 networks, 300,000 steps. SB3's OU process integrates with
  ``dt = 0.01``: ``x += theta (mu - x) dt + sigma sqrt(dt) N(0, 1)`` with SB3's default ``theta = 0.15``, which in
  ddpgx's per-step form ``x = (1 - theta') x + sigma' N(0, 1)`` is ``theta' = 0.15 * 0.01`` and
  ``sigma' = 0.5 * 0.1``: slowly varying noise that carries the car up the hill.
* The MuJoCo v5 tasks: the DDPG of Fujimoto et al. 2018 (TD3 paper, arXiv:1802.09477, Sec. 6.1 and its
  ``OurDDPG.py``/``main.py``): 400-300 ReLU networks, Adam 1e-3 for both, batch 100, tau 0.005, gamma 0.99,
  Gaussian exploration N(0, 0.1 max_action), uniform random actions (and no learning) for the first 1,000 steps
  (10,000 for HalfCheetah and Ant), a replay of 1e6 transitions, 1e6 steps, evaluation every 5,000 steps over
  10 episodes without noise.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS", "names", "preset_for"]


def _td3_paper_ddpg(start_timesteps: int, max_action: float = 1.0) -> dict[str, Any]:
    """Fujimoto et al. 2018's DDPG ("OurDDPG"), github.com/sfujim/TD3 main.py and OurDDPG.py."""
    return {
        "run.timesteps": 1_000_000,
        "memory.memory_size": 1_000_000,
        "networks.policy_hidden_sizes": [400, 300],
        "networks.critic_hidden_sizes": [400, 300],
        "cfg.batch_size": 100,
        "cfg.learning_rate": 1e-3,
        "cfg.polyak": 0.005,
        "cfg.discount_factor": 0.99,
        "cfg.gradient_steps": 1,
        "cfg.exploration_noise": "GaussianNoise",
        "cfg.exploration_noise_kwargs": {"mean": 0.0, "std": round(0.1 * max_action, 6)},
        "cfg.random_timesteps": start_timesteps,
        "cfg.learning_starts": start_timesteps,
        "evaluation.interval": 5_000,
        "evaluation.episodes": 10,
    }


PRESETS: dict[str, dict[str, Any]] = {
    # skrl's example, docs/source/examples/gymnasium/jax/jax_gymnasium_pendulum_ddpg.py: OU(0.15, 0.1), batch 100,
    # 100 random steps, learning from step 100, memory 15,000, 15,000 steps (the defaults of ddpgx.cli.config).
    "Pendulum-v1": {},
    # RL Baselines3 Zoo, hyperparams/ddpg.yml (MountainCarContinuous-v0): noise_type ornstein-uhlenbeck, noise_std 0.5,
    # batch_size 256, learning_rate 1e-3, net_arch [400, 300], n_timesteps 300000; SB3's DDPG defaults otherwise
    # (buffer 1e6, learning_starts 100, tau 0.005, gamma 0.99). OU translated from SB3's dt = 0.01 (module docstring).
    "MountainCarContinuous-v0": {
        "run.timesteps": 300_000,
        "memory.memory_size": 300_000,
        "cfg.batch_size": 256,
        "cfg.learning_rate": 1e-3,
        "cfg.polyak": 0.005,
        "cfg.discount_factor": 0.99,
        "cfg.exploration_noise": "OrnsteinUhlenbeckNoise",
        "cfg.exploration_noise_kwargs": {"theta": 0.0015, "sigma": 0.05, "base_scale": 1.0},
        "cfg.random_timesteps": 0,
        "cfg.learning_starts": 100,
        "evaluation.interval": 10_000,
    },
    # Fujimoto et al. 2018 (TD3 paper), DDPG as re-tuned there ("OurDDPG"); start timesteps 10,000 for HalfCheetah
    # and Ant, 1,000 for the others; Gaussian std 0.1 x max_action (Humanoid's actions lie in [-0.4, 0.4],
    # InvertedPendulum's in [-3, 3]).
    "HalfCheetah-v5": _td3_paper_ddpg(10_000),
    "Ant-v5": _td3_paper_ddpg(10_000),
    "Hopper-v5": _td3_paper_ddpg(1_000),
    "Walker2d-v5": _td3_paper_ddpg(1_000),
    "Humanoid-v5": _td3_paper_ddpg(1_000, max_action=0.4),
    "InvertedPendulum-v5": _td3_paper_ddpg(1_000, max_action=3.0),
    "InvertedDoublePendulum-v5": _td3_paper_ddpg(1_000),
    "Reacher-v5": _td3_paper_ddpg(1_000),
    "Swimmer-v5": _td3_paper_ddpg(1_000),
}

MUJOCO = tuple(name for name in PRESETS if name.endswith("-v5"))


def names() -> list[str]:
    return sorted(PRESETS)


def preset_for(env_id: str, choice: str = "auto") -> tuple[str, dict[str, Any]]:
    """``(name, settings)`` of the preset for ``env_id`` (``choice`` ``"auto"``), of the preset named ``choice``, or
    ``("none", {})`` for ``"none"`` or an environment without a preset. Raises ``ValueError`` for an unknown name."""
    if choice == "none":
        return "none", {}
    if choice == "auto":
        name = env_id.removeprefix("gymnax:")
        return (name, dict(PRESETS[name])) if name in PRESETS else ("none", {})
    if choice not in PRESETS:
        raise ValueError(f"run.preset={choice!r} is invalid: expected 'auto', 'none' or one of {', '.join(names())}")
    return choice, dict(PRESETS[choice])
