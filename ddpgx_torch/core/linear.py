"""A ``torch.nn.Linear`` whose float32 CPU matmuls run on oneDNN instead of the BLAS torch links (MKL).

Why: torch computes a float32 ``nn.Linear`` on the CPU with MKL's sgemm, and MKL takes a generic code path on
non-Intel CPUs. On this project's AMD EPYC development machine MKL reaches about 105 GFLOP/s per core on the
``[100, 400] x [400, 300]`` products a DDPG step is made of, and oneDNN (bundled with every x86 torch build, and
dispatched by instruction set, not vendor) about 210, in the same float32 arithmetic; the three products of a
layer (forward, input gradient, weight gradient) all run about twice as fast (``benchmarks/torch_update.py``).

:class:`Linear` is a drop-in ``nn.Linear`` (same parameters, names, initialisation and state dict) that routes
float32 CPU inputs through :class:`_OneDNNLinear`: the forward product and both backward products are oneDNN
calls, and the bias gradient is a sum. Everything else falls back to ``nn.functional.linear``: other devices and
dtypes, small products (:data:`MIN_WEIGHT_SIZE`, :data:`MIN_ROWS`), autocast (mixed precision already runs on
oneDNN through torch's bf16 kernels), torch builds without oneDNN, and
``torch.backends.mkldnn.flags(enabled=False)``, torch's own switch, which turns this path off.

Where MKL runs its own tuned code (an Intel CPU), MKL is the faster of the two at these sizes: on the 2-core Intel
Xeon VM a batch-100 DDPG update took 3.28 ms with oneDNN's products and 2.78 ms with MKL's (15 % less; 20 % at batch
64). So the path is taken only where it pays: by default on every CPU but Intel's (:func:`prefer_onednn`; set
``DDPGX_TORCH_ONEDNN=1`` or ``0`` to decide yourself).

The results are float32 products, as MKL's, with a different summation order: they agree with
``nn.functional.linear`` to float32 rounding (tested), not bit for bit. Double backward is not supported.

One difference from torch's own kernels: a custom autograd function cannot tell which of its inputs a particular
``torch.autograd.grad`` call asks for, so it computes the weight gradient whenever the weight requires grad. The
DDPG core therefore sets ``requires_grad=False`` on the critic while it differentiates the policy loss through it.

:func:`mlp` runs a whole ReLU MLP of such layers (the default networks' :class:`ddpgx_torch.core.networks.MLP`) as one
autograd node in float32 (on CUDA too, with torch's own products there): the forward is one product per layer,
with the bias and the ReLU fused into oneDNN's call on the CPU, and the backward is written out (a product per
weight and input gradient, ``threshold_backward`` for each ReLU). Against one
autograd node per layer and per ReLU this drops about 15 small operations and their graph bookkeeping per network
pass, which at the small batches of DDPG (64 rows) is most of what is left besides the products: a batch-64 DDPG
update on the development machine went from 1.96 to 1.85 ms. Without gradients (the target networks) there is no
autograd node at all. The same fallbacks apply, layer by layer, and any module hook on a layer (or a global one)
sends the call through the layers' own ``forward`` so the hook runs.
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn
from torch.nn import functional
from torch.nn.modules import module as module_hooks


@functools.cache
def _linear_op():
    """oneDNN's linear as torch exposes it (``torch.ops.mkldnn._linear_pointwise``), or None where this build has
    none or it disagrees with ``functional.linear`` on a small probe."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        x = torch.linspace(-1.0, 1.0, 6).reshape(2, 3)
        w = torch.linspace(0.5, -0.5, 12).reshape(4, 3)
        b = torch.linspace(-0.25, 0.25, 4)
        ok = torch.allclose(op(x, w, b, "none", [], ""), functional.linear(x, w, b), atol=1e-6)
        y = torch.linspace(-2.0, 2.0, 8).reshape(2, 4)  # the strided operands of the backward products
        ok = ok and torch.allclose(op(x.t(), y.t(), None, "none", [], ""), x.t() @ y, atol=1e-6)
        ok = ok and torch.allclose(op(y, w.t(), None, "none", [], ""), y @ w, atol=1e-6)
    except (AttributeError, RuntimeError):
        return None
    return op if ok else None


def available() -> bool:
    """Whether this torch build has a working oneDNN linear."""
    return torch.backends.mkldnn.is_available() and _linear_op() is not None


def _cpu_vendor() -> str:
    """The CPU's vendor string (``GenuineIntel``, ``AuthenticAMD``, ...), or ``platform.processor()`` where
    ``/proc/cpuinfo`` does not say."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


@functools.cache
def prefer_onednn() -> bool:
    """Whether large float32 CPU products go to oneDNN rather than torch's BLAS: the environment variable
    ``DDPGX_TORCH_ONEDNN`` (``1`` or ``0``) where set, else yes unless torch's BLAS is MKL on an Intel CPU, where
    MKL runs its tuned kernels (see the module docstring). Read once per process.

    Raises:
      ValueError: if ``DDPGX_TORCH_ONEDNN`` is set to anything but ``0`` or ``1``.
    """
    choice = os.environ.get("DDPGX_TORCH_ONEDNN", "").strip()
    if choice:
        if choice not in ("0", "1"):
            raise ValueError(f"DDPGX_TORCH_ONEDNN={choice!r} is invalid: expected 0 (torch's BLAS) or 1 (oneDNN)")
        return choice == "1"
    return not (torch.backends.mkl.is_available() and "intel" in _cpu_vendor().lower())


def _use_onednn() -> bool:
    return torch._C._get_mkldnn_enabled() and prefer_onednn() and _linear_op() is not None


# oneDNN costs about 10 us more per call than MKL, so small products stay on MKL: a layer whose weight has fewer
# entries than this (the 4 -> 400 and 300 -> 1 layers of a Pendulum DDPG) or a batch of fewer rows.
MIN_WEIGHT_SIZE = 16_384
MIN_ROWS = 16


def _applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # the cheapest tests first: this runs on every forward of every layer
    return (weight.numel() >= MIN_WEIGHT_SIZE and x.numel() >= MIN_ROWS * x.shape[-1] and x.dtype == torch.float32
            and weight.dtype == torch.float32 and x.device.type == "cpu"
            and weight.device.type == "cpu" and not torch.is_autocast_enabled("cpu") and _use_onednn())


class _OneDNNLinear(torch.autograd.Function):
    """``y = x W^T + b`` for 2-d ``x``, with the forward and both backward products on oneDNN."""

    # forward takes ctx (no separate setup_context): with a setup_context, Function.apply binds the arguments with
    # inspect.signature on every call, about 25 us.
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _linear_op()(x, weight, bias, "none", [], "")

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        x, weight = ctx.saved_tensors
        op = _linear_op()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:  # grad_y @ W, as a linear with weight W^T (a strided view; oneDNN reads it)
            grad_x = op(grad_y, weight.t(), None, "none", [], "")
        if ctx.needs_input_grad[1]:  # grad_y^T @ x, as a linear of grad_y^T with weight x^T
            grad_w = op(grad_y.t(), x.t(), None, "none", [], "")
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_y.sum(0)
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``functional.linear`` with float32 CPU products on oneDNN (see the module docstring)."""
    if not _applies(x, weight):
        return functional.linear(x, weight, bias)
    if x.dim() == 2:
        return _OneDNNLinear.apply(x, weight, bias)
    lead = x.shape[:-1]
    y = _OneDNNLinear.apply(x.reshape(-1, x.shape[-1]), weight, bias)
    return y.reshape(*lead, y.shape[-1])


class Linear(nn.Linear):
    """``nn.Linear`` whose float32 CPU products run on oneDNN (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.numel() < MIN_WEIGHT_SIZE:  # a small layer: torch's kernels (the cheapest test first)
            return functional.linear(x, self.weight, self.bias)
        return linear(x, self.weight, self.bias)


def use_onednn(module: nn.Module) -> nn.Module:
    """Makes every plain ``nn.Linear`` inside ``module`` a :class:`Linear`, in place, and returns ``module``.

    For models written with ``nn.Linear`` (a skrl script's models, say): the parameters, their names, the state dict
    and any hooks stay as they are; only the forward changes (see the module docstring). Subclasses of
    ``nn.Linear`` are left alone, since they may have a forward of their own.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module={module!r} is invalid: expected a torch.nn.Module")
    for m in module.modules():
        if type(m) is nn.Linear:
            m.__class__ = Linear
    return module


def _onednn_layer(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a layer of a float32 :func:`mlp` runs on oneDNN: on the CPU, a large weight, enough rows, oneDNN
    on and preferred (elsewhere, and for small layers, torch's own ``addmm``/``mm``)."""
    return weight.numel() >= MIN_WEIGHT_SIZE and x.shape[0] >= MIN_ROWS and x.is_cpu and _use_onednn()


def mlp_forward(x: torch.Tensor, params: Sequence[torch.Tensor], keep: bool = False) -> tuple[torch.Tensor, list]:
    """A float32 ReLU MLP's output for 2-d ``x`` and ``params = (w0, b0, w1, b1, ...)``, computed without
    autograd; with ``keep`` also its hidden activations (after the ReLU), which :func:`mlp_backward` reads."""
    hidden, h, last = [], x, len(params) // 2 - 1
    for i in range(last + 1):
        weight, bias = params[2 * i], params[2 * i + 1]
        if _onednn_layer(h, weight):  # bias and ReLU fused into the product
            h = _linear_op()(h, weight, bias, "relu" if i < last else "none", [None] if i < last else [], "")
        else:
            h = torch.addmm(bias, h, weight.t())
            if i < last:
                h = h.relu_()
        if keep and i < last:
            hidden.append(h)
    return h, hidden


def mlp_backward(x: torch.Tensor, hidden: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
                 grad_y: torch.Tensor, needs: Sequence[bool]) -> list[Optional[torch.Tensor]]:
    """The vector-Jacobian product of :func:`mlp_forward`: ``[dx, dw0, db0, dw1, db1, ...]`` for the cotangent
    ``grad_y`` of its output, each None where ``needs`` (the same layout) is False."""
    layers = len(weights)
    inputs = (x, *hidden)  # inputs[i]: layer i's input
    grads: list[Optional[torch.Tensor]] = [None] * (1 + 2 * layers)
    # propagate below layer i only while something below it needs a gradient
    below = [needs[0] or any(needs[1:1 + 2 * i]) for i in range(layers)]
    g = grad_y
    for i in range(layers - 1, -1, -1):
        h, weight = inputs[i], weights[i]
        onednn = _onednn_layer(h, weight)
        if needs[1 + 2 * i]:  # dL/dW = g^T h
            grads[1 + 2 * i] = _linear_op()(g.t(), h.t(), None, "none", [], "") if onednn else g.t().mm(h)
        if needs[2 + 2 * i]:
            grads[2 + 2 * i] = g.sum(0)
        if not below[i]:
            break
        g = _linear_op()(g, weight.t(), None, "none", [], "") if onednn else g.mm(weight)
        if i > 0:  # through the ReLU that made h
            g = torch.ops.aten.threshold_backward(g, h, 0)
    if needs[0]:
        grads[0] = g
    return grads


class _FusedMLP(torch.autograd.Function):
    """A ReLU MLP ``(x, w0, b0, w1, b1, ...) -> y`` as one autograd node (see the module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        y, hidden = mlp_forward(x, params, keep=True)
        ctx.save_for_backward(x, *hidden, *params[0::2])
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        saved = ctx.saved_tensors
        layers = (len(saved) + 1) // 2
        return tuple(mlp_backward(saved[0], saved[1:layers], saved[layers:], grad_y, ctx.needs_input_grad))


def has_hooks(layers: Sequence[nn.Module]) -> bool:
    """Whether any of these modules, or every module (global hooks), has a forward or backward hook."""
    if (module_hooks._global_forward_hooks or module_hooks._global_forward_pre_hooks
            or module_hooks._global_backward_hooks or module_hooks._global_backward_pre_hooks):
        return True
    return any(layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks
               or layer._backward_pre_hooks for layer in layers)


def fused_params(x: torch.Tensor, layers: Sequence[nn.Module]) -> Optional[list[torch.Tensor]]:
    """The layers' parameters ``[w0, b0, w1, b1, ...]`` when the fused float32 MLP applies to input ``x`` (float32
    input and parameters on the CPU or one CUDA device, biases, no autocast, no module hooks on the layers), else
    None."""
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    f32 = torch.float32  # dtypes are singletons: `is` is the cheap test (this runs on every network call)
    if x.dtype is not f32 or x.dim() < 1 or has_hooks(layers):
        return None
    if x.is_cpu:
        if torch.is_autocast_enabled("cpu") or not all(p is not None and p.dtype is f32 and p.is_cpu
                                                        for p in params):
            return None
    elif not x.is_cuda or torch.is_autocast_enabled("cuda") or not all(
            p is not None and p.dtype is f32 and p.device == x.device for p in params):
        return None
    return params


def mlp(x: torch.Tensor, layers: Sequence[nn.Linear]) -> torch.Tensor:
    """``layers[-1](relu(... relu(layers[0](x))))``: a ReLU MLP, one autograd node for float32 inputs on the CPU
    or a CUDA device (there too it saves the per-layer graph nodes and calls; the products are cuBLAS's).

    Other devices and dtypes, autocast, layers without a bias and layers with module hooks go through the
    layers' own ``forward`` calls (results equal to float32 rounding either way, tested).
    """
    params = fused_params(x, layers)
    if params is None:
        last = len(layers) - 1
        for i, layer in enumerate(layers):
            x = layer(x)
            if i < last:
                x = torch.relu(x)
        return x
    x2 = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])  # (a same-shape reshape would add a graph node)
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        y = _FusedMLP.apply(x2, *params)
    else:
        y, _ = mlp_forward(x2, params)
    return y if x.dim() == 2 else y.reshape(*x.shape[:-1], y.shape[-1])
