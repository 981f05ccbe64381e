"""skrl's Pendulum-v1 JAX DDPG example, with its own flax models, trained by skrl JAX and by ddpgx side by side.

The example (skrl's ``docs/source/examples/gymnasium/jax_gymnasium_pendulum_ddpg.py``, skrl 2.x API) defines its
``Actor`` and ``Critic`` as skrl flax models (400-300 ReLU MLPs, a ``2 tanh`` policy head), re-initialises every
parameter with ``init_parameters(method_name="normal", stddev=0.1)``, and configures DDPG with Ornstein-Uhlenbeck
noise (theta 0.15, sigma 0.1), the exploration scheduler ``max(1 - t / T, 1e-2)``, batch 100, 100 random
timesteps, learning from timestep 100, and a memory of 15,000 transitions sampled without replacement. Here the
same model classes (one definition, built on skrl's or ddpgx's ``Model``/``DeterministicMixin``) and the same
configuration run under each library with TensorBoard writing and checkpoints off, for 15,000 timesteps.

Each (library, seed) run is its own Python process, interleaved (the order rotates with the seed). Reported: the
wall time of ``trainer.train()`` (set-up, including ddpgx's compilation in ``agent.init``, is reported apart) and
the mean return of 10 evaluation episodes (seeds 10000..10009) of the trained policy used as skrl users do,
``agent.policy.act({"observations": obs}, role="policy")``.

Run from the repository root::

    python benchmarks/skrl_examples_jax.py                        # 3 seeds
    python benchmarks/skrl_examples_jax.py --seeds 0 --timesteps 3000 --libraries ddpgx
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

LIBRARIES = ("ddpgx", "skrl-jax")


def example_models(base: Any, mixin: Any, env: Any, device: Any) -> dict[str, Any]:
    """The example's four models, on ``base``/``mixin`` (skrl's or ddpgx's ``Model`` and ``DeterministicMixin``),
    state dicts initialised and parameters drawn from N(0, 0.1) as the example does."""
    import flax.linen as nn
    import jax.numpy as jnp

    class Actor(mixin, base):
        def __init__(self, observation_space, state_space, action_space, device=None, clip_actions=False, **kwargs):
            base.__init__(self, observation_space=observation_space, state_space=state_space,
                          action_space=action_space, device=device, **kwargs)
            mixin.__init__(self, clip_actions=clip_actions)

        @nn.compact
        def __call__(self, inputs, role):
            x = nn.relu(nn.Dense(400)(inputs["observations"]))
            x = nn.relu(nn.Dense(300)(x))
            x = nn.Dense(self.num_actions)(x)
            return 2 * nn.tanh(x), {}

    class Critic(mixin, base):
        def __init__(self, observation_space, state_space, action_space, device=None, clip_actions=False, **kwargs):
            base.__init__(self, observation_space=observation_space, state_space=state_space,
                          action_space=action_space, device=device, **kwargs)
            mixin.__init__(self, clip_actions=clip_actions)

        @nn.compact
        def __call__(self, inputs, role):
            x = jnp.concatenate([inputs["observations"], inputs["taken_actions"]], axis=-1)
            x = nn.relu(nn.Dense(400)(x))
            x = nn.relu(nn.Dense(300)(x))
            x = nn.Dense(1)(x)
            return x, {}

    spaces = (env.observation_space, env.state_space, env.action_space, device)
    models = {"policy": Actor(*spaces), "target_policy": Actor(*spaces), "critic": Critic(*spaces),
              "target_critic": Critic(*spaces)}
    for role, model in models.items():
        model.init_state_dict(role=role)
    for model in models.values():
        model.init_parameters(method_name="normal", stddev=0.1)
    return models


def example_cfg(cfg: Any, noise: Any, device: Any) -> Any:
    """The example's agent configuration, logging and checkpoints off."""
    cfg.exploration_noise = noise
    cfg.exploration_noise_kwargs = {"theta": 0.15, "sigma": 0.1, "base_scale": 1.0, "device": device}
    cfg.exploration_scheduler = lambda timestep, timesteps: max(1 - timestep / timesteps, 1e-2)
    cfg.batch_size = 100
    cfg.random_timesteps = 100
    cfg.learning_starts = 100
    cfg.experiment.write_interval = 0
    cfg.experiment.checkpoint_interval = 0
    cfg.experiment.directory = os.path.join("/tmp", "ddpgx-skrl-examples")
    return cfg


def run_one(library: str, seed: int, timesteps: int, episodes: int) -> dict[str, Any]:
    import gymnasium
    import jax.numpy as jnp

    from e2e_pendulum import _evaluate

    if library == "ddpgx":
        from ddpgx import DDPG, DDPG_CFG
        from ddpgx.envs import wrap_env
        from ddpgx.memories import RandomMemory
        from ddpgx.models import DeterministicMixin, Model, set_seed
        from ddpgx.noises import OrnsteinUhlenbeckNoise
        from ddpgx.trainers import SequentialTrainer

        quiet = contextlib.nullcontext
    else:
        from skrl import config
        from skrl.agents.jax.ddpg import DDPG, DDPG_CFG
        from skrl.envs.wrappers.jax import wrap_env
        from skrl.memories.jax import RandomMemory
        from skrl.models.jax import DeterministicMixin, Model
        from skrl.resources.noises.jax import OrnsteinUhlenbeckNoise
        from skrl.trainers.jax import SequentialTrainer
        from skrl.utils import set_seed
        from skrl_reference import quiet_skrl

        config.jax.backend = "numpy"  # as skrl's example
        quiet = quiet_skrl
    set_seed(seed)
    setup_start = time.perf_counter()
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    device = env.device
    memory = RandomMemory(memory_size=15000, num_envs=env.num_envs, device=device, replacement=False)
    models = example_models(Model, DeterministicMixin, env, device)
    cfg = example_cfg(DDPG_CFG(), OrnsteinUhlenbeckNoise, device)
    trainer_cfg = {"timesteps": timesteps, "headless": True, "disable_progressbar": True,
                   "close_environment_at_exit": False}
    with quiet():
        agent = DDPG(models=models, memory=memory, cfg=cfg, observation_space=env.observation_space,
                     state_space=env.state_space, action_space=env.action_space, device=device)
        trainer = SequentialTrainer(cfg=trainer_cfg, env=env, agents=[agent])
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    agent.enable_training_mode(False)
    policy = agent.policy

    def act(obs):  # how a skrl user runs a trained model
        return policy.act({"observations": jnp.asarray(obs), "states": None}, role="policy")[0]

    returns = _evaluate(act, episodes)
    return {"library": library, "seed": seed, "timesteps": timesteps, "train_seconds": seconds,
            "setup_seconds": start - setup_start, "compile_seconds": getattr(agent, "compile_seconds", None),
            "eval_returns": returns, "eval_mean": float(np.mean(returns))}


def _child(library: str, seed: int, timesteps: int, episodes: int) -> dict[str, Any]:
    command = [sys.executable, os.path.abspath(__file__), "--one", library, "--seeds", str(seed), "--timesteps",
               str(timesteps), "--eval-episodes", str(episodes)]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"),
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{library} seed {seed} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(lines[-1])


def summarise(results: list[dict[str, Any]], libraries: list[str], seeds: list[int]) -> str:
    by = {(r["library"], r["seed"]): r for r in results}
    lines = ["| library | " + " | ".join(f"seed {s}: train s / eval return" for s in seeds) + " | median train s |",
             "|---|" + "---|" * (len(seeds) + 1)]
    for library in libraries:
        rows = [by[(library, s)] for s in seeds]
        cells = " | ".join(f"{r['train_seconds']:.1f} / {r['eval_mean']:.1f}" for r in rows)
        lines.append(f"| {library} | {cells} | {np.median([r['train_seconds'] for r in rows]):.1f} |")
    lines.append("")
    if set(LIBRARIES) <= set(libraries):
        ratios = [by[("skrl-jax", s)]["train_seconds"] / by[("ddpgx", s)]["train_seconds"] for s in seeds]
        lines.append(f"- ddpgx is {np.median(ratios):.2f}x faster than skrl JAX (median of the per-seed ratios "
                     f"{', '.join(f'{x:.2f}' for x in ratios)}; bar: >= 3.5)")
    for library in libraries:
        worst = min(by[(library, s)]["eval_mean"] for s in seeds)
        setup = np.median([by[(library, s)]["setup_seconds"] for s in seeds])
        lines.append(f"- {library}: worst seed evaluates at {worst:.1f} (bar: >= -200); set-up before "
                     f"`trainer.train()` median {setup:.1f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES,
                        help="which agents train the example (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds, one run each (default 0 1 2)")
    parser.add_argument("--timesteps", type=int, default=15_000, help="training timesteps (default 15000)")
    parser.add_argument("--eval-episodes", type=int, default=10,
                        help="noiseless evaluation episodes after training (default 10)")
    parser.add_argument("--one", choices=LIBRARIES, help=argparse.SUPPRESS)  # a child process: one run, JSON out
    args = parser.parse_args()
    if args.one:
        import warnings

        warnings.filterwarnings("ignore")
        print(json.dumps(run_one(args.one, args.seeds[0], args.timesteps, args.eval_episodes)), flush=True)
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    for i, seed in enumerate(args.seeds):
        order = args.libraries[i % len(args.libraries):] + args.libraries[:i % len(args.libraries)]
        for library in order:
            load = os.getloadavg()[0]
            result = _child(library, seed, args.timesteps, args.eval_episodes)
            results.append(result)
            print(f"{library:8s} seed {seed}: train {result['train_seconds']:7.1f} s, eval return "
                  f"{result['eval_mean']:8.1f} (load average before: {load:.2f})", flush=True)
    print(summarise(results, args.libraries, args.seeds))


if __name__ == "__main__":
    main()
