"""Recurrent vs feed-forward DDPG (ddpgx_torch) on Pendulum-v1 with the angular velocity masked out.

Without the velocity the pendulum is partially observable: a feed-forward policy sees only the angle, a recurrent
one can infer the velocity from consecutive angles. skrl's RNN DDPG example settings where they apply (OU noise
theta 0.15 sigma 0.1, discount 0.98, batch 100, learning from step 1000, memory 20,000, 400-300 heads), with
smaller recurrent layers (``--hidden``, default 64) and sequences (``--sequence-length``, default 16) than the
example's 400/20 so that it runs in minutes on 2 CPU cores. Each agent trains for ``--timesteps`` steps, then
the deterministic policy is evaluated on 10 episodes.

``skrl-lstm`` / ``skrl-gru`` / ``skrl-rnn`` (``pip install skrl``, not a ddpgx dependency) train skrl 2.x's
``DDPG_RNN`` with its own trainer, memory and OU noise on copies of the same recurrent networks and settings
(``ddpgx_torch.models.RecurrentPolicy``/``RecurrentQFunction`` are skrl-compatible models): recurrent DDPG end to
end against skrl's. Both are evaluated by the same code (the trained networks in a ddpgx_torch agent, no noise).

Usage: ``python benchmarks/torch_rnn_pendulum.py [--timesteps 10000] [--seeds 0] [--cells lstm gru ff skrl-lstm]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import gymnasium
import numpy as np
import torch

from ddpgx_torch import DDPG_CFG, DDPG_RNN
from ddpgx_torch.models import RecurrentPolicy, RecurrentQFunction
from ddpgx_torch.core import networks
from ddpgx_torch.memories import RandomMemory
from ddpgx_torch.noises import OrnsteinUhlenbeckNoise
from ddpgx_torch.trainers import SequentialTrainer


class NoVelocity(gymnasium.ObservationWrapper):
    """Pendulum's observation (cos, sin, angular velocity) with the velocity zeroed."""

    def observation(self, observation):
        return (observation * np.array([1.0, 1.0, 0.0], np.float32)).astype(np.float32)


def make_env() -> gymnasium.Env:
    return NoVelocity(gymnasium.make("Pendulum-v1"))


SETTINGS = dict(discount_factor=0.98, random_timesteps=0)  # skrl's example (batch and learning start: arguments)
NOISE = dict(theta=0.15, sigma=0.1, base_scale=1.0)
MEMORY_SIZE = 20_000


def make_models(cell: str, env, *, hidden: int, sequence_length: int, heads: tuple[int, ...] = (400, 300)) -> dict:
    """``cell`` ``"lstm"``/``"gru"``/``"rnn"`` (recurrent core) or ``"ff"`` (the feed-forward agent); ``heads``: the
    MLP layers after the recurrent layer (the whole network for ``"ff"``)."""
    if cell == "ff":
        return {"policy": networks.DeterministicPolicy(3, env.action_space.low, env.action_space.high, (1,),
                                                       hidden_sizes=heads),
                "critic": networks.QFunction(3, 1, hidden_sizes=heads)}
    kw = dict(cell=cell, hidden_size=hidden, sequence_length=sequence_length, hidden_sizes=heads)
    return {"policy": RecurrentPolicy(env.observation_space, env.action_space, **kw),
            "critic": RecurrentQFunction(env.observation_space, env.action_space, **kw)}


def make_agent(cell: str, env, *, hidden: int, sequence_length: int, learning_starts: int,
               heads: tuple[int, ...] = (400, 300), batch_size: int = 100, models: dict | None = None) -> DDPG_RNN:
    """A ddpgx_torch agent for :func:`make_models`' networks (or ``models``, e.g. to evaluate trained ones)."""
    models = models or make_models(cell, env, hidden=hidden, sequence_length=sequence_length, heads=heads)
    cfg = DDPG_CFG(**SETTINGS, batch_size=batch_size, learning_starts=learning_starts,
                   exploration_noise=OrnsteinUhlenbeckNoise, exploration_noise_kwargs=NOISE,
                   experiment=dict(write_interval=0, checkpoint_interval=0, directory="/tmp/ddpgx-rnn-bench"))
    return DDPG_RNN(models=models, memory=RandomMemory(MEMORY_SIZE), cfg=cfg,
                    observation_space=env.observation_space, action_space=env.action_space)


def train_skrl(cell: str, env, timesteps: int, *, hidden: int, sequence_length: int, learning_starts: int,
               batch_size: int = 100) -> tuple[dict, list[float], float]:
    """skrl's ``DDPG_RNN``, memory, OU noise and trainer on :func:`make_models`' networks with the same settings;
    returns the trained policy and critic, the training episodes' returns (skrl's trainer does not report them:
    they are summed from the wrapped environment's rewards) and the seconds of ``trainer.train()`` alone (set-up
    excluded, as in the ddpgx_torch rows)."""
    import copy

    from skrl.agents.torch.ddpg import DDPG_CFG as SkrlCfg
    from skrl.agents.torch.ddpg import DDPG_RNN as SkrlDDPG_RNN
    from skrl.envs.wrappers.torch import wrap_env
    from skrl.memories.torch import RandomMemory as SkrlMemory
    from skrl.resources.noises.torch import OrnsteinUhlenbeckNoise as SkrlOU
    from skrl.trainers.torch import SequentialTrainer as SkrlTrainer

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from skrl_reference import quiet_skrl

    returns, running = [], [0.0]

    class Returns(gymnasium.Wrapper):
        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            running[0] += float(reward)
            if terminated or truncated:
                returns.append(running[0])
                running[0] = 0.0
            return obs, reward, terminated, truncated, info

    with quiet_skrl():
        skrl_env = wrap_env(Returns(env))
    device = skrl_env.device
    nets = make_models(cell, env, hidden=hidden, sequence_length=sequence_length)
    models = {**nets, "target_policy": copy.deepcopy(nets["policy"]), "target_critic": copy.deepcopy(nets["critic"])}
    cfg = SkrlCfg(**SETTINGS, batch_size=batch_size, learning_starts=learning_starts,
                  exploration_noise=SkrlOU, exploration_noise_kwargs={**NOISE, "device": device},
                  experiment={"write_interval": 0, "checkpoint_interval": 0, "directory": "/tmp/ddpgx-rnn-bench"})
    with quiet_skrl():
        agent = SkrlDDPG_RNN(models=models, memory=SkrlMemory(memory_size=MEMORY_SIZE, num_envs=1, device=device),
                             cfg=cfg, observation_space=skrl_env.observation_space, action_space=skrl_env.action_space,
                             device=device)
        trainer = SkrlTrainer(cfg={"timesteps": timesteps, "headless": True, "disable_progressbar": True,
                                   "close_environment_at_exit": False}, env=skrl_env, agents=[agent])
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return nets, returns, seconds


def train(agent, env, timesteps: int, seed: int = 0) -> list[float]:
    """Trains with the shared trainer (progress bar off); returns the finished training episodes' returns."""
    cfg = {"timesteps": timesteps, "headless": True, "disable_progressbar": True, "seed": seed}
    return SequentialTrainer(env=env, agents=agent, cfg=cfg).train()["episode_returns"]


def evaluate(agent, env, episodes: int = 10, seed: int = 100) -> float:
    """Mean return of the deterministic policy over ``episodes`` Pendulum episodes (200 steps each)."""
    cfg = {"timesteps": 200 * episodes, "headless": True, "disable_progressbar": True, "seed": seed}
    returns = SequentialTrainer(env=env, agents=agent, cfg=cfg).eval()["episode_returns"]
    if len(returns) != episodes:
        raise RuntimeError(f"expected {episodes} evaluation episodes, got {len(returns)}")
    return float(np.mean(returns))


def run(cell: str, seed: int, timesteps: int, hidden: int, sequence_length: int, learning_starts: int):
    torch.manual_seed(seed)
    np.random.seed(seed)
    env = make_env()
    kw = dict(hidden=hidden, sequence_length=sequence_length, learning_starts=learning_starts)
    if cell.startswith("skrl-"):
        env.reset(seed=seed)
        models, returns, seconds = train_skrl(cell.removeprefix("skrl-"), env, timesteps, **kw)
        agent = make_agent(cell, env, **kw, models=models)  # evaluated as the ddpgx_torch agents are
    else:
        agent = make_agent(cell, env, **kw)
        start = time.perf_counter()
        returns = train(agent, env, timesteps, seed)
        seconds = time.perf_counter() - start
    return evaluate(agent, env, episodes=10), float(np.mean(returns[-5:])), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=10_000, help="timesteps per run (default 10000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run (default 0)")
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "ff"],
                        help="agents: lstm, gru, rnn, ff (feed-forward), skrl-lstm (default lstm gru ff)")
    parser.add_argument("--hidden", type=int, default=64, help="recurrent hidden size (default 64)")
    parser.add_argument("--sequence-length", type=int, default=16, help="sampled sequence length (default 16)")
    parser.add_argument("--learning-starts", type=int, default=1000,
                        help="timesteps before the first update (default 1000)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args}")
    print("| agent | seed | eval return (10 episodes) | last 5 training episodes | train time (s) |")
    print("|---|---:|---:|---:|---:|")
    for seed in args.seeds:
        for cell in args.cells:
            ev, last, sec = run(cell, seed, args.timesteps, args.hidden, args.sequence_length, args.learning_starts)
            print(f"| {cell} | {seed} | {ev:.1f} | {last:.1f} | {sec:.0f} |", flush=True)


if __name__ == "__main__":
    main()
