"""Users' ReLU MLP models recognised by tracing, so that they run on the fused MLP kernels with explicit gradients.

The built-in networks (:mod:`ddpgx_torch.networks`) pull their gradients back themselves (``value_and_pullback``)
with the fused MLP of :mod:`ddpgx_torch.core.linear`, without autograd's engine and the modules' per-call costs. Most
DDPG models a user writes are the same thing in other words: skrl's examples define an ``Actor`` as
``2 * tanh(L3(relu(L2(relu(L1(obs))))))`` and a ``Critic`` as ``L3(relu(L2(relu(L1(cat([obs, act], 1))))))`` with
plain ``nn.Linear`` layers and ``F.relu``. :func:`plan` traces such a model once with ``torch.fx`` (symbolically: no
data flows, nothing is run) and, where its graph is exactly such a chain, returns an :class:`MLPPlan` that computes
the same function with :func:`ddpgx_torch.core.linear.mlp_forward`/``mlp_backward`` on the model's own parameters.

What is recognised (anything else gives None, and the model runs as it is, through autograd):

* inputs: the observations (policy) or the observations and the taken actions concatenated on the last axis, in
  either order (critic); a skrl-style model (``act(inputs, role=...)`` / ``compute``) or a plain module
  (``policy(obs)``, ``critic(inputs, actions)``);
* then ``nn.Linear`` layers with biases, exactly of that class or ddpgx_torch's
  :class:`~ddpgx_torch.core.linear.Linear`, with a ReLU (``F.relu``, ``torch.relu``, ``.relu()``, ``nn.ReLU``)
  between each two;
* then any sequence of ``tanh`` (function, method or ``nn.Tanh``) and additions or multiplications by Python
  numbers (e.g. ``2 * torch.tanh(x)``),
  and for a critic an optional ``squeeze(-1)``;
* output: the tensor, or skrl's ``(tensor, {})``; every parameter of the model is one of the layers', every
  intermediate value is used once, and nothing else (hooks, clipping, buffers) is in the graph.

The numbers are those of the model's own forward and autograd's backward up to float32 rounding (the products may
run on oneDNN instead of MKL; ``tests/test_torch_traced.py`` compares).
"""

from __future__ import annotations

import dataclasses
import numbers
import operator
from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional

from ddpgx_torch.core import linear

_RELU = {functional.relu, torch.relu, torch.nn.functional.relu}
_TANH = {torch.tanh, functional.tanh}


@dataclasses.dataclass(frozen=True, eq=False)
class MLPPlan:
    """A model recognised as ``post(MLP(inputs))``: see the module docstring."""

    layers: tuple[nn.Linear, ...]
    inputs: tuple[str, ...]  # ("observations",) or the concatenation order of "observations" and "taken_actions"
    post: tuple[tuple[str, float], ...]  # ("tanh", 0) | ("mul", c) | ("add", c), in order
    order: tuple[int, ...]  # order[i]: the index in [w0, b0, w1, b1, ...] of the model's i-th parameter

    def params(self) -> list[torch.Tensor]:
        return [p for layer in self.layers for p in (layer.weight, layer.bias)]

    def applies(self, x: torch.Tensor) -> bool:
        """Whether the fused kernels take this input (float32, CPU or CUDA, no autocast, no hooks on the layers)."""
        return x.dim() == 2 and linear.fused_params(x, self.layers) is not None

    def _forward(self, x: torch.Tensor, keep: bool):
        params = self.params()
        with torch.no_grad():
            z, hidden = linear.mlp_forward(x, params, keep=keep)
            saved = []
            for op, c in self.post:
                if op == "tanh":
                    z = torch.tanh(z)
                    saved.append(z)
                elif op == "mul":
                    z = z * c
                else:
                    z = z + c
        return z, hidden, saved, params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output for the (concatenated) 2-d input ``x``, without autograd."""
        return self._forward(x, keep=False)[0]

    def value_and_pullback(self, x: torch.Tensor, *, wrt_params: bool = True, wrt_inputs: bool = False):
        """``(y, pullback)``: ``pullback(dy) -> (parameter gradients in the model's parameters() order or None,
        input gradient or None)``."""
        y, hidden, saved, params = self._forward(x, keep=True)
        needs = (wrt_inputs,) + (wrt_params,) * len(params)

        def pullback(dy: torch.Tensor):
            with torch.no_grad():
                tanhs = iter(reversed(saved))
                for op, c in reversed(self.post):
                    if op == "tanh":
                        dy = torch.ops.aten.tanh_backward(dy, next(tanhs))
                    elif op == "mul":
                        dy = dy * c
                grads = linear.mlp_backward(x, hidden, params[0::2], dy, needs)
            return ([grads[1 + i] for i in self.order] if wrt_params else None), grads[0]

        return y, pullback


def policy_value_and_pullback(plan: MLPPlan, observations: torch.Tensor):
    """``(actions [B, A], pullback(d_actions) -> parameter gradients)`` of a recognised policy."""
    y, pull = plan.value_and_pullback(observations)
    return y, lambda d_actions: pull(d_actions)[0]


def critic_value_and_pullback(plan: MLPPlan, observations: torch.Tensor, actions: torch.Tensor, *,
                              wrt_params: bool = True, wrt_actions: bool = False):
    """``(q [B], pullback(dq [B]) -> (parameter gradients or None, action gradient [B, A] or None))`` of a
    recognised critic."""
    parts = {"observations": observations, "taken_actions": actions}
    x = torch.cat([parts[name] for name in plan.inputs], dim=-1)
    y, pull = plan.value_and_pullback(x, wrt_params=wrt_params, wrt_inputs=wrt_actions)
    start = 0 if plan.inputs[0] == "taken_actions" else observations.shape[-1]

    def pullback(dq: torch.Tensor):
        grads, d_x = pull(dq.unsqueeze(-1))
        return grads, (None if d_x is None else d_x[:, start:start + actions.shape[-1]])

    return y.reshape(-1), pullback


def critic_forward(plan: MLPPlan, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``q [B]`` of a recognised critic, without autograd."""
    parts = {"observations": observations, "taken_actions": actions}
    return plan.forward(torch.cat([parts[name] for name in plan.inputs], dim=-1)).reshape(-1)


class _Call(nn.Module):
    """The model called the way the core calls it, with tensors as the traced arguments."""

    def __init__(self, model: nn.Module, role: str, critic: bool, skrl_api: bool):
        super().__init__()
        self.model, self.role, self.critic, self.skrl_api = model, role, critic, skrl_api

    def forward(self, observations, taken_actions=None):
        if not self.skrl_api:
            return self.model(observations, taken_actions) if self.critic else self.model(observations)
        inputs = {"observations": observations, "states": None}
        if self.critic:
            inputs["taken_actions"] = taken_actions
        return self.model.act(inputs, role=self.role)


def plan(model: nn.Module, role: str, *, critic: bool, skrl_api: bool) -> Optional[MLPPlan]:
    """The :class:`MLPPlan` of ``model`` in ``role`` (``"policy"`` or ``"critic"``), or None where the model is not
    a recognised ReLU MLP (see the module docstring). Tracing runs no computation."""
    # Tracing runs the model's Python code once with symbolic values: whatever it assigns to its own attributes
    # (a cached output, say) is put back afterwards, so that no symbolic value stays behind in the model.
    saved = [(m, dict(m.__dict__)) for m in model.modules()]
    try:
        graph = torch.fx.Tracer().trace(_Call(model, role, critic, skrl_api),
                                        concrete_args=None if critic else {"taken_actions": None})
    except Exception:  # noqa: BLE001 -- any model fx cannot trace symbolically just keeps its own forward
        return None
    finally:
        for m, attributes in saved:
            if m.__dict__ != attributes:
                m.__dict__.clear()
                m.__dict__.update(attributes)
    return _match(graph, model, critic)


def _const(value: Any) -> Optional[float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def _match(graph: torch.fx.Graph, model: nn.Module, critic: bool) -> Optional[MLPPlan]:
    nodes = list(graph.nodes)
    placeholders = {n.name: n for n in nodes if n.op == "placeholder"}
    output = nodes[-1]
    if output.op != "output":
        return None
    result = output.args[0]
    if isinstance(result, (tuple, list)):  # skrl's (output, outputs_dict) with an empty dict
        if len(result) != 2 or not isinstance(result[1], dict) or result[1]:
            return None
        result = result[0]
    if not isinstance(result, torch.fx.Node):
        return None
    # Walk back from the output to the input, one node at a time.
    post: list[tuple[str, float]] = []
    layers: list[nn.Linear] = []
    node = result
    seen_linear = False
    expect_relu = False  # below a Linear that is not the first one walked back, a ReLU is expected
    while True:
        if len(node.users) > 1:
            return None
        if node.op == "call_module":
            module = model.get_submodule(node.target.removeprefix("model.")) if node.target.startswith("model.") \
                else None
            if isinstance(module, nn.ReLU) and layers and expect_relu:
                expect_relu = False
            elif isinstance(module, nn.Tanh) and not seen_linear:
                post.append(("tanh", 0.0))
            elif type(module) in (nn.Linear, linear.Linear) and module.bias is not None and not expect_relu:
                layers.append(module)
                seen_linear, expect_relu = True, True
            else:
                return None
            node = node.args[0]
        elif node.op == "call_function" and node.target in _RELU or (node.op == "call_method"
                                                                      and node.target == "relu"):
            if not (layers and expect_relu) or node.kwargs.get("inplace") not in (None, False):
                return None
            expect_relu = False
            node = node.args[0]
        elif not seen_linear and (node.op == "call_function" and node.target in _TANH
                                  or node.op == "call_method" and node.target == "tanh"):
            post.append(("tanh", 0.0))
            node = node.args[0]
        elif not seen_linear and node.op == "call_function" and node.target in (operator.mul, operator.add):
            a, b = node.args
            c, other = (_const(a), b) if _const(a) is not None else (_const(b), a)
            if c is None or not isinstance(other, torch.fx.Node):
                return None
            post.append(("mul" if node.target is operator.mul else "add", c))
            node = other
        elif (not seen_linear and critic and node.op == "call_method" and node.target == "squeeze"
              and tuple(node.args[1:]) in ((-1,), (1,)) and not node.kwargs):
            node = node.args[0]  # q [B, 1] -> [B]: the core reshapes either
        else:
            break
    if not layers or not expect_relu:  # the walk must end right below a Linear (the first layer)
        return None
    if critic:
        if not (node.op == "call_function" and node.target is torch.cat):
            return None
        parts = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if dim not in (1, -1) or len(node.users) != 1 or not isinstance(parts, (list, tuple)) or len(parts) != 2:
            return None
        names = tuple({"observations": "observations", "taken_actions": "taken_actions"}.get(
            getattr(p, "target", None)) for p in parts)
        if sorted(str(n) for n in names) != ["observations", "taken_actions"] or any(
                p.op != "placeholder" for p in parts):
            return None
        inputs = names
    else:
        if node is not placeholders.get("observations"):
            return None
        inputs = ("observations",)
    layers.reverse()
    post.reverse()
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    index = {id(p): i for i, p in enumerate(params)}
    own = list(model.parameters())
    if len(own) != len(params) or any(id(p) not in index for p in own):
        return None  # a parameter outside the chain: the model is more than the recognised MLP
    if any(True for _ in model.buffers()):
        return None
    return MLPPlan(tuple(layers), inputs, tuple(post), tuple(index[id(p)] for p in own))
