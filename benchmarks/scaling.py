"""Update throughput of data-parallel ``ddpgx.update`` against the device count.

For each device count N in ``--devices`` (default 1 2 4 8; on a CPU these are XLA's forced host devices, which share
the machine's cores, so this measures the cost of sharding rather than a speed-up; on real accelerators it measures
scaling), two series:

* fixed global batch (``--global-batch``, default 1024): each device gets 1024 / N rows;
* fixed per-device batch (``--per-device-batch``, default 128): the global batch grows as 128 N.

and, at one device, the sharded update (a 1-device mesh) against the plain unsharded one at batch 256, interleaved in
one process (the bar: the sharded one no slower than 1.1x).

Every configuration runs in a fresh process with ``--xla_force_host_platform_device_count=8`` (or the real devices
with ``--real-devices``), reporting the median over repetitions of the time per update (400-300 MLPs, Pendulum
sizes, Adam, one gradient step per update).

    python benchmarks/scaling.py
    python benchmarks/scaling.py --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time


def _child(args: argparse.Namespace) -> None:
    import gymnasium
    import jax
    import numpy as np

    import ddpgx
    from ddpgx.core import sharding

    obs_space = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
    act_space = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def batch(size, seed=0):
        rng = np.random.default_rng(seed)
        return ddpgx.Transition(rng.normal(size=(size, 3)).astype(np.float32),
                                rng.uniform(-2, 2, (size, 1)).astype(np.float32),
                                rng.normal(size=size).astype(np.float32),
                                rng.normal(size=(size, 3)).astype(np.float32), np.zeros(size, bool))

    def timer(devices, size):
        """A function timing ``calls`` updates; ``devices=None`` is the unsharded update."""
        ts = ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(batch_size=size), obs_space, act_space)
        data = batch(size)
        if devices is not None:
            mesh = sharding.make_mesh(devices)
            ts = sharding.shard(ts, mesh)
            data = sharding.shard_batch(data, mesh)
        else:
            data = jax.device_put(data)
        state = {"ts": ts}

        def run(calls):
            ts = state["ts"]
            start = time.perf_counter()
            for _ in range(calls):
                ts, metrics = ddpgx.update(ts, data)
            jax.block_until_ready(ts)
            state["ts"] = ts
            return (time.perf_counter() - start) / calls

        run(3)  # compile and warm up
        return run

    results = []
    if args.mode == "overhead":
        plain, sharded = timer(None, 256), timer(1, 256)
        times = {"unsharded": [], "sharded_1_device": []}
        for _ in range(args.repeats):
            times["unsharded"].append(plain(args.calls))
            times["sharded_1_device"].append(sharded(args.calls))
        results.append({"mode": "overhead", "batch": 256,
                        **{k: float(np.median(v)) * 1e3 for k, v in times.items()}})
    else:
        n = args.n
        size = args.global_batch if args.mode == "global" else args.per_device_batch * n
        run = timer(n, size)
        ms = float(np.median([run(args.calls) for _ in range(args.repeats)])) * 1e3
        results.append({"mode": args.mode, "devices": n, "global_batch": size, "ms_per_update": ms,
                        "transitions_per_second": size / ms * 1e3, "device_kind": jax.devices()[0].device_kind})
    print(json.dumps(results), flush=True)


def _run_child(mode: str, n: int, args: argparse.Namespace) -> list[dict]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if not args.real_devices:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    command = [sys.executable, os.path.abspath(__file__), "--child", mode, "--n", str(n), "--calls", str(args.calls),
               "--repeats", str(args.repeats), "--global-batch", str(args.global_batch),
               "--per-device-batch", str(args.per_device_batch)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    if done.returncode or not lines:
        raise RuntimeError(f"{mode} with {n} devices failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", nargs="+", type=int, default=[1, 2, 4, 8],
                        help="device counts to time (default 1 2 4 8)")
    parser.add_argument("--global-batch", type=int, default=1024, help="batch split over the devices (default 1024)")
    parser.add_argument("--per-device-batch", type=int, default=128,
                        help="batch per device in the weak-scaling runs (default 128)")
    parser.add_argument("--calls", type=int, default=20, help="updates per timed block (default 20)")
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks; the median is reported (default 7)")
    parser.add_argument("--real-devices", action="store_true", help="use the machine's devices, not forced CPUs")
    parser.add_argument("--markdown", help="append the report to this file")
    parser.add_argument("--child", choices=["overhead", "global", "per-device"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        _child(args)
        return

    rows = _run_child("overhead", 1, args)
    overhead = rows[0]
    print(f"batch 256, 1 device: unsharded {overhead['unsharded']:.2f} ms, sharded {overhead['sharded_1_device']:.2f} "
          f"ms ({overhead['sharded_1_device'] / overhead['unsharded']:.3f}x)", flush=True)
    table = ["| devices | fixed global batch: batch | ms/update | transitions/s | fixed per-device batch: batch | "
             "ms/update | transitions/s |", "|---|---|---|---|---|---|---|"]
    for n in args.devices:
        g = _run_child("global", n, args)[0]
        p = _run_child("per-device", n, args)[0]
        print(f"{n} devices: global batch {g['global_batch']} {g['ms_per_update']:.2f} ms; per-device batch "
              f"{args.per_device_batch} (global {p['global_batch']}) {p['ms_per_update']:.2f} ms", flush=True)
        table.append(f"| {n} | {g['global_batch']} | {g['ms_per_update']:.2f} | {g['transitions_per_second']:.0f} | "
                     f"{p['global_batch']} | {p['ms_per_update']:.2f} | {p['transitions_per_second']:.0f} |")
    text = "\n".join(table)
    print(text)
    if args.markdown:
        kind = "real devices" if args.real_devices else "forced host devices on one CPU (XLA_FLAGS)"
        with open(args.markdown, "a") as file:
            file.write(f"\n## Data-parallel scaling ({datetime.date.today()})\n\n`python benchmarks/scaling.py` "
                       f"({kind}, {os.cpu_count()} CPUs; medians of {args.repeats} x {args.calls} updates, 400-300 "
                       f"MLPs).\n\nSharding overhead at batch 256 on one device: unsharded "
                       f"{overhead['unsharded']:.2f} ms, sharded over a 1-device mesh "
                       f"{overhead['sharded_1_device']:.2f} ms "
                       f"(**{overhead['sharded_1_device'] / overhead['unsharded']:.3f}x**; bar <= 1.1x).\n\n{text}\n")


if __name__ == "__main__":
    main()
