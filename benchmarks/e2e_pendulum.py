"""End to end: skrl's Pendulum-v1 DDPG example, trained by ddpgx's and ddpgx_torch's facades with the shared trainer
and by skrl JAX and torch.

The configuration is skrl's example (15,000 timesteps, 1 environment, batch 100, 400-300 MLPs, Ornstein-Uhlenbeck
noise theta 0.15 sigma 0.1, 100 random timesteps, learning from timestep 100, a memory of 15,000 transitions sampled
without replacement), with TensorBoard writing and checkpoints off for every library. Each (library, seed) run is
its own Python process, started in an interleaved order (the order rotates with the seed), and reports:

* the wall time of ``trainer.train()`` (imports and set-up are not: models, memory, agent and trainer, where
  ``agent.init`` runs; ddpgx's agent compiles its training step there, and skrl's compiles during training; the
  set-up times, and ddpgx's compile time, are reported separately),
* environment steps per second,
* the mean return of 10 evaluation episodes of the deterministic policy (no noise; seeds 10000..10009).

Run from the repository root::

    python benchmarks/e2e_pendulum.py                      # 3 seeds, every library installed
    python benchmarks/e2e_pendulum.py --seeds 0 --timesteps 3000 --libraries ddpgx skrl-jax
    python benchmarks/e2e_pendulum.py --libraries ddpgx_torch skrl-torch --torch-threads 1
    python benchmarks/e2e_pendulum.py --libraries ddpgx_torch skrl-torch --mixed-precision   # both with bf16 AMP
    python benchmarks/e2e_pendulum.py --markdown benchmarks/RESULTS.md

skrl (``pip install ".[bench]"``) is optional: libraries that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

LIBRARIES = ("ddpgx", "ddpgx_torch", "skrl-jax", "skrl-torch")
OURS = {"ddpgx": "skrl-jax", "ddpgx_torch": "skrl-torch"}
TORCH_LIBRARIES = ("ddpgx_torch", "skrl-torch")  # each of ours, and the skrl backend it is compared to
EVAL_SEED = 10_000


# ---------------------------------------------------------------------------------------------------------------------
# One run (in a child process).


def _evaluate(policy, episodes: int) -> list[float]:
    """Returns of the deterministic ``policy(obs [1, 3]) -> actions [1, 1]`` on Pendulum-v1."""
    import gymnasium

    env = gymnasium.make("Pendulum-v1")
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        total, done = 0.0, False
        while not done:
            action = np.asarray(policy(obs[None].astype(np.float32)), np.float32).reshape(1)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def run_ddpgx(seed: int, timesteps: int, episodes: int) -> dict[str, Any]:
    import gymnasium

    from ddpgx import DDPG
    from ddpgx.envs import wrap_env
    from ddpgx.memories import RandomMemory
    from ddpgx.models import set_seed
    from ddpgx.cli.runner import skrl_example_cfg
    from ddpgx.trainers import SequentialTrainer

    set_seed(seed)
    setup_start = time.perf_counter()
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    memory = RandomMemory(memory_size=15_000, num_envs=env.num_envs, replacement=False)
    cfg = skrl_example_cfg()
    cfg.experiment.write_interval = 0
    cfg.experiment.checkpoint_interval = 0
    models = dict.fromkeys(("policy", "target_policy", "critic", "target_critic"))  # the example's 400-300 MLPs
    agent = DDPG(models=models, memory=memory, cfg=cfg, observation_space=env.observation_space,
                 state_space=env.state_space, action_space=env.action_space, seed=seed)
    trainer = SequentialTrainer(env=env, agents=[agent], cfg={"timesteps": timesteps, "headless": True,
                                                              "disable_progressbar": True, "seed": seed})
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    agent.enable_training_mode(False)
    returns = _evaluate(lambda obs: agent.act(obs, None, timestep=0, timesteps=1)[0], episodes)
    return {"train_seconds": seconds, "eval_returns": returns, "setup_seconds": start - setup_start,
            "compile_seconds": agent.compile_seconds}


def run_ddpgx_torch(seed: int, timesteps: int, episodes: int, mixed_precision: bool = False) -> dict[str, Any]:
    """The same run as :func:`run_ddpgx` with ddpgx_torch's facade (the example's 400-300 MLPs; fp32, or bf16
    autocast with ``mixed_precision``)."""
    import gymnasium
    import torch

    from ddpgx.cli.runner import skrl_example_cfg
    from ddpgx_torch import DDPG, DDPG_CFG
    from ddpgx_torch.core import networks
    from ddpgx_torch.envs import wrap_env
    from ddpgx_torch.memories import RandomMemory
    from ddpgx_torch.models import set_seed
    from ddpgx_torch.noises import OrnsteinUhlenbeckNoise
    from ddpgx_torch.trainers import SequentialTrainer

    set_seed(seed)
    setup_start = time.perf_counter()
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    memory = RandomMemory(memory_size=15_000, num_envs=env.num_envs, replacement=False)
    cfg = skrl_example_cfg(DDPG_CFG(), OrnsteinUhlenbeckNoise)  # the same settings as the other rows
    cfg.experiment.write_interval = 0
    cfg.experiment.checkpoint_interval = 0
    cfg.mixed_precision = mixed_precision
    low, high = env.action_space.low, env.action_space.high
    models = {"policy": networks.DeterministicPolicy(3, low, high, (1,)), "critic": networks.QFunction(3, 1)}
    agent = DDPG(models=models, memory=memory, cfg=cfg, observation_space=env.observation_space,
                 state_space=env.state_space, action_space=env.action_space)
    trainer = SequentialTrainer(env=env, agents=[agent], cfg={"timesteps": timesteps, "headless": True,
                                                              "disable_progressbar": True, "seed": seed})
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    agent.enable_training_mode(False)
    with torch.no_grad():
        returns = _evaluate(lambda obs: agent.act(obs, None, timestep=0, timesteps=1)[0].numpy(), episodes)
    return {"train_seconds": seconds, "eval_returns": returns, "setup_seconds": start - setup_start}


def _skrl_cfg(backend: str):
    import importlib

    from ddpgx.cli.runner import skrl_example_cfg

    ddpg = importlib.import_module(f"skrl.agents.{backend}.ddpg")
    noises = importlib.import_module(f"skrl.resources.noises.{backend}")
    cfg = skrl_example_cfg(ddpg.DDPG_CFG(), noises.OrnsteinUhlenbeckNoise)  # the same settings as ddpgx's row
    cfg.experiment.write_interval = 0
    cfg.experiment.checkpoint_interval = 0
    cfg.experiment.directory = os.path.join("/tmp", "ddpgx-e2e-skrl")
    return ddpg.DDPG, cfg


def run_skrl(backend: str, seed: int, timesteps: int, episodes: int,
             random_timesteps: Optional[int] = None, mixed_precision: bool = False) -> dict[str, Any]:
    """skrl's example; ``random_timesteps`` (if given) replaces its 100 random steps and its learning start;
    ``mixed_precision`` is skrl torch's option (autocast, bf16 on the CPU)."""
    import importlib

    import gymnasium
    from skrl.utils import set_seed
    from skrl_reference import quiet_skrl, skrl_models

    if backend == "jax":
        from skrl import config

        config.jax.backend = "numpy"  # as skrl's example
    set_seed(seed)
    setup_start = time.perf_counter()
    wrap_env = importlib.import_module(f"skrl.envs.wrappers.{backend}").wrap_env
    memory_cls = importlib.import_module(f"skrl.memories.{backend}").RandomMemory
    trainer_cls = importlib.import_module(f"skrl.trainers.{backend}").SequentialTrainer
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    models, device = skrl_models(backend, env.observation_space, env.action_space, seed=seed)
    if backend == "jax":
        from skrl import config

        config.jax.device = device
    memory = memory_cls(memory_size=15_000, num_envs=env.num_envs, device=device, replacement=False)
    agent_cls, cfg = _skrl_cfg(backend)
    cfg.exploration_noise_kwargs["device"] = device
    if random_timesteps is not None:
        cfg.random_timesteps = cfg.learning_starts = random_timesteps
    if mixed_precision:
        cfg.mixed_precision = True
    with quiet_skrl():
        agent = agent_cls(models=models, memory=memory, cfg=cfg, observation_space=env.observation_space,
                          state_space=env.state_space, action_space=env.action_space, device=device)
        trainer = trainer_cls(cfg={"timesteps": timesteps, "headless": True, "disable_progressbar": True,
                                   "close_environment_at_exit": False}, env=env, agents=[agent])
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    setup = start - setup_start
    if backend == "jax":
        import jax.numpy as jnp

        def policy(obs):
            return agent.policy.act({"observations": jnp.asarray(obs), "states": None}, role="policy")[0]
    else:
        import torch

        def policy(obs):
            with torch.no_grad():
                return agent.policy.act({"observations": torch.as_tensor(obs), "states": None},
                                        role="policy")[0].numpy()
    eval_start = time.perf_counter()
    returns = _evaluate(policy, episodes)
    return {"train_seconds": seconds, "eval_returns": returns, "setup_seconds": setup,
            "eval_seconds": time.perf_counter() - eval_start}


def run_one(library: str, seed: int, timesteps: int, episodes: int, mixed_precision: bool = False
            ) -> dict[str, Any]:
    if mixed_precision and library not in TORCH_LIBRARIES:
        raise ValueError(f"--mixed-precision applies to {TORCH_LIBRARIES}, not {library!r}")
    if library == "ddpgx":
        result = run_ddpgx(seed, timesteps, episodes)
    elif library == "ddpgx_torch":
        result = run_ddpgx_torch(seed, timesteps, episodes, mixed_precision)
    elif library in ("skrl-jax", "skrl-torch"):
        result = run_skrl(library.split("-")[1], seed, timesteps, episodes, mixed_precision=mixed_precision)
    else:
        raise ValueError(f"library={library!r} is not one of {LIBRARIES}")
    result.update(library=library, seed=seed, timesteps=timesteps,
                  env_steps_per_second=timesteps / result["train_seconds"],
                  torch_threads=_torch_threads() if "torch" in library else None,
                  eval_mean=float(np.mean(result["eval_returns"])))
    return result


def _torch_threads() -> int | None:
    if "torch" not in sys.modules:
        return None
    return sys.modules["torch"].get_num_threads()


# ---------------------------------------------------------------------------------------------------------------------
# The comparison (parent process).


def installed(library: str) -> bool:
    if library == "ddpgx":
        return True
    if library == "ddpgx_torch":
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    from skrl_reference import skrl_available

    return skrl_available(library.split("-")[1])


def _child(library: str, seed: int, timesteps: int, episodes: int, torch_threads: int | None = None,
           mixed_precision: bool = False) -> dict[str, Any]:
    command = [sys.executable, os.path.abspath(__file__), "--one", library, "--seeds", str(seed),
               "--timesteps", str(timesteps), "--eval-episodes", str(episodes)]
    if torch_threads is not None:
        command += ["--torch-threads", str(torch_threads)]
    if mixed_precision:
        command += ["--mixed-precision"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{library} seed {seed} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(lines[-1])


def compare(libraries: list[str], seeds: list[int], timesteps: int, episodes: int,
            torch_threads: int | None = None, mixed_precision: bool = False) -> list[dict[str, Any]]:
    results = []
    for i, seed in enumerate(seeds):
        order = libraries[i % len(libraries):] + libraries[:i % len(libraries)]  # rotate to spread drift
        for library in order:
            load = os.getloadavg()[0]
            result = _child(library, seed, timesteps, episodes, torch_threads, mixed_precision)
            result["load_before"] = load
            results.append(result)
            print(f"{library:10s} seed {seed}: train {result['train_seconds']:7.1f} s "
                  f"({result['env_steps_per_second']:6.0f} env steps/s), eval return {result['eval_mean']:8.1f} "
                  f"(load average before: {load:.2f})", flush=True)
    return results


def summarise(results: list[dict[str, Any]], libraries: list[str], seeds: list[int]) -> str:
    by = {(r["library"], r["seed"]): r for r in results}
    lines = ["| library | " + " | ".join(f"seed {s}: train s / eval return" for s in seeds)
             + " | median train s | median env steps/s |",
             "|---|" + "---|" * (len(seeds) + 2)]
    for library in libraries:
        rows = [by[(library, s)] for s in seeds]
        cells = " | ".join(f"{r['train_seconds']:.1f} / {r['eval_mean']:.1f}" for r in rows)
        lines.append(f"| {library} | {cells} | {np.median([r['train_seconds'] for r in rows]):.1f} | "
                     f"{np.median([r['env_steps_per_second'] for r in rows]):.0f} |")
    lines.append("")
    for ours in (lib for lib in OURS if lib in libraries):
        for other in libraries:
            if other in OURS or (ours == "ddpgx_torch" and other != OURS[ours]):
                continue
            ratios = [by[(other, s)]["train_seconds"] / by[(ours, s)]["train_seconds"] for s in seeds]
            lines.append(f"- {ours} is {np.median(ratios):.2f}x faster than {other} (median of per-seed ratios "
                         f"{', '.join(f'{x:.2f}' for x in ratios)})")
        worst = min(by[(ours, s)]["eval_mean"] for s in seeds)
        lines.append(f"- {ours}'s worst seed evaluates at {worst:.1f} (bar: >= -200)")
    for library in libraries:
        setups = [by[(library, s)].get("setup_seconds") for s in seeds]
        if all(x is not None for x in setups):
            compiles = [by[(library, s)].get("compile_seconds") for s in seeds]
            extra = (f", of which XLA compilation of the step in the agent's init {np.median(compiles):.1f} s"
                     if all(c is not None for c in compiles) else "")
            lines.append(f"- {library}: set-up before `trainer.train()` (models, memory, agent, trainer) median "
                         f"{np.median(setups):.1f} s{extra}")
    threads = sorted({r["torch_threads"] for r in results if r.get("torch_threads")})
    if threads:
        lines.append(f"- torch intra-op threads in the torch runs: {', '.join(map(str, threads))}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES,
                        help="libraries to run; those not installed are skipped (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument("--timesteps", type=int, default=15_000, help="timesteps per run (default 15000)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="noiseless evaluation episodes after "
                        "training (default 10)")
    parser.add_argument("--markdown", help="append the results as a section of this Markdown file")
    parser.add_argument("--torch-threads", type=int, help="torch intra-op threads of the torch runs (ddpgx_torch and "
                        "skrl-torch alike; default: torch's)")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_precision=True in the torch runs "
                        "(ddpgx_torch and skrl-torch alike: bf16 autocast on the CPU); torch libraries only")
    parser.add_argument("--one", choices=LIBRARIES, help=argparse.SUPPRESS)  # a child process: one run, JSON out
    args = parser.parse_args()
    if args.one:
        import warnings

        warnings.filterwarnings("ignore")
        if args.torch_threads is not None and args.one in ("ddpgx_torch", "skrl-torch"):
            import torch

            torch.set_num_threads(args.torch_threads)
        print(json.dumps(run_one(args.one, args.seeds[0], args.timesteps, args.eval_episodes,
                                 args.mixed_precision)), flush=True)
        return
    if args.mixed_precision and set(args.libraries) - set(TORCH_LIBRARIES):
        parser.error(f"--mixed-precision applies to {list(TORCH_LIBRARIES)} only; pass --libraries "
                     "ddpgx_torch skrl-torch")
    libraries = [lib for lib in args.libraries if installed(lib)]
    skipped = sorted(set(args.libraries) - set(libraries))
    if not libraries:
        parser.error(f"none of the libraries asked for is installed: {', '.join(skipped)} (skrl: pip install "
                     "'.[bench]', ddpgx_torch: pip install '.[torch]')")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"libraries {libraries}" + (f" (not installed: {skipped})" if skipped else ""), flush=True)
    results = compare(libraries, args.seeds, args.timesteps, args.eval_episodes, args.torch_threads,
                      args.mixed_precision)
    table = summarise(results, libraries, args.seeds)
    print(table)
    if args.markdown:
        with open(args.markdown, "a") as file:
            file.write(f"\n## End to end: skrl's Pendulum-v1 DDPG example ({datetime.date.today()})\n\n"
                       f"`python benchmarks/e2e_pendulum.py --seeds {' '.join(map(str, args.seeds))} --timesteps "
                       f"{args.timesteps}{' --mixed-precision' if args.mixed_precision else ''}` on "
                       f"{os.cpu_count()} CPUs; each run its own process, interleaved; wall "
                       "time of `trainer.train()` with logging and checkpoints off; evaluation: mean return of "
                       f"{args.eval_episodes} deterministic episodes.\n\n{table}\n")


if __name__ == "__main__":
    main()
