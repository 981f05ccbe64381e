"""ddpgx_torch's optional parts: mixed precision, torch.distributed, the recurrent core and its sequence memory,
and the skrl-style facade (training, checkpoints, resume)."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium
import numpy as np
import pytest

torch = pytest.importorskip("torch")
# One thread: the test machine has 2 cores shared with other processes, where OpenMP spin-waits of 2 threads
# make small torch ops many times slower.
torch.set_num_threads(1)

import ddpgx_torch  # noqa: E402
import gloo_ranks  # noqa: E402  (tests/gloo_ranks.py)
from ddpgx_torch.models import RecurrentPolicy, RecurrentQFunction  # noqa: E402
from ddpgx_torch.core import networks, replay  # noqa: E402
from ddpgx_torch.memories import RandomMemory  # noqa: E402
from ddpgx_torch.noises import OrnsteinUhlenbeckNoise  # noqa: E402
from ddpgx_torch.trainers import SequentialTrainer  # noqa: E402

OBS = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2, 2, (1,), np.float32)


def fixed_batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ddpgx_torch.Transition(
        observations=torch.randn(n, 3, generator=g), actions=4 * torch.rand(n, 1, generator=g) - 2,
        rewards=torch.randn(n, generator=g), next_observations=torch.randn(n, 3, generator=g),
        terminated=torch.ones(n, dtype=torch.bool),  # target = reward: a regression the critic can fit
    )


# ------------------------------------------------------------------------------------------------------------------
# Mixed precision


def test_bf16_autocast_on_cpu_is_finite_and_learns():
    config = ddpgx_torch.DDPGConfig(batch_size=64, mixed_precision=True, learning_rate=3e-3)
    ts = ddpgx_torch.init(0, config, OBS, ACT)
    assert ts.spec.autocast_dtype is torch.bfloat16 and not ts.grad_scaler.is_enabled()  # bf16 needs no scaling
    batch = fixed_batch()
    first = None
    for _ in range(150):
        ts, metrics = ddpgx_torch.update(ts, batch)
        assert all(bool(torch.isfinite(v)) for v in metrics.values()), metrics
        first = first or {k: float(v) for k, v in metrics.items()}
    # the critic fits the rewards and the policy climbs its critic; master weights stay float32
    assert float(metrics["critic_loss"]) < 0.3 * first["critic_loss"]
    assert float(metrics["policy_loss"]) < first["policy_loss"] - 0.1
    assert all(p.dtype == torch.float32 for p in ts.policy.parameters())
    assert all(p.dtype == torch.float32 for p in ts.target_critic.parameters())


def test_bf16_update_stays_close_to_fp32():
    """One bf16 update from the same weights lands near the fp32 one (bf16 keeps ~3 significant digits)."""
    ts32 = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=64), OBS, ACT)
    ts16 = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=64, mixed_precision="bf16"), OBS, ACT)
    _, m32 = ddpgx_torch.update(ts32, fixed_batch())
    _, m16 = ddpgx_torch.update(ts16, fixed_batch())
    for key in ("critic_loss", "q_mean", "target_mean"):
        assert abs(float(m16[key]) - float(m32[key])) < 0.02 * abs(float(m32[key])) + 0.02, key


def test_fp16_grad_scaler_is_shared_by_both_optimizers_and_clips_unscaled_gradients():
    config = ddpgx_torch.DDPGConfig(batch_size=64, mixed_precision="fp16", grad_norm_clip=0.5)
    ts = ddpgx_torch.init(0, config, OBS, ACT)
    assert ts.grad_scaler.is_enabled() and ts.spec.autocast_dtype is torch.float16
    scale0 = ts.grad_scaler.get_scale()
    ts, metrics = ddpgx_torch.update(ts, fixed_batch())
    # the reported norms are of the unscaled gradients: the same order as fp32's, not scale0 (65536) times larger
    ts32 = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=64, grad_norm_clip=0.5), OBS, ACT)
    _, m32 = ddpgx_torch.update(ts32, fixed_batch())
    for key in ("critic_grad_norm", "policy_grad_norm"):
        assert abs(float(metrics[key]) - float(m32[key])) < 0.05 * float(m32[key]), key
    assert ts.grad_scaler.get_scale() == scale0  # one update() per gradient step, no overflow: unchanged
    assert ts.policy_optimizer.state and ts.critic_optimizer.state  # both optimizers stepped


def test_mixed_precision_rejects_bad_values():
    with pytest.raises(ValueError, match="mixed_precision='fp8'"):
        ddpgx_torch.DDPGConfig(mixed_precision="fp8")


# ------------------------------------------------------------------------------------------------------------------
# torch.distributed


def _distributed_worker(rank: int, world: int, out: str) -> None:
    config = ddpgx_torch.DDPGConfig(batch_size=32, grad_norm_clip=0.5, observation_preprocessor=True, polyak=0.1)
    ts = ddpgx_torch.init(rank + 100, config, OBS, ACT)  # different seeds: init broadcasts rank 0's weights
    skipped = []
    for step in range(4):
        full = _global_batch(step)
        half = ddpgx_torch.Transition(*(None if x is None else x[rank * 32:(rank + 1) * 32] for x in full))
        ts, metrics = ddpgx_torch.update(ts, half)
        skipped.append(float(metrics["skipped_updates"]))
    torch.save({"policy": ts.policy.state_dict(), "critic": ts.critic.state_dict(),
                "target_critic": ts.target_critic.state_dict(), "mean": ts.observation_stats.mean,
                "grad_norm": metrics["critic_grad_norm"], "skipped": skipped}, f"{out}.{rank}")


def _global_batch(step: int) -> ddpgx_torch.Transition:
    """Step 2's batch has a NaN reward in the second half (rank 1's): the step is dropped everywhere."""
    batch = fixed_batch(64, seed=step)._replace(terminated=torch.arange(64) % 3 == 0)
    if step == 2:
        batch.rewards[40] = float("nan")
    return batch


def test_two_gloo_processes_equal_one_process_with_the_global_batch():
    out = gloo_ranks.run(_distributed_worker, "rank.pt")
    ranks = [torch.load(f"{out}.{rank}", weights_only=False) for rank in (0, 1)]
    config = ddpgx_torch.DDPGConfig(batch_size=64, grad_norm_clip=0.5, observation_preprocessor=True, polyak=0.1)
    ts = ddpgx_torch.init(100, config, OBS, ACT)  # rank 0's seed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: the same kernels' summation order
    skipped = []
    try:
        for step in range(4):
            ts, metrics = ddpgx_torch.update(ts, _global_batch(step))
            skipped.append(float(metrics["skipped_updates"]))
    finally:
        torch.set_num_threads(threads)
    # The NaN in rank 1's half dropped step 2 on both ranks (rank 0's own loss was finite), as in one process.
    assert skipped == ranks[0]["skipped"] == ranks[1]["skipped"] == [0.0, 0.0, 1.0, 0.0]
    for got in ranks:
        for name in ("policy", "critic", "target_critic"):
            for key, value in getattr(ts, name).state_dict().items():
                torch.testing.assert_close(got[name][key], value, rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")
        torch.testing.assert_close(got["mean"], ts.observation_stats.mean, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got["grad_norm"], metrics["critic_grad_norm"], rtol=1e-5, atol=1e-6)


def test_a_skrl_script_launched_by_torchrun_trains_data_parallel(tmp_path):
    """``torchrun`` starts 2 copies of a skrl-style script that never touches torch.distributed: the agent joins the
    job (gloo on CPU), the ranks explore with different seeds (set_seed adds the rank), so their memories differ,
    yet they end with identical networks (gradients averaged), and only rank 0 writes logs and checkpoints."""
    script = os.path.join(os.path.dirname(__file__), "torchrun_checks.py")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           script, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for r, got in enumerate(ranks):
        assert not got["was_initialized"]  # the script started no process group; the agent did
        assert (got["backend"], got["world_size"], got["seed"], got["steps"]) == ("gloo", 2, 42 + r, 150)
    assert not torch.equal(ranks[0]["observations"], ranks[1]["observations"])  # different experience per rank
    for name in ("policy", "critic", "target_critic"):
        for key, value in ranks[0][name].items():
            torch.testing.assert_close(ranks[1][name][key], value, rtol=0, atol=0, msg=f"{name}.{key}")
    assert any(not torch.equal(ranks[0]["initial_policy"][k], v) for k, v in ranks[0]["policy"].items())
    run = tmp_path / "runs" / "pendulum"
    assert len([f for f in os.listdir(run) if f.startswith("events.out.tfevents")]) == 1  # rank 0's only
    assert sorted(os.listdir(run / "checkpoints")) == ["agent_100.pt", "agent_200.pt", "best_agent.pt"]


def test_launch_environment_errors_name_the_variable(monkeypatch):
    from ddpgx_torch.core import distributed

    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        distributed.launch_env()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2 .*below WORLD_SIZE=2"):
        distributed.launch_env()
    monkeypatch.setenv("RANK", "1")
    assert distributed.launch_env() == (1, 0, 2)
    assert ddpgx_torch.models.set_seed(7) == 8  # skrl's rank offset under a launcher


# ------------------------------------------------------------------------------------------------------------------
# Recurrent core and sequence memory


def test_sequences_never_straddle_the_write_position():
    """A wrapped buffer of 10 rows x 2 envs holding steps 15..24: every sampled sequence is 4 consecutive steps of
    one environment (the step number is stored in the rewards, the env in the observations)."""
    example = ddpgx_torch.Transition(torch.zeros(3), torch.zeros(1), torch.zeros(()), torch.zeros(3),
                                     torch.zeros((), dtype=torch.bool))
    buf = replay.init(20, example, num_envs=2)
    for step in range(25):
        replay.add(buf, ddpgx_torch.Transition(torch.tensor([[0.0] * 3, [1.0] * 3]), torch.zeros(2, 1),
                                               torch.full((2,), float(step)), torch.zeros(2, 3),
                                               torch.zeros(2, dtype=torch.bool)))
    assert (buf.position, buf.size, len(buf)) == (5, 10, 20)
    batch = replay.sample(buf, torch.Generator().manual_seed(0), 2000, sequence_length=4)
    steps = batch.rewards
    assert steps.shape == (2000, 4)
    np.testing.assert_array_equal(np.diff(steps.numpy(), axis=1), 1.0)  # consecutive, never 24 -> 15
    assert steps.min() == 15 and steps.max() == 24
    assert set(np.unique(steps[:, 0].numpy())) == set(range(15, 22))  # every valid start is drawn
    assert bool((batch.observations[:, :1] == batch.observations).all())  # one environment per sequence
    with pytest.raises(ValueError, match="sequences of 11 steps"):
        replay.sample(buf, None, 1, sequence_length=11)


def test_hidden_states_are_stored_per_transition_and_reset_at_episode_starts():
    kw = dict(cell="gru", hidden_size=8, sequence_length=4, hidden_sizes=(16,))
    ts = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(), OBS, ACT, num_envs=2,
                          policy=RecurrentPolicy(OBS, ACT, num_envs=2, **kw),
                          critic=RecurrentQFunction(OBS, ACT, num_envs=2, **kw))
    assert ts.spec.rnn == ddpgx_torch.RNNSpec(4, ((1, 2, 8),))
    obs = torch.randn(2, 3)
    _, ts, info = ddpgx_torch.act(ts, obs)
    assert float(info["rnn_states"][0].abs().sum()) == 0.0  # started from zeros
    _, ts, info = ddpgx_torch.act(ts, obs)
    assert info["rnn_states"][0].shape == (2, 1, 8) and float(info["rnn_states"][0].abs().min()) > 0
    _, ts, info = ddpgx_torch.act(ts, obs, episode_starts=torch.tensor([False, True]))
    assert float(info["rnn_states"][0][0].abs().sum()) > 0 and float(info["rnn_states"][0][1].abs().sum()) == 0


def test_target_networks_start_from_the_next_steps_hidden_state():
    """In an update, the policy reads sequence step 0's stored state and the target policy step 1's."""
    policy = RecurrentPolicy(OBS, ACT, cell="rnn", hidden_size=4, sequence_length=3, hidden_sizes=(8,))
    policy.train()
    obs = torch.randn(2 * 3, 3)
    states = torch.randn(1, 2 * 3, 4)
    out_policy, _ = policy.act({"observations": obs, "rnn": [states]}, role="policy")
    out_target, _ = policy.act({"observations": obs, "rnn": [states]}, role="target_policy")
    seq = states.view(1, 2, 3, 4)
    for start, out in ((0, out_policy), (1, out_target)):
        x, _ = policy.core.rnn(obs.view(2, 3, 3), seq[:, :, start].contiguous())
        torch.testing.assert_close(out, policy.head(x.reshape(6, 4)))
    assert not torch.allclose(out_policy, out_target)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_core_updates_on_sequences(cell):
    kw = dict(cell=cell, hidden_size=16, sequence_length=4, hidden_sizes=(32,))
    ts = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=8), OBS, ACT,
                          policy=RecurrentPolicy(OBS, ACT, **kw),
                          critic=RecurrentQFunction(OBS, ACT, **kw))
    n = len(ts.rnn_states)
    g = torch.Generator().manual_seed(0)
    batch = ddpgx_torch.Transition(
        torch.randn(8, 4, 3, generator=g), torch.rand(8, 4, 1, generator=g), torch.randn(8, 4, generator=g),
        torch.randn(8, 4, 3, generator=g), torch.zeros(8, 4, dtype=torch.bool),
        truncated=torch.tensor([[False, True, False, False]] * 8),  # an episode ends inside every sequence
        rnn_states=[torch.zeros(8, 4, 1, 16)] * n,
    )
    before = [p.clone() for p in ts.policy.parameters()]
    for _ in range(30):
        ts, metrics = ddpgx_torch.update(ts, batch)
    assert all(bool(torch.isfinite(v)) for v in metrics.values())
    assert float(metrics["critic_loss"]) < 1.0  # fits 32 rewards of unit variance
    assert any(not torch.equal(a, b) for a, b in zip(before, ts.policy.parameters(), strict=True))
    with pytest.raises(ValueError, match="rnn_states"):
        ddpgx_torch.update(ts, batch._replace(rnn_states=None))


@pytest.mark.slow
def test_rnn_agents_beat_feed_forward_on_velocity_masked_pendulum():
    """Small but real: 2,000 steps on Pendulum without its velocity (skrl's RNN-example settings with smaller
    networks: recurrent layer 32, sequences of 8, 128-128 heads, batch 64, learning from step 300). The feed-forward
    agent cannot tell the swing direction from the angle alone and stays near its untrained return (about -1470
    here); the LSTM and GRU agents infer it from the sequence and already do markedly better (about -1020 and -1220
    here, deterministic on one thread). Compared on the mean return of 3 deterministic evaluation episodes. The long
    comparison (10k steps, the example's 400-300 heads) is benchmarks/torch_rnn_pendulum.py, results in
    benchmarks/RESULTS.md."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
    import torch_rnn_pendulum as bench

    results = {}
    for cell in ("lstm", "gru", "ff"):
        torch.manual_seed(0)
        env = bench.make_env()
        agent = bench.make_agent(cell, env, hidden=32, sequence_length=8, learning_starts=300, heads=(128, 128),
                                 batch_size=64)
        bench.train(agent, env, 2000)
        results[cell] = bench.evaluate(agent, env, episodes=3)
    assert results["lstm"] > results["ff"] + 100, results
    assert results["gru"] > results["ff"] + 100, results


# ------------------------------------------------------------------------------------------------------------------
# Facade


@pytest.mark.slow  # a 5,000-step learning run: 40 s on 2 cores
def test_facade_learns_pendulum_and_checkpoints_resume_exactly(tmp_path):
    torch.manual_seed(0)
    env = gymnasium.make("Pendulum-v1")
    cfg = ddpgx_torch.DDPG_CFG(
        batch_size=100, random_timesteps=100, learning_starts=100, exploration_noise=OrnsteinUhlenbeckNoise,
        exploration_noise_kwargs=dict(theta=0.15, sigma=0.1, base_scale=1.0),
        experiment=dict(directory=str(tmp_path), experiment_name="run", write_interval=500, checkpoint_interval=1000),
    )  # fmt: skip
    agent = ddpgx_torch.DDPG(models={"policy": networks.DeterministicPolicy(3, [-2.0], [2.0], (1,)),
                                     "critic": networks.QFunction(3, 1)},
                             memory=RandomMemory(15_000), cfg=cfg, observation_space=env.observation_space,
                             action_space=env.action_space)
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 5000, "headless": True, "seed": 0}).train()
    summary = SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 1000, "headless": True, "seed": 100}).eval()
    # After 3,000 steps some episodes swing up (about -150) and some not yet (about -1200, as the untrained policy),
    # depending on float rounding (MKL's or oneDNN's products); by 5,000 steps the mean of 5 episodes is clear of -400.
    returns = summary["episode_returns"]
    assert len(returns) == 5 and np.mean(returns) > -400, returns
    files = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    assert files == ["agent_3000.pt", "agent_4000.pt", "agent_5000.pt", "best_agent.pt"]  # the last 3 kept
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "run"))
    saved = torch.load(tmp_path / "run" / "checkpoints" / "agent_5000.pt", weights_only=False)
    assert {"policy", "target_policy", "critic", "target_critic", "policy_optimizer", "critic_optimizer"} <= set(saved)

    # resume: a fresh agent loaded from the checkpoint takes the very same next update
    agent.save(str(tmp_path / "now.pt"))
    clone = ddpgx_torch.DDPG(models={"policy": networks.DeterministicPolicy(3, [-2.0], [2.0], (1,)),
                                     "critic": networks.QFunction(3, 1)},
                             memory=agent.memory, cfg=cfg, observation_space=env.observation_space,
                             action_space=env.action_space)
    clone.load(str(tmp_path / "now.pt"))
    for a in (agent, clone):
        a.enable_models_training_mode(True)
        a.update(timestep=5000, timesteps=5001)
    for p, q in zip(agent.policy.parameters(), clone.policy.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_facade_rejects_bad_configuration():
    env = gymnasium.make("Pendulum-v1")
    models = {"policy": networks.DeterministicPolicy(3, [-2.0], [2.0], (1,)), "critic": networks.QFunction(3, 1)}
    with pytest.raises(ValueError, match="batch_size=0"):
        ddpgx_torch.DDPG(models=models, cfg={"batch_size": 0}, observation_space=env.observation_space,
                         action_space=env.action_space)
    with pytest.raises(KeyError, match="'critic'"):  # a missing model is a KeyError, as skrl documents
        ddpgx_torch.DDPG(models={"policy": models["policy"]}, memory=RandomMemory(10),
                         observation_space=env.observation_space, action_space=env.action_space)
    with pytest.raises(ValueError, match="action_space"):
        ddpgx_torch.DDPG(models=models, observation_space=env.observation_space,
                         action_space=gymnasium.spaces.Discrete(3))


def test_ddpg_cfg_is_the_shared_config_plus_mixed_precision(tmp_path):
    import dataclasses

    import ddpgx

    cfg = ddpgx_torch.DDPG_CFG()
    assert isinstance(cfg, ddpgx.DDPG_CFG) and ddpgx_torch.ExperimentCfg is ddpgx.ExperimentCfg
    shared = [f.name for f in dataclasses.fields(ddpgx.DDPG_CFG)]
    assert [f.name for f in dataclasses.fields(ddpgx_torch.DDPG_CFG)] == shared + ["mixed_precision"]
    with pytest.raises(AttributeError):
        cfg.batchsize = 32  # slotted: a misspelt field raises
    env = gymnasium.make("Pendulum-v1")
    models = {"policy": networks.DeterministicPolicy(3, [-2.0], [2.0], (1,)), "critic": networks.QFunction(3, 1)}
    spaces = dict(observation_space=env.observation_space, action_space=env.action_space)
    with pytest.raises(ValueError, match="mixed_precision='fp8'"):
        ddpgx_torch.DDPG(models=models, cfg={"mixed_precision": "fp8"}, **spaces)
    with pytest.raises(ValueError, match="no key 'batchsize'"):
        ddpgx_torch.DDPG(models=models, cfg={"batchsize": 32}, **spaces)
    with pytest.raises(ValueError, match="experiment.write_interval='often'"):
        ddpgx_torch.DDPG(models=models, cfg={"experiment": {"write_interval": "often"}}, **spaces)
    # a JAX DDPG_CFG is accepted (its fields copied; mixed precision off), intervals resolve from the trainer
    agent = ddpgx_torch.DDPG(models=models, cfg=ddpgx.DDPG_CFG(batch_size=32, experiment={"directory": str(tmp_path)}),
                             **spaces)
    assert agent.cfg.batch_size == 32 and agent.cfg.mixed_precision is False
    agent.init(trainer_cfg={"timesteps": 1000})
    assert (agent.write_interval, agent.checkpoint_interval) == (10, 100)
    bf16 = ddpgx_torch.DDPG(models=models, cfg={"mixed_precision": True}, **spaces)
    assert bf16.train_state.spec.autocast_dtype is torch.bfloat16


@pytest.mark.parametrize("mode", ["raise", "skip"])
def test_nonfinite_transitions_raise_or_are_skipped(mode, tmp_path):
    env = gymnasium.make("Pendulum-v1")
    models = {"policy": networks.DeterministicPolicy(3, [-2.0], [2.0], (1,)), "critic": networks.QFunction(3, 1)}
    agent = ddpgx_torch.DDPG(models=models, memory=RandomMemory(100),
                             cfg={"nonfinite_transitions": mode, "experiment": {"directory": str(tmp_path)}},
                             observation_space=env.observation_space, action_space=env.action_space)
    agent.init(trainer_cfg={"timesteps": 10})
    agent.enable_training_mode(True)
    good = np.zeros((1, 3), np.float32)
    step = dict(states=None, actions=np.zeros((1, 1), np.float32), next_observations=good, next_states=None,
                terminated=np.zeros((1, 1), bool), truncated=np.zeros((1, 1), bool), infos={}, timesteps=10)
    agent.record_transition(observations=good, rewards=np.ones((1, 1), np.float32), timestep=0, **step)
    bad = np.array([[0.0, np.nan, 0.0]], np.float32)
    if mode == "raise":
        with pytest.raises(ValueError, match="non-finite observations .* environment 0 at timestep 1"):
            agent.record_transition(observations=bad, rewards=np.ones((1, 1), np.float32), timestep=1, **step)
    else:
        agent.record_transition(observations=bad, rewards=np.ones((1, 1), np.float32), timestep=1, **step)
        agent.record_transition(observations=good, rewards=np.full((1, 1), np.inf, np.float32), timestep=2, **step)
        assert agent.skipped_transitions == 2
    assert len(agent.memory) == 1


def test_nonfinite_loss_never_reaches_the_parameters():
    config = ddpgx_torch.DDPGConfig(batch_size=64, observation_preprocessor=True, grad_norm_clip=1.0)
    ts = ddpgx_torch.init(0, config, OBS, ACT)
    before = [p.clone() for p in ts.policy.parameters()] + [p.clone() for p in ts.critic.parameters()]
    stats = ts.observation_stats
    batch = fixed_batch()
    rewards = batch.rewards.clone()
    rewards[3] = float("nan")
    ts, metrics = ddpgx_torch.update(ts, batch._replace(rewards=rewards))
    assert float(metrics["skipped_updates"]) == 1.0 and ts.step == 0
    after = list(ts.policy.parameters()) + list(ts.critic.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert ts.observation_stats is stats  # the batch's statistics are dropped with the step
    ts, metrics = ddpgx_torch.update(ts, batch)  # a finite batch steps as usual
    assert float(metrics["skipped_updates"]) == 0.0 and ts.step == 1
    with pytest.raises(ValueError, match="skip_nonfinite_updates=1"):
        ddpgx_torch.DDPGConfig(skip_nonfinite_updates=1)


def test_checkpoint_holds_the_memory_and_refuses_a_memory_of_another_size(tmp_path):
    env = gymnasium.make("Pendulum-v1")
    cfg = {"batch_size": 16, "learning_starts": 8, "experiment": {"write_interval": 0, "checkpoint_interval": 0}}

    def agent(memory_size):
        models = {"policy": networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (32, 32)),
                  "critic": networks.QFunction(3, 1, (32, 32))}
        return ddpgx_torch.DDPG(models=models, memory=RandomMemory(memory_size), cfg=cfg,
                                observation_space=env.observation_space, action_space=env.action_space)

    trained = agent(64)
    SequentialTrainer(env=env, agents=trained, cfg={"timesteps": 40, "headless": True, "seed": 0}).train()
    trained.save(str(tmp_path / "with.pt"))
    trained.save(str(tmp_path / "without.pt"), include_memory=False)
    assert "memory" not in torch.load(tmp_path / "without.pt", weights_only=False)

    fresh = agent(64)
    fresh.load(str(tmp_path / "with.pt"))
    assert len(fresh.memory) == len(trained.memory) == 40
    for name, value in trained.memory.buffer.data._asdict().items():
        if value is not None:
            assert torch.equal(getattr(fresh.memory.buffer.data, name), value), name
    assert fresh.memory.buffer.position == trained.memory.buffer.position

    other = agent(32)
    before = [p.clone() for p in other.policy.parameters()]
    with pytest.raises(ValueError, match=r"memory of 64 steps x 1 environments.*memory_size=32"):
        other.load(str(tmp_path / "with.pt"))
    assert len(other.memory) == 0  # nothing was loaded
    assert all(torch.equal(p, q) for p, q in zip(before, other.policy.parameters(), strict=True))
    other.load(str(tmp_path / "without.pt"))  # the same agent without the memory loads
    assert all(torch.equal(p, q) for p, q in zip(trained.policy.parameters(), other.policy.parameters(),
                                                  strict=True))
