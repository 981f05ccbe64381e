"""skrl 2.x's torch API as a ported script meets it next: noises with ``device=``, ``sample(size)`` and
``sample_like(tensor)``; ``RandomMemory``'s default ``replacement`` and its methods (``create_tensor``,
``add_samples``, ``sample``, ``sample_by_index``, ``save``, ``load``, ``reset``); Weights & Biases logging with
``experiment.wandb``; ``KeyError`` for a missing model. skrl's own classes serve as the reference where installed."""

from __future__ import annotations

import csv
import inspect
import sys
import types

import gymnasium
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # 2 shared cores

from torch import nn  # noqa: E402

import ddpgx_torch  # noqa: E402
from ddpgx_torch import DDPG, DDPG_CFG  # noqa: E402
from ddpgx_torch import noise as noise_lib  # noqa: E402
from ddpgx_torch.memories import RandomMemory  # noqa: E402
from ddpgx_torch.noises import GaussianNoise, OrnsteinUhlenbeckNoise  # noqa: E402

OBS = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)


# -- noises ----------------------------------------------------------------------------------------------------------
def test_gaussian_noise_samples_like_skrl():
    noise = GaussianNoise(mean=0.5, std=0.2, device="cpu")
    assert isinstance(noise, noise_lib.GaussianNoise) and noise.device == torch.device("cpu")
    torch.manual_seed(3)
    values = noise.sample((4, 2))
    torch.manual_seed(3)
    expected = 0.5 + 0.2 * torch.randn(4, 2)  # N(mean, std^2) from torch's global generator, as skrl
    torch.testing.assert_close(values, expected, rtol=0, atol=0)
    x = torch.zeros(7, 3)
    assert noise.sample_like(x).shape == (7, 3) and noise.sample(torch.Size([5])).shape == (5,)
    with pytest.raises(ValueError, match="GaussianNoise.std=-1"):
        GaussianNoise(mean=0.0, std=-1, device="cpu")


def test_ornstein_uhlenbeck_noise_samples_the_process_and_resets():
    theta, sigma, base_scale, mean, std = 0.15, 0.3, 0.5, 0.1, 2.0
    noise = OrnsteinUhlenbeckNoise(theta=theta, sigma=sigma, base_scale=base_scale, mean=mean, std=std, device="cpu")
    torch.manual_seed(0)
    got = [noise.sample((3, 1)) for _ in range(3)]
    torch.manual_seed(0)
    x = torch.zeros(3, 1)
    for value in got:  # x <- (1 - theta) x + sigma * N(mean, std^2); the value is base_scale * x
        x = (1 - theta) * x + sigma * (mean + std * torch.randn(3, 1))
        torch.testing.assert_close(value, base_scale * x)
    noise.reset()
    torch.manual_seed(0)
    torch.testing.assert_close(noise.sample_like(torch.empty(3, 1)), got[0])  # the process started again from 0
    assert noise.sample((2, 2)).shape == (2, 2)  # another size starts a process of that size


def test_skrl_noise_classes_configure_the_agent():
    cfg = DDPG_CFG()
    cfg.exploration_noise = OrnsteinUhlenbeckNoise
    cfg.exploration_noise_kwargs = {"theta": 0.15, "sigma": 0.1, "base_scale": 1.0, "device": "cpu"}
    agent = DDPG(models={"policy": nn.Sequential(nn.Linear(3, 1), nn.Tanh()), "critic": _Critic()},
                 memory=RandomMemory(memory_size=10), cfg=cfg, observation_space=OBS, action_space=ACT)
    assert agent.train_state.noise == noise_lib.OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.1, base_scale=1.0)
    assert isinstance(agent.train_state.noise, OrnsteinUhlenbeckNoise)  # the script's class, with sample()
    assert agent.train_state.noise != noise_lib.OrnsteinUhlenbeckNoise(theta=0.2, sigma=0.1, base_scale=1.0)


class _Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, actions):
        return self.linear(torch.cat([inputs, actions], dim=1))


# -- RandomMemory ----------------------------------------------------------------------------------------------------
def _skrl_memory_class():
    skrl_memories = pytest.importorskip("skrl.memories.torch")
    return skrl_memories.RandomMemory


def test_random_memory_defaults_to_sampling_without_replacement_as_skrl():
    ours = inspect.signature(RandomMemory).parameters["replacement"].default
    assert ours is False and RandomMemory(memory_size=4).replacement is False
    assert inspect.signature(_skrl_memory_class()).parameters["replacement"].default is ours


def _fill(memory, steps, num_envs, with_extra=True):
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        sample = dict(observations=torch.randn(num_envs, 3, generator=g), actions=torch.randn(num_envs, 1, generator=g),
                      rewards=torch.randn(num_envs, 1, generator=g),
                      next_observations=torch.randn(num_envs, 3, generator=g),
                      terminated=torch.rand(num_envs, 1, generator=g) < 0.2)
        if with_extra:
            sample["log_prob"] = torch.randn(num_envs, 2, generator=g)
        memory.add_samples(**sample)


def _create(memory):
    assert memory.create_tensor("observations", size=OBS, dtype=torch.float32)
    assert memory.create_tensor("actions", size=ACT, dtype=torch.float32)
    assert memory.create_tensor("rewards", size=1, dtype=torch.float32)
    assert memory.create_tensor("next_observations", size=OBS, dtype=torch.float32)
    assert memory.create_tensor("terminated", size=1, dtype=torch.bool)
    assert memory.create_tensor("log_prob", size=2, dtype=torch.float32)


def test_random_memory_stores_and_indexes_like_skrls():
    """The same skrl-style calls on skrl's RandomMemory and ours hold the same data, and the same flat indexes
    select the same entries."""
    skrl_memory = _skrl_memory_class()(memory_size=6, num_envs=2, device="cpu")
    memory = RandomMemory(memory_size=6, num_envs=2, device="cpu")
    for m in (skrl_memory, memory):
        _create(m)
    assert torch.isnan(memory.tensors["log_prob"]).all()  # created NaN-filled, as skrl's
    assert not memory.create_tensor("log_prob", size=2)  # exists already
    with pytest.raises(ValueError, match="'log_prob' exists with size"):
        memory.create_tensor("log_prob", size=5)
    assert memory.create_tensor("unused", size=None) is False
    for m in (skrl_memory, memory):
        _fill(m, 4, 2)
    assert len(memory) == len(skrl_memory) == 8
    names = ["observations", "actions", "rewards", "next_observations", "terminated", "log_prob"]
    for name in names:
        assert memory.tensors[name].shape == skrl_memory.tensors[name].shape, name
        torch.testing.assert_close(memory.tensors[name][:4], skrl_memory.tensors[name][:4], msg=name)
    indexes = torch.tensor([0, 3, 5, 6])
    ours = memory.sample_by_index(names, indexes=indexes)[0]
    theirs = skrl_memory.sample_by_index(names, indexes=indexes)[0]
    for name, a, b in zip(names, ours, theirs, strict=True):
        torch.testing.assert_close(a, b, msg=name)
    halves = memory.sample_by_index(["rewards"], indexes=indexes, mini_batches=2)
    assert [len(batch[0]) for batch in halves] == [2, 2]
    assert memory.sample_by_index(["nothing"], indexes=indexes) == [[None]]
    for mini_batches in (1, 2):  # every entry, step-major, as skrl's sample_all
        ours_all = memory.sample_all(["observations", "rewards"], mini_batches=mini_batches)
        theirs_all = skrl_memory.sample_all(["observations", "rewards"], mini_batches=mini_batches)
        assert [len(batch[0]) for batch in ours_all] == [len(batch[0]) for batch in theirs_all] == [12 // mini_batches] * mini_batches
        for i in range(2):  # the 8 filled entries (4 steps x 2 environments) agree
            torch.testing.assert_close(torch.cat([batch[i] for batch in ours_all])[:8],
                                       torch.cat([batch[i] for batch in theirs_all])[:8])
    with pytest.raises(ValueError, match="sequence_length=4"):
        memory.sample_all(["rewards"], sequence_length=4)
    memory.share_memory()
    assert all(t.is_shared() for t in memory.tensors.values())


def test_random_memory_samples_distinct_entries_and_remembers_the_indexes():
    memory = RandomMemory(memory_size=5, num_envs=2)
    _fill(memory, 5, 2, with_extra=False)
    (observations, rewards), = memory.sample(["observations", "rewards"], batch_size=10)
    assert observations.shape == (10, 3) and rewards.shape == (10, 1)
    indexes = memory.get_sampling_indexes()
    assert sorted(indexes.tolist()) == list(range(10))  # without replacement: every entry once
    (again,), = memory.sample_by_index(["observations"], indexes=indexes)
    torch.testing.assert_close(again, observations)
    batches = memory.sample(["observations"], batch_size=4, mini_batches=2)
    assert len(batches) == 2 and batches[0][0].shape == (2, 3)
    (sequences,), = memory.sample(["observations"], batch_size=3, sequence_length=2)
    flat = memory.tensors["observations"].reshape(-1, 3)
    index = memory.get_sampling_indexes().reshape(3, 2)
    assert bool((index[:, 1] - index[:, 0] == 2).all())  # consecutive steps of one environment
    torch.testing.assert_close(sequences, flat[index.reshape(-1)])


@pytest.mark.parametrize("fmt", ["pt", "npz"])
def test_random_memory_save_load_and_reset(fmt, tmp_path):
    memory = RandomMemory(memory_size=6, num_envs=2)
    _create(memory)
    _fill(memory, 4, 2)
    path = memory.save(str(tmp_path), format=fmt)
    assert path.startswith(str(tmp_path / "memories")) and path.endswith(f".{fmt}")
    loaded = RandomMemory(memory_size=6, num_envs=2)
    loaded.load(path)
    assert len(loaded) == 8 and loaded.buffer.position == memory.buffer.position
    for name, tensor in memory.tensors.items():
        torch.testing.assert_close(loaded.tensors[name], tensor, equal_nan=True, msg=name)
    with pytest.raises(ValueError, match="nothing was loaded"):
        RandomMemory(memory_size=5, num_envs=2).load(path)
    loaded.reset()
    assert len(loaded) == 0
    _fill(loaded, 1, 2)
    assert len(loaded) == 2 and loaded.buffer.position == 1


def test_random_memory_csv_export_and_bad_formats(tmp_path):
    memory = RandomMemory(memory_size=3, num_envs=1, export=True, export_format="csv",
                          export_directory=str(tmp_path))
    _create(memory)
    _fill(memory, 3, 1)  # filling the memory exports it, as skrl
    (path,) = list((tmp_path / "memories").iterdir())
    with open(path) as file:
        rows = list(csv.reader(file))
    assert rows[0][:3] == ["actions.0", "log_prob.0", "log_prob.1"] and len(rows) == 1 + 3
    assert float(rows[1][0]) == pytest.approx(float(memory.tensors["actions"][0, 0, 0]))
    with pytest.raises(ValueError, match="format='json' is invalid"):
        memory.save(str(tmp_path), format="json")
    with pytest.raises(ValueError, match="unsupported format"):
        memory.load(str(path))
    with pytest.raises(ValueError, match="export_format='xls' is invalid"):
        RandomMemory(memory_size=3, export_format="xls")


def test_random_memory_add_samples_errors_name_what_is_missing():
    memory = RandomMemory(memory_size=3)
    with pytest.raises(ValueError, match="at least one tensor"):
        memory.add_samples()
    with pytest.raises(ValueError, match=r"needs \['next_observations', 'terminated'\] too"):
        memory.add_samples(observations=torch.zeros(1, 3), actions=torch.zeros(1, 1), rewards=torch.zeros(1, 1))


# -- Weights & Biases ------------------------------------------------------------------------------------------------
def test_the_torch_agent_writes_to_wandb_when_experiment_wandb_is_set(tmp_path, monkeypatch):
    calls = {"init": [], "log": []}

    class Run:
        def log(self, values, step=None):
            calls["log"].append((dict(values), step))

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: calls["init"].append(kwargs) or Run()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = DDPG_CFG(batch_size=8, random_timesteps=0, learning_starts=4)
    cfg.experiment.directory = str(tmp_path)
    cfg.experiment.experiment_name = "run"
    cfg.experiment.write_interval = 5
    cfg.experiment.checkpoint_interval = 0
    cfg.experiment.wandb = True
    cfg.experiment.wandb_kwargs = {"project": "ddpgx"}
    agent = DDPG(models={"policy": nn.Sequential(nn.Linear(3, 1), nn.Tanh()), "critic": _Critic()},
                 memory=RandomMemory(memory_size=32), cfg=cfg, observation_space=OBS, action_space=ACT)
    agent.init(trainer_cfg={"timesteps": 10})
    assert calls["init"] == [{"project": "ddpgx", "name": "run",
                              "config": {"agent": repr(agent.cfg), "trainer": {"timesteps": 10}}}]
    agent.enable_training_mode(True)
    obs = np.zeros((1, 3), np.float32)
    for t in range(10):
        actions, _ = agent.act(obs, None, timestep=t, timesteps=10)
        agent.record_transition(observations=obs, states=None, actions=actions, rewards=np.ones((1, 1)),
                                next_observations=obs, next_states=None, terminated=np.zeros((1, 1), bool),
                                truncated=np.array([[t == 6]]), infos={}, timestep=t, timesteps=10)
        agent.post_interaction(timestep=t, timesteps=10)
    assert [step for _, step in calls["log"]] == [5, 10]
    logged = calls["log"][-1][0]
    assert "Loss / Critic loss" in logged  # updates ran from timestep 4
    for tag, value in logged.items():  # the values written to TensorBoard at that step
        assert agent.tracker.history[tag][-1] == (10, value), tag
    assert logged["Reward / Total reward (mean)"] == pytest.approx(7.0)  # the episode that ended at t=6


def test_wandb_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    cfg = DDPG_CFG()
    cfg.experiment.directory = str(tmp_path)
    cfg.experiment.wandb = True
    agent = DDPG(models={"policy": nn.Sequential(nn.Linear(3, 1), nn.Tanh())}, cfg=cfg, observation_space=OBS,
                 action_space=ACT)
    with pytest.raises(ValueError, match="needs the wandb package"):
        agent.init(trainer_cfg={"timesteps": 10})


# -- missing models --------------------------------------------------------------------------------------------------
def test_a_missing_model_is_a_key_error_naming_it():
    policy = nn.Sequential(nn.Linear(3, 1), nn.Tanh())
    with pytest.raises(KeyError, match="'policy'"):
        DDPG(models={"critic": _Critic()}, observation_space=OBS, action_space=ACT)
    with pytest.raises(KeyError, match="'critic'"):
        DDPG(models={"policy": policy}, memory=RandomMemory(memory_size=4), observation_space=OBS, action_space=ACT)
    with pytest.raises(ValueError, match="expected a dict of models"):
        DDPG(models=[policy], observation_space=OBS, action_space=ACT)
    assert ddpgx_torch.DDPG(models={"policy": policy}, observation_space=OBS, action_space=ACT).policy is policy
