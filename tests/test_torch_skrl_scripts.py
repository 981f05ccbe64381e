"""skrl 2.x torch scripts run with ddpgx_torch imports: the documented DDPG script (models dict of
``DeterministicMixin, Model`` subclasses, ``RandomMemory``, ``DDPG_CFG`` fields set one by one, the shared
``SequentialTrainer`` over ``wrap_env``) and skrl's RNN DDPG example models (LSTM, GRU, RNN on Pendulum without its
velocity), written anew with the structure of skrl's ``torch_gymnasium_pendulumnovel_ddpg_{lstm,gru,rnn}.py``."""

from __future__ import annotations

import copy
import os

import gymnasium
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # 2 shared cores: see test_torch_features.py

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

# --- the import block of a skrl 2.x script, with "skrl.*.torch" changed to "ddpgx_torch.*" ----------------------
from ddpgx_torch import DDPG, DDPG_CFG, DDPG_RNN  # noqa: E402
from ddpgx_torch.envs import wrap_env  # noqa: E402
from ddpgx_torch.memories import RandomMemory  # noqa: E402
from ddpgx_torch.models import DeterministicMixin, Model, set_seed  # noqa: E402
from ddpgx_torch.noises import OrnsteinUhlenbeckNoise  # noqa: E402
from ddpgx_torch.trainers import SequentialTrainer  # noqa: E402

import ddpgx_torch  # noqa: E402


class Actor(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device, clip_actions=False):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device)
        DeterministicMixin.__init__(self, clip_actions)
        self.linear_layer_1 = nn.Linear(self.num_observations, 64)
        self.linear_layer_2 = nn.Linear(64, 64)
        self.action_layer = nn.Linear(64, self.num_actions)

    def compute(self, inputs, role):
        x = F.relu(self.linear_layer_1(inputs["observations"]))
        x = F.relu(self.linear_layer_2(x))
        return 2 * torch.tanh(self.action_layer(x)), {}


class Critic(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device, clip_actions=False):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device)
        DeterministicMixin.__init__(self, clip_actions)
        self.net = nn.Sequential(nn.Linear(self.num_observations + self.num_actions, 64), nn.ReLU(),
                                 nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    def compute(self, inputs, role):
        return self.net(torch.cat([inputs["observations"], inputs["taken_actions"]], dim=1)), {}


def test_skrl_2x_ddpg_script_runs_with_ddpgx_torch_imports(tmp_path):
    set_seed(42)
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    device = env.device
    memory = RandomMemory(memory_size=15000, num_envs=env.num_envs, device=device, replacement=False)
    models = {}
    models["policy"] = Actor(env.observation_space, env.state_space, env.action_space, device)
    models["target_policy"] = Actor(env.observation_space, env.state_space, env.action_space, device)
    models["critic"] = Critic(env.observation_space, env.state_space, env.action_space, device)
    models["target_critic"] = Critic(env.observation_space, env.state_space, env.action_space, device)
    for model in models.values():
        model.init_parameters(method_name="normal_", mean=0.0, std=0.1)
    cfg = DDPG_CFG()
    cfg.exploration_noise = OrnsteinUhlenbeckNoise
    cfg.exploration_noise_kwargs = {"theta": 0.15, "sigma": 0.1, "base_scale": 1.0, "device": device}
    cfg.discount_factor = 0.98
    cfg.batch_size = 100
    cfg.random_timesteps = 100
    cfg.learning_starts = 100
    cfg.experiment.write_interval = 50
    cfg.experiment.checkpoint_interval = 200
    cfg.experiment.directory = str(tmp_path / "runs")
    cfg.experiment.experiment_name = "pendulum"
    agent = DDPG(models=models, memory=memory, cfg=cfg, observation_space=env.observation_space,
                 state_space=env.state_space, action_space=env.action_space, device=device)
    # The agent trains the script's own modules, and its targets start as copies of them.
    assert agent.policy is models["policy"] and agent.target_critic is models["target_critic"]
    for p, q in zip(models["policy"].parameters(), models["target_policy"].parameters(), strict=True):
        assert torch.equal(p, q)
    start = [p.detach().clone() for p in models["policy"].parameters()]

    trainer = SequentialTrainer(cfg={"timesteps": 400, "headless": True}, env=env, agents=[agent])
    summary = trainer.train()
    assert len(memory) == 400
    assert agent.train_state.step == 300  # one gradient step per timestep from learning_starts on
    assert len(summary["episode_returns"]) == 2  # Pendulum truncates at 200 steps
    assert any(not torch.equal(a, b) for a, b in zip(start, models["policy"].parameters(), strict=True))
    checkpoints = sorted(os.listdir(tmp_path / "runs" / "pendulum" / "checkpoints"))
    assert checkpoints == ["agent_200.pt", "agent_400.pt", "best_agent.pt"]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "runs" / "pendulum"))

    trainer.eval()  # evaluation mode: no memory writes, no updates
    assert len(memory) == 400 and agent.train_state.step == 300

    # Same-step autoreset: the stored next observation at an episode end is the episode's true last observation
    # (the wrapper already returned the next episode's first one), so it continues the stored trajectory.
    data = memory.buffer.data
    last = 199  # the first episode's final transition
    cos, sin = data.observations[last, 0, 0], data.observations[last, 0, 1]
    next_cos, next_sin = data.next_observations[last, 0, 0], data.next_observations[last, 0, 1]
    step_angle = torch.atan2(sin * next_cos - cos * next_sin, cos * next_cos + sin * next_sin).abs()
    assert float(step_angle) < 8.0 * 0.05 + 1e-4  # at most max_speed * dt from the previous angle


# ---------------------------------------------------------------------------------------------------------------------
# skrl's RNN DDPG example models (pendulumnovel ddpg lstm / gru / rnn), structure kept, sizes as arguments.


class RecurrentActor(DeterministicMixin, Model):
    def __init__(self, observation_space, state_space, action_space, device, clip_actions=False, *, cell="lstm",
                 num_envs=1, num_layers=1, hidden_size=400, sequence_length=20):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device)
        DeterministicMixin.__init__(self, clip_actions)
        self.cell, self.num_envs, self.num_layers = cell, num_envs, num_layers
        self.hidden_size, self.sequence_length = hidden_size, sequence_length
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.rnn = rnn(input_size=self.num_observations, hidden_size=hidden_size, num_layers=num_layers,
                       batch_first=True)  # (batch, sequence, features)
        self.linear_layer_1 = nn.Linear(hidden_size, 400)
        self.linear_layer_2 = nn.Linear(400, 300)
        self.action_layer = nn.Linear(300, self.num_actions)

    def get_specification(self):
        size = (self.num_layers, self.num_envs, self.hidden_size)
        return {"rnn": {"sequence_length": self.sequence_length, "sizes": [size, size] if self.cell == "lstm"
                        else [size]}}

    def run_rnn(self, inputs, role, sequence_index, sequences_only=False):
        """skrl's example body: the stored hidden state of each sequence's first (targets: second) step, a reset
        in the middle of a sequence where an episode terminated. With ``sequences_only`` (skrl's critics) the input
        is always reshaped into sequences, whatever the training mode."""
        observations = inputs["observations"]
        terminated = inputs.get("terminated", None)
        states = list(inputs["rnn"])
        if self.training or sequences_only:
            rnn_input = observations.view(-1, self.sequence_length, observations.shape[-1])  # (N, L, Hin)
            states = [s.view(self.num_layers, -1, self.sequence_length, s.shape[-1])[:, :, sequence_index, :]
                      .contiguous() for s in states]
            if terminated is not None and torch.any(terminated):
                outputs = []
                terminated = terminated.view(-1, self.sequence_length)
                indexes = [0] + (terminated[:, :-1].any(dim=0).nonzero(as_tuple=True)[0] + 1).tolist() + \
                    [self.sequence_length]
                for i in range(len(indexes) - 1):
                    i0, i1 = indexes[i], indexes[i + 1]
                    output, states = self._step(rnn_input[:, i0:i1, :], states)
                    for s in states:  # in place on the RNN's output, as skrl's examples do
                        s[:, terminated[:, i1 - 1], :] = 0
                    outputs.append(output)
                rnn_output = torch.cat(outputs, dim=1)
            else:
                rnn_output, states = self._step(rnn_input, states)
        else:  # rollout: one step of num_envs environments
            rnn_output, states = self._step(observations.view(-1, 1, observations.shape[-1]), states)
        return torch.flatten(rnn_output, start_dim=0, end_dim=1), {"rnn": states}  # (N * L, Hout)

    def _step(self, x, states):
        if self.cell == "lstm":
            output, (h, c) = self.rnn(x, (states[0], states[1]))
            return output, [h, c]
        output, h = self.rnn(x, states[0])
        return output, [h]

    def compute(self, inputs, role):
        rnn_output, outputs = self.run_rnn(inputs, role, 1 if role == "target_policy" else 0)
        x = F.relu(self.linear_layer_1(rnn_output))
        x = F.relu(self.linear_layer_2(x))
        return 2 * torch.tanh(self.action_layer(x)), outputs  # Pendulum-v1's actions are in [-2, 2]


class RecurrentCritic(RecurrentActor):
    def __init__(self, observation_space, state_space, action_space, device, clip_actions=False, **kwargs):
        super().__init__(observation_space, state_space, action_space, device, clip_actions, **kwargs)
        del self.action_layer
        self.linear_layer_1 = nn.Linear(self.hidden_size + self.num_actions, 400)
        self.linear_layer_3 = nn.Linear(300, 1)

    def compute(self, inputs, role):  # the critic is only used in training: always sequences, as in skrl
        rnn_output, outputs = self.run_rnn(inputs, role, 1 if role == "target_critic" else 0, sequences_only=True)
        x = F.relu(self.linear_layer_1(torch.cat([rnn_output, inputs["taken_actions"]], dim=1)))
        x = F.relu(self.linear_layer_2(x))
        return self.linear_layer_3(x), outputs


class NoVelocityWrapper(gymnasium.ObservationWrapper):
    def observation(self, observation):
        return observation * np.array([1, 1, 0])  # x, y, (masked) angular velocity (float64, as in skrl)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_skrl_rnn_ddpg_example_models_train_with_ddpgx_torch(cell, tmp_path):
    set_seed(0)
    env = wrap_env(NoVelocityWrapper(gymnasium.make("Pendulum-v1")))
    device = env.device
    memory = RandomMemory(memory_size=20000, num_envs=env.num_envs, device=device, replacement=False)
    kwargs = dict(cell=cell, num_envs=env.num_envs, hidden_size=16, sequence_length=8)
    models = {}
    models["policy"] = RecurrentActor(env.observation_space, env.state_space, env.action_space, device, **kwargs)
    models["target_policy"] = RecurrentActor(env.observation_space, env.state_space, env.action_space, device,
                                             **kwargs)
    models["critic"] = RecurrentCritic(env.observation_space, env.state_space, env.action_space, device, **kwargs)
    models["target_critic"] = RecurrentCritic(env.observation_space, env.state_space, env.action_space, device,
                                              **kwargs)
    for model in models.values():
        model.init_parameters(method_name="normal_", mean=0.0, std=0.1)
    cfg = DDPG_CFG()
    cfg.exploration_noise = OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.1, base_scale=1.0, device=device)
    cfg.discount_factor = 0.98
    cfg.batch_size = 16
    cfg.random_timesteps = 0
    cfg.learning_starts = 150
    cfg.experiment.write_interval = 0
    cfg.experiment.checkpoint_interval = 0
    cfg.experiment.directory = str(tmp_path)
    agent = DDPG_RNN(models=models, memory=memory, cfg=cfg, observation_space=env.observation_space,
                     action_space=env.action_space, device=device)
    assert DDPG_RNN is DDPG and agent.train_state.spec.rnn.sequence_length == 8
    start = [p.detach().clone() for p in models["critic"].parameters()]
    initial_policy = copy.deepcopy(models["policy"])  # acts until learning starts at step 150
    SequentialTrainer(cfg={"timesteps": 250, "headless": True, "disable_progressbar": True},
                      env=env, agents=[agent]).train()
    assert agent.train_state.step == 100

    # Hidden states are stored per transition: the policy's state after step t is the one stored with step t + 1,
    # and the episode boundary (step 200 starts a new episode) stores zeros.
    stored = memory.buffer.data.rnn_states[0][:250, 0]  # [t, num_layers, hidden]
    assert torch.count_nonzero(stored[0]) == 0 and torch.count_nonzero(stored[200]) == 0
    assert torch.count_nonzero(stored[199]) > 0 and torch.count_nonzero(stored[201]) > 0
    with torch.no_grad():
        initial_policy.eval()
        obs = memory.buffer.data.observations[10, 0][None]
        _, outputs = initial_policy.act({"observations": obs, "states": None,
                                           "rnn": [s[10, 0][:, None] for s in memory.buffer.data.rnn_states]},
                                          role="policy")
        torch.testing.assert_close(outputs["rnn"][0][:, 0], memory.buffer.data.rnn_states[0][11, 0])

    # Updates went through the sequence path and trained the critic; the update's numbers are finite.
    assert any(not torch.equal(a, b) for a, b in zip(start, models["critic"].parameters(), strict=True))
    _, metrics = ddpgx_torch.update_from_replay(agent.train_state, memory.buffer)
    assert all(bool(torch.isfinite(v)) for v in metrics.values()), metrics


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_skrl_rnn_example_models_update_across_terminations_inside_sequences(cell):
    """A sequence with an episode that terminates in its middle takes skrl's reset branch (the hidden states zeroed
    in place on the RNN's output, under autograd): the update runs, its numbers are finite, and the critic's values
    after the cut do not depend on the observations before it."""
    obs_space = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
    act_space = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
    kwargs = dict(cell=cell, num_envs=1, hidden_size=8, sequence_length=4)
    policy = RecurrentActor(obs_space, None, act_space, "cpu", **kwargs)
    critic = RecurrentCritic(obs_space, None, act_space, "cpu", **kwargs)
    config = ddpgx_torch.DDPGConfig(batch_size=6)
    ts = ddpgx_torch.init(0, config, obs_space, act_space, policy=policy, critic=critic)
    g = torch.Generator().manual_seed(0)
    states = 2 if cell == "lstm" else 1
    terminated = torch.zeros(6, 4)
    terminated[::2, 1] = 1.0  # every other sequence: an episode ends at step 1
    batch = ddpgx_torch.Transition(
        observations=torch.randn(6, 4, 3, generator=g), actions=torch.rand(6, 4, 1, generator=g),
        rewards=torch.randn(6, 4, generator=g), next_observations=torch.randn(6, 4, 3, generator=g),
        terminated=terminated, truncated=torch.zeros(6, 4),
        rnn_states=[torch.randn(6, 4, 1, 8, generator=g) for _ in range(states)])
    before = [p.detach().clone() for p in critic.parameters()]
    ts, metrics = ddpgx_torch.update(ts, batch)
    assert all(bool(torch.isfinite(v)) for v in metrics.values()), metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, critic.parameters(), strict=True))
    critic.train()
    inputs = {"observations": batch.observations.reshape(-1, 3), "taken_actions": batch.actions.reshape(-1, 1),
              "terminated": terminated.reshape(-1, 1).bool(),
              "rnn": [s.reshape(-1, 1, 8).transpose(0, 1) for s in batch.rnn_states]}
    with torch.no_grad():
        q = critic.act(inputs, role="critic")[0].reshape(6, 4)
        changed = dict(inputs, observations=inputs["observations"].reshape(6, 4, 3).clone())
        changed["observations"][:, :2] += 1.0  # before and at the termination step
        changed["observations"] = changed["observations"].reshape(-1, 3)
        q_changed = critic.act(changed, role="critic")[0].reshape(6, 4)
    torch.testing.assert_close(q_changed[::2, 2:], q[::2, 2:])  # after the cut: reset, unaffected
    assert not torch.allclose(q_changed[1::2, 2:], q[1::2, 2:])  # no cut: the change carries through
