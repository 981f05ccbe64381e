"""How close the JAX update is to the floor set by its matrix products, and what the non-finite guard costs.

Three XLA programs on the same shapes, timed in interleaved rounds in one process:

* ``update``: :func:`ddpgx.update_from_replay` with the default 400-300 networks (sampling included), as the agent
  runs it, with ``skip_nonfinite_updates`` on (the default);
* ``update, no guard``: the same with ``skip_nonfinite_updates=False`` (no finiteness checks, no ``lax.cond``);
* ``products``: the update's ten products of the hidden layers alone (five forward ``[B, h1] @ [h1, h2]``, three
  input gradients ``[B, h2] @ [h2, h1]``, two weight gradients ``[h1, B] @ [B, h2]``), each on its own operands;

* ``Adam``: the default optimizer's step (optax's Adam, as :func:`ddpgx.update` runs it) on the critic's parameters
  alone, the state donated as in the update;

and, when torch is installed, ``torch products``: the same ten products with ``torch.mm`` on torch's threads (what
``ddpgx_torch`` and skrl torch run them with), and ``torch Adam``: ``torch.optim.Adam(fused=True)``'s step on the
same parameters (``ddpgx_torch``'s optimizer). The products of the first and last layers (input and output sizes of
a few units) are left out of both product figures. Reported: the median time of each per call, over ``--rounds``
rounds of ``--calls`` calls.

Usage::

    python benchmarks/update_floor.py                        # Pendulum-v1's sizes, batch 100
    python benchmarks/update_floor.py --env HalfCheetah-v5   # needs ddpgx[mujoco]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import optax

import ddpgx
from ddpgx.core import replay

# benchmarks/mujoco.py would shadow the simulator's package for gymnasium: this directory leaves sys.path
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

HIDDEN = (400, 300)


def _filled_buffer(obs_size: int, act_size: int, capacity: int) -> replay.ReplayState:
    rng = np.random.default_rng(0)
    example = ddpgx.Transition(np.zeros(obs_size, np.float32), np.zeros(act_size, np.float32), np.float32(0),
                               np.zeros(obs_size, np.float32), np.bool_(False))
    data = ddpgx.Transition(rng.normal(size=(capacity, obs_size)).astype(np.float32),
                            rng.uniform(-1, 1, (capacity, act_size)).astype(np.float32),
                            rng.normal(size=capacity).astype(np.float32),
                            rng.normal(size=(capacity, obs_size)).astype(np.float32), rng.random(capacity) < 0.01)
    return replay.add(replay.init(capacity, example), data)


def _operands(batch: int, count: int) -> list[np.ndarray]:
    """Each product's operands, distinct so that no product can reuse another's."""
    rng = np.random.default_rng(1)
    h1, h2 = HIDDEN
    shapes = [((batch, h1), (h1, h2))] * 5 + [((batch, h2), (h2, h1))] * 3 + [((h1, batch), (batch, h2))] * 2
    return [tuple(rng.normal(size=s).astype(np.float32) * 0.05 for s in pair) for pair in shapes][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="Pendulum-v1", help="gymnasium id giving the spaces (default Pendulum-v1)")
    parser.add_argument("--batch", type=int, default=100, help="batch size (default 100)")
    parser.add_argument("--memory", type=int, default=15_000, help="replay capacity (default 15000)")
    parser.add_argument("--calls", type=int, default=200, help="calls per timed round (default 200)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each program (default 7)")
    args = parser.parse_args()

    env = gymnasium.make(args.env)
    obs_size, act_size = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    buffer = _filled_buffer(obs_size, act_size, args.memory)
    states = {name: ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(batch_size=args.batch, skip_nonfinite_updates=guard),
                               env.observation_space, env.action_space)
              for name, guard in (("update", True), ("update, no guard", False))}
    pairs = [tuple(jnp.asarray(x) for x in pair) for pair in _operands(args.batch, 10)]
    products = jax.jit(lambda pairs: sum(jnp.sum(a @ b) for a, b in pairs))
    spec, critic = states["update"].spec, states["update"].critic_params
    grads = jax.tree.map(lambda x: jnp.full_like(x, 1e-3), critic)
    adam = {"params": jax.tree.map(jnp.copy, critic), "state": spec.critic_optimizer.init(critic)}

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def adam_step(params, opt_state):
        updates, opt_state = spec.critic_optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def run(name: str, calls: int) -> float:
        start = time.perf_counter()
        if name == "products":
            for _ in range(calls):
                out = products(pairs)
        elif name == "Adam":
            for _ in range(calls):
                adam["params"], adam["state"] = out = adam_step(adam["params"], adam["state"])
        elif name == "torch products":
            for _ in range(calls):
                out = [torch.mm(a, b) for a, b in torch_pairs]
            return (time.perf_counter() - start) / calls
        elif name == "torch Adam":
            for _ in range(calls):
                torch_adam.step()
            return (time.perf_counter() - start) / calls
        else:
            for _ in range(calls):
                states[name], out = ddpgx.update_from_replay(states[name], buffer)
        jax.block_until_ready(out)
        return (time.perf_counter() - start) / calls

    names = ["update", "update, no guard", "products", "Adam"]
    try:
        import torch

        torch_pairs = [tuple(torch.from_numpy(x) for x in pair) for pair in _operands(args.batch, 10)]
        torch_params = [torch.tensor(np.asarray(x)) for x in jax.tree.leaves(critic)]
        for param in torch_params:
            param.grad = torch.full_like(param, 1e-3)
        torch_adam = torch.optim.Adam(torch_params, lr=1e-3, fused=True)
        names += ["torch products", "torch Adam"]
    except ImportError:
        torch_pairs = []
    for name in names:
        run(name, 20)  # compile, warm up
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            times[name].append(run(name, args.calls))
    print(f"{platform.machine()}, {os.cpu_count()} CPUs; {args.env} (observations {obs_size}, actions {act_size}), "
          f"batch {args.batch}, hidden {HIDDEN}, {args.rounds} rounds of {args.calls} calls")
    median = {name: float(np.median(values)) for name, values in times.items()}
    for name in names:
        print(f"{name:17s} {1e3 * median[name]:.3f} ms a call (range {1e3 * min(times[name]):.3f}-"
              f"{1e3 * max(times[name]):.3f})")
    print(f"guard: {1e3 * (median['update'] - median['update, no guard']):.3f} ms of the update; the update is "
          f"{median['update'] / median['products']:.2f}x its ten products in XLA"
          + (f", {median['update'] / median['torch products']:.2f}x them in torch" if torch_pairs else "")
          + f"; Adam on the critic {1e3 * median['Adam']:.3f} ms"
          + (f" (torch's fused Adam {1e3 * median['torch Adam']:.3f} ms)" if torch_pairs else ""))


if __name__ == "__main__":
    main()
