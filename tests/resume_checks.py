"""Exact resume across processes, run by test_resume.py: ``python tests/resume_checks.py MODE DIR [BACKEND]``
(BACKEND ``jax``, the default, for ``ddpgx.DDPG``; ``torch`` for ``ddpgx_torch.DDPG``).

``whole``  trains N + M steps in one go and writes the final train state and replay buffer to DIR/whole.npz;
``first``  trains N steps, saves the agent (DIR/ckpt) and pickles the environment and its last observation;
``second`` (a fresh process) builds the agent anew, loads DIR/ckpt, unpickles the environment, trains M more steps and
           writes DIR/second.npz.
"""

from __future__ import annotations

import os
import pickle
import sys

import gymnasium
import jax
import numpy as np

import ddpgx
from ddpgx import checkpoints
from ddpgx.envs import wrap_env
from ddpgx.memories import RandomMemory
from ddpgx.noises import OrnsteinUhlenbeckNoise
from ddpgx.preprocessors import RunningStandardScaler

N, M = 150, 150


def make_agent(env):
    return ddpgx.DDPG(models=dict.fromkeys(("policy", "critic", "target_policy", "target_critic")),
                      memory=RandomMemory(memory_size=500), observation_space=env.observation_space,
                      action_space=env.action_space, seed=11,
                      cfg={"batch_size": 32, "random_timesteps": 20, "learning_starts": 20,
                           "exploration_noise": OrnsteinUhlenbeckNoise,
                           "exploration_noise_kwargs": {"theta": 0.15, "sigma": 0.1},
                           "observation_preprocessor": RunningStandardScaler,
                           "experiment": {"write_interval": 0, "checkpoint_interval": 0}})


def make_torch_agent(env):
    import ddpgx_torch
    from ddpgx_torch.core import networks
    from ddpgx_torch.memories import RandomMemory as TorchMemory
    from ddpgx_torch.noises import OrnsteinUhlenbeckNoise as TorchOU
    from ddpgx_torch.preprocessors import RunningStandardScaler as TorchScaler

    ddpgx_torch.models.set_seed(11)
    models = {"policy": networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (64, 64)),
              "critic": networks.QFunction(3, 1, (64, 64))}
    return ddpgx_torch.DDPG(models=models, memory=TorchMemory(memory_size=500), observation_space=env.observation_space,
                            action_space=env.action_space,
                            cfg={"batch_size": 32, "random_timesteps": 20, "learning_starts": 20,
                                 "exploration_noise": TorchOU, "exploration_noise_kwargs": {"theta": 0.15, "sigma": 0.1},
                                 "observation_preprocessor": TorchScaler,
                                 "experiment": {"write_interval": 0, "checkpoint_interval": 0}})


def dump_torch(agent, path):
    ts, buffer = agent.train_state, agent.memory.buffer
    flat = {f"{name}.{key}": value for name in ("policy", "critic", "target_policy", "target_critic")
            for key, value in getattr(ts, name).state_dict().items()}
    for name in ("policy_optimizer", "critic_optimizer"):
        for i, state in getattr(ts, name).state_dict()["state"].items():
            flat.update({f"{name}.{i}.{key}": value for key, value in state.items()})
    flat.update({f"observation_stats.{i}": x for i, x in enumerate(ts.observation_stats)})
    flat.update({"noise_state": ts.noise_state, "generator": ts.generator.get_state(), "step": ts.step,
                 "memory.position": buffer.position, "memory.size": buffer.size})
    flat.update({f"memory.{k}": v for k, v in buffer.data._asdict().items() if v is not None})
    np.savez(path, **{k: np.asarray(v) for k, v in flat.items()})


def steps(env, agent, obs, start, stop, total):
    for t in range(start, stop):
        actions, _ = agent.act(obs, None, timestep=t, timesteps=total)
        nxt, rewards, terminated, truncated, infos = env.step(np.asarray(actions))
        agent.record_transition(observations=obs, states=None, actions=actions, rewards=rewards,
                                next_observations=nxt, next_states=None, terminated=terminated,
                                truncated=truncated, infos=infos, timestep=t, timesteps=total)
        agent.post_interaction(timestep=t, timesteps=total)
        obs = nxt
    return obs


def dump(agent, path):
    tree = {"train_state": checkpoints.train_state_tree(agent.train_state),
            "memory": {"data": agent.memory.state.data, "position": agent.memory.state.position,
                       "size": agent.memory.state.size}}
    flat = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}
    np.savez(path, **flat)


def main(mode, directory, backend="jax"):
    make, save_state = (make_agent, dump) if backend == "jax" else (make_torch_agent, dump_torch)
    if mode == "second":
        with open(os.path.join(directory, "env.pkl"), "rb") as file:
            env, obs = pickle.load(file)
    else:
        env = wrap_env(gymnasium.make("Pendulum-v1"))
        obs, _ = env.reset(seed=3)
    agent = make(env)
    agent.enable_training_mode(True)
    if mode == "whole":
        steps(env, agent, obs, 0, N + M, N + M)
        save_state(agent, os.path.join(directory, "whole.npz"))
    elif mode == "first":
        obs = steps(env, agent, obs, 0, N, N + M)
        agent.save(os.path.join(directory, "ckpt"))
        with open(os.path.join(directory, "env.pkl"), "wb") as file:
            pickle.dump((env, obs), file)
    else:
        agent.load(os.path.join(directory, "ckpt"))
        steps(env, agent, obs, N, N + M, N + M)
        save_state(agent, os.path.join(directory, "second.npz"))


if __name__ == "__main__":
    main(*sys.argv[1:])
