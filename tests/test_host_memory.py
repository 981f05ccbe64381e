"""``ddpgx.host_memory``: the JAX agent on a CPU keeps freed memory, so its per-step calls stop faulting pages in."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="mallopt is glibc's")

# The agent of skrl's Pendulum example (its flax models, 400-300, batch 100, a memory of 15,000 sampled without replacement)
# takes 300 training steps, then the minor page faults of the next 200 are counted (fresh pages for XLA's per-call
# buffers: about 470 a step with glibc's default thresholds held fixed, none with them raised).
SCRIPT = """
import json, resource
import flax.linen as nn, gymnasium, jax.numpy as jnp
from ddpgx import DDPG, DDPG_CFG, host_memory
from ddpgx.memories import RandomMemory
from ddpgx.models import DeterministicMixin, Model
from ddpgx.noises import OrnsteinUhlenbeckNoise
from ddpgx.trainers import SequentialTrainer

class Actor(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device=None, **kwargs):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device, **kwargs)
        DeterministicMixin.__init__(self)

    @nn.compact
    def __call__(self, inputs, role):
        x = nn.relu(nn.Dense(300)(nn.relu(nn.Dense(400)(inputs["observations"]))))
        return 2 * nn.tanh(nn.Dense(self.num_actions)(x)), {}

class Critic(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device=None, **kwargs):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device, **kwargs)
        DeterministicMixin.__init__(self)

    @nn.compact
    def __call__(self, inputs, role):
        x = jnp.concatenate([inputs["observations"], inputs["taken_actions"]], axis=-1)
        return nn.Dense(1)(nn.relu(nn.Dense(300)(nn.relu(nn.Dense(400)(x))))), {}

env = gymnasium.make("Pendulum-v1")
spaces = (env.observation_space, None, env.action_space)
models = {"policy": Actor(*spaces), "target_policy": Actor(*spaces), "critic": Critic(*spaces),
          "target_critic": Critic(*spaces)}
for role, model in models.items():
    model.init_state_dict(role=role)
cfg = DDPG_CFG(batch_size=100, random_timesteps=10, learning_starts=10, exploration_noise=OrnsteinUhlenbeckNoise,
               exploration_noise_kwargs={"theta": 0.15, "sigma": 0.1, "base_scale": 1.0},
               exploration_scheduler=lambda timestep, timesteps: max(1 - timestep / timesteps, 1e-2))
cfg.experiment.write_interval = cfg.experiment.checkpoint_interval = 0
agent = DDPG(models=models, memory=RandomMemory(memory_size=15000, replacement=False),
             observation_space=env.observation_space, action_space=env.action_space, cfg=cfg)
trainer_cfg = {"headless": True, "disable_progressbar": True, "close_environment_at_exit": False}
SequentialTrainer(env=env, agents=agent, cfg=dict(trainer_cfg, timesteps=300)).train()
trainer = SequentialTrainer(env=env, agents=agent, cfg=dict(trainer_cfg, timesteps=200))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
trainer.train()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 200
print(json.dumps({"kept": host_memory.keep_freed_memory(), "faults": faults}))
"""


def _run(**env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True,
                          env={**environment, "DDPGX_KEEP_FREED_MEMORY": "1", **env})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two agent runs in fresh processes: 30 s on 2 cores
@glibc
def test_the_agent_keeps_freed_memory_and_its_steps_fault_no_pages():
    # glibc's thresholds fixed at their defaults (no adaptation): the count sees XLA's buffers faulted in anew.
    fixed = _run(GLIBC_TUNABLES="glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072")
    assert fixed["kept"] is False and fixed["faults"] > 50, fixed
    kept = _run()
    assert kept["kept"] is True and kept["faults"] < 5, kept


@pytest.mark.parametrize("env", [{"DDPGX_KEEP_FREED_MEMORY": "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}])
def test_malloc_is_left_alone_when_told_or_already_set(env, monkeypatch):
    from ddpgx import host_memory

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(host_memory, "_done", None)
    assert host_memory.keep_freed_memory() is False
    assert host_memory.keep_freed_memory() is False  # decided once


@glibc
def test_other_glibc_tunables_do_not_stop_it(monkeypatch):
    from ddpgx import host_memory

    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F")
    monkeypatch.delenv("DDPGX_KEEP_FREED_MEMORY", raising=False)
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(host_memory, "_done", None)
    assert host_memory.keep_freed_memory() is True
