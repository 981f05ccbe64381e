"""Users' ReLU MLP models (skrl's example models, written here in their pattern) are recognised by
``ddpgx_torch.core.traced`` and trained on the fused kernels with explicit gradients, with the numbers of the autograd
path; anything else is left to autograd."""

from __future__ import annotations

import copy

import gymnasium
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # 2 shared cores

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import ddpgx_torch  # noqa: E402
from ddpgx_torch.core import ddpg as core  # noqa: E402
from ddpgx_torch.core import traced  # noqa: E402
from ddpgx_torch.models import DeterministicMixin, Model  # noqa: E402

OBS = gymnasium.spaces.Box(-8, 8, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2, 2, (1,), np.float32)


class Actor(DeterministicMixin, Model):  # skrl's Pendulum example actor, in its pattern
    def __init__(self, observation_space, state_space, action_space, device, clip_actions=False, hidden=64):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device)
        DeterministicMixin.__init__(self, clip_actions=clip_actions)
        self.linear_layer_1 = nn.Linear(self.num_observations, hidden)
        self.linear_layer_2 = nn.Linear(hidden, hidden)
        self.action_layer = nn.Linear(hidden, self.num_actions)

    def compute(self, inputs, role):
        x = F.relu(self.linear_layer_1(inputs["observations"]))
        x = F.relu(self.linear_layer_2(x))
        return 2 * torch.tanh(self.action_layer(x)), {}


class Critic(DeterministicMixin, Model):  # skrl's Pendulum example critic, in its pattern
    def __init__(self, observation_space, state_space, action_space, device, clip_actions=False, hidden=64):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device)
        DeterministicMixin.__init__(self, clip_actions=clip_actions)
        self.linear_layer_1 = nn.Linear(self.num_observations + self.num_actions, hidden)
        self.linear_layer_2 = nn.Linear(hidden, hidden)
        self.linear_layer_3 = nn.Linear(hidden, 1)

    def compute(self, inputs, role):
        x = F.relu(self.linear_layer_1(torch.cat([inputs["observations"], inputs["taken_actions"]], dim=1)))
        x = F.relu(self.linear_layer_2(x))
        return self.linear_layer_3(x), {}


class ActionsFirstCritic(Critic):
    """Concatenates the other way round and reads the Q head through ``.relu()`` methods: still an MLP."""

    def compute(self, inputs, role):
        x = self.linear_layer_1(torch.cat([inputs["taken_actions"], inputs["observations"]], dim=-1)).relu()
        x = torch.relu(self.linear_layer_2(x))
        return self.linear_layer_3(x), {}


class NormedActor(Actor):
    """A layer norm in the middle: not a plain MLP."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = nn.LayerNorm(64)

    def compute(self, inputs, role):
        x = self.norm(F.relu(self.linear_layer_1(inputs["observations"])))
        x = F.relu(self.linear_layer_2(x))
        return 2 * torch.tanh(self.action_layer(x)), {}


class ReluHeadActor(Actor):
    def compute(self, inputs, role):
        x = F.relu(self.linear_layer_1(inputs["observations"]))
        return F.relu(self.action_layer(F.relu(self.linear_layer_2(x)))), {}


class SkipActor(Actor):
    """A residual connection: a hidden value used twice."""

    def compute(self, inputs, role):
        x = F.relu(self.linear_layer_1(inputs["observations"]))
        x = F.relu(self.linear_layer_2(x)) + x
        return 2 * torch.tanh(self.action_layer(x)), {}


class ExtraParameterActor(Actor):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_std = nn.Parameter(torch.zeros(1))


class BranchingActor(Actor):
    """Data-dependent Python control flow: fx cannot trace it symbolically."""

    def compute(self, inputs, role):
        x = inputs["observations"]
        if x.sum() > 0:
            x = -x
        return super().compute({"observations": x}, role)


class CachingActor(Actor):
    """Keeps its last output on itself (as skrl's shared models do): tracing must not leave a symbolic value there."""

    def compute(self, inputs, role):
        self.last_output = super().compute(inputs, role)[0]
        return self.last_output, {}


def test_tracing_leaves_no_symbolic_value_in_the_model():
    model = CachingActor(OBS, None, ACT, "cpu")
    assert traced.plan(model, "policy", critic=False, skrl_api=True) is not None
    assert not hasattr(model, "last_output")
    model.act({"observations": torch.zeros(2, 3)}, role="policy")
    assert isinstance(model.last_output, torch.Tensor)


def _models(actor=Actor, critic=Critic):
    return actor(OBS, None, ACT, "cpu"), critic(OBS, None, ACT, "cpu")


def test_skrl_example_models_are_recognised_and_compute_what_they_compute():
    actor, critic = _models()
    policy_plan = traced.plan(actor, "policy", critic=False, skrl_api=True)
    critic_plan = traced.plan(critic, "critic", critic=True, skrl_api=True)
    assert policy_plan.post == (("tanh", 0.0), ("mul", 2.0)) and policy_plan.inputs == ("observations",)
    assert critic_plan.post == () and critic_plan.inputs == ("observations", "taken_actions")
    g = torch.Generator().manual_seed(0)
    obs, actions = torch.randn(32, 3, generator=g), 4 * torch.rand(32, 1, generator=g) - 2
    with torch.no_grad():
        expected_a = actor.act({"observations": obs, "states": None}, role="policy")[0]
        expected_q = critic.act({"observations": obs, "states": None, "taken_actions": actions}, role="critic")[0]
    torch.testing.assert_close(policy_plan.forward(obs), expected_a)
    torch.testing.assert_close(traced.critic_forward(critic_plan, obs, actions), expected_q.reshape(-1))

    # The pullbacks are autograd's gradients of the model's own forward.
    a, pull = traced.policy_value_and_pullback(policy_plan, obs)
    d_a = torch.randn(32, 1, generator=g)
    expected = torch.autograd.grad((actor.act({"observations": obs}, role="policy")[0] * d_a).sum(),
                                   list(actor.parameters()))
    for got, want in zip(pull(d_a), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    q, pull = traced.critic_value_and_pullback(critic_plan, obs, actions, wrt_actions=True)
    dq = torch.randn(32, generator=g)
    actions_in = actions.clone().requires_grad_(True)
    out = critic.act({"observations": obs, "taken_actions": actions_in}, role="critic")[0].reshape(-1)
    expected = torch.autograd.grad((out * dq).sum(), [*critic.parameters(), actions_in])
    grads, d_actions = pull(dq)
    for got, want in zip([*grads, d_actions], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_plain_module_mlp_and_another_concatenation_order_are_recognised():
    sequential = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1), nn.Tanh())
    found = traced.plan(sequential, "policy", critic=False, skrl_api=False)
    assert found.post == (("tanh", 0.0),) and len(found.layers) == 2
    obs = torch.randn(4, 3)
    torch.testing.assert_close(found.forward(obs), sequential(obs).detach())
    tanh_inside = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))  # tanh between layers: not a ReLU MLP
    assert traced.plan(tanh_inside, "policy", critic=False, skrl_api=False) is None
    _, critic = _models(critic=ActionsFirstCritic)
    found = traced.plan(critic, "critic", critic=True, skrl_api=True)
    assert found.inputs == ("taken_actions", "observations")
    g = torch.Generator().manual_seed(1)
    obs, actions = torch.randn(8, 3, generator=g), torch.rand(8, 1, generator=g)
    actions_in = actions.clone().requires_grad_(True)
    out = critic.act({"observations": obs, "taken_actions": actions_in}, role="critic")[0].reshape(-1)
    (want,) = torch.autograd.grad(out.sum(), [actions_in])
    q, pull = traced.critic_value_and_pullback(found, obs, actions, wrt_params=False, wrt_actions=True)
    torch.testing.assert_close(q, out.detach())
    torch.testing.assert_close(pull(torch.ones(8))[1], want)


@pytest.mark.parametrize("actor", [NormedActor, ReluHeadActor, SkipActor, ExtraParameterActor, BranchingActor])
def test_models_that_are_not_plain_mlps_are_left_to_autograd(actor):
    model = actor(OBS, None, ACT, "cpu")
    assert traced.plan(model, "policy", critic=False, skrl_api=True) is None
    clipped = Actor(OBS, None, ACT, "cpu", clip_actions=True)  # the mixin's clamp is not part of an MLP
    assert traced.plan(clipped, "policy", critic=False, skrl_api=True) is None


def _batches(n=3):
    g = torch.Generator().manual_seed(2)
    return [ddpgx_torch.Transition(observations=torch.randn(64, 3, generator=g),
                                   actions=4 * torch.rand(64, 1, generator=g) - 2,
                                   rewards=torch.randn(64, generator=g),
                                   next_observations=torch.randn(64, 3, generator=g),
                                   terminated=(torch.rand(64, generator=g) < 0.1).float()) for _ in range(n)]


def test_updates_on_the_traced_path_equal_the_autograd_path(monkeypatch):
    config = ddpgx_torch.DDPGConfig(batch_size=64, grad_norm_clip=1.0)
    actor, critic = _models()
    fast = ddpgx_torch.init(0, config, OBS, ACT, policy=actor, critic=critic)
    slow = ddpgx_torch.init(0, config, OBS, ACT, policy=copy.deepcopy(actor), critic=copy.deepcopy(critic))
    assert core._explicit_gradients(fast, torch.zeros(64, 3))
    assert core._forward_plans(fast, ("target_policy", "target_critic"), torch.zeros(64, 3)) is not None
    for batch in _batches():
        fast, fast_metrics = ddpgx_torch.update(fast, batch)
        monkeypatch.setattr(core, "EXPLICIT_GRADIENTS", False)
        assert not core._explicit_gradients(slow, batch.observations)
        slow, slow_metrics = ddpgx_torch.update(slow, batch)
        monkeypatch.setattr(core, "EXPLICIT_GRADIENTS", True)
        for name, value in slow_metrics.items():
            torch.testing.assert_close(fast_metrics[name], value, rtol=1e-5, atol=1e-6, msg=name, equal_nan=True)
    for role in ("policy", "critic", "target_policy", "target_critic"):
        for (name, a), b in zip(getattr(fast, role).named_parameters(), getattr(slow, role).parameters(),
                                strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{role}.{name}")
    # Acting takes the plan too, with the model's own actions.
    obs = torch.randn(5, 3)
    actions, _, _ = ddpgx_torch.act(fast, obs, explore=False)
    with torch.no_grad():
        torch.testing.assert_close(actions, fast.policy.act({"observations": obs}, role="policy")[0])


def test_a_model_with_a_hook_or_a_frozen_layer_goes_through_autograd():
    actor, critic = _models()
    ts = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=64), OBS, ACT, policy=actor, critic=critic)
    obs = torch.zeros(64, 3)
    assert core._explicit_gradients(ts, obs)
    calls = []
    handle = critic.linear_layer_2.register_forward_hook(lambda *args: calls.append(1))
    assert not core._explicit_gradients(ts, obs)
    ts, _ = ddpgx_torch.update(ts, _batches(1)[0])
    assert calls  # the user's hook ran
    handle.remove()
    actor.linear_layer_1.weight.requires_grad_(False)
    assert not core._explicit_gradients(ts, obs)
