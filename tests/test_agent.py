"""The skrl-style facade ``ddpgx.DDPG``: a skrl 2.x script, every DDPG_CFG field's effect, Dict observations and
states, exact save/load/continue, TensorBoard tags, checkpoints and bad input."""

from __future__ import annotations

import os

import flax.linen as nn
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ddpgx
from ddpgx.core import networks
from ddpgx.envs import wrap_env
from ddpgx.memories import RandomMemory
from ddpgx.models import DeterministicMixin, Model
from ddpgx.noises import GaussianNoise, OrnsteinUhlenbeckNoise
from ddpgx.preprocessors import RunningStandardScaler
from ddpgx.trainers import SequentialTrainer

import resume_checks  # noqa: E402 -- tests/resume_checks.py: the agent and loop of the resume checks

OBS = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
SMALL = (32, 32)


def small_models(action_space=ACT):
    policy = networks.DeterministicPolicy(tuple(action_space.low), tuple(action_space.high), action_space.shape,
                                          hidden_sizes=SMALL)
    critic = networks.QFunction(hidden_sizes=SMALL)
    return {"policy": policy, "critic": critic, "target_policy": policy, "target_critic": critic}


def make_agent(tmp_path=None, *, memory_size=256, num_envs=1, obs=OBS, act=ACT, state_space=None, seed=0, **cfg):
    cfg.setdefault("experiment", {"directory": str(tmp_path or "/nonexistent"), "experiment_name": "run",
                                  "write_interval": 0, "checkpoint_interval": 0})
    memory = RandomMemory(memory_size=memory_size, num_envs=num_envs)
    return ddpgx.DDPG(models=small_models(act), memory=memory, observation_space=obs, state_space=state_space,
                      action_space=act, cfg=cfg, seed=seed)


def record(agent, n, *, rewards=None, t0=0, num_envs=1, terminated=False, states=False):
    """Records ``n`` steps of random transitions (rewards ``rewards[i]`` when given) and runs post_interaction."""
    rng = np.random.default_rng(t0)
    for i in range(n):
        t = t0 + i
        obs = rng.uniform(-1, 1, (num_envs, 3)).astype(np.float32)
        nxt = rng.uniform(-1, 1, (num_envs, 3)).astype(np.float32)
        r = np.full((num_envs, 1), rewards[i] if rewards is not None else rng.normal(), np.float32)
        extra = {"states": obs[:, :2] * 3, "next_states": nxt[:, :2] * 3} if states else {"states": None,
                                                                                          "next_states": None}
        agent.record_transition(observations=obs, actions=rng.uniform(-2, 2, (num_envs, 1)).astype(np.float32),
                                rewards=r, next_observations=nxt, terminated=np.full((num_envs, 1), terminated),
                                truncated=np.zeros((num_envs, 1), bool), infos={}, timestep=t, timesteps=10_000,
                                **extra)
        agent.post_interaction(timestep=t, timesteps=10_000)


def leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


# ---------------------------------------------------------------------------------------------------------------------
# A skrl 2.x script, imports changed to ddpgx.


class Actor(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device=None, clip_actions=False, **kwargs):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device, **kwargs)
        DeterministicMixin.__init__(self, clip_actions=clip_actions)

    @nn.compact
    def __call__(self, inputs, role):
        x = nn.relu(nn.Dense(64)(inputs["observations"]))
        x = nn.relu(nn.Dense(64)(x))
        return 2 * nn.tanh(nn.Dense(self.num_actions)(x)), {}


class Critic(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device=None, clip_actions=False, **kwargs):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device, **kwargs)
        DeterministicMixin.__init__(self, clip_actions=clip_actions)

    @nn.compact
    def __call__(self, inputs, role):
        x = jnp.concatenate([inputs["observations"], inputs["taken_actions"]], axis=-1)
        x = nn.relu(nn.Dense(64)(x))
        x = nn.relu(nn.Dense(64)(x))
        return nn.Dense(1)(x), {}


def test_skrl_style_script_runs_with_ddpgx_imports(tmp_path):
    from ddpgx import DDPG, DDPG_CFG
    from ddpgx.models import set_seed

    set_seed(42)
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    device = env.device
    memory = RandomMemory(memory_size=15000, num_envs=env.num_envs, device=device, replacement=False)
    models = {}
    for role, cls in (("policy", Actor), ("target_policy", Actor), ("critic", Critic), ("target_critic", Critic)):
        models[role] = cls(observation_space=env.observation_space, state_space=env.state_space,
                           action_space=env.action_space, device=device)
    for role, model in models.items():
        model.init_state_dict(role=role)
    cfg = DDPG_CFG()
    cfg.exploration_noise = OrnsteinUhlenbeckNoise
    cfg.exploration_noise_kwargs = {"theta": 0.15, "sigma": 0.1, "base_scale": 1.0, "device": device}
    cfg.batch_size = 100
    cfg.random_timesteps = 100
    cfg.learning_starts = 100
    cfg.experiment.write_interval = 50
    cfg.experiment.checkpoint_interval = 200
    cfg.experiment.directory = str(tmp_path / "runs")
    cfg.experiment.experiment_name = "pendulum"
    agent = DDPG(models=models, memory=memory, cfg=cfg, observation_space=env.observation_space,
                 state_space=env.state_space, action_space=env.action_space, device=device)
    # The agent starts from the models' own parameters, and its targets are copies of them.
    assert leaves_equal(agent.train_state.policy_params, models["policy"].state_dict)
    assert leaves_equal(agent.train_state.target_critic_params, models["critic"].state_dict)
    trainer = SequentialTrainer(cfg={"timesteps": 400, "headless": True}, env=env, agents=[agent])
    summary = trainer.train()
    assert len(memory) == 400
    assert int(agent.train_state.step) == 300  # one gradient step per timestep from learning_starts on
    assert len(summary["episode_returns"]) == 2  # Pendulum truncates at 200 steps
    checkpoints = sorted(os.listdir(tmp_path / "runs" / "pendulum" / "checkpoints"))
    assert checkpoints == ["agent_200", "agent_400", "best_agent"]
    trainer.eval()  # evaluation mode: no memory writes, no updates
    assert len(memory) == 400 and int(agent.train_state.step) == 300


# ---------------------------------------------------------------------------------------------------------------------
# Every DDPG_CFG field has an observable effect.


def test_learning_starts_delays_the_first_update():
    agent = make_agent(learning_starts=5)
    agent.enable_training_mode(True)
    record(agent, 5)
    assert int(agent.train_state.step) == 0 and len(agent.memory) == 5
    record(agent, 1, t0=5)
    assert int(agent.train_state.step) == 1


def test_gradient_steps_per_update():
    agent = make_agent(gradient_steps=3)
    agent.enable_training_mode(True)
    record(agent, 4)
    assert int(agent.train_state.step) == 12


def test_batch_size_discount_and_sampling_without_replacement():
    # discount_factor 0: the target is the reward itself; a batch as large as the memory, drawn without replacement,
    # is the whole memory, so the target statistics are those of the 16 rewards 0..15.
    agent = ddpgx.DDPG(models=small_models(), memory=RandomMemory(memory_size=16, replacement=False),
                       observation_space=OBS, action_space=ACT,
                       cfg={"batch_size": 16, "discount_factor": 0.0, "learning_starts": 15,
                            "experiment": {"write_interval": 0, "checkpoint_interval": 0}})
    agent.enable_training_mode(True)
    agent.write_interval = 10**9  # track metrics, never write on its own
    record(agent, 16, rewards=np.arange(16.0))
    reduced = agent.tracker.write(16)
    assert reduced["Target / Target (min)"] == 0.0 and reduced["Target / Target (max)"] == 15.0
    assert reduced["Target / Target (mean)"] == pytest.approx(7.5)
    one = make_agent(batch_size=1, discount_factor=0.0, learning_starts=15)
    one.enable_training_mode(True)
    one.write_interval = 10**9
    record(one, 16, rewards=np.arange(16.0))
    reduced = one.tracker.write(16)
    assert reduced["Target / Target (min)"] == reduced["Target / Target (max)"]  # one transition per batch


@pytest.mark.parametrize("polyak", [0.0, 1.0, 0.5])
def test_polyak(polyak):
    agent = make_agent(polyak=polyak)
    agent.enable_training_mode(True)
    before = jax.tree.map(np.array, agent.train_state.target_critic_params)  # a copy: the state is donated
    record(agent, 1)
    ts = agent.train_state
    expected = jax.tree.map(lambda online, old: polyak * online + (1 - polyak) * old, ts.critic_params, before)
    for got, want in zip(jax.tree.leaves(ts.target_critic_params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_learning_rate_pair_and_scheduler():
    agent = make_agent(learning_rate=(1e-3, 2e-3))
    agent.enable_training_mode(True)
    agent.write_interval = 10**9
    record(agent, 2)
    reduced = agent.tracker.write(2)
    assert reduced["Learning / Policy learning rate"] == pytest.approx(1e-3)
    assert reduced["Learning / Critic learning rate"] == pytest.approx(2e-3)
    # A scheduler factor multiplies the base rate at each gradient step: 0.5 ** step.
    agent = make_agent(learning_rate=1e-3, learning_rate_scheduler=optax.exponential_decay,
                       learning_rate_scheduler_kwargs={"init_value": 1.0, "transition_steps": 1, "decay_rate": 0.5})
    agent.enable_training_mode(True)
    agent.write_interval = 10**9
    record(agent, 3)
    history = agent.tracker.data["Learning / Critic learning rate"]
    np.testing.assert_allclose([float(x) for x in history], [1e-3, 5e-4, 2.5e-4], rtol=1e-6)


def test_observation_and_state_preprocessors():
    agent = make_agent(observation_preprocessor=RunningStandardScaler,
                       observation_preprocessor_kwargs={"size": OBS, "epsilon": 1e-6, "clip_threshold": 3.0},
                       state_space=gymnasium.spaces.Box(-5, 5, (2,)), state_preprocessor=RunningStandardScaler,
                       state_preprocessor_kwargs={"epsilon": 1e-6, "clip_threshold": 3.0}, batch_size=8)
    assert agent.train_state.spec.config.preprocessor_clip == 3.0
    agent.enable_training_mode(True)
    record(agent, 3, states=True)
    ts = agent.train_state
    assert float(ts.observation_stats.count) == 3 * 2 * 8  # observations and next observations of 3 batches
    assert float(ts.state_stats.count) == 3 * 2 * 8
    assert 1.0 < float(jnp.mean(ts.state_stats.var)) < 6.0  # states are 3x the observations: var about 3


def test_random_timesteps_act_uniformly_then_the_policy_explores():
    agent = make_agent(random_timesteps=50, exploration_noise=GaussianNoise, exploration_noise_kwargs={"std": 0.0})
    agent.enable_training_mode(True)
    obs = np.zeros((1, 3), np.float32)
    early = np.array([float(agent.act(obs, None, timestep=t, timesteps=100)[0][0, 0]) for t in range(50)])
    late = np.array([float(agent.act(obs, None, timestep=t, timesteps=100)[0][0, 0]) for t in range(50, 60)])
    assert early.min() < -1.0 and early.max() > 1.0 and np.std(early) > 0.6  # uniform in [-2, 2]: std 1.15
    assert np.ptp(late) == 0.0  # the deterministic policy (noise std 0) on the same observation


def test_exploration_noise_kwargs_and_scheduler():
    agent = make_agent(exploration_noise=GaussianNoise, exploration_noise_kwargs={"mean": 0.0, "std": 0.3,
                                                                                  "device": "cpu"})
    agent.enable_training_mode(True)
    obs = np.zeros((256, 3), np.float32)
    agent.memory = RandomMemory(memory_size=1, num_envs=256)  # 256 environments act at once
    noisy = np.asarray(agent.act(obs, None, timestep=0, timesteps=10)[0])
    agent.enable_training_mode(False)
    clean = np.asarray(agent.act(obs, None, timestep=0, timesteps=10)[0])
    assert np.std(noisy - clean) == pytest.approx(0.3, rel=0.15)
    scheduled = make_agent(exploration_noise=GaussianNoise, exploration_noise_kwargs={"std": 0.3},
                           exploration_scheduler=lambda t, total: 0.0)
    scheduled.enable_training_mode(True)
    np.testing.assert_array_equal(np.asarray(scheduled.act(obs, None, timestep=0, timesteps=10)[0]), clean)


def test_ou_noise_from_cfg_is_the_core_process():
    agent = make_agent(exploration_noise=OrnsteinUhlenbeckNoise,
                       exploration_noise_kwargs={"theta": 0.15, "sigma": 0.1, "base_scale": 2.0})
    assert agent.train_state.spec.config.exploration_noise == ddpgx.OrnsteinUhlenbeckNoise(0.15, 0.1, 2.0)


def test_grad_norm_clip_bounds_the_gradient_used():
    # Adam's first moment after one step is (1 - b1) * g: with clipping, g has global norm <= the clip.
    agent = make_agent(grad_norm_clip=1e-3)
    agent.enable_training_mode(True)
    record(agent, 1, rewards=[100.0])
    mu = agent.train_state.critic_opt_state[1].inner_state[0].mu
    assert float(optax.tree.norm(mu)) == pytest.approx(0.1 * 1e-3, rel=1e-4)
    unclipped = make_agent(grad_norm_clip=0)
    unclipped.enable_training_mode(True)
    record(unclipped, 1, rewards=[100.0])
    mu = unclipped.train_state.critic_opt_state.inner_state[0].mu
    assert float(optax.tree.norm(mu)) > 100 * 0.1 * 1e-3


def test_rewards_shaper_changes_stored_rewards():
    agent = make_agent(rewards_shaper=lambda rewards, t, total: rewards * 0.1 + t, learning_starts=100)
    agent.enable_training_mode(True)
    record(agent, 3, rewards=[10.0, 20.0, 30.0])
    np.testing.assert_allclose(np.asarray(agent.memory.state.data.rewards[:3]), [1.0, 3.0, 5.0], rtol=1e-6)


def test_experiment_settings(tmp_path):
    agent = make_agent(experiment={"directory": str(tmp_path), "experiment_name": "exp", "write_interval": 2,
                                   "checkpoint_interval": 4, "store_separately": True}, learning_starts=1)
    agent.init(trainer_cfg={"timesteps": 8})
    agent.enable_training_mode(True)
    record(agent, 8)
    agent.close()
    run = tmp_path / "exp"
    assert agent.experiment_dir == str(run)
    names = set(os.listdir(run / "checkpoints"))
    assert {"agent_4", "agent_8", "policy_4", "critic_8", "target_policy_8", "critic_optimizer_4"} <= names
    assert [n for n in os.listdir(run) if n.startswith("events.out.tfevents")]
    auto = make_agent(experiment={"directory": str(tmp_path), "experiment_name": "auto"})
    auto.init(trainer_cfg={"timesteps": 1000})
    assert (auto.write_interval, auto.checkpoint_interval) == (10, 100)  # timesteps/100 and timesteps/10
    wandb = make_agent(experiment={"directory": str(tmp_path), "wandb": True})
    try:
        import wandb as _  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="experiment.wandb=True needs the wandb package"):
            wandb.init(trainer_cfg={"timesteps": 10})


# ---------------------------------------------------------------------------------------------------------------------
# Spaces end to end.


def test_dict_observations_and_state_space_end_to_end(tmp_path):
    class DictEnv(gymnasium.Env):
        observation_space = gymnasium.spaces.Dict({"pos": gymnasium.spaces.Box(-1, 1, (2,)),
                                                   "vel": gymnasium.spaces.Box(-1, 1, (1,))})
        action_space = gymnasium.spaces.Box(-1, 1, (2,))
        state_space = gymnasium.spaces.Box(-10, 10, (4,))

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self._obs(), {}

        def _obs(self):
            return {"pos": self.np_random.uniform(-1, 1, 2).astype(np.float32), "vel": np.zeros(1, np.float32)}

        def state(self):
            return np.full(4, self.t, np.float32)

        def step(self, action):
            self.t += 1
            return self._obs(), -float(np.sum(action ** 2)), False, self.t >= 20, {}

    env = wrap_env(DictEnv())
    agent = ddpgx.DDPG(models=small_models(env.action_space), memory=RandomMemory(memory_size=100),
                       observation_space=env.observation_space, state_space=env.state_space,
                       action_space=env.action_space,
                       cfg={"batch_size": 8, "learning_starts": 10, "exploration_noise": GaussianNoise,
                            "state_preprocessor": RunningStandardScaler,
                            "experiment": {"directory": str(tmp_path), "write_interval": 0,
                                           "checkpoint_interval": 0}})
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 45, "headless": True}).train()
    assert int(agent.train_state.step) == 35
    data = agent.memory.state.data
    assert set(data.observations) == {"pos", "vel"} and data.states.shape == (100, 4)
    # The state recorded at step t is t within the episode; the final observation of a truncated episode is kept.
    np.testing.assert_array_equal(np.asarray(data.states[:3, 0]), [0, 1, 2])
    np.testing.assert_array_equal(np.asarray(data.next_states[19, 0]), 20)
    assert float(agent.train_state.state_stats.count) > 0


# ---------------------------------------------------------------------------------------------------------------------
# Save, load, continue: exactly the same parameters as an uninterrupted run.


def _pendulum_agent():
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    return env, resume_checks.make_agent(env)


def test_save_load_continue_equals_an_uninterrupted_run(tmp_path):
    env, whole = _pendulum_agent()
    whole.init(trainer_cfg={"timesteps": 300})
    whole.enable_training_mode(True)
    obs, _ = env.reset(seed=3)
    resume_checks.steps(env, whole, obs, 0, 300, 300)

    env2, first = _pendulum_agent()
    first.init(trainer_cfg={"timesteps": 300})
    first.enable_training_mode(True)
    obs, _ = env2.reset(seed=3)
    obs = resume_checks.steps(env2, first, obs, 0, 150, 300)
    first.save(str(tmp_path / "ckpt"))
    _, second = _pendulum_agent()  # a fresh agent, different objects, same construction
    second.init(trainer_cfg={"timesteps": 300})
    second.enable_training_mode(True)
    second.load(str(tmp_path / "ckpt"))
    resume_checks.steps(env2, second, obs, 150, 300, 300)  # the same environment continues

    assert leaves_equal(jax.tree.leaves(ddpgx.checkpoints.train_state_tree(whole.train_state)),
                        jax.tree.leaves(ddpgx.checkpoints.train_state_tree(second.train_state)))
    assert leaves_equal(whole.memory.state, second.memory.state)
    assert int(second.train_state.step) == 280


def test_load_rejects_a_mismatched_checkpoint(tmp_path):
    agent = make_agent(tmp_path)
    agent.save(str(tmp_path / "ckpt"))
    other = ddpgx.DDPG(models={"policy": None, "critic": None, "target_policy": None, "target_critic": None},
                       memory=RandomMemory(memory_size=256), observation_space=OBS, action_space=ACT)
    with pytest.raises(ValueError, match="does not match this agent"):
        other.load(str(tmp_path / "ckpt"))
    with pytest.raises(ValueError, match="does not exist"):
        agent.load(str(tmp_path / "missing"))


# ---------------------------------------------------------------------------------------------------------------------
# TensorBoard.


def test_tensorboard_files_hold_skrl_tags(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    agent = ddpgx.DDPG(models=small_models(), memory=RandomMemory(memory_size=1000),
                       observation_space=env.observation_space, action_space=env.action_space,
                       cfg={"batch_size": 16, "learning_starts": 10, "random_timesteps": 10,
                            "exploration_noise": GaussianNoise,
                            "experiment": {"directory": str(tmp_path), "experiment_name": "tb", "write_interval": 100,
                                           "checkpoint_interval": 0}})
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 400, "headless": True}).train()
    agent.close()
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {
        "Reward / Total reward (mean)", "Reward / Total reward (max)", "Reward / Total reward (min)",
        "Reward / Instantaneous reward (mean)", "Loss / Critic loss", "Loss / Policy loss",
        "Q-network / Q1 (max)", "Q-network / Q1 (min)", "Q-network / Q1 (mean)", "Target / Target (max)",
        "Target / Target (min)", "Target / Target (mean)", "Exploration / Exploration noise (max)",
        "Exploration / Exploration noise (min)", "Exploration / Exploration noise (mean)",
        "Episode / Total timesteps (mean)", "Stats / Inference time (ms)", "Stats / Env stepping time (ms)",
    }
    assert expected <= tags, expected - tags
    assert [e.step for e in acc.Scalars("Loss / Critic loss")] == [100, 200, 300, 400]
    assert acc.Scalars("Episode / Total timesteps (mean)")[-1].value == 200.0
    assert all(-16.3 * 200 <= e.value <= 0 for e in acc.Scalars("Reward / Total reward (mean)"))


# ---------------------------------------------------------------------------------------------------------------------
# Bad input.


def test_bad_input_raises_clear_errors():
    with pytest.raises(KeyError, match="'critic'"):
        ddpgx.DDPG(models={"policy": None}, memory=RandomMemory(memory_size=10), observation_space=OBS,
                   action_space=ACT)
    with pytest.raises(KeyError, match="'policy'"):
        ddpgx.DDPG(models={}, observation_space=OBS, action_space=ACT)
    ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=ACT)  # targets optional outside training
    with pytest.raises(ValueError, match="cfg has no key 'batchsize'"):
        ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=ACT, cfg={"batchsize": 32})
    cfg = ddpgx.DDPG_CFG()
    with pytest.raises(AttributeError):
        cfg.batchsize = 32  # slotted: a misspelt field cannot be set silently
    with pytest.raises(ValueError, match="discount_factor=1.5 is invalid"):
        ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=ACT, cfg={"discount_factor": 1.5})
    with pytest.raises(ValueError, match="experiment.write_interval='often' is invalid"):
        ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=ACT,
                   cfg={"experiment": {"write_interval": "often"}})
    with pytest.raises(ValueError, match="DDPG needs a bounded Box"):
        ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=gymnasium.spaces.Discrete(3))
    with pytest.raises(ValueError, match="observation_space"):
        ddpgx.DDPG(models={"policy": None}, observation_space=gymnasium.spaces.Discrete(3), action_space=ACT)
    with pytest.raises(ValueError, match="observation_space is required"):
        ddpgx.DDPG(models={"policy": None}, action_space=ACT)
    with pytest.raises(ValueError, match="exploration_noise .* does not take"):
        ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=ACT,
                   cfg={"exploration_noise": GaussianNoise, "exploration_noise_kwargs": {"sigma": 1.0}})
    with pytest.raises(ValueError, match="observation_preprocessor=.* is not supported"):
        ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=ACT,
                   cfg={"observation_preprocessor": dict})
    with pytest.raises(ValueError, match="device='tpu:3' is not available"):
        ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=ACT, device="tpu:3")
    agent = ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=ACT)
    with pytest.raises(ValueError, match=r"observations has shape \(1, 4\)"):
        agent.act(np.zeros((1, 4), np.float32), None, timestep=0, timesteps=1)
    agent.enable_training_mode(True)
    with pytest.raises(ValueError, match="has no memory"):
        record(agent, 1)
    with pytest.raises(ValueError, match="RandomMemory memory_size=0 is invalid"):
        RandomMemory(memory_size=0)
    with pytest.raises(ValueError, match="trainer timesteps=0 is invalid"):
        SequentialTrainer(env=gymnasium.make("Pendulum-v1"), agents=agent, cfg={"timesteps": 0})
    with pytest.raises(ValueError, match="2 agents given"):
        SequentialTrainer(env=gymnasium.make("Pendulum-v1"), agents=[agent, agent], cfg={"timesteps": 1})


def test_vector_environments_store_one_transition_per_env_and_final_observations(tmp_path):
    # 3 Pendulum environments (gymnasium's default NEXT_STEP autoreset, converted by wrap_env) for 210 steps: each
    # truncates once at step 200; its stored next observation there is the true final one, not the reset one.
    env = wrap_env(gymnasium.make_vec("Pendulum-v1", num_envs=3, vectorization_mode="sync"))
    agent = ddpgx.DDPG(models=small_models(), memory=RandomMemory(memory_size=300, num_envs=3),
                       observation_space=env.observation_space, action_space=env.action_space,
                       cfg={"batch_size": 16, "learning_starts": 50, "exploration_noise": OrnsteinUhlenbeckNoise,
                            "experiment": {"directory": str(tmp_path), "write_interval": 0,
                                           "checkpoint_interval": 0}})
    summary = SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 210, "headless": True}).train()
    assert len(agent.memory) == 630 and int(agent.train_state.step) == 160
    assert len(summary["episode_returns"]) == 3 and summary["episode_end_timesteps"] == [200] * 3
    data = agent.memory.state.data
    obs, nxt = np.asarray(data.observations), np.asarray(data.next_observations)
    # Row 3*t + i is env i at step t: consecutive steps chain (next observation of t = observation of t + 1) except
    # across the truncation at t = 199, where the next observation continues the old episode's dynamics instead.
    np.testing.assert_array_equal(nxt[3 * 198:3 * 199], obs[3 * 199:3 * 200])
    assert not np.allclose(nxt[3 * 199:3 * 200], obs[3 * 200:3 * 201])
    assert np.all(np.abs(nxt[3 * 199:3 * 200, 2] - obs[3 * 199:3 * 200, 2]) < 1.5)  # angular velocity continues


@pytest.mark.parametrize("mode", ["raise", "skip"])
def test_nonfinite_transitions_raise_naming_env_step_and_field_or_are_skipped(mode):
    agent = ddpgx.DDPG(models=small_models(), memory=RandomMemory(memory_size=10, num_envs=3),
                       observation_space=OBS, action_space=ACT,
                       cfg={"nonfinite_transitions": mode, "learning_starts": 100,
                            "experiment": {"write_interval": 0, "checkpoint_interval": 0}})
    agent.enable_training_mode(True)
    obs = np.zeros((3, 3), np.float32)
    nxt = obs.copy()
    nxt[2, 1] = np.nan
    rewards = np.array([[0.0], [np.inf], [0.0]], np.float32)
    step = dict(observations=obs, states=None, actions=np.zeros((3, 1), np.float32), rewards=rewards,
                next_observations=nxt, next_states=None, terminated=np.zeros((3, 1), bool),
                truncated=np.zeros((3, 1), bool), infos={}, timestep=7, timesteps=10)
    if mode == "raise":
        with pytest.raises(ValueError, match="non-finite rewards .* from environment 1 at timestep 7"):
            agent.record_transition(**step)
        assert len(agent.memory) == 0
    else:
        agent.record_transition(**step)
        agent.post_interaction(timestep=7, timesteps=10)
        assert len(agent.memory) == 1 and agent.skipped_transitions == 2
        assert np.all(np.isfinite(np.asarray(agent.memory.state.data.next_observations[0])))
