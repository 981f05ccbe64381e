"""ddpgx_torch against the JAX core and the float64 NumPy reference of test_update_reference.py.

The same initial weights (copied JAX -> torch with ddpgx_torch.convert) and the same batches must give the same
updated weights (online and target), losses and metrics to 1e-5 in float32; the noise processes must follow the
same formulas; weights must convert both ways.
"""

from __future__ import annotations

import gymnasium
import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
# One thread: the test machine has 2 cores shared with other processes, where OpenMP spin-waits of 2 threads
# make small torch ops many times slower.
torch.set_num_threads(1)

import test_update_reference as ref  # noqa: E402 -- tests/ is on sys.path under pytest

import ddpgx  # noqa: E402
import ddpgx_torch  # noqa: E402
from ddpgx_torch.core import convert, replay  # noqa: E402

OBS_SPACE = gymnasium.spaces.Box(-np.inf, np.inf, (ref.OBS,), np.float32)


@pytest.fixture(params=["explicit", "autograd"])
def gradients(request, monkeypatch):
    """Both ways ddpgx_torch computes gradients on its built-in networks: their own pullbacks (the default) and
    autograd (what any other model gets); the fixture's value is the list of paths the steps took."""
    from ddpgx_torch.core import ddpg as core

    monkeypatch.setattr(core, "EXPLICIT_GRADIENTS", request.param == "explicit")
    taken = []
    decide = core._explicit_gradients

    def spy(*args):
        taken.append("explicit" if decide(*args) else "autograd")
        return taken[-1] == "explicit"

    monkeypatch.setattr(core, "_explicit_gradients", spy)
    yield taken
    assert taken and set(taken) == {request.param}, taken
ACT_SPACE = gymnasium.spaces.Box(ref.LOW.astype(np.float32), ref.HIGH.astype(np.float32), (ref.ACT,), np.float32)


def torch_layers(mlp) -> list[list[np.ndarray]]:
    """A torch MLP's parameters as the reference's [[W [in, out], b], ...] in float64."""
    return [[np.asarray(layer.weight.detach().numpy().T, np.float64), np.asarray(layer.bias.detach().numpy(),
                                                                                 np.float64)]
            for layer in mlp.layers]


def assert_layers_close(actual, expected, atol=1e-5):
    for (w, b), (rw, rb) in zip(actual, expected, strict=True):
        np.testing.assert_allclose(w, rw, atol=atol, rtol=1e-5)
        np.testing.assert_allclose(b, rb, atol=atol, rtol=1e-5)


def make_pair(kwargs, seed=0, hidden=ref.HIDDEN):
    """A JAX train state and a torch train state holding the same weights."""
    jax_config = ddpgx.DDPGConfig(batch_size=ref.B, **kwargs)
    policy = ddpgx.networks.DeterministicPolicy(tuple(ref.LOW), tuple(ref.HIGH), (ref.ACT,), hidden_sizes=hidden)
    jts = ddpgx.init(jax.random.key(seed), jax_config, OBS_SPACE, ACT_SPACE, policy=policy,
                     critic=ddpgx.networks.QFunction(hidden_sizes=hidden))
    tts = ddpgx_torch.init(
        seed, ddpgx_torch.DDPGConfig(batch_size=ref.B, **kwargs), OBS_SPACE, ACT_SPACE,
        policy=ddpgx_torch.networks.DeterministicPolicy(ref.OBS, ref.LOW, ref.HIGH, (ref.ACT,), hidden),
        critic=ddpgx_torch.networks.QFunction(ref.OBS, ref.ACT, hidden),
    )  # fmt: skip
    convert.load_jax_train_state(tts, jts)
    return jts, tts


def torch_batch(batch: ddpgx.Transition) -> ddpgx_torch.Transition:
    return ddpgx_torch.Transition(*(None if x is None else torch.as_tensor(np.asarray(x)) for x in batch))


@pytest.mark.parametrize("case", sorted(ref.CASES))
def test_update_matches_jax_and_numpy_reference(case, gradients):
    kwargs, calls = ref.CASES[case]
    jts, tts = make_pair(kwargs)
    lr_policy, lr_critic = jts.spec.config.learning_rates
    numpy_ref = ref.ReferenceDDPG(ref.layers_of(jts.policy_params), ref.layers_of(jts.critic_params),
                                  gamma=kwargs["discount_factor"], tau=kwargs["polyak"], lr_policy=lr_policy,
                                  lr_critic=lr_critic, clip=kwargs.get("grad_norm_clip", 0.0),
                                  standardize=kwargs.get("observation_preprocessor", False))
    for call in range(calls):
        batch = ref.make_batch(call)
        expected = numpy_ref.step(*(np.asarray(x, np.float64) for x in batch[:5]))
        jts, jax_metrics = ddpgx.update(jts, batch)
        tts, torch_metrics = ddpgx_torch.update(tts, torch_batch(batch))
        assert sorted(torch_metrics) == sorted(jax_metrics)  # the same keys, grad norms only when clipping
        for name, value in jax_metrics.items():
            np.testing.assert_allclose(float(torch_metrics[name]), float(value), rtol=1e-5, atol=1e-5, err_msg=name)
            if name in expected:
                np.testing.assert_allclose(float(torch_metrics[name]), expected[name], rtol=1e-5, atol=1e-5,
                                           err_msg=name)
    for net, jax_params, numpy_params in (
        ("policy", jts.policy_params, numpy_ref.policy),
        ("critic", jts.critic_params, numpy_ref.critic),
        ("target_policy", jts.target_policy_params, numpy_ref.target_policy),
        ("target_critic", jts.target_critic_params, numpy_ref.target_critic),
    ):
        layers = torch_layers(getattr(tts, net).mlp)
        assert_layers_close(layers, ref.layers_of(jax_params))
        assert_layers_close(layers, numpy_params)
    assert tts.step == calls == int(jts.step)
    if kwargs.get("observation_preprocessor"):
        np.testing.assert_allclose(tts.observation_stats.mean.numpy(), np.asarray(jts.observation_stats.mean),
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(tts.observation_stats.var.numpy(), np.asarray(jts.observation_stats.var),
                                   rtol=1e-5)


def test_gradient_steps_and_state_space_match_jax(gradients):
    """gradient_steps=2 on a [2, B] batch with a state space feeding the critic: same weights and metrics.

    (Small networks, as in the NumPy reference test: with 400-300 networks a ReLU pre-activation within float32
    rounding of 0 can flip between backends and move one weight by ~3e-5 after Adam's sign-like first steps.)
    """
    state_space = gymnasium.spaces.Box(-1, 1, (5,), np.float32)
    kwargs = dict(gradient_steps=2, polyak=0.05, learning_rate=1e-3, state_preprocessor=True)
    nets = dict(policy=ddpgx.networks.DeterministicPolicy(tuple(ref.LOW), tuple(ref.HIGH), (ref.ACT,), ref.HIDDEN),
                critic=ddpgx.networks.QFunction(ref.HIDDEN))
    jts = ddpgx.init(jax.random.key(3), ddpgx.DDPGConfig(batch_size=ref.B, **kwargs), OBS_SPACE, ACT_SPACE,
                     state_space=state_space, **nets)
    tts = ddpgx_torch.init(
        3, ddpgx_torch.DDPGConfig(batch_size=ref.B, **kwargs), OBS_SPACE, ACT_SPACE, state_space=state_space,
        policy=ddpgx_torch.networks.DeterministicPolicy(ref.OBS, ref.LOW, ref.HIGH, (ref.ACT,), ref.HIDDEN),
        critic=ddpgx_torch.networks.QFunction(5, ref.ACT, ref.HIDDEN),
    )  # fmt: skip
    convert.load_jax_train_state(tts, jts)
    rng = np.random.default_rng(0)
    batch = ref.make_batch(4, lead=(2, ref.B))._replace(states=rng.normal(2, 1, (2, ref.B, 5)).astype(np.float32),
                                                         next_states=rng.normal(2, 1, (2, ref.B, 5)).astype(np.float32))
    jts, jm = ddpgx.update(jts, batch)
    tts, tm = ddpgx_torch.update(tts, torch_batch(batch))
    for name in jm:
        np.testing.assert_allclose(float(tm[name]), float(jm[name]), rtol=1e-5, atol=1e-5, err_msg=name)
    for net in ("policy", "critic", "target_policy", "target_critic"):
        back = convert.to_flax_params(getattr(tts, net), getattr(jts, f"{net}_params"))
        for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(getattr(jts, f"{net}_params")), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5, err_msg=net)
    np.testing.assert_allclose(tts.state_stats.mean.numpy(), np.asarray(jts.state_stats.mean), rtol=1e-5)
    assert tts.step == 2


def test_policy_converts_both_ways_and_acts_the_same():
    """Train in one backend, deploy in the other: JAX -> torch -> JAX round trip keeps every parameter."""
    jts, tts = make_pair(dict(), seed=5, hidden=(400, 300))
    obs = np.random.default_rng(1).normal(size=(6, ref.OBS)).astype(np.float32)
    a_jax, _, _ = ddpgx.act(jts, obs, explore=False)
    a_torch, _, _ = ddpgx_torch.act(tts, obs, explore=False)
    np.testing.assert_allclose(a_torch.numpy(), np.asarray(a_jax), atol=1e-6)
    deployed = convert.policy_from_jax(jts)
    np.testing.assert_allclose(deployed(torch.from_numpy(obs)).detach().numpy(), np.asarray(a_jax), atol=1e-6)
    # torch -> JAX: perturb the torch policy, write it back, and the JAX policy acts like the torch one.
    with torch.no_grad():
        for p in tts.policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    jts2 = jts.replace(policy_params=convert.to_flax_params(tts.policy, jts.policy_params))
    a_jax2, _, _ = ddpgx.act(jts2, obs, explore=False)
    a_torch2, _, _ = ddpgx_torch.act(tts, obs, explore=False)
    np.testing.assert_allclose(np.asarray(a_jax2), a_torch2.numpy(), atol=1e-6)
    assert np.max(np.abs(np.asarray(a_jax2) - np.asarray(a_jax))) > 1e-3  # the perturbation did change actions


def test_conversion_rejects_mismatched_networks():
    jts, _ = make_pair(dict())
    small = ddpgx_torch.networks.DeterministicPolicy(ref.OBS, ref.LOW, ref.HIGH, (ref.ACT,), (8,))
    with pytest.raises(ValueError, match="dense layers"):
        convert.load_flax_params(small, jts.policy_params)
    wide = ddpgx_torch.networks.DeterministicPolicy(ref.OBS, ref.LOW, ref.HIGH, (ref.ACT,), (33, 16))
    with pytest.raises(ValueError, match="kernel"):
        convert.load_flax_params(wide, jts.policy_params)


def test_ornstein_uhlenbeck_recursion_is_the_same_in_both_backends():
    """With std = 0 the OU process is deterministic, x_{t+1} = (1 - theta) x_t + sigma * mean: both backends give
    the same sequence (including the reset at an episode start), to float32 rounding."""
    params = dict(theta=0.3, sigma=0.5, base_scale=2.0, mean=1.0, std=0.0)
    jax_noise, torch_noise = ddpgx.OrnsteinUhlenbeckNoise(**params), ddpgx_torch.OrnsteinUhlenbeckNoise(**params)
    js, ts = ddpgx.noise.init_state(2, 3), ddpgx_torch.noise.init_state(2, 3)
    key, gen = jax.random.key(0), torch.Generator().manual_seed(0)
    expected_x = np.zeros((2, 3))
    for t in range(6):
        if t == 4:  # environment 1 starts a new episode
            starts = np.array([False, True])
            js = ddpgx.noise.reset(js, starts)
            ts = ddpgx_torch.noise.reset(ts, torch.from_numpy(starts))
            expected_x[1] = 0.0
        jv, js = ddpgx.noise.sample(jax_noise, js, key, (2, 3))
        tv, ts = ddpgx_torch.noise.sample(torch_noise, ts, gen, (2, 3))
        expected_x = 0.7 * expected_x + 0.5 * 1.0
        np.testing.assert_allclose(tv.numpy(), np.asarray(jv), rtol=1e-6)
        np.testing.assert_allclose(tv.numpy(), 2.0 * expected_x, rtol=1e-6)


@pytest.mark.parametrize("kind", ["gaussian", "ou"])
def test_noise_statistics_agree_across_backends(kind):
    """Gaussian: mean and std as given (skrl's JAX noise doubles std). OU: stationary std
    sigma * std / sqrt(theta (2 - theta)) and lag-1 autocorrelation 1 - theta, in both backends."""
    steps, envs = 4000, 64
    if kind == "gaussian":
        params = dict(mean=0.5, std=0.3)
        jnoise, tnoise = ddpgx.GaussianNoise(**params), ddpgx_torch.GaussianNoise(**params)
        expected_std, expected_rho = 0.3, 0.0
    else:
        params = dict(theta=0.15, sigma=0.2, base_scale=1.0)
        jnoise, tnoise = ddpgx.OrnsteinUhlenbeckNoise(**params), ddpgx_torch.OrnsteinUhlenbeckNoise(**params)
        expected_std, expected_rho = 0.2 / np.sqrt(0.15 * 1.85), 0.85

    def run_jax():
        def body(carry, key):
            v, s = ddpgx.noise.sample(jnoise, carry, key, (envs, 1))
            return s, v[:, 0]
        _, values = jax.lax.scan(body, ddpgx.noise.init_state(envs, 1), jax.random.split(jax.random.key(1), steps))
        return np.asarray(values)

    def run_torch():
        s, gen, out = ddpgx_torch.noise.init_state(envs, 1), torch.Generator().manual_seed(1), []
        for _ in range(steps):
            v, s = ddpgx_torch.noise.sample(tnoise, s, gen, (envs, 1))
            out.append(v[:, 0].numpy())
        return np.stack(out)

    for values in (run_jax(), run_torch()):
        values = values[200:]  # past the OU burn-in
        if kind == "gaussian":
            assert abs(values.mean() - 0.5) < 0.01
        rho = np.mean([np.corrcoef(values[:-1, e], values[1:, e])[0, 1] for e in range(envs)])
        assert abs(values.std() - expected_std) / expected_std < 0.03
        assert abs(rho - expected_rho) < 0.02


@pytest.mark.parametrize("steps", [1, 2])
def test_updates_and_actions_without_metrics_change_nothing_else(gradients, steps):
    """``metrics=False`` (what the agent passes when it records nothing) returns no metrics and no noise statistics;
    the weights, optimizer state, step count, scaler statistics, actions and noise are bit for bit those of the
    default call."""
    kwargs = dict(gradient_steps=steps, learning_rate=1e-3, observation_preprocessor=True,
                  exploration_noise=ddpgx_torch.OrnsteinUhlenbeckNoise(theta=0.15, sigma=0.2))

    def state():
        torch.manual_seed(0)  # the networks initialise from torch's global generator
        return ddpgx_torch.init(
            0, ddpgx_torch.DDPGConfig(batch_size=ref.B, **kwargs), OBS_SPACE, ACT_SPACE,
            policy=ddpgx_torch.networks.DeterministicPolicy(ref.OBS, ref.LOW, ref.HIGH, (ref.ACT,), ref.HIDDEN),
            critic=ddpgx_torch.networks.QFunction(ref.OBS, ref.ACT, ref.HIDDEN))

    full, lean = state(), state()
    batch = torch_batch(ref.make_batch(5, lead=(steps, ref.B) if steps > 1 else (ref.B,)))
    full, metrics = ddpgx_torch.update(full, batch)
    lean, none = ddpgx_torch.update(lean, batch, metrics=False)
    assert none == {} and "critic_loss" in metrics
    rows = ddpgx_torch.Transition(*(None if x is None else x[-1] if steps > 1 else x for x in batch))
    buffer = replay.init(ref.B, rows._replace(**{k: getattr(rows, k)[0] for k in ("observations", "actions",
                                                 "rewards", "next_observations", "terminated")}), num_envs=ref.B)
    buffer = replay.add(buffer, rows)
    full, _ = ddpgx_torch.update_from_replay(full, buffer)
    lean, none = ddpgx_torch.update_from_replay(lean, buffer, metrics=False)
    assert none == {}
    obs = torch.randn(4, ref.OBS, generator=torch.Generator().manual_seed(1))
    starts = torch.tensor([True, False, False, True])
    a_full, full, info_full = ddpgx_torch.act(full, obs, timestep=10, timesteps=20, episode_starts=starts)
    a_lean, lean, info_lean = ddpgx_torch.act(lean, obs, timestep=10, timesteps=20, episode_starts=starts,
                                              metrics=False)
    assert {"noise_max", "noise_min", "noise_mean"} <= set(info_full) and "noise_mean" not in info_lean
    assert torch.equal(a_full, a_lean) and torch.equal(info_full["noise"], info_lean["noise"])
    assert full.step == lean.step == 2 * steps
    for net in ("policy", "critic", "target_policy", "target_critic"):
        for a, b in zip(getattr(full, net).parameters(), getattr(lean, net).parameters(), strict=True):
            assert torch.equal(a, b), net
    for opt in ("policy_optimizer", "critic_optimizer"):
        sa, sb = getattr(full, opt).state_dict()["state"], getattr(lean, opt).state_dict()["state"]
        assert all(torch.equal(sa[k][n], sb[k][n]) for k in sa for n in sa[k]), opt
    assert torch.equal(full.observation_stats.mean, lean.observation_stats.mean)
    assert torch.equal(full.noise_state, lean.noise_state)
