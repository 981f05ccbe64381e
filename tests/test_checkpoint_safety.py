"""Checkpoints are data, never code: files crafted to run a command on load are refused (and the command never runs)
by ``ddpgx_torch.DDPG.load``, ``ddpgx_torch.models.Model.load`` and the skrl JAX pickle path of ``ddpgx.DDPG.load``;
torch checkpoints are written atomically and sealed, so a truncated or altered one is refused; skrl JAX checkpoints
load into ``ddpgx.DDPG`` with the same numbers."""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import zipfile

import flax.linen as nn
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import ddpgx
import ddpgx_torch
from ddpgx import safe_io
from ddpgx.models import DeterministicMixin, Model
from ddpgx.preprocessors import RunningStandardScaler
from ddpgx_torch import checkpoints as torch_checkpoints
from ddpgx_torch.core import networks as torch_networks
from ddpgx_torch.memories import RandomMemory as TorchMemory

OBS = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)


class Payload:
    """An object whose unpickling calls ``function(*args)``: what a malicious checkpoint holds."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


# Three ways to run a command from a pickle; each one creates the file ``marker`` if it runs.
PAYLOADS = {
    "os.system": lambda marker: Payload(os.system, f"touch {marker}"),
    "builtins.exec": lambda marker: Payload(exec, f"open({str(marker)!r}, 'w').close()"),
    "subprocess.call": lambda marker: Payload(subprocess.call, ["touch", str(marker)]),
}
GLOBAL_NAMES = {"os.system": "system", "builtins.exec": "exec", "subprocess.call": "call"}


def torch_agent(tmp_path=None, memory_size=64):
    ddpgx_torch.models.set_seed(3)
    models = {"policy": torch_networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (16, 16)),
              "critic": torch_networks.QFunction(3, 1, (16, 16))}
    return ddpgx_torch.DDPG(models=models, memory=TorchMemory(memory_size=memory_size), observation_space=OBS,
                            action_space=ACT, cfg={"batch_size": 8, "experiment": {
                                "directory": str(tmp_path or "/nonexistent"), "experiment_name": "run",
                                "write_interval": 0, "checkpoint_interval": 0}})


def torch_bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_the_crafted_files_do_run_their_command_when_loaded_naively(tmp_path):
    # Without this, a refusal below could come from a broken payload rather than from the loaders.
    for name, make in PAYLOADS.items():
        marker = tmp_path / f"{name}.ran"
        (tmp_path / "plain.pickle").write_bytes(pickle.dumps({"policy": make(marker)}))
        with open(tmp_path / "plain.pickle", "rb") as file:
            pickle.load(file)  # what skrl's JAX Agent.load does
        assert marker.exists(), name
        marker.unlink()
        (tmp_path / "plain.pt").write_bytes(torch_bytes({"policy": make(marker)}))
        torch.load(tmp_path / "plain.pt", weights_only=False)  # what ddpgx_torch did before
        assert marker.exists(), name


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("loader", ["torch DDPG.load", "torch Model.load", "skrl JAX pickle (ddpgx.DDPG.load)"])
def test_a_checkpoint_that_would_run_a_command_is_refused_and_the_command_never_runs(tmp_path, loader, payload):
    marker = tmp_path / "ran"
    evil = PAYLOADS[payload](marker)
    if loader == "torch DDPG.load":
        agent = torch_agent()
        content = agent._checkpoint()
        content["policy_optimizer"]["state"][0] = {"step": evil}  # hidden deep inside a real agent checkpoint
        path = tmp_path / "agent_100.pt"
        path.write_bytes(safe_io.seal_zip(torch_bytes(content)))  # sealing (a digest) does not make it trusted
        load = agent.load
    elif loader == "torch Model.load":
        policy = torch_networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (16, 16))
        content = dict(policy.state_dict())
        content["extra"] = evil
        path = tmp_path / "policy.pt"
        path.write_bytes(torch_bytes(content))
        model = ddpgx_torch.models.Model(OBS, ACT)
        load = model.load
    else:
        path = tmp_path / "agent_100.pickle"
        path.write_bytes(pickle.dumps({"policy": b"\x80", "critic": evil}, protocol=4))
        load = ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=ACT).load
    with pytest.raises(ValueError, match=rf"{path.name}'? refused: .*{GLOBAL_NAMES[payload]}"):
        load(str(path))
    assert not marker.exists()


def test_torch_checkpoints_are_sealed_and_damage_is_refused_naming_the_file(tmp_path):
    agent = torch_agent(tmp_path)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for t in (20, 40, 60):
        agent.save(str(folder / f"agent_{t}.pt"))
    assert torch_checkpoints.latest(str(folder)) == str(folder / "agent_60.pt")
    # Still a plain torch file: torch.load (safe mode) reads it, the seal is one more zip record.
    plain = torch.load(folder / "agent_60.pt", weights_only=True)
    assert set(plain) >= {"policy", "critic", "policy_optimizer", "ddpgx_torch"}

    data = (folder / "agent_60.pt").read_bytes()
    (folder / "agent_60.pt").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ValueError, match="agent_60.pt' is truncated or corrupted"):
        agent.load(str(folder / "agent_60.pt"))
    assert torch_checkpoints.latest(str(folder)) == str(folder / "agent_40.pt")

    # One bit of a tensor's bytes flipped: torch.load would read the altered value without a word.
    with zipfile.ZipFile(folder / "agent_40.pt") as archive:
        record = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 64)
    altered = bytearray((folder / "agent_40.pt").read_bytes())
    name_length, extra_length = struct.unpack_from("<HH", altered, record.header_offset + 26)  # local header
    offset = record.header_offset + 30 + name_length + extra_length + 5  # a byte of the tensor's data
    altered[offset] ^= 1
    (folder / "agent_40.pt").write_bytes(bytes(altered))
    # torch itself does not notice: it reads the altered value without a word
    reread = torch.load(folder / "agent_40.pt", weights_only=True)
    assert any(not torch.equal(a, b) for a, b in zip(jax.tree.leaves(reread), jax.tree.leaves(plain), strict=True)
               if isinstance(a, torch.Tensor))
    with pytest.raises(ValueError, match="agent_40.pt' is (truncated or )?corrupted"):
        agent.load(str(folder / "agent_40.pt"))
    assert torch_checkpoints.latest(str(folder)) == str(folder / "agent_20.pt")

    # A file written by another program (skrl's torch.save: unsealed) loads, its CRC-32s checked; resume skips it.
    (folder / "agent_80.pt").write_bytes(torch_bytes(agent._checkpoint(include_memory=False)))
    agent.load(str(folder / "agent_80.pt"))
    assert torch_checkpoints.latest(str(folder)) == str(folder / "agent_20.pt")
    with pytest.raises(ValueError, match="agent_99.pt' does not exist"):
        agent.load(str(folder / "agent_99.pt"))


def test_a_torch_write_that_fails_midway_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    agent = torch_agent(tmp_path)
    best = tmp_path / "best_agent.pt"
    agent.save(str(best))
    before = best.read_bytes()

    def fail(*args):  # the process dies between writing the temporary file and renaming it
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        agent.save(str(best))
    monkeypatch.undo()
    assert best.read_bytes() == before and os.listdir(tmp_path) == ["best_agent.pt"]
    torch_checkpoints.verify(str(best))


def test_torch_save_refuses_what_is_not_data(tmp_path):
    with pytest.raises(ValueError, match=r"checkpoint\['scheduler'\]\['fn'\] is a builtins.function"):
        torch_checkpoints.save({"scheduler": {"fn": lambda step: 1.0}}, str(tmp_path / "x.pt"))
    assert not (tmp_path / "x.pt").exists()


def test_model_save_load_round_trip_and_damage(tmp_path):
    policy = torch_networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (16, 16))
    model = ddpgx_torch.models.Model(OBS, ACT)
    model.net = policy
    model.save(str(tmp_path / "model.pt"))
    other = ddpgx_torch.models.Model(OBS, ACT)
    other.net = torch_networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (16, 16))
    other.load(str(tmp_path / "model.pt"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values(),
                                                 strict=True))
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "model.pt").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="model.pt' is truncated or corrupted"):
        other.load(str(tmp_path / "model.pt"))


def test_restricted_unpickler_admits_data_only(tmp_path):
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.float32(1.5), "c": [1, 2.0, "x", (b"y",)],
            "d": {1, 2}, "e": np.int64(7)}
    for protocol in (2, 4, 5):
        (tmp_path / "ok.pickle").write_bytes(pickle.dumps(data, protocol=protocol))
        back = safe_io.restricted_load(str(tmp_path / "ok.pickle"))
        assert np.array_equal(back["a"], data["a"]) and back["c"] == data["c"] and back["d"] == {1, 2}
    (tmp_path / "cls.pickle").write_bytes(pickle.dumps({"x": gymnasium.spaces.Box(0, 1)}))
    with pytest.raises(ValueError, match="names gymnasium.spaces.box.Box, which is not data"):
        safe_io.restricted_load(str(tmp_path / "cls.pickle"))
    (tmp_path / "cut.pickle").write_bytes(pickle.dumps(data)[:20])
    with pytest.raises(ValueError, match="cut.pickle' is not a readable pickle"):
        safe_io.restricted_load(str(tmp_path / "cut.pickle"))


# ---------------------------------------------------------------------------------------------------------------------
# skrl JAX checkpoints into ddpgx.DDPG


def _actor_critic(model_base, mixin):
    class Actor(mixin, model_base):
        def __init__(self, observation_space, state_space, action_space, device=None, **kwargs):
            model_base.__init__(self, observation_space=observation_space, state_space=state_space,
                                action_space=action_space, device=device, **kwargs)
            mixin.__init__(self)

        @nn.compact
        def __call__(self, inputs, role):
            x = nn.relu(nn.Dense(16)(inputs["observations"]))
            return 2 * nn.tanh(nn.Dense(self.num_actions)(x)), {}

    class Critic(mixin, model_base):
        def __init__(self, observation_space, state_space, action_space, device=None, **kwargs):
            model_base.__init__(self, observation_space=observation_space, state_space=state_space,
                                action_space=action_space, device=device, **kwargs)
            mixin.__init__(self)

        @nn.compact
        def __call__(self, inputs, role):
            x = jnp.concatenate([inputs["observations"], inputs["taken_actions"]], axis=-1)
            return nn.Dense(1)(nn.relu(nn.Dense(16)(x))), {}

    return Actor, Critic


def _models(model_base, mixin):
    actor, critic = _actor_critic(model_base, mixin)
    models = {role: cls(observation_space=OBS, state_space=None, action_space=ACT)
              for role, cls in (("policy", actor), ("target_policy", actor), ("critic", critic),
                                ("target_critic", critic))}
    for role, model in models.items():
        model.init_state_dict(role=role)
    return models


@pytest.fixture(scope="module")
def skrl_checkpoint(tmp_path_factory):
    """A checkpoint written by skrl's own JAX ``DDPG.save``, with distinct values in every module (Adam moments
    and step counts, scaler statistics, targets unlike their online networks)."""
    pytest.importorskip("skrl")
    from skrl.agents.jax.ddpg import DDPG, DDPG_CFG
    from skrl.memories.jax import RandomMemory
    from skrl.models.jax import DeterministicMixin as SkrlMixin
    from skrl.models.jax import Model as SkrlModel
    from skrl.resources.preprocessors.jax import RunningStandardScaler as SkrlScaler

    models = _models(SkrlModel, SkrlMixin)
    cfg = DDPG_CFG()
    cfg.observation_preprocessor = SkrlScaler
    cfg.observation_preprocessor_kwargs = {"size": OBS}
    cfg.grad_norm_clip = 0.5  # optax state nested one level deeper behind the clipping
    cfg.experiment.write_interval = cfg.experiment.checkpoint_interval = 0
    agent = DDPG(models=models, memory=RandomMemory(memory_size=16), cfg=cfg, observation_space=OBS,
                 action_space=ACT)
    agent.init()
    rng = np.random.default_rng(0)
    shift = lambda tree: jax.tree.map(lambda x: jnp.asarray(x + rng.uniform(0.1, 1.0, np.shape(x)), x.dtype), tree)  # noqa: E731
    for name in ("target_policy", "target_critic"):
        models[name].state_dict = models[name].state_dict.replace(params=shift(models[name].state_dict.params))
    for opt in ("policy_optimizer", "critic_optimizer"):
        optimizer = getattr(agent, opt)
        state = jax.tree.map(lambda x: x + 7 if jnp.issubdtype(x.dtype, jnp.integer) else x, shift(optimizer.state))
        setattr(agent, opt, optimizer.replace(state=state))
        agent.checkpoint_modules[opt] = getattr(agent, opt)
    scaler = agent._observation_preprocessor
    scaler.running_mean, scaler.running_variance = jnp.array([0.5, -0.2, 0.1]), jnp.array([2.0, 0.5, 1.5])
    scaler.current_count = jnp.array([42.0])
    path = tmp_path_factory.mktemp("skrl") / "agent_300.pickle"
    agent.save(str(path))
    obs = rng.uniform(-1, 1, (5, 3)).astype(np.float32)
    actions, _ = agent.policy.act({"observations": scaler(obs)}, role="policy")  # skrl's own evaluation path
    return path, agent, np.asarray(actions), obs


def _ddpgx_agent(**cfg):
    models = _models(Model, DeterministicMixin)
    return ddpgx.DDPG(models=models, memory=ddpgx.memories.RandomMemory(memory_size=16), observation_space=OBS,
                      action_space=ACT, cfg={"grad_norm_clip": 0.5, **cfg})


def test_skrl_jax_checkpoint_loads_into_ddpgx(skrl_checkpoint):
    path, skrl_agent, skrl_actions, obs = skrl_checkpoint
    agent = _ddpgx_agent(observation_preprocessor=RunningStandardScaler)
    agent.load(str(path))
    ts = agent.train_state
    for role, field in (("policy", "policy_params"), ("target_policy", "target_policy_params"),
                        ("critic", "critic_params"), ("target_critic", "target_critic_params")):
        expected = jax.tree_util.tree_leaves_with_path(skrl_agent.checkpoint_modules[role].state_dict.params)
        got = dict(jax.tree_util.tree_leaves_with_path(getattr(ts, field)))
        assert [np.array_equal(got[p], x) for p, x in expected] == [True] * len(expected), role
    is_adam = lambda s: type(s).__name__ == "ScaleByAdamState"  # noqa: E731
    for name, field in (("policy_optimizer", "policy_opt_state"), ("critic_optimizer", "critic_opt_state")):
        theirs = [s for s in jax.tree.leaves(getattr(skrl_agent, name).state, is_leaf=is_adam) if is_adam(s)][0]
        ours = [s for s in jax.tree.leaves(getattr(ts, field), is_leaf=is_adam) if is_adam(s)][0]
        assert int(ours.count) == int(theirs.count) == 7
        for a, b in ((ours.mu, theirs.mu), (ours.nu, theirs.nu)):
            assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    assert np.array_equal(ts.observation_stats.mean, np.float32([0.5, -0.2, 0.1]))
    assert np.array_equal(ts.observation_stats.var, np.float32([2.0, 0.5, 1.5]))
    assert float(ts.observation_stats.count) == 42.0
    # The loaded agent acts as skrl's policy does on skrl's standardised observations (skrl divides by
    # sqrt(var) + epsilon, as ddpgx does).
    agent.enable_training_mode(False)
    actions, _ = agent.act(obs, timestep=0, timesteps=1)
    np.testing.assert_allclose(np.asarray(actions), skrl_actions, rtol=1e-5, atol=1e-6)


def test_a_skrl_jax_checkpoint_that_does_not_fit_is_refused(skrl_checkpoint, tmp_path):
    path = skrl_checkpoint[0]
    with pytest.raises(ValueError, match="holds 'observation_preprocessor', but this agent does not standardise"):
        _ddpgx_agent().load(str(path))
    small = ddpgx.DDPG(models={"policy": None}, observation_space=OBS, action_space=ACT,
                       cfg={"observation_preprocessor": RunningStandardScaler})
    with pytest.raises(ValueError, match="skrl's 'policy' does not match this agent"):
        small.load(str(path))
    modules = pickle.loads(path.read_bytes())
    (tmp_path / "extra.pickle").write_bytes(pickle.dumps({**modules, "value": modules["critic"]}))
    with pytest.raises(ValueError, match="skrl module 'value' has no counterpart"):
        _ddpgx_agent(observation_preprocessor=RunningStandardScaler).load(str(tmp_path / "extra.pickle"))
    (tmp_path / "list.pickle").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="is not a skrl JAX agent checkpoint"):
        _ddpgx_agent().load(str(tmp_path / "list.pickle"))
