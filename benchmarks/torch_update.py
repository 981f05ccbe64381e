"""Update throughput of ddpgx_torch against skrl 2.x's torch DDPG, fp32 and mixed precision, FF and recurrent.

Contenders, all built on the same configuration (Pendulum-sized spaces, 400-300 ReLU MLPs, Adam lr 1e-3,
``gradient_steps=1``, a replay memory of 100k transitions) and timed interleaved in one process with the helpers
of ``update_throughput.py`` (block warm-up, rotation, gc off, other processes' CPU recorded):

* ``ddpgx_torch fp32``: :func:`ddpgx_torch.update_from_replay` (sampling included, as skrl's ``update()``);
* ``ddpgx_torch bf16``: the same with ``mixed_precision=True`` (bf16 autocast on CPU; ``fp16`` on CUDA);
* ``ddpgx_torch LSTM fp32`` (``--rnn``): the recurrent core, LSTM(64) + 400-300 heads, sequences of 16
  (``batch`` sequences per update, so 16x the samples of the feed-forward rows);
* ``skrl torch DDPG.update`` fp32 and with skrl's own ``mixed_precision=True`` (autocast, bf16 on the CPU, and
  its GradScaler), from ``skrl_reference.make_skrl_update("torch", ...)``;
* ``skrl torch DDPG_RNN.update LSTM fp32`` (``--rnn``): skrl's recurrent DDPG given copies of the very networks of
  the ddpgx_torch LSTM row (``ddpgx_torch.models.RecurrentPolicy``/``RecurrentQFunction`` are skrl-compatible
  models), so the two rows differ only in the agent: sequence sampling, the update, the optimizer steps.

``--threads`` sets torch's intra-op threads for every contender (default: torch's default; reported). ``--device
cuda`` runs every contender on the GPU (each timed call waits for the GPU).

Usage: ``python benchmarks/torch_update.py [--batch-sizes 64 256 1024] [--threads N] [--rnn] [--markdown F]``
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import sys

import gymnasium
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skrl_reference  # noqa: E402
from update_throughput import (  # noqa: E402
    DISTURBED_CORES,
    MEMORY_SIZE,
    Contender,
    CpuMeter,
    _cpu_model,
    ddpg_step_flops,
    time_interleaved,
)

import ddpgx_torch  # noqa: E402
from ddpgx_torch.models import RecurrentPolicy, RecurrentQFunction  # noqa: E402
from ddpgx_torch.core import replay  # noqa: E402

OBS = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)


def _filled_buffer(fill: int, rnn_sizes=None, device: str = "cpu") -> replay.ReplayState:
    rnn = None if not rnn_sizes else [torch.zeros(s[0], s[2]) for s in rnn_sizes]
    example = ddpgx_torch.Transition(torch.zeros(3), torch.zeros(1), torch.zeros(()), torch.zeros(3),
                                     torch.zeros((), dtype=torch.bool), truncated=torch.zeros((), dtype=torch.bool),
                                     rnn_states=rnn)
    buf = replay.init(MEMORY_SIZE, example, device=device)
    g = torch.Generator().manual_seed(2)
    data = buf.data
    data.observations[:fill].copy_(torch.randn(fill, 1, 3, generator=g))  # (copy_ moves CPU data to the device)
    data.next_observations[:fill].copy_(torch.randn(fill, 1, 3, generator=g))
    data.actions[:fill].copy_(4 * torch.rand(fill, 1, 1, generator=g) - 2)
    data.rewards[:fill].copy_(torch.randn(fill, 1, generator=g))
    buf.size, buf.position = fill, fill % buf.rows
    return buf


def recurrent_networks(seed: int = 0) -> dict[str, torch.nn.Module]:
    """The LSTM rows' networks: LSTM(64) over the observations, 400-300 heads, sequences of 16."""
    torch.manual_seed(seed)
    kw = dict(cell="lstm", hidden_size=64, sequence_length=16)
    return {"policy": RecurrentPolicy(OBS, ACT, **kw), "critic": RecurrentQFunction(OBS, ACT, **kw)}


def make_ddpgx_torch(batch_size: int, fill: int, mixed_precision=False, rnn: bool = False,
                     device: str = "cpu") -> Contender:
    kwargs = recurrent_networks() if rnn else {}
    ts = ddpgx_torch.init(0, ddpgx_torch.DDPGConfig(batch_size=batch_size, mixed_precision=mixed_precision), OBS, ACT,
                          device=device, **kwargs)
    buf = _filled_buffer(fill, ts.spec.rnn.sizes if rnn else None, device)
    state = {"ts": ts}
    synchronize = torch.cuda.synchronize if ts.spec.device.type == "cuda" else (lambda: None)

    def call() -> None:
        state["ts"], _ = ddpgx_torch.update_from_replay(state["ts"], buf)
        synchronize()  # on a GPU, an update is done when its kernels are

    _, metrics = ddpgx_torch.update_from_replay(ts, buf)
    if not all(bool(torch.isfinite(v)) for v in metrics.values()):
        raise RuntimeError(f"non-finite metrics: {metrics}")
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[ts.spec.autocast_dtype]
    name = f"ddpgx_torch {'LSTM ' if rnn else ''}{precision}"
    return Contender(name, call)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024],
                        help="batch sizes to time (default 64 256 1024)")
    parser.add_argument("--repeats", type=int, default=20, help="interleaved timed blocks (default 20)")
    parser.add_argument("--calls", type=int, default=10, help="updates per timed block (default 10)")
    parser.add_argument("--fill", type=int, default=100_000, help="transitions in the replay memories (default 100000)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--rnn", action="store_true", help="add the recurrent (LSTM) contender")
    parser.add_argument("--device", default="cpu", help="torch device of every contender (e.g. cuda)")
    parser.add_argument("--skip-skrl", action="store_true", help="time ddpgx_torch only")
    parser.add_argument("--markdown", default=None, help="append the report to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    use_skrl = not args.skip_skrl and skrl_reference.skrl_available("torch")
    lines = [
        "## ddpgx_torch update throughput (`benchmarks/torch_update.py`)", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU: {_cpu_model()}, "
        f"nproc {os.cpu_count()}; device {args.device}"
        f"{' (' + torch.cuda.get_device_name() + ')' if args.device.startswith('cuda') else ''}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"
        f"{' (set)' if args.threads else ' (default)'}",
        f"- config: obs (3,), action (1,) in [-2, 2], 400-300 ReLU MLPs, Adam lr 1e-3, gradient_steps=1, memory "
        f"{MEMORY_SIZE} holding {args.fill}; {args.repeats} interleaved repetitions x {args.calls} calls", "",
        "| batch | contender | ms/update (median) | updates/s | skrl torch time / this | GFLOP/s |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    notes = []
    for batch in args.batch_sizes:
        dev = args.device
        contenders = [make_ddpgx_torch(batch, args.fill, device=dev),
                      make_ddpgx_torch(batch, args.fill, mixed_precision=True, device=dev)]
        if args.rnn:
            contenders.append(make_ddpgx_torch(batch, args.fill, rnn=True, device=dev))
        if use_skrl:
            update = skrl_reference.make_skrl_update("torch", batch_size=batch, fill=args.fill, device=dev)
            contenders.append(Contender("skrl torch DDPG.update fp32", update))
            update = skrl_reference.make_skrl_update("torch", batch_size=batch, fill=args.fill, mixed_precision=True,
                                                     device=dev)
            contenders.append(Contender("skrl torch DDPG.update mixed_precision", update))
            if args.rnn:
                nets = recurrent_networks()
                models = {"policy": nets["policy"], "critic": nets["critic"],
                          "target_policy": copy.deepcopy(nets["policy"]),
                          "target_critic": copy.deepcopy(nets["critic"])}
                models = {k: m.to(dev) for k, m in models.items()}
                update = skrl_reference.make_skrl_update("torch", batch_size=batch, fill=args.fill, models=models,
                                                         device=dev)
                update.agent.update(timestep=0, timesteps=1 << 30)
                losses = [v for k, v in update.agent.tracking_data.items() if k.startswith("Loss")]
                if not np.all(np.isfinite(losses)):
                    raise RuntimeError(f"skrl DDPG_RNN's losses are not finite: {losses}")
                contenders.append(Contender("skrl torch DDPG_RNN.update LSTM fp32", update))
        for c in contenders:
            for _ in range(3):
                c.call()
        meter = CpuMeter()
        times, others = time_interleaved(contenders, args.repeats, args.calls, 0.02)
        disturbed = sum(o is not None and o[0] > DISTURBED_CORES and o[1] >= 3 for o in others)
        notes.append(f"- batch {batch}: {meter.summary()}; {disturbed} of {len(others)} repetitions disturbed")
        med = {k: float(np.median(v)) for k, v in times.items()}
        skrl_time = med.get("skrl torch DDPG.update fp32")
        flops = sum(ddpg_step_flops(batch).values())
        for name, t in med.items():
            ratio = f"{skrl_time / t:.2f}" if skrl_time else "n/a"
            gflops = f"{flops / t / 1e9:.1f}" if "LSTM" not in name else "n/a"
            lines.append(f"| {batch} | {name} | {1e3 * t:.2f} | {1 / t:.0f} | {ratio} | {gflops} |")
            print(lines[-1], flush=True)
        skrl_rnn = med.get("skrl torch DDPG_RNN.update LSTM fp32")
        if skrl_rnn:  # recurrent against recurrent, the same networks
            notes.append(f"- batch {batch}: ddpgx_torch LSTM fp32 is {skrl_rnn / med['ddpgx_torch LSTM fp32']:.2f}x "
                         "skrl torch DDPG_RNN on the same networks")
        amp = med.get("skrl torch DDPG.update mixed_precision")
        if amp:  # mixed precision against mixed precision
            mixed = contenders[1].name  # bf16 on the CPU, fp16 on CUDA (autocast's defaults)
            notes.append(f"- batch {batch}: {mixed} is {amp / med[mixed]:.2f}x skrl torch with "
                         "mixed_precision=True")
    lines += ["", "Like against like (mixed precision, recurrent), and CPU use while timing:", *notes]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n" + report)


if __name__ == "__main__":
    main()
