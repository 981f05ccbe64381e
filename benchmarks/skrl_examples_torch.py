"""skrl's torch Pendulum-v1 DDPG example with the example's own models, trained by skrl torch and by ddpgx_torch.

The models are the example's user models (written here anew with the same structure): an ``Actor`` and a ``Critic``
subclassing ``DeterministicMixin, Model``, each three ``nn.Linear`` layers (400, 300) with ``F.relu`` and the
actor's ``2 * tanh``, initialised with ``init_parameters(method_name="normal_", mean=0.0, std=0.1)``, four of them
(policy, target policy, critic, target critic). The same class bodies are built once on skrl's bases and once on
ddpgx_torch's, so what differs between the rows is the library, not the models: ddpgx_torch cannot take its
built-in networks' fast path here (those are ``ddpgx_torch.networks``' classes; ``--builtin`` adds a row with them
for comparison).

The configuration is the example's: 15,000 timesteps, 1 environment, batch 100, OU noise (theta 0.15, sigma 0.1,
base scale 1), 100 random timesteps, learning from timestep 100, a memory of 15,000 sampled without replacement,
discount 0.99, polyak 0.005, learning rate 1e-3; TensorBoard writing and checkpoints off ("logging off"). Each
(library, seed) run is its own Python process, started in an interleaved order (rotating with the seed), and
reports the wall time of ``trainer.train()`` alone and the mean return of 10 evaluation episodes of the
deterministic policy (seeds 10000..10009).

Run from the repository root::

    python benchmarks/skrl_examples_torch.py                       # 3 seeds, skrl-torch and ddpgx_torch
    python benchmarks/skrl_examples_torch.py --seeds 0 --timesteps 2000 --builtin
    python benchmarks/skrl_examples_torch.py --default-init   # the example's models with torch's initialisation
    python benchmarks/skrl_examples_torch.py --parallel --torch-threads 1   # a loaded, shared machine

Each run reports its wall time and its CPU time (``time.process_time``, all threads of the process). On an idle
machine compare wall times of sequential runs; on a machine shared with other work, wall times measure the other
work, so ``--parallel --torch-threads 1`` runs everything at once under the same load and the CPU times compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

import numpy as np

LIBRARIES = ("skrl-torch", "ddpgx_torch")
EVAL_SEED = 10_000


def example_models(Model: type, DeterministicMixin: type) -> tuple[type, type]:  # noqa: N803 -- class arguments
    """The example's ``Actor`` and ``Critic`` on the given library's ``Model`` and ``DeterministicMixin``."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Actor(DeterministicMixin, Model):
        def __init__(self, observation_space, state_space, action_space, device, clip_actions=False):
            Model.__init__(self, observation_space=observation_space, state_space=state_space,
                           action_space=action_space, device=device)
            DeterministicMixin.__init__(self, clip_actions=clip_actions)
            self.linear_layer_1 = nn.Linear(self.num_observations, 400)
            self.linear_layer_2 = nn.Linear(400, 300)
            self.action_layer = nn.Linear(300, self.num_actions)

        def compute(self, inputs, role):
            x = F.relu(self.linear_layer_1(inputs["observations"]))
            x = F.relu(self.linear_layer_2(x))
            return 2 * torch.tanh(self.action_layer(x)), {}

    class Critic(DeterministicMixin, Model):
        def __init__(self, observation_space, state_space, action_space, device, clip_actions=False):
            Model.__init__(self, observation_space=observation_space, state_space=state_space,
                           action_space=action_space, device=device)
            DeterministicMixin.__init__(self, clip_actions=clip_actions)
            self.linear_layer_1 = nn.Linear(self.num_observations + self.num_actions, 400)
            self.linear_layer_2 = nn.Linear(400, 300)
            self.linear_layer_3 = nn.Linear(300, 1)

        def compute(self, inputs, role):
            x = F.relu(self.linear_layer_1(torch.cat([inputs["observations"], inputs["taken_actions"]], dim=1)))
            x = F.relu(self.linear_layer_2(x))
            return self.linear_layer_3(x), {}

    return Actor, Critic


def _evaluate(act, episodes: int) -> list[float]:
    import gymnasium

    env = gymnasium.make("Pendulum-v1")
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(np.asarray(act(obs[None].astype(np.float32)),
                                                                        np.float32).reshape(1))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def run(library: str, seed: int, timesteps: int, episodes: int, builtin: bool = False,
        default_init: bool = False) -> dict[str, Any]:
    """One training run of the example in this process."""
    import gymnasium
    import torch

    if library == "skrl-torch":
        from skrl.agents.torch.ddpg import DDPG, DDPG_CFG
        from skrl.envs.wrappers.torch import wrap_env
        from skrl.memories.torch import RandomMemory
        from skrl.models.torch import DeterministicMixin, Model
        from skrl.resources.noises.torch import OrnsteinUhlenbeckNoise
        from skrl.trainers.torch import SequentialTrainer
        from skrl.utils import set_seed
    else:
        from ddpgx_torch import DDPG, DDPG_CFG
        from ddpgx_torch.core import networks
        from ddpgx_torch.envs import wrap_env
        from ddpgx_torch.memories import RandomMemory
        from ddpgx_torch.models import DeterministicMixin, Model, set_seed
        from ddpgx_torch.noises import OrnsteinUhlenbeckNoise
        from ddpgx_torch.trainers import SequentialTrainer
    import logging

    logging.getLogger("skrl").setLevel(logging.WARNING)
    set_seed(seed)
    setup_start = time.perf_counter()
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    device = env.device
    memory = RandomMemory(memory_size=15000, num_envs=env.num_envs, device=device, replacement=False)
    if builtin:
        low, high = env.action_space.low, env.action_space.high
        models = {"policy": networks.DeterministicPolicy(3, low, high, (1,)), "critic": networks.QFunction(3, 1)}
    else:
        Actor, Critic = example_models(Model, DeterministicMixin)
        models = {}
        models["policy"] = Actor(env.observation_space, env.state_space, env.action_space, device)
        models["target_policy"] = Actor(env.observation_space, env.state_space, env.action_space, device)
        models["critic"] = Critic(env.observation_space, env.state_space, env.action_space, device)
        models["target_critic"] = Critic(env.observation_space, env.state_space, env.action_space, device)
        for model in models.values():
            if not default_init:  # else torch's own initialisation of nn.Linear, as the built-in networks have
                model.init_parameters(method_name="normal_", mean=0.0, std=0.1)
    cfg = DDPG_CFG()
    cfg.exploration_noise = OrnsteinUhlenbeckNoise
    cfg.exploration_noise_kwargs = {"theta": 0.15, "sigma": 0.1, "base_scale": 1.0, "device": device}
    cfg.batch_size = 100
    cfg.random_timesteps = 100
    cfg.learning_starts = 100
    cfg.experiment.write_interval = 0
    cfg.experiment.checkpoint_interval = 0
    cfg.experiment.directory = os.path.join("/tmp", "skrl_examples_torch")
    agent = DDPG(models=models, memory=memory, cfg=cfg, observation_space=env.observation_space,
                 state_space=env.state_space, action_space=env.action_space, device=device)
    trainer = SequentialTrainer(cfg={"timesteps": timesteps, "headless": True, "disable_progressbar": True,
                                     "close_environment_at_exit": False}, env=env, agents=[agent])
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    def act(obs):  # the deterministic policy (skrl's agent.act would add its exploration noise)
        with torch.no_grad():
            if library == "ddpgx_torch":
                agent.enable_training_mode(False)  # (no noise outside training mode)
                return agent.act(obs, None, timestep=0, timesteps=1)[0].cpu().numpy()
            agent.policy.eval()
            return agent.policy.act({"observations": torch.as_tensor(obs, device=device), "states": None},
                                    role="policy")[0].cpu().numpy()

    returns = _evaluate(act, episodes)
    label = " (built-in networks)" if builtin else " (default init)" if default_init else ""
    return {"library": library + label, "seed": seed,
            "train_seconds": seconds, "train_cpu_seconds": cpu_seconds, "setup_seconds": start - setup_start,
            "eval_returns": returns,
            "eval_mean": float(np.mean(returns)), "torch_threads": torch.get_num_threads(),
            "env_steps_per_second": timesteps / seconds}


def _start(library: str, seed: int, timesteps: int, episodes: int, builtin: bool, threads: int | None,
           default_init: bool = False):
    command = [sys.executable, os.path.abspath(__file__), "--one", library, "--seeds", str(seed), "--timesteps",
               str(timesteps), "--eval-episodes", str(episodes)] + (["--builtin"] if builtin else [])
    command += ["--default-init"] if default_init else []
    if threads is not None:
        command += ["--torch-threads", str(threads)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))


def _result(process: subprocess.Popen, library: str, seed: int) -> dict[str, Any]:
    stdout, stderr = process.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"{library} seed {seed} failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds, one run each (default 0 1 2)")
    parser.add_argument("--timesteps", type=int, default=15_000, help="training timesteps (default 15000)")
    parser.add_argument("--eval-episodes", type=int, default=10,
                        help="noiseless evaluation episodes after training (default 10)")
    parser.add_argument("--builtin", action="store_true", help="also a ddpgx_torch row with its built-in networks")
    parser.add_argument("--default-init", action="store_true",
                        help="leave the example's models with torch's default initialisation of nn.Linear (that of the "
                        "built-in networks) instead of the example's N(0, 0.1)")
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads in every run (default: torch's)")
    parser.add_argument("--parallel", action="store_true", help="start every run at once (a shared, loaded machine: "
                        "all runs then see the same conditions; compare the CPU-time columns, with --torch-threads 1)")
    parser.add_argument("--one", choices=LIBRARIES, help=argparse.SUPPRESS)  # a child process: one run, JSON out
    args = parser.parse_args()
    if args.one:
        if args.torch_threads:
            import torch

            torch.set_num_threads(args.torch_threads)
        print(json.dumps(run(args.one, args.seeds[0], args.timesteps, args.eval_episodes, args.builtin,
                             args.default_init)))
        return
    rows = [("skrl-torch", False), ("ddpgx_torch", False)] + ([("ddpgx_torch", True)] if args.builtin else [])
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.timesteps} timesteps", flush=True)
    results = []
    runs = []
    for i, seed in enumerate(args.seeds):
        runs += [(library, builtin, seed) for library, builtin in rows[i % len(rows):] + rows[:i % len(rows)]]
    started = []
    for library, builtin, seed in runs:  # in an order that rotates with the seed, to spread drift over the rows
        load = os.getloadavg()[0]
        started.append((library, seed, load, _start(library, seed, args.timesteps, args.eval_episodes, builtin,
                                                     args.torch_threads, args.default_init)))
        if not args.parallel:
            started[-1] = started[-1][:3] + (_result(started[-1][3], library, seed),)
    for library, seed, load, process in started:
        r = process if isinstance(process, dict) else _result(process, library, seed)
        r["load_before"] = load
        results.append(r)
        print(f"{r['library']:34s} seed {seed}: train {r['train_seconds']:7.1f} s wall, "
              f"{r['train_cpu_seconds']:7.1f} s CPU, eval return {r['eval_mean']:8.1f} "
              f"(load average before {load:.2f})", flush=True)
    by = {(r["library"], r["seed"]): r for r in results}
    names = list(dict.fromkeys(r["library"] for r in results))
    names.sort(key=lambda name: not name.startswith("skrl-torch"))  # the reference row first
    for key, label in (("train_seconds", "wall"), ("train_cpu_seconds", "CPU")):
        print("\n| library | " + " | ".join(f"seed {s}: train s ({label}) / eval return" for s in args.seeds)
              + f" | median train s ({label}) |")
        print("|---|" + "---|" * (len(args.seeds) + 1))
        for name in names:
            cells = " | ".join(f"{by[(name, s)][key]:.1f} / {by[(name, s)]['eval_mean']:.1f}" for s in args.seeds)
            print(f"| {name} | {cells} | {np.median([by[(name, s)][key] for s in args.seeds]):.1f} |")
        for name in names[1:]:
            ratios = [by[(names[0], s)][key] / by[(name, s)][key] for s in args.seeds]
            worst = min(by[(name, s)]["eval_mean"] for s in args.seeds)
            print(f"- {name}: {np.median(ratios):.2f}x skrl torch's speed by {label} time (median of per-seed ratios "
                  f"{', '.join(f'{x:.2f}' for x in ratios)}); worst seed evaluates at {worst:.1f} (bar: >= -200)")
    worst = min(by[(names[0], s)]["eval_mean"] for s in args.seeds)
    print(f"- {names[0]}: worst seed evaluates at {worst:.1f}")


if __name__ == "__main__":
    main()
