"""A minimal skrl-style training loop for the torch facade tests (the shared trainer lives in ddpgx.trainers)."""

from __future__ import annotations

import numpy as np
import torch


def run(agent, env, timesteps: int, *, train: bool = True) -> list[float]:
    """Steps a gymnasium env (single) through the agent's documented methods; returns finished episode returns."""
    agent.init(trainer_cfg={"timesteps": timesteps})
    agent.enable_training_mode(train)
    obs, _ = env.reset(seed=0)
    returns, total = [], 0.0
    for t in range(timesteps):
        agent.pre_interaction(timestep=t, timesteps=timesteps)
        with torch.no_grad():
            actions, _ = agent.act(torch.as_tensor(obs[None], dtype=torch.float32), None, timestep=t,
                                   timesteps=timesteps)
        next_obs, reward, terminated, truncated, _ = env.step(actions[0].numpy())
        agent.record_transition(
            observations=torch.as_tensor(obs[None]), states=None, actions=actions,
            rewards=torch.tensor([[reward]], dtype=torch.float32), next_observations=torch.as_tensor(next_obs[None]),
            next_states=None, terminated=torch.tensor([[terminated]]), truncated=torch.tensor([[truncated]]),
            infos={}, timestep=t, timesteps=timesteps,
        )  # fmt: skip
        agent.post_interaction(timestep=t, timesteps=timesteps)
        total += float(reward)
        if terminated or truncated:
            returns.append(total)
            total = 0.0
            obs, _ = env.reset()
        else:
            obs = next_obs
    return returns


def evaluate(agent, env, episodes: int = 3, seed: int = 100) -> float:
    """Mean return of the deterministic policy (evaluation mode: no noise)."""
    agent.enable_training_mode(False)
    out = []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                actions, _ = agent.act(torch.as_tensor(obs[None], dtype=torch.float32), None, timestep=10**9,
                                       timesteps=10**9)
            obs, reward, terminated, truncated, _ = env.step(actions[0].numpy())
            total += float(reward)
            done = terminated or truncated
        out.append(total)
    return float(np.mean(out))
