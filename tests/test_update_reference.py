"""ddpgx.update against an independent NumPy implementation of the DDPG equations.

The reference below is written from the paper (Lillicrap et al. 2015, Algorithm 1) and the Adam paper (Kingma & Ba
2015, Algorithm 1) in float64 NumPy, with hand-written backpropagation through the ReLU MLPs: it shares no code with
ddpgx (no JAX, no optax, no autodiff). Only the initial parameters are taken from ddpgx, so that both start from
the same point.
"""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ddpgx
from ddpgx.core import networks

OBS, ACT, B = 3, 2, 8
LOW, HIGH = np.array([-2.0, 0.0]), np.array([2.0, 1.0])
HIDDEN = (32, 16)


# ----------------------------------------------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------------------------------------------
def layers_of(params) -> list[list[np.ndarray]]:
    """Flax MLP params -> [[W0, b0], [W1, b1], ...] as float64 arrays (W of shape [in, out])."""
    mlp = params["params"]["MLP_0"]
    return [
        [np.asarray(mlp[f"Dense_{i}"]["kernel"], np.float64), np.asarray(mlp[f"Dense_{i}"]["bias"], np.float64)]
        for i in range(len(mlp))
    ]


def mlp_forward(layers, x):
    """Returns the output and the cache of layer inputs and pre-activations for backprop."""
    cache = []
    h = x
    for i, (w, b) in enumerate(layers):
        z = h @ w + b
        cache.append((h, z))
        h = np.maximum(z, 0.0) if i < len(layers) - 1 else z
    return h, cache


def mlp_backward(layers, cache, d_out):
    """Given dL/d(output), returns (grads [[dW, db], ...], dL/d(input))."""
    grads = [None] * len(layers)
    d = d_out
    for i in reversed(range(len(layers))):
        h, z = cache[i]
        if i < len(layers) - 1:
            d = d * (z > 0)
        grads[i] = [h.T @ d, d.sum(axis=0)]
        d = d @ layers[i][0].T
    return grads, d


def policy_forward(layers, obs):
    u, cache = mlp_forward(layers, obs)
    t = np.tanh(u)
    return LOW + (t + 1.0) * 0.5 * (HIGH - LOW), (cache, t)


def critic_forward(layers, inputs, actions):
    q, cache = mlp_forward(layers, np.concatenate([inputs, actions], axis=1))
    return q[:, 0], cache


def global_norm(grads):
    return np.sqrt(sum(np.sum(g**2) for layer in grads for g in layer))


def adam_step(params, grads, m, v, t, lr, clip, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam step (t counts from 1) after clipping the gradient to global norm ``clip`` (if > 0)."""
    if clip > 0:
        norm = global_norm(grads)
        grads = [[g * min(1.0, clip / norm) for g in layer] for layer in grads]
    new_p, new_m, new_v = [], [], []
    for p_l, g_l, m_l, v_l in zip(params, grads, m, v, strict=True):
        new_p.append([]), new_m.append([]), new_v.append([])
        for p, g, mm, vv in zip(p_l, g_l, m_l, v_l, strict=True):
            mm = b1 * mm + (1 - b1) * g
            vv = b2 * vv + (1 - b2) * g * g
            m_hat, v_hat = mm / (1 - b1**t), vv / (1 - b2**t)
            new_p[-1].append(p - lr * m_hat / (np.sqrt(v_hat) + eps))
            new_m[-1].append(mm)
            new_v[-1].append(vv)
    return new_p, new_m, new_v


class ReferenceDDPG:
    def __init__(self, policy, critic, *, gamma, tau, lr_policy, lr_critic, clip, standardize):
        self.policy, self.critic = policy, critic
        self.target_policy = [[a.copy() for a in layer] for layer in policy]
        self.target_critic = [[a.copy() for a in layer] for layer in critic]
        zeros = lambda ps: [[np.zeros_like(a) for a in layer] for layer in ps]  # noqa: E731
        self.pm, self.pv, self.cm, self.cv = zeros(policy), zeros(policy), zeros(critic), zeros(critic)
        self.t = 0
        self.gamma, self.tau, self.lr_policy, self.lr_critic, self.clip = gamma, tau, lr_policy, lr_critic, clip
        self.standardize = standardize
        self.seen = np.zeros((0, OBS))

    def step(self, obs, act, rew, next_obs, term):
        if self.standardize:  # population statistics of everything seen, then skrl's formula
            self.seen = np.concatenate([self.seen, obs, next_obs])
            mean, std = self.seen.mean(axis=0), self.seen.std(axis=0)
            obs = np.clip((obs - mean) / (std + 1e-8), -5, 5)
            next_obs = np.clip((next_obs - mean) / (std + 1e-8), -5, 5)
        self.t += 1
        # target: y = r + gamma * (1 - terminated) * Q'(s', mu'(s'))
        next_act, _ = policy_forward(self.target_policy, next_obs)
        q_next, _ = critic_forward(self.target_critic, next_obs, next_act)
        y = rew + self.gamma * (1.0 - term) * q_next
        # critic: L = mean((Q(s, a) - y)^2)
        q, cache = critic_forward(self.critic, obs, act)
        critic_loss = np.mean((q - y) ** 2)
        grads, _ = mlp_backward(self.critic, cache, (2.0 * (q - y) / len(q))[:, None])
        critic_grad_norm = global_norm(grads)
        self.critic, self.cm, self.cv = adam_step(self.critic, grads, self.cm, self.cv, self.t, self.lr_critic, self.clip)
        # policy: J = -mean(Q(s, mu(s))) through the updated critic
        a, (pcache, tanh_u) = policy_forward(self.policy, obs)
        q_pi, ccache = critic_forward(self.critic, obs, a)
        policy_loss = -np.mean(q_pi)
        _, d_in = mlp_backward(self.critic, ccache, np.full((len(q_pi), 1), -1.0 / len(q_pi)))
        d_a = d_in[:, OBS:]
        d_u = d_a * (1.0 - tanh_u**2) * 0.5 * (HIGH - LOW)
        pgrads, _ = mlp_backward(self.policy, pcache, d_u)
        policy_grad_norm = global_norm(pgrads)
        self.policy, self.pm, self.pv = adam_step(self.policy, pgrads, self.pm, self.pv, self.t, self.lr_policy, self.clip)
        # Polyak: theta' <- tau theta + (1 - tau) theta'
        soft = lambda new, old: [[self.tau * n + (1 - self.tau) * o for n, o in zip(ln, lo, strict=True)] for ln, lo in zip(new, old, strict=True)]  # noqa: E731
        self.target_policy = soft(self.policy, self.target_policy)
        self.target_critic = soft(self.critic, self.target_critic)
        return dict(critic_loss=critic_loss, policy_loss=policy_loss, q_mean=q.mean(), q_min=q.min(), q_max=q.max(),
                    target_mean=y.mean(), target_min=y.min(), target_max=y.max(),
                    critic_grad_norm=critic_grad_norm, policy_grad_norm=policy_grad_norm)


# ----------------------------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------------------------
def make_batch(seed, lead=(B,)):
    rng = np.random.default_rng(seed)
    return ddpgx.Transition(
        observations=rng.normal(1.0, 2.0, lead + (OBS,)).astype(np.float32),
        actions=rng.uniform(LOW, HIGH, lead + (ACT,)).astype(np.float32),
        rewards=rng.normal(size=lead).astype(np.float32),
        next_observations=rng.normal(1.0, 2.0, lead + (OBS,)).astype(np.float32),
        terminated=rng.random(lead) < 0.3,
    )


def make_state(config, seed=0):
    obs_space = gymnasium.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
    act_space = gymnasium.spaces.Box(LOW.astype(np.float32), HIGH.astype(np.float32), (ACT,), np.float32)
    policy = networks.DeterministicPolicy(tuple(LOW), tuple(HIGH), (ACT,), hidden_sizes=HIDDEN)
    return ddpgx.init(jax.random.key(seed), config, obs_space, act_space, policy=policy,
                      critic=networks.QFunction(hidden_sizes=HIDDEN))


def assert_params_close(flax_params, ref_layers, atol=1e-5):
    for (w, b), (rw, rb) in zip(layers_of(flax_params), ref_layers, strict=True):
        np.testing.assert_allclose(w, rw, atol=atol, rtol=1e-5)
        np.testing.assert_allclose(b, rb, atol=atol, rtol=1e-5)


CASES = {
    # name: (config kwargs, number of update calls)
    "plain": (dict(discount_factor=0.99, polyak=0.005, learning_rate=1e-3), 3),
    # large tau and distinct learning rates make every term visible; clipping at 0.05 is always active here
    "clipped": (dict(discount_factor=0.9, polyak=0.3, learning_rate=(3e-3, 1e-2), grad_norm_clip=0.05), 3),
    "preprocessed": (dict(discount_factor=0.95, polyak=0.1, learning_rate=2e-3, observation_preprocessor=True), 3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_update_matches_numpy_reference(case):
    kwargs, calls = CASES[case]
    config = ddpgx.DDPGConfig(batch_size=B, **kwargs)
    ts = make_state(config)
    lr_policy, lr_critic = config.learning_rates
    ref = ReferenceDDPG(layers_of(ts.policy_params), layers_of(ts.critic_params), gamma=config.discount_factor,
                        tau=config.polyak, lr_policy=lr_policy, lr_critic=lr_critic, clip=config.grad_norm_clip,
                        standardize=config.observation_preprocessor)
    for call in range(calls):
        batch = make_batch(call)
        expected = ref.step(*(np.asarray(x, np.float64) for x in batch[:5]))
        ts, metrics = ddpgx.update(ts, batch)
        for name, value in expected.items():
            if name.endswith("grad_norm") and config.grad_norm_clip <= 0:
                assert name not in metrics  # reported only when clipping computes it anyway
                continue
            np.testing.assert_allclose(float(metrics[name]), value, rtol=1e-5, atol=1e-5, err_msg=name)
        if case == "clipped":
            assert expected["critic_grad_norm"] > 0.05 and expected["policy_grad_norm"] > 0.05
    assert_params_close(ts.policy_params, ref.policy)
    assert_params_close(ts.critic_params, ref.critic)
    assert_params_close(ts.target_policy_params, ref.target_policy)
    assert_params_close(ts.target_critic_params, ref.target_critic)
    assert int(ts.step) == calls


def test_gradient_steps_scan_matches_sequential_reference():
    """gradient_steps=3 on a [3, B] batch is three reference steps in order; metrics are their mean (``*_min`` their
    minimum, ``*_max`` their maximum)."""
    config = ddpgx.DDPGConfig(batch_size=B, gradient_steps=3, polyak=0.2, learning_rate=5e-3, grad_norm_clip=0.5)
    ts = make_state(config, seed=1)
    ref = ReferenceDDPG(layers_of(ts.policy_params), layers_of(ts.critic_params), gamma=0.99, tau=0.2,
                        lr_policy=5e-3, lr_critic=5e-3, clip=0.5, standardize=False)
    batch = make_batch(7, lead=(3, B))
    steps = [ref.step(*(np.asarray(x[i], np.float64) for x in batch[:5])) for i in range(3)]
    ts, metrics = ddpgx.update(ts, batch)
    for name in steps[0]:
        reduce = np.min if name.endswith("_min") else np.max if name.endswith("_max") else np.mean
        np.testing.assert_allclose(float(metrics[name]), reduce([s[name] for s in steps]), rtol=1e-5, atol=1e-5)
    assert_params_close(ts.policy_params, ref.policy)
    assert_params_close(ts.critic_params, ref.critic)
    assert_params_close(ts.target_critic_params, ref.target_critic)
    assert int(ts.step) == 3


def test_truncation_bootstraps_and_termination_cuts():
    """Only ``terminated`` zeroes the bootstrap term: y = r exactly where terminated, r + gamma Q' elsewhere."""
    config = ddpgx.DDPGConfig(batch_size=B, discount_factor=0.5)
    ts = make_state(config)
    batch = make_batch(3)._replace(terminated=np.array([True] * B))
    _, m = ddpgx.update(ts, batch)
    np.testing.assert_allclose(float(m["target_mean"]), batch.rewards.mean(), rtol=1e-6)
    ts = make_state(config)
    ref = ReferenceDDPG(layers_of(ts.target_policy_params), layers_of(ts.target_critic_params), gamma=0.5, tau=0,
                        lr_policy=1e-3, lr_critic=1e-3, clip=0, standardize=False)
    batch = batch._replace(terminated=np.zeros(B, bool))
    _, m = ddpgx.update(ts, batch)
    next_act, _ = policy_forward(ref.target_policy, batch.next_observations.astype(np.float64))
    q_next, _ = critic_forward(ref.target_critic, batch.next_observations.astype(np.float64), next_act)
    np.testing.assert_allclose(float(m["target_mean"]), np.mean(batch.rewards + 0.5 * q_next), rtol=1e-5)


def test_state_space_feeds_the_critic():
    """With a state space, the critic's first layer takes states (size 5) and the target uses next_states."""
    obs_space = gymnasium.spaces.Box(-1, 1, (OBS,), np.float32)
    state_space = gymnasium.spaces.Box(-1, 1, (5,), np.float32)
    act_space = gymnasium.spaces.Box(-1, 1, (ACT,), np.float32)
    config = ddpgx.DDPGConfig(batch_size=B, state_preprocessor=True)
    ts = ddpgx.init(jax.random.key(0), config, obs_space, act_space, state_space=state_space)
    assert ts.critic_params["params"]["MLP_0"]["Dense_0"]["kernel"].shape == (5 + ACT, 400)
    rng = np.random.default_rng(0)
    batch = make_batch(0)._replace(actions=rng.uniform(-1, 1, (B, ACT)).astype(np.float32),
                                  states=rng.normal(3, 1, (B, 5)).astype(np.float32),
                                  next_states=rng.normal(3, 1, (B, 5)).astype(np.float32))
    ts, _ = ddpgx.update(ts, batch)
    np.testing.assert_allclose(ts.state_stats.mean, np.concatenate([batch.states, batch.next_states]).mean(0), rtol=1e-5)
    np.testing.assert_allclose(ts.observation_stats.count, 0)  # observation preprocessor off


def test_update_from_replay_equals_update_on_the_same_sample():
    config = ddpgx.DDPGConfig(batch_size=B, gradient_steps=2)
    ts = make_state(config)
    example = jax.tree.map(lambda x: x[0], make_batch(0, lead=(1,)))
    buffer = ddpgx.replay.add(ddpgx.replay.init(64, example), make_batch(5, lead=(40,)))
    # The sample update_from_replay will draw: the key is split at the top, the second half samples.
    _, sample_key = jax.random.split(ts.key)
    batch = ddpgx.replay.sample(buffer, sample_key, (2, B))
    ts_copy = jax.tree.map(jnp.copy, ts)
    ts_a, m_a = ddpgx.update_from_replay(ts, buffer)
    ts_b, m_b = ddpgx.update(ts_copy, batch)
    jax.tree.map(np.testing.assert_array_equal, (ts_a.policy_params, ts_a.critic_params),
                 (ts_b.policy_params, ts_b.critic_params))
    for name in m_a:
        assert float(m_a[name]) == float(m_b[name]), name
