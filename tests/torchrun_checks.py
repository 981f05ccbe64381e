"""A skrl 2.x DDPG script with ddpgx_torch imports, launched by ``torchrun`` (see ``test_torchrun.py``).

The script does nothing about distribution itself, as skrl scripts do not: the agent joins torchrun's job. Each rank
writes what the test compares to ``<out>/rank<r>.pt``.

Usage: ``torchrun --standalone --nproc_per_node 2 tests/torchrun_checks.py OUT``
"""

from __future__ import annotations

import os
import sys

import gymnasium
import torch
from torch import nn

from ddpgx_torch import DDPG, DDPG_CFG
from ddpgx_torch.envs import wrap_env
from ddpgx_torch.memories import RandomMemory
from ddpgx_torch.models import DeterministicMixin, Model, set_seed
from ddpgx_torch.noises import OrnsteinUhlenbeckNoise
from ddpgx_torch.trainers import SequentialTrainer


class Actor(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device)
        DeterministicMixin.__init__(self, False)
        self.net = nn.Sequential(nn.Linear(self.num_observations, 32), nn.ReLU(), nn.Linear(32, self.num_actions))

    def compute(self, inputs, role):
        return 2 * torch.tanh(self.net(inputs["observations"])), {}


class Critic(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device)
        DeterministicMixin.__init__(self, False)
        self.net = nn.Sequential(nn.Linear(self.num_observations + self.num_actions, 32), nn.ReLU(), nn.Linear(32, 1))

    def compute(self, inputs, role):
        return self.net(torch.cat([inputs["observations"], inputs["taken_actions"]], dim=1)), {}


def main(out: str) -> None:
    seed = set_seed(42)  # + this process's rank
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    device = env.device
    memory = RandomMemory(memory_size=1000, num_envs=env.num_envs, device=device)
    models = {role: (Actor if "policy" in role else Critic)(env.observation_space, env.state_space,
                                                             env.action_space, device)
              for role in ("policy", "target_policy", "critic", "target_critic")}
    cfg = DDPG_CFG()
    cfg.exploration_noise = OrnsteinUhlenbeckNoise
    cfg.exploration_noise_kwargs = {"theta": 0.15, "sigma": 0.1, "base_scale": 1.0, "device": device}
    cfg.batch_size = 32
    cfg.random_timesteps = 50
    cfg.learning_starts = 50
    cfg.experiment.write_interval = 50
    cfg.experiment.checkpoint_interval = 100
    cfg.experiment.directory = os.path.join(out, "runs")
    cfg.experiment.experiment_name = "pendulum"
    was_initialized = torch.distributed.is_initialized()
    agent = DDPG(models=models, memory=memory, cfg=cfg, observation_space=env.observation_space,
                 state_space=env.state_space, action_space=env.action_space, device=device)
    initial = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    trainer = SequentialTrainer(cfg={"timesteps": 200, "headless": True, "seed": seed}, env=env, agents=[agent])
    trainer.train()
    rank = torch.distributed.get_rank()
    torch.save({
        "seed": seed, "was_initialized": was_initialized, "backend": torch.distributed.get_backend(),
        "world_size": torch.distributed.get_world_size(), "initial_policy": initial,
        "policy": agent.policy.state_dict(), "critic": agent.critic.state_dict(),
        "target_critic": agent.target_critic.state_dict(), "steps": agent.train_state.step,
        "observations": memory.buffer.data.observations[:200].clone(),
    }, os.path.join(out, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
