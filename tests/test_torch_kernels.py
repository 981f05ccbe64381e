"""ddpgx_torch's fast paths against torch's own kernels: the oneDNN ``Linear`` against ``nn.Linear`` (values and
gradients), and the direct fused-Adam step against ``torch.optim.Adam.step`` (bit for bit, state dict included)."""

from __future__ import annotations

import copy

import gymnasium
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ddpgx_torch  # noqa: E402
from ddpgx_torch.core import ddpg as core  # noqa: E402
from ddpgx_torch.core import linear, networks  # noqa: E402

needs_onednn = pytest.mark.skipif(not linear.available(), reason="this torch build has no oneDNN linear")


def _random_batch(g: torch.Generator, size: int, terminal_rate: float = 0.0) -> ddpgx_torch.Transition:
    """A Pendulum-sized batch (3-d observations, actions in [-2, 2]) drawn from ``g``."""
    return ddpgx_torch.Transition(
        observations=torch.randn(size, 3, generator=g), actions=torch.rand(size, 1, generator=g) * 4 - 2,
        rewards=torch.randn(size, generator=g), next_observations=torch.randn(size, 3, generator=g),
        terminated=(torch.rand(size, generator=g) < terminal_rate).float() if terminal_rate else torch.zeros(size))


def _pair(in_features, out_features, seed=0):
    torch.manual_seed(seed)
    reference = torch.nn.Linear(in_features, out_features)
    ours = linear.Linear(in_features, out_features)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def _calls(monkeypatch) -> list:
    """Counts the oneDNN calls (so a test can tell the fast path ran)."""
    calls = []
    op = linear._linear_op()
    monkeypatch.setattr(linear, "prefer_onednn", lambda: True)  # whatever this machine's CPU prefers

    def counted(*args):
        calls.append(tuple(a.shape for a in args[:2]))
        return op(*args)

    monkeypatch.setattr(linear, "_linear_op", lambda: counted)
    return calls


@needs_onednn
@pytest.mark.parametrize("rows", [16, 100, 257])
def test_onednn_linear_matches_nn_linear_values_and_gradients(rows, monkeypatch):
    reference, ours = _pair(400, 300)
    x = torch.randn(rows, 400, generator=torch.Generator().manual_seed(1), requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    calls = _calls(monkeypatch)
    y_ref, y = reference(x), ours(x2)
    assert calls, "the oneDNN path did not run"
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    weights = torch.randn(rows, 300, generator=torch.Generator().manual_seed(2))
    g_ref = torch.autograd.grad((y_ref * weights).sum(), [x, reference.weight, reference.bias])
    g = torch.autograd.grad((y * weights).sum(), [x2, ours.weight, ours.bias])
    assert len(calls) == 3  # forward, input gradient, weight gradient
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_onednn_linear_handles_leading_dimensions_and_skips_unneeded_gradients(monkeypatch):
    reference, ours = _pair(400, 300)
    x = torch.randn(4, 8, 400)
    calls = _calls(monkeypatch)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
    assert calls == [((32, 400), (300, 400))]
    ours.requires_grad_(False)
    x.requires_grad_(True)
    del calls[:]
    (grad_x,) = torch.autograd.grad(ours(x).sum(), [x])
    assert len(calls) == 2  # forward and input gradient; no weight gradient for a frozen layer
    torch.testing.assert_close(grad_x, reference.weight.sum(0).expand(4, 8, 400), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:TF32 acceleration")  # torch.backends.mkldnn.flags on a CPU-only build
def test_linear_falls_back_to_torch_where_onednn_does_not_apply(monkeypatch):
    calls = _calls(monkeypatch) if linear.available() else []
    reference, ours = _pair(400, 300)
    x = torch.randn(32, 400)
    cases = {
        "too few rows": x[:3],
        "float64": x.double(),
    }
    for name, inputs in cases.items():
        ref = reference.double() if inputs.dtype == torch.float64 else reference.float()
        mine = ours.double() if inputs.dtype == torch.float64 else ours.float()
        torch.testing.assert_close(mine(inputs), ref(inputs), msg=name)
    ours.float()
    small_ref, small = _pair(4, 400)  # a small weight
    torch.testing.assert_close(small(x[:, :4]), small_ref(x[:, :4]))
    with torch.backends.mkldnn.flags(enabled=False):  # torch's own switch
        ours(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: torch's bf16 kernels
        assert ours(x).dtype == torch.bfloat16
    assert calls == []
    ours(x)  # and the path is taken again afterwards
    assert len(calls) == (1 if linear.available() else 0)


@needs_onednn
def test_default_networks_use_onednn_and_the_policy_step_skips_the_critics_weight_gradients(monkeypatch):
    obs = gymnasium.spaces.Box(-1.0, 1.0, (3,))
    act = gymnasium.spaces.Box(-2.0, 2.0, (1,))
    ts = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=32), obs, act)
    assert all(isinstance(m, linear.Linear) for m in ts.critic.modules() if isinstance(m, torch.nn.Linear))
    calls = _calls(monkeypatch)
    g = torch.Generator().manual_seed(0)
    batch = _random_batch(g, 32)
    ddpgx_torch.update(ts, batch)
    # 400x300 products: forward of target policy, target critic, critic, policy, critic on mu(s) (5); backward of
    # the critic step (input and weight gradient: 2) and of the policy step (critic input gradient, policy input
    # and weight gradients: 3). The critic's weight gradient in the policy step is not computed.
    assert len(calls) == 10
    assert all(p.requires_grad for p in ts.critic.parameters())  # unfrozen again


@needs_onednn
def test_onednn_is_preferred_except_over_mkl_on_intel_cpus_and_the_variable_decides(monkeypatch):
    monkeypatch.delenv("DDPGX_TORCH_ONEDNN", raising=False)
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: True)
    try:
        for vendor, preferred in (("GenuineIntel", False), ("AuthenticAMD", True), ("", True)):
            monkeypatch.setattr(linear, "_cpu_vendor", lambda vendor=vendor: vendor)
            linear.prefer_onednn.cache_clear()
            assert linear.prefer_onednn() is preferred, vendor
        for value, preferred in (("1", True), ("0", False)):
            monkeypatch.setenv("DDPGX_TORCH_ONEDNN", value)  # over the vendor rule (AuthenticAMD: 0 wins)
            linear.prefer_onednn.cache_clear()
            assert linear.prefer_onednn() is preferred
        monkeypatch.setenv("DDPGX_TORCH_ONEDNN", "yes")
        linear.prefer_onednn.cache_clear()
        with pytest.raises(ValueError, match="DDPGX_TORCH_ONEDNN='yes' is invalid"):
            linear.prefer_onednn()
    finally:
        linear.prefer_onednn.cache_clear()
    # not preferred: the default networks' update makes no oneDNN call (MKL's addmm/mm), with the same numbers
    op, calls = linear._linear_op(), []
    monkeypatch.setattr(linear, "_linear_op", lambda: lambda *args: calls.append(1) or op(*args))
    batch = _random_batch(torch.Generator().manual_seed(0), 32)
    obs, act = gymnasium.spaces.Box(-1.0, 1.0, (3,)), gymnasium.spaces.Box(-2.0, 2.0, (1,))
    results = {}
    for preferred in (False, True):
        monkeypatch.setattr(linear, "prefer_onednn", lambda preferred=preferred: preferred)
        ts, _ = ddpgx_torch.update(ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=32), obs, act), batch)
        results[preferred], count, calls[:] = ts, len(calls), []
        assert count == (10 if preferred else 0)
    for a, b in zip(results[False].critic.parameters(), results[True].critic.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _mlp_pair(sizes, seed=0):
    """A default-network MLP and the same layers as a plain nn.Sequential (torch's autograd, layer by layer)."""
    torch.manual_seed(seed)
    mlp = networks.MLP(sizes[0], sizes[1:-1], sizes[-1])
    layers = []
    for layer in mlp.layers:
        plain = torch.nn.Linear(layer.in_features, layer.out_features)
        plain.load_state_dict(layer.state_dict())
        layers += [plain, torch.nn.ReLU()]
    return mlp, torch.nn.Sequential(*layers[:-1])


@pytest.mark.parametrize("sizes", [(4, 400, 300, 1), (3, 32, 16, 2)])
def test_fused_mlp_matches_torch_layer_by_layer(sizes, monkeypatch):
    mlp, reference = _mlp_pair(sizes)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, sizes[0], generator=g, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    calls = _calls(monkeypatch) if linear.available() else []
    y, y_ref = mlp(x), reference(x_ref)
    assert y.grad_fn is not None and type(y.grad_fn).__name__ == "_FusedMLPBackward"  # one node for the MLP
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    weights = torch.randn(y.shape, generator=g)
    grads = torch.autograd.grad((y * weights).sum(), [x, *mlp.parameters()])
    grads_ref = torch.autograd.grad((y_ref * weights).sum(), [x_ref, *reference.parameters()])
    for a, b in zip(grads, grads_ref, strict=True):
        assert a.shape == b.shape and a.is_contiguous()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    if linear.available():  # the 400x300 layer: forward, weight gradient and input gradient on oneDNN
        assert len(calls) == (3 if sizes[1] == 400 else 0)

    # a frozen MLP (the critic in the policy step) gives the input's gradient only, without weight products
    mlp.requires_grad_(False)
    reference.requires_grad_(False)
    del calls[:]
    (gx,) = torch.autograd.grad((mlp(x) * weights).sum(), [x])
    (gx_ref,) = torch.autograd.grad((reference(x_ref) * weights).sum(), [x_ref])
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)
    if linear.available():
        assert len(calls) == (2 if sizes[1] == 400 else 0)

    # without gradients (the target networks) no autograd node is made; leading dimensions are kept
    with torch.no_grad():
        y3 = mlp(x.detach().reshape(4, 16, sizes[0]))
    assert y3.grad_fn is None and y3.shape == (4, 16, sizes[-1])
    torch.testing.assert_close(y3.reshape(64, -1), y_ref.detach(), rtol=1e-5, atol=1e-5)


def test_fused_mlp_goes_layer_by_layer_for_hooks_autocast_and_other_dtypes():
    mlp, reference = _mlp_pair((4, 400, 300, 1))
    x = torch.randn(32, 4)
    seen = []
    handle = mlp.layers[1].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    y = mlp(x)
    assert seen == [(32, 300)] and type(y.grad_fn).__name__ != "_FusedMLPBackward"  # the hook ran
    handle.remove()
    torch.testing.assert_close(y, reference(x), rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert mlp(x).dtype == torch.bfloat16
    torch.testing.assert_close(mlp.double()(x.double()), reference.double()(x.double()))


def test_direct_fused_adam_step_equals_adam_step_bit_for_bit():
    obs = gymnasium.spaces.Box(-1.0, 1.0, (3,))
    act = gymnasium.spaces.Box(-2.0, 2.0, (1,))
    ts = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=16), obs, act,
                          policy=networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (32, 16)),
                          critic=networks.QFunction(3, 1, (32, 16)))
    reference = copy.deepcopy(ts)
    params = core._params(ts, "critic")
    ref_params = core._params(reference, "critic")
    rng = np.random.default_rng(0)
    used = []
    for step in range(4):
        grads = [torch.as_tensor(rng.normal(size=p.shape), dtype=torch.float32) for p in params]
        for p, g in zip(ref_params, grads, strict=True):
            p.grad = g.clone()
        reference.critic_optimizer.step()
        used.append(core._fused_adam_step(ts, ts.critic_optimizer, params, [g.clone() for g in grads]))
        if not used[-1]:
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            ts.critic_optimizer.step()
        if step == 2:  # a changed learning rate is honoured
            for o in (ts.critic_optimizer, reference.critic_optimizer):
                o.param_groups[0]["lr"] = 3e-4
    assert used == [False, True, True, True]  # the first step creates Adam's state
    for a, b in zip(params, ref_params, strict=True):
        assert torch.equal(a, b)
    sd, ref_sd = ts.critic_optimizer.state_dict(), reference.critic_optimizer.state_dict()
    for i, state in sd["state"].items():
        for name, value in state.items():
            assert torch.equal(value, ref_sd["state"][i][name]), name


def test_direct_fused_adam_step_steps_aside_for_hooks_and_other_optimizers():
    torch.manual_seed(0)
    net = networks.MLP(3, (8,), 1)
    params = list(net.parameters())
    grads = [torch.ones_like(p) for p in params]
    ts = type("TS", (), {"param_cache": {}})()
    sgd = torch.optim.SGD(params, lr=0.1)
    assert not core._fused_adam_step(ts, sgd, params, grads)
    adam = core.adam(params, 1e-3, torch.device("cpu"))
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    adam.step()
    assert core._fused_adam_step(ts, adam, params, grads)
    handle = adam.register_step_post_hook(lambda *args: None)
    assert not core._fused_adam_step(ts, adam, params, grads)
    handle.remove()
    assert not core._fused_adam_step(ts, adam, params, grads[:-1])  # a parameter without a gradient
    adam.load_state_dict(adam.state_dict())  # new state tensors: the cached lists are rebuilt
    before = adam.state[params[0]]["exp_avg"].clone()
    assert core._fused_adam_step(ts, adam, params, grads)
    assert not torch.equal(adam.state[params[0]]["exp_avg"], before)


@needs_onednn
def test_use_onednn_switches_plain_linears_of_a_users_model_in_place(monkeypatch):
    torch.manual_seed(0)

    class Custom(torch.nn.Linear):  # a subclass with a forward of its own stays as it is
        def forward(self, x):
            return super().forward(x) * 2

    model = torch.nn.Sequential(torch.nn.Linear(3, 400), torch.nn.ReLU(), torch.nn.Linear(400, 300),
                                torch.nn.ReLU(), Custom(300, 1))
    x = torch.randn(32, 3)
    before, names = model(x), [n for n, _ in model.named_parameters()]
    assert linear.use_onednn(model) is model
    assert type(model[2]) is linear.Linear and type(model[0]) is linear.Linear and type(model[4]) is Custom
    assert [n for n, _ in model.named_parameters()] == names
    calls = _calls(monkeypatch)
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)
    assert len(calls) == 1  # the 400x300 layer; the others are small
    with pytest.raises(ValueError, match="torch.nn.Module"):
        linear.use_onednn("not a module")


class _EinsumPolicy(torch.nn.Module):
    """A user's policy written with einsum, whose weight gradients come out transposed (not contiguous)."""

    def __init__(self, reference: networks.DeterministicPolicy):
        super().__init__()
        self.weights = torch.nn.ParameterList(layer.weight.detach().clone() for layer in reference.mlp.layers)
        self.biases = torch.nn.ParameterList(layer.bias.detach().clone() for layer in reference.mlp.layers)

    def forward(self, obs):
        h = obs
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.einsum("bi,oi->bo", h, w) + b
            h = torch.relu(h) if i < len(self.weights) - 1 else torch.tanh(h) * 2.0
        return h


def test_the_optimizer_steps_are_right_for_gradients_that_come_out_transposed():
    # torch's fused Adam reads a gradient as if laid out like its parameter; torch.autograd.grad hands back
    # einsum's weight gradients transposed (torch only fixes the layout when accumulating into .grad).
    obs = gymnasium.spaces.Box(-1.0, 1.0, (3,))
    act = gymnasium.spaces.Box(-2.0, 2.0, (1,))
    torch.manual_seed(0)
    plain = networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (32, 16))
    critic = networks.QFunction(3, 1, (32, 16))
    config = ddpgx_torch.DDPGConfig(batch_size=16)
    reference = ddpgx_torch.init(0, config, obs, act, policy=plain, critic=copy.deepcopy(critic))
    ts = ddpgx_torch.init(0, config, obs, act, policy=_EinsumPolicy(plain), critic=copy.deepcopy(critic))
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # the first step goes through Adam.step, the others through the direct fused step
        batch = _random_batch(g, 16)
        ddpgx_torch.update(reference, batch)
        ddpgx_torch.update(ts, batch)
    for layer, w, b in zip(reference.policy.mlp.layers, ts.policy.weights, ts.policy.biases, strict=True):
        torch.testing.assert_close(w, layer.weight, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b, layer.bias, rtol=1e-5, atol=1e-6)


def _path_spy(monkeypatch) -> list:
    taken = []
    decide = core._explicit_gradients

    def spy(*args):
        taken.append(decide(*args))
        return taken[-1]

    monkeypatch.setattr(core, "_explicit_gradients", spy)
    return taken


def _default_pair(config, seed=0):
    obs = gymnasium.spaces.Box(-1.0, 1.0, (3,))
    act = gymnasium.spaces.Box(-2.0, 2.0, (1,))
    ts = ddpgx_torch.init(seed, config, obs, act)
    return ts, copy.deepcopy(ts)


@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_explicit_gradients_equal_autograd_on_the_default_networks(clip, monkeypatch):
    config = ddpgx_torch.DDPGConfig(batch_size=64, grad_norm_clip=clip, observation_preprocessor=True)
    explicit, autograd = _default_pair(config)
    taken = _path_spy(monkeypatch)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        batch = _random_batch(g, 64, terminal_rate=0.1)
        monkeypatch.setattr(core, "EXPLICIT_GRADIENTS", True)
        _, m_explicit = ddpgx_torch.update(explicit, batch)
        monkeypatch.setattr(core, "EXPLICIT_GRADIENTS", False)
        _, m_autograd = ddpgx_torch.update(autograd, batch)
        assert sorted(m_explicit) == sorted(m_autograd)
        for name, value in m_autograd.items():
            torch.testing.assert_close(m_explicit[name], value, rtol=1e-6, atol=1e-6, msg=name)
    assert taken == [True, False] * 4
    for role in ("policy", "critic", "target_policy", "target_critic"):
        for a, b in zip(getattr(explicit, role).parameters(), getattr(autograd, role).parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=role)
    assert explicit.step == autograd.step == 4


def test_explicit_gradients_step_aside_where_they_do_not_apply(monkeypatch):
    taken = _path_spy(monkeypatch)
    g = torch.Generator().manual_seed(0)
    batch = _random_batch(g, 32)
    ts, _ = _default_pair(ddpgx_torch.DDPGConfig(batch_size=32))
    ddpgx_torch.update(ts, batch)
    seen = []
    handle = ts.critic.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    ddpgx_torch.update(ts, batch)  # a hook must run, so the critic is called as a module
    handle.remove()
    assert seen == [(32,), (32,)]  # the critic step and the policy step (target networks are other modules)
    ts.policy.mlp.layers[0].requires_grad_(False)  # a frozen layer: autograd skips it
    before = ts.policy.mlp.layers[0].weight.clone()
    ddpgx_torch.update(ts, batch)
    assert torch.equal(ts.policy.mlp.layers[0].weight, before)
    ts.policy.mlp.layers[0].requires_grad_(True)

    class Policy(networks.DeterministicPolicy):  # a subclass may have a forward of its own
        pass

    sub = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=32), gymnasium.spaces.Box(-1.0, 1.0, (3,)),
                           gymnasium.spaces.Box(-2.0, 2.0, (1,)), policy=Policy(3, [-2.0], [2.0], (1,)))
    ddpgx_torch.update(sub, batch)
    amp, _ = _default_pair(ddpgx_torch.DDPGConfig(batch_size=32, mixed_precision=True))
    ddpgx_torch.update(amp, batch)
    assert taken == [True, False, False, False, False]


def test_a_frozen_network_part_stays_as_it_is_with_clipping_too():
    obs = gymnasium.spaces.Box(-1.0, 1.0, (3,))
    act = gymnasium.spaces.Box(-2.0, 2.0, (1,))
    ts = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=16, grad_norm_clip=1.0), obs, act,
                          policy=_EinsumPolicy(networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (32, 16))))
    ts.policy.weights[0].requires_grad_(False)
    ts.critic.requires_grad_(False)  # everything of the critic: its step changes nothing
    frozen = [ts.policy.weights[0].clone(), *(p.clone() for p in ts.critic.parameters())]
    trained = ts.policy.weights[1].clone()
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        _, metrics = ddpgx_torch.update(ts, _random_batch(g, 16))
    for before, after in zip(frozen, [ts.policy.weights[0], *ts.critic.parameters()], strict=True):
        assert torch.equal(before, after)
    assert not torch.equal(trained, ts.policy.weights[1])
    assert torch.isnan(metrics["critic_grad_norm"]) and torch.isfinite(metrics["policy_grad_norm"])
