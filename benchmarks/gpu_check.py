"""Checks that need a GPU, which the CPU test suite cannot make: ddpgx_torch and ddpgx on a CUDA device against
the CPU, and mixed precision where it means fp16 and a gradient scaler.

1. ddpgx_torch, float32: the same initial weights and batches give the same updated weights and metrics on the
   device as on the CPU (TF32 off; 5 updates of the default networks, batch 256).
2. ddpgx_torch, ``mixed_precision=True`` (fp16 autocast with ``GradScaler`` on CUDA) and ``"bf16"``: 300 updates
   from a filled replay memory; metrics finite, no step skipped after the scaler's first adjustments, the scale,
   and the critic's loss at the start and the end (it fits the fixed data, so it must fall).
3. ddpgx (JAX) on its default device against its CPU backend: 5 updates at ``highest`` matmul precision.

Prints a Markdown report (``--markdown F`` appends it) and exits 1 when a check fails. ``--device cpu`` runs
it without a GPU (the comparisons are then trivially equal: a dry run of the script itself).

Usage: ``python benchmarks/gpu_check.py [--device cuda] [--markdown F]``
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys

import gymnasium
import numpy as np
import torch

import ddpgx_torch
from ddpgx_torch.core import ddpg as core
from ddpgx_torch.core import replay

OBS = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)


def _batches(count: int, size: int, seed: int = 0) -> list[ddpgx_torch.Transition]:
    g = torch.Generator().manual_seed(seed)
    return [ddpgx_torch.Transition(
        observations=torch.randn(size, 3, generator=g), actions=torch.rand(size, 1, generator=g) * 4 - 2,
        rewards=torch.randn(size, generator=g), next_observations=torch.randn(size, 3, generator=g),
        terminated=(torch.rand(size, generator=g) < 0.05).float()) for _ in range(count)]


def torch_fp32_against_cpu(device: str) -> tuple[bool, str]:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    config = ddpgx_torch.DDPGConfig(batch_size=256, grad_norm_clip=1.0)
    on_cpu = ddpgx_torch.init(0, config, OBS, ACT, device="cpu")
    on_dev = ddpgx_torch.init(0, config, OBS, ACT, device=device)
    metric_diff = 0.0
    for batch in _batches(5, 256):
        _, m_cpu = ddpgx_torch.update(on_cpu, batch)
        _, m_dev = ddpgx_torch.update(on_dev, ddpgx_torch.Transition(*(None if x is None else x.to(device)
                                                                       for x in batch)))
        metric_diff = max(metric_diff, *(abs(float(m_dev[k]) - float(v)) / max(1.0, abs(float(v)))
                                         for k, v in m_cpu.items() if math.isfinite(float(v))))
    param_diff = max(float((a.detach().cpu() - b.detach()).abs().max())
                     for role in ("policy", "critic", "target_policy", "target_critic")
                     for a, b in zip(getattr(on_dev, role).parameters(), getattr(on_cpu, role).parameters(),
                                     strict=True))
    ok = param_diff < 1e-5 and metric_diff < 1e-5
    explicit = core._explicit_gradients(on_dev, torch.zeros(1, 3, device=device))
    return ok, (f"ddpgx_torch fp32, {device} vs CPU, 5 updates (batch 256, clipped; gradients "
                f"{'explicit' if explicit else 'by autograd'} on {device}): max parameter difference "
                f"{param_diff:.2e}, max relative metric difference {metric_diff:.2e} (bar 1e-5)")


def torch_mixed_precision(device: str, mixed_precision) -> tuple[bool, str]:
    config = ddpgx_torch.DDPGConfig(batch_size=256, mixed_precision=mixed_precision)
    ts = ddpgx_torch.init(0, config, OBS, ACT, device=device)
    example = ddpgx_torch.Transition(torch.zeros(3), torch.zeros(1), torch.zeros(()), torch.zeros(3),
                                     torch.zeros((), dtype=torch.bool))
    buf = replay.init(20_000, example, device=device)
    for batch in _batches(20, 1000, seed=1):
        for i in range(1000):
            replay.add(buf, ddpgx_torch.Transition(batch.observations[i:i + 1], batch.actions[i:i + 1],
                                                   batch.rewards[i:i + 1], batch.next_observations[i:i + 1],
                                                   batch.terminated[i:i + 1].bool()))
    losses, skipped, finite = [], [], True
    for _ in range(300):
        _, metrics = ddpgx_torch.update_from_replay(ts, buf)
        losses.append(float(metrics["critic_loss"]))
        skipped.append(float(metrics["skipped_updates"]))
        finite = finite and all(math.isfinite(float(v)) for k, v in metrics.items()
                                if k != "critic_loss" or not skipped[-1])
    scale = ts.grad_scaler.get_scale() if ts.grad_scaler.is_enabled() else None
    first, last = float(np.mean(losses[:20])), float(np.mean(losses[-20:]))
    late_skips = int(sum(skipped[50:]))
    ok = finite and late_skips == 0 and last < first and all(p.dtype == torch.float32 for p in ts.policy.parameters())
    return ok, (f"ddpgx_torch mixed_precision={mixed_precision!r} on {device} ({ts.spec.autocast_dtype}), 300 "
                f"updates: metrics finite {finite}; skipped {int(sum(skipped))} (after update 50: {late_skips}); "
                f"scaler {'scale ' + format(scale, 'g') if scale is not None else 'off'}; critic loss "
                f"{first:.4f} -> {last:.4f} (mean of the first and last 20)")


def jax_against_cpu() -> tuple[bool, str]:
    import jax

    import ddpgx

    with jax.default_matmul_precision("highest"):
        config = ddpgx.DDPGConfig(batch_size=256, grad_norm_clip=1.0)
        default = jax.devices()[0]
        cpu = jax.devices("cpu")[0]
        states = {}
        for name, device in (("default", default), ("cpu", cpu)):
            with jax.default_device(device):
                ts = ddpgx.init(jax.random.key(0), config, OBS, ACT)
                update = jax.jit(ddpgx.update)
                for batch in _batches(5, 256):
                    ts, metrics = update(ts, ddpgx.Transition(*(jax.device_put(x.numpy(), device)
                                                                for x in batch[:5])))
                states[name] = (jax.device_get(ts.policy_params), jax.device_get(ts.critic_params),
                                jax.device_get(metrics))
    diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
             for a, b in zip(jax.tree.leaves(states["default"]), jax.tree.leaves(states["cpu"]), strict=True)]
    diff = max(diffs)
    return diff < 1e-4, (f"ddpgx (JAX) on {default.platform} ({default.device_kind}) vs CPU, 5 updates (batch 256, "
                         f"clipped, matmul precision 'highest'): max difference of parameters and metrics {diff:.2e} "
                         "(bar 1e-4)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="torch device to check against the CPU (default cuda)")
    parser.add_argument("--markdown", help="append the report to this file")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for a dry run", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    lines = ["## GPU checks (`benchmarks/gpu_check.py`)", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; device {args.device} "
             f"({name}); torch {torch.__version__}", ""]
    checks = [lambda: torch_fp32_against_cpu(args.device),
              lambda: torch_mixed_precision(args.device, True),
              lambda: torch_mixed_precision(args.device, "bf16"),
              jax_against_cpu]
    failed = 0
    for check in checks:
        try:
            ok, text = check()
        except Exception as error:  # report every check, even after one breaks
            ok, text = False, f"{getattr(check, '__name__', 'check')} raised {type(error).__name__}: {error}"
        failed += not ok
        lines.append(f"- {'PASS' if ok else 'FAIL'}: {text}")
        print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n" + report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
