"""Checks run in their own processes by test_sharding.py (JAX's device count is fixed when it starts).

``python tests/sharding_checks.py devices OUT``   with 8 forced host devices: sharded vs single-device numbers,
                                                  errors, checkpoints across layouts, the facade on a mesh.
``python -m ddpgx.cli.launch --nproc 2 tests/sharding_checks.py processes OUT``
                                                  two processes (gloo), each feeding half of every batch.
``python tests/sharding_checks.py single OUT``     the same updates on one device of one process.

Each writes its results to ``OUT`` (``.npz`` or ``.json``).
"""

from __future__ import annotations

import json
import os
import sys

if len(sys.argv) > 1 and sys.argv[1] == "devices":  # (pytest imports this module for doctests)
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import gymnasium  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

import ddpgx  # noqa: E402
from ddpgx import checkpoints  # noqa: E402
from ddpgx.core import sharding  # noqa: E402

OBS = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
BATCH = 64
UPDATES = 10


def batches(n=UPDATES, size=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    return [ddpgx.Transition(rng.normal(size=(size, 3)).astype(np.float32),
                             rng.uniform(-2, 2, (size, 1)).astype(np.float32),
                             rng.normal(size=size).astype(np.float32), rng.normal(size=(size, 3)).astype(np.float32),
                             rng.uniform(size=size) < 0.1) for _ in range(n)]


def config(clip=0.0, scaler=False):
    return ddpgx.DDPGConfig(batch_size=BATCH, grad_norm_clip=clip, observation_preprocessor=scaler)


def train(ts, mesh=None, process_rows=None):
    """``UPDATES`` updates; with a mesh, on sharded batches (``process_rows``: this process's share of each)."""
    metrics = []
    for batch in batches():
        if mesh is not None:
            local = batch if process_rows is None else jax.tree.map(lambda x: x[process_rows], batch)
            batch = sharding.shard_batch(local, mesh)
        ts, m = ddpgx.update(ts, batch)
        metrics.append({k: float(v) for k, v in m.items()})
    return ts, metrics


def flat(ts):
    tree = checkpoints.train_state_tree(ts)
    tree.pop("key")
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def max_diff(a, b):
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)


def check_devices(out):
    assert jax.device_count() == 8, jax.devices()
    results = {}
    for name, clip, scaler in (("plain", 0.0, False), ("clipped", 1.0, False), ("scaler", 1.0, True)):
        one, m1 = train(ddpgx.init(jax.random.key(0), config(clip, scaler), OBS, ACT))
        eight, m8 = train(sharding.shard(ddpgx.init(jax.random.key(0), config(clip, scaler), OBS, ACT), 8),
                          mesh=sharding.make_mesh(8))
        leaf = eight.critic_params["params"]["MLP_0"]["Dense_0"]["kernel"]
        results[name] = {
            "max_param_diff": max_diff(flat(one), flat(eight)),
            "replicated": leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 8,
            "first_critic_loss": [m1[0]["critic_loss"], m8[0]["critic_loss"]],
            "first_grad_norm": [m1[0].get("critic_grad_norm"), m8[0].get("critic_grad_norm")],
        }
    # The first step's parameter change is the single-device one, not 8x it (Adam's first step is lr * sign-like,
    # so compare plain SGD, where the change is proportional to the gradient).
    sgd = {}
    for devices in (1, 8):
        ts = ddpgx.init(jax.random.key(0), config(), OBS, ACT, policy_optimizer=ddpgx_sgd(),
                        critic_optimizer=ddpgx_sgd())
        before = np.asarray(ts.critic_params["params"]["MLP_0"]["Dense_0"]["kernel"])
        mesh = sharding.make_mesh(devices)
        ts = sharding.shard(ts, mesh)
        ts, _ = ddpgx.update(ts, sharding.shard_batch(batches(1)[0], mesh))
        sgd[devices] = np.asarray(ts.critic_params["params"]["MLP_0"]["Dense_0"]["kernel"]) - before
    results["sgd_step_ratio"] = float(np.linalg.norm(sgd[8]) / np.linalg.norm(sgd[1]))
    results["sgd_step_diff"] = float(np.max(np.abs(sgd[8] - sgd[1])))

    errors = {}
    ts8 = sharding.shard(ddpgx.init(jax.random.key(0), config(), OBS, ACT), 8)
    for name, thunk in {
        "indivisible_batch": lambda: ddpgx.update(ts8, batches(1, size=60)[0]),
        "indivisible_config": lambda: sharding.shard(ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(batch_size=60),
                                                                 OBS, ACT), 8),
        "too_many_devices": lambda: sharding.make_mesh(9),
        "bad_mesh": lambda: sharding.shard(ts8, "all"),
    }.items():
        try:
            thunk()
            errors[name] = None
        except ValueError as error:
            errors[name] = str(error)
    results["errors"] = errors

    # Checkpoints: saved from 8 devices, restored on 1 (and back onto 8).
    trained, _ = train(sharding.shard(ddpgx.init(jax.random.key(0), config(), OBS, ACT), 8),
                       mesh=sharding.make_mesh(8))
    path = os.path.join(os.path.dirname(out), "ckpt8")
    checkpoints.save(path, {"train_state": checkpoints.train_state_tree(trained)}, {"timestep": 0})
    target = ddpgx.init(jax.random.key(1), config(), OBS, ACT)
    items, _ = checkpoints.load(path, {"train_state": checkpoints.train_state_tree(target)})
    on_one = checkpoints.restore_train_state(target, items["train_state"])
    results["restore_8_to_1"] = max_diff(flat(trained), flat(on_one))
    results["restored_devices"] = len(on_one.critic_params["params"]["MLP_0"]["Dense_0"]["kernel"].devices())
    back = sharding.shard(on_one, 8)
    results["restore_1_to_8"] = max_diff(flat(trained), flat(back))

    # update_from_replay on a sharded replay buffer, and the facade on a mesh.
    buffer = ddpgx.replay.init(256, batches(1, size=1)[0]._replace(
        rewards=np.float32(0), terminated=np.bool_(False), observations=np.zeros(3, np.float32),
        actions=np.zeros(1, np.float32), next_observations=np.zeros(3, np.float32)))
    buffer = sharding.shard_replay(buffer, 8)
    buffer = ddpgx.replay.add(buffer, batches(1, size=64)[0])
    ts8, _ = ddpgx.update_from_replay(ts8, buffer)
    results["replay_update_step"] = int(ts8.step)
    results["replay_sharded"] = not buffer.data.observations.sharding.is_fully_replicated

    from ddpgx.envs import wrap_env
    from ddpgx.memories import RandomMemory
    from ddpgx.trainers import SequentialTrainer

    env = wrap_env(gymnasium.make("Pendulum-v1"))
    agent = ddpgx.DDPG(models=dict.fromkeys(("policy", "critic", "target_policy", "target_critic")),
                       memory=RandomMemory(memory_size=200), observation_space=env.observation_space,
                       action_space=env.action_space, mesh=8,
                       cfg={"batch_size": 32, "learning_starts": 20,
                            "experiment": {"write_interval": 0, "checkpoint_interval": 0}})
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 60, "headless": True,
                                                  "disable_progressbar": True}).train()
    leaf = agent.train_state.policy_params["params"]["MLP_0"]["Dense_0"]["kernel"]
    results["facade"] = {"step": int(agent.train_state.step), "devices": len(leaf.sharding.device_set),
                         "finite": bool(np.all(np.isfinite(np.asarray(leaf))))}
    # The fully jitted loop (gymnax) with the mesh inside its one program: 10 updates against one device.
    from ddpgx.core import jitted

    env, env_params = jitted.make_env("gymnax:Pendulum-v1")
    loop_settings = jitted.JittedConfig(timesteps=30, learning_starts=20, memory_size=64, eval_interval=30,
                                        eval_episodes=0)
    loop_config = ddpgx.DDPGConfig(batch_size=16, exploration_noise=ddpgx.GaussianNoise(std=0.1))
    loops = {}
    for devices in (None, 8):
        program = jax.jit(jitted.make_train(env, env_params, loop_config, loop_settings, mesh=devices))
        ts, _ = program(jax.random.key(0))
        loops[devices] = ts
    leaf = loops[8].critic_params["params"]["MLP_0"]["Dense_0"]["kernel"]
    results["jitted_loop"] = {"max_param_diff": max_diff(flat(loops[None]), flat(loops[8])),
                              "steps": int(loops[8].step), "devices": len(leaf.sharding.device_set)}
    with open(out, "w") as file:
        json.dump(results, file)


def ddpgx_sgd():
    import optax

    return optax.sgd(1e-2)


def check_processes(out):
    sharding.initialize()
    assert jax.process_count() == 2, jax.process_count()
    mesh = sharding.make_mesh()
    half = BATCH // 2
    rows = slice(jax.process_index() * half, (jax.process_index() + 1) * half)
    saved = {}
    for clip in (0.0, 1.0):
        ts, _ = train(sharding.shard(ddpgx.init(jax.random.key(0), config(clip), OBS, ACT), mesh), mesh, rows)
        saved.update({f"clip{clip}/{k}": np.asarray(v.addressable_data(0)) for k, v in flat_arrays(ts).items()})
    if sharding.is_main_process():
        np.savez(out, **saved)
        with open(out + ".json", "w") as file:
            json.dump({"devices": jax.device_count(), "processes": jax.process_count()}, file)


def flat_arrays(ts):
    tree = checkpoints.train_state_tree(ts)
    tree.pop("key")
    return {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def check_single(out):
    saved = {}
    for clip in (0.0, 1.0):
        ts, _ = train(ddpgx.init(jax.random.key(0), config(clip), OBS, ACT))
        saved.update({f"clip{clip}/{k}": v for k, v in flat(ts).items()})
    np.savez(out, **saved)


if __name__ == "__main__":
    {"devices": check_devices, "processes": check_processes, "single": check_single}[sys.argv[1]](sys.argv[2])
