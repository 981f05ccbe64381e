"""Checkpoint retention, both backends: the last ``checkpoint_keep`` checkpoints plus ``best_agent`` are kept, and the
replay buffer only in the newest (``checkpoint_memory="newest"``), each remaining checkpoint complete and loadable."""

from __future__ import annotations

import os

import gymnasium
import numpy as np
import pytest
import torch

import ddpgx
import ddpgx_torch
from ddpgx import checkpoints, safe_io
from ddpgx.core import networks
from ddpgx_torch import checkpoints as torch_checkpoints
from ddpgx_torch.core import networks as torch_networks

OBS = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)


def run(agent, steps):
    """``steps`` random transitions; rewards rise, so every checkpoint interval finds a better agent."""
    agent.init(trainer_cfg={"timesteps": steps})
    agent.enable_training_mode(True)
    rng = np.random.default_rng(0)
    for t in range(steps):
        obs = rng.uniform(-1, 1, (1, 3)).astype(np.float32)
        agent.act(obs, None, timestep=t, timesteps=steps)
        agent.record_transition(observations=obs, states=None, actions=rng.uniform(-2, 2, (1, 1)).astype(np.float32),
                                rewards=np.full((1, 1), float(t), np.float32),
                                next_observations=rng.uniform(-1, 1, (1, 3)).astype(np.float32), next_states=None,
                                terminated=np.ones((1, 1), bool), truncated=np.zeros((1, 1), bool), infos={},
                                timestep=t, timesteps=steps)
        agent.post_interaction(timestep=t, timesteps=steps)


def experiment(tmp_path, **extra):
    return {"directory": str(tmp_path), "experiment_name": "run", "write_interval": 4, "checkpoint_interval": 4,
            **extra}


def jax_agent(tmp_path, **extra):
    policy = networks.DeterministicPolicy((-2.0,), (2.0,), (1,), hidden_sizes=(8,))
    critic = networks.QFunction(hidden_sizes=(8,))
    return ddpgx.DDPG(models={"policy": policy, "critic": critic, "target_policy": policy, "target_critic": critic},
                      memory=ddpgx.memories.RandomMemory(memory_size=64), observation_space=OBS, action_space=ACT,
                      cfg={"batch_size": 4, "learning_starts": 2, "experiment": experiment(tmp_path, **extra)})


def torch_agent(tmp_path, **extra):
    ddpgx_torch.models.set_seed(0)
    models = {"policy": torch_networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (8,)),
              "critic": torch_networks.QFunction(3, 1, (8,))}
    return ddpgx_torch.DDPG(models=models, memory=ddpgx_torch.memories.RandomMemory(memory_size=64),
                            observation_space=OBS, action_space=ACT,
                            cfg={"batch_size": 4, "learning_starts": 2, "experiment": experiment(tmp_path, **extra)})


def has_memory(backend, path):
    if backend == "jax":
        return "memory" in checkpoints.metadata(path)["items"]
    return "memory" in torch_checkpoints.load(path)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_last_n_plus_best_and_the_replay_only_in_the_newest(tmp_path, backend):
    make, suffix = (jax_agent, "") if backend == "jax" else (torch_agent, ".pt")
    agent = make(tmp_path)  # the defaults: checkpoint_keep=3, checkpoint_memory="newest"
    assert (agent.cfg.experiment.checkpoint_keep, agent.cfg.experiment.checkpoint_memory) == (3, "newest")
    run(agent, 24)
    folder = tmp_path / "run" / "checkpoints"
    # checkpoints at 4, 8, ..., 24: the last three kept, and best_agent (the best mean reward: the newest here)
    assert sorted(os.listdir(folder)) == sorted([f"agent_{t}{suffix}" for t in (16, 20, 24)] + [f"best_agent{suffix}"])
    assert [has_memory(backend, str(folder / f"agent_{t}{suffix}")) for t in (16, 20, 24)] == [False, False, True]
    assert not has_memory(backend, str(folder / f"best_agent{suffix}"))
    fresh = make(tmp_path / "other")
    for t in (16, 24):  # every kept checkpoint is complete and loads (the newest with its replay buffer)
        fresh.load(str(folder / f"agent_{t}{suffix}"))
    if backend == "jax":
        assert int(fresh.memory.state.size) == 24
    else:
        assert fresh.memory.buffer.size == 24


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_retention_knobs(tmp_path, backend):
    make, suffix = (jax_agent, "") if backend == "jax" else (torch_agent, ".pt")
    run(make(tmp_path / "all", checkpoint_keep=0, checkpoint_memory="all"), 12)
    folder = tmp_path / "all" / "run" / "checkpoints"
    assert [has_memory(backend, str(folder / f"agent_{t}{suffix}")) for t in (4, 8, 12)] == [True, True, True]
    run(make(tmp_path / "none", checkpoint_keep=1, checkpoint_memory="none"), 12)
    folder = tmp_path / "none" / "run" / "checkpoints"
    assert sorted(os.listdir(folder)) == [f"agent_12{suffix}", f"best_agent{suffix}"]
    assert not has_memory(backend, str(folder / f"agent_12{suffix}"))
    with pytest.raises(ValueError, match="checkpoint_memory='some' is invalid"):
        make(tmp_path, checkpoint_memory="some")
    with pytest.raises(ValueError, match="checkpoint_keep=2.5 is invalid"):
        make(tmp_path, checkpoint_keep=2.5)


def test_retention_policy_is_one_function_for_both_backends(tmp_path):
    for t in (5, 10, 15, 20):
        (tmp_path / f"agent_{t}.pt").write_bytes(b"")
    (tmp_path / "best_agent.pt").write_bytes(b"")
    delete, strip = safe_io.retention(str(tmp_path), "agent_", ".pt", 2, "newest")
    assert [os.path.basename(p) for p in delete] == ["agent_10.pt", "agent_5.pt"]
    assert [os.path.basename(p) for p in strip] == ["agent_15.pt"]
    assert safe_io.retention(str(tmp_path), "agent_", ".pt", 0, "all") == ([], [])


def test_torch_memory_is_stripped_atomically_and_the_file_stays_sealed(tmp_path):
    agent = torch_agent(tmp_path, checkpoint_keep=5)
    run(agent, 8)
    path = tmp_path / "run" / "checkpoints" / "agent_4.pt"
    torch_checkpoints.verify(str(path))  # rewritten without the memory, sealed again
    saved = torch.load(path, weights_only=True)
    assert "memory" not in saved and "policy" in saved


def test_leftovers_of_killed_processes_are_removed_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has ended
    (tmp_path / f"agent_40.pt.partial-{pid}").write_bytes(b"half")
    (tmp_path / f"agent_20.deleting-{pid}").mkdir()
    (tmp_path / f"agent_60.pt.partial-{os.getpid()}").write_bytes(b"being written")  # this live process
    assert sorted(safe_io.remove_stale(str(tmp_path))) == [f"agent_20.deleting-{pid}", f"agent_40.pt.partial-{pid}"]
    assert os.listdir(tmp_path) == [f"agent_60.pt.partial-{os.getpid()}"]
