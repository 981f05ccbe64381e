"""ddpgx_torch's non-finite guard checks what is written (gradients, not only losses), on the autograd path, the
built-in networks' explicit-gradient path and under torch.distributed; and metrics over several gradient steps
reduce ``*_min``/``*_max`` by their minimum/maximum (issue 14, defects 2 and 4, torch side)."""

from __future__ import annotations


import gymnasium
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # 2 shared cores

from torch import nn  # noqa: E402

import ddpgx_torch  # noqa: E402
import gloo_ranks  # noqa: E402  (tests/gloo_ranks.py)
from ddpgx_torch.core import ddpg as core  # noqa: E402
from ddpgx_torch.core import losses  # noqa: E402

OBS = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2, 2, (1,), np.float32)


def batch_of(n=64, seed=0, lead=()):
    g = torch.Generator().manual_seed(seed)
    shape = lead + (n,)
    return ddpgx_torch.Transition(
        observations=torch.randn(shape + (3,), generator=g), actions=4 * torch.rand(shape + (1,), generator=g) - 2,
        rewards=torch.randn(shape, generator=g), next_observations=torch.randn(shape + (3,), generator=g),
        terminated=torch.zeros(shape))


class SqrtPolicy(nn.Module):
    """A policy whose loss stays finite while one gradient is NaN: ``sqrt(|offset|)`` at ``offset = 0`` has the
    value 0 but the derivative ``inf * sign(0) = inf * 0 = NaN``."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.offset = nn.Parameter(torch.zeros(1))

    def forward(self, obs):
        return 2 * torch.tanh(self.linear(obs)) + torch.sqrt(self.offset.abs())


class SqrtCritic(nn.Module):
    """The critic twin of :class:`SqrtPolicy`."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.offset = nn.Parameter(torch.zeros(1))

    def forward(self, inputs, actions):
        return self.linear(torch.cat([inputs, actions], dim=1)).squeeze(-1) + torch.sqrt(self.offset.abs())


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(before, module):
    return all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_a_finite_policy_loss_with_a_nan_gradient_never_reaches_the_policy():
    config = ddpgx_torch.DDPGConfig(batch_size=64)
    ts = ddpgx_torch.init(0, config, OBS, ACT, policy=SqrtPolicy())
    policy, critic, target_policy = _snapshot(ts.policy), _snapshot(ts.critic), _snapshot(ts.target_policy)
    ts, metrics = ddpgx_torch.update(ts, batch_of())
    assert bool(torch.isfinite(metrics["policy_loss"]))  # the loss is finite: a loss-only guard lets this through
    assert all(bool(torch.isfinite(p).all()) for p in ts.policy.parameters())
    assert _same(policy, ts.policy) and _same(target_policy, ts.target_policy)  # policy step and Polyak dropped
    assert not _same(critic, ts.critic)  # the critic's own (finite) step stays, as for a non-finite policy loss
    assert float(metrics["skipped_updates"]) == 1.0 and ts.step == 0
    # Training goes on: once the offset leaves 0 its gradient is finite and steps are taken again.
    with torch.no_grad():
        ts.policy.offset.fill_(0.25)
    ts, metrics = ddpgx_torch.update(ts, batch_of(seed=1))
    assert float(metrics["skipped_updates"]) == 0.0 and ts.step == 1 and not _same(policy, ts.policy)


def test_a_finite_critic_loss_with_a_nan_gradient_drops_the_step_and_its_statistics():
    config = ddpgx_torch.DDPGConfig(batch_size=64, observation_preprocessor=True, grad_norm_clip=1.0)
    ts = ddpgx_torch.init(0, config, OBS, ACT, policy=nn.Sequential(nn.Linear(3, 1), nn.Tanh()),
                          critic=SqrtCritic())
    policy, critic = _snapshot(ts.policy), _snapshot(ts.critic)
    stats = ts.observation_stats
    ts, metrics = ddpgx_torch.update(ts, batch_of())
    assert bool(torch.isfinite(metrics["critic_loss"]))
    assert _same(critic, ts.critic) and _same(policy, ts.policy)
    assert ts.observation_stats is stats  # the batch's running statistics are dropped with the step
    assert float(metrics["skipped_updates"]) == 1.0 and ts.step == 0
    assert torch.isnan(metrics["critic_grad_norm"])  # the same metric keys whether or not the step was taken


def test_the_explicit_gradient_path_guards_its_gradients(monkeypatch):
    """The built-in networks pull gradients back themselves; an infinite value in that pullback (here injected into
    the loss's derivative) must not reach Adam either."""
    config = ddpgx_torch.DDPGConfig(batch_size=64)
    ts = ddpgx_torch.init(0, config, OBS, ACT)
    batch = batch_of()
    assert core._explicit_gradients(ts, batch.observations)  # the path under test
    critic = _snapshot(ts.critic)
    true_grad = losses.critic_loss_grad

    def poisoned(q, target):
        g = true_grad(q, target).clone()
        g[0] = float("inf")
        return g

    monkeypatch.setattr(losses, "critic_loss_grad", poisoned)
    ts, metrics = ddpgx_torch.update(ts, batch)
    assert bool(torch.isfinite(metrics["critic_loss"])) and float(metrics["skipped_updates"]) == 1.0
    assert _same(critic, ts.critic) and all(bool(torch.isfinite(p).all()) for p in ts.critic.parameters())
    monkeypatch.setattr(losses, "critic_loss_grad", true_grad)
    ts, metrics = ddpgx_torch.update(ts, batch)
    assert float(metrics["skipped_updates"]) == 0.0 and not _same(critic, ts.critic)


class ObsSqrtPolicy(nn.Module):
    """``sqrt(|scale * obs_0|)``: its gradient is NaN exactly where an observation's first component is 0."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, obs):
        return torch.tanh(self.linear(obs)) + torch.sqrt((self.scale * obs[:, :1]).abs())


def _guard_worker(rank: int, world: int, out: str) -> None:
    ts = ddpgx_torch.init(rank, ddpgx_torch.DDPGConfig(batch_size=32), OBS, ACT, policy=ObsSqrtPolicy())
    skipped = []
    for step in range(3):
        batch = batch_of(32, seed=10 * step + rank)
        if step == 1 and rank == 1:  # only rank 1's policy gradient is NaN; every loss is finite
            batch.observations[5, 0] = 0.0
        ts, metrics = ddpgx_torch.update(ts, batch)
        skipped.append(float(metrics["skipped_updates"]))
    torch.save({"skipped": skipped, "policy": ts.policy.state_dict(), "step": ts.step}, f"{out}.{rank}")


def test_every_rank_skips_a_step_whose_gradient_is_nan_on_one_rank():
    out = gloo_ranks.run(_guard_worker, "guard.pt")
    ranks = [torch.load(f"{out}.{rank}", weights_only=False) for rank in (0, 1)]
    for got in ranks:
        assert got["skipped"] == [0.0, 1.0, 0.0] and got["step"] == 2
        assert all(bool(torch.isfinite(v).all()) for v in got["policy"].values())
    for key, value in ranks[0]["policy"].items():  # the ranks still agree
        torch.testing.assert_close(ranks[1]["policy"][key], value, rtol=0, atol=0)


@pytest.mark.parametrize("from_replay", [False, True])
def test_min_and_max_metrics_over_gradient_steps_are_reduced_by_min_and_max(from_replay):
    """Two gradient steps in one call against the same two steps taken one call at a time (same networks):
    ``*_min`` is the smaller, ``*_max`` the larger, the rest the mean."""
    steps = 2
    ts = ddpgx_torch.init(3, ddpgx_torch.DDPGConfig(batch_size=16, gradient_steps=steps), OBS, ACT)
    ref = ddpgx_torch.init(3, ddpgx_torch.DDPGConfig(batch_size=16, gradient_steps=1), OBS, ACT)
    if from_replay:
        example = ddpgx_torch.Transition(*(None if x is None else x[0] for x in batch_of(1)))
        buffer = ddpgx_torch.replay.init(64, example, num_envs=64)
        ddpgx_torch.replay.add(buffer, batch_of(64, seed=4))
        ref.generator.set_state(ts.generator.get_state())  # the same minibatches are drawn
        ts, metrics = ddpgx_torch.update_from_replay(ts, buffer)
        singles = [ddpgx_torch.update_from_replay(ref, buffer)[1] for _ in range(steps)]
    else:
        batch = batch_of(16, seed=5, lead=(steps,))
        ts, metrics = ddpgx_torch.update(ts, batch)
        singles = [ddpgx_torch.update(ref, ddpgx_torch.Transition(*(None if x is None else x[i] for x in batch)))[1]
                   for i in range(steps)]
    for name in ("q_min", "target_min"):
        assert float(metrics[name]) == min(float(m[name]) for m in singles)
    for name in ("q_max", "target_max"):
        assert float(metrics[name]) == max(float(m[name]) for m in singles)
    for name in ("q_mean", "critic_loss", "policy_loss"):
        torch.testing.assert_close(metrics[name], torch.stack([m[name] for m in singles]).mean())
    # the two steps differ, so a mean would not equal both the min and max of the steps
    assert float(singles[0]["q_min"]) != float(singles[1]["q_min"])
