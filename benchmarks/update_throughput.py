"""Update throughput of ddpgx against skrl 2.x's DDPG, and its fraction of the machine's fp32 matmul peak.

What is measured (all in one process, one run):

* ``ddpgx.update``: one jitted call (train state donated) on a given batch of random normal data (fixed seed),
  ``gradient_steps=1``; each call blocks with ``jax.block_until_ready`` on the returned state.
* ``ddpgx.update_from_replay``: the same, but sampling the minibatch inside the same jit from a device replay
  buffer (capacity 100k) holding ``--fill`` random normal transitions. This is the like-for-like comparison with
  skrl, whose ``update()`` also samples from its memory.
* skrl 2.x ``skrl.agents.jax.ddpg.DDPG.update()`` and ``skrl.agents.torch.ddpg.DDPG.update()`` (when skrl is
  importable and ``--skip-skrl`` is not given), built by :mod:`benchmarks.skrl_reference` on the same
  configuration: 400-300 ReLU policy and critic, Box obs (3,), Box action (1,) in [-2, 2], no preprocessors,
  Adam lr 1e-3, ``gradient_steps=1``, a ``RandomMemory`` of capacity 100k holding ``--fill`` transitions.

Timing is interleaved: for each repetition, a block of ``--calls`` K calls of every contender is timed in turn
(the starting contender rotates each repetition), so that machine noise hits all contenders alike. The reported
time is the median over repetitions of (block time / K). Every contender gets ``--warmup`` untimed calls first
(the first one compiles), and each timed block is preceded by untimed calls of the same contender lasting at least
``--block-warmup-ms`` (20 ms): on the small VM this was written on, the first few calls after the process has done
something else run up to 2x slower, which would otherwise penalise the shortest calls (ddpgx at batch 64: about
2.9-3.3 ms per call with K = 10 and no block warm-up, 2.3-2.5 ms with it). Python's garbage collector is disabled
during the timed blocks (``gc.collect()`` runs between repetitions), as ``timeit`` does.

Noise check: the CPU time used by *other* processes (from ``/proc/stat``) is recorded for the whole run and for
every repetition; repetitions during which other processes used more than 0.25 cores are counted as disturbed.
On 2 cores a competing process inflates all timings, torch's OpenMP-parallel update most of all (skrl torch went
from 5 ms to 400 ms per update in one disturbed run), so rerun when the report shows disturbed repetitions.

Nothing global is set: no XLA flags, no thread counts. XLA's CPU client and torch both use their defaults (the
settings in effect are printed). JAX and torch share the machine's cores; only one contender runs at a time.

FLOP accounting (matmuls only; biases, activations, losses, Adam and Polyak averaging are not counted): a dense
layer with ``n`` inputs and ``m`` outputs on a batch of ``B`` costs ``2 B n m`` forward, the same again for its
weight gradient (``x^T g``) and the same again for its input gradient (``g W^T``). With policy layers
``obs -> 400 -> 300 -> act`` and critic layers ``obs + act -> 400 -> 300 -> 1``, ``F_pi`` and ``F_Q`` the forward
costs of the whole networks and ``L1_pi = 2 B obs 400``, ``L1_Q = 2 B (obs + act) 400`` their first layers, one
DDPG gradient step is counted as (see :func:`ddpg_step_flops`):

  1. target: target policy forward on s' (F_pi) + target critic forward on (s', a') (F_Q);
  2. critic step: forward on (s, a) (F_Q), weight gradients (F_Q), input gradients of all layers but the first
     (F_Q - L1_Q; the gradient with respect to (s, a) is not needed and XLA does not compute it);
  3. policy step: policy forward on s (F_pi), critic forward on (s, mu(s)) with the updated critic (F_Q), critic
     backward for input gradients only, first layer included, all of it (F_Q: the gradient reaches mu(s) through
     the first layer; XLA computes it for the whole concatenated input [B, obs + act] and then slices out the
     action column, so the obs part, 2 B obs 400, is computed although not needed -- counted, since it is executed;
     the critic's weight gradients are not needed and XLA removes them -- not counted), policy weight gradients
     (F_pi) and policy input gradients of all layers but the first (F_pi - L1_pi);

  total = 4 F_pi + 6 F_Q - L1_pi - L1_Q   (= 155.5 MFLOP at B = 64; linear in B).

The same count is used for every contender (it is the work one DDPG step needs, however an implementation
spends it: skrl torch, for one, also computes the critic's unused weight gradients during the policy step). As
cross-checks the script prints (a) the matmul FLOPs found in XLA's optimised HLO of ``ddpgx.update`` (every
``dot`` instruction: 2 x output elements x contracted size) and (b) XLA's own ``cost_analysis()["flops"]``, which
also counts element-wise work.

Peak: the median time of several runs of a jitted float32 ``(n, n) @ (n, n)`` matmul (``2 n^3`` FLOP) for
n = 1024 and 2048, measured at the start and at the end of the run; the peak is the largest of these medians.

Usage::

  python benchmarks/update_throughput.py [--batch-sizes 64 256 1024] [--repeats 30] [--calls 10]
      [--skip-skrl] [--markdown RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import re
import sys
import time
from typing import Any, Callable, NamedTuple, Optional

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import ddpgx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skrl_reference  # noqa: E402  (benchmarks/ is not a package)

OBS_DIM = 3  # Pendulum
ACT_DIM = 1
ACTION_BOUND = 2.0
HIDDEN = (400, 300)  # the defaults of ddpgx.networks (and of skrl_reference)
MEMORY_SIZE = 100_000
SEED = 0


# --------------------------------------------------------------------------- #
# FLOP accounting
# --------------------------------------------------------------------------- #
def dense_flops(batch: int, sizes: tuple[int, ...]) -> list[int]:
    """Forward matmul FLOPs ``2 B n m`` of each layer of an MLP with layer widths ``sizes`` (input first)."""
    return [2 * batch * n * m for n, m in zip(sizes[:-1], sizes[1:], strict=True)]


def ddpg_step_flops(
    batch: int, obs_dim: int = OBS_DIM, act_dim: int = ACT_DIM, hidden: tuple[int, ...] = HIDDEN
) -> dict[str, int]:
    """Matmul FLOPs of one DDPG gradient step, by term (see the module docstring for what is counted and why).

    Forward of a layer ``n -> m`` on ``B`` samples: ``2 B n m``; its weight gradient and its input gradient cost
    the same each.
    """
    policy = dense_flops(batch, (obs_dim, *hidden, act_dim))
    critic = dense_flops(batch, (obs_dim + act_dim, *hidden, 1))
    f_pi, f_q = sum(policy), sum(critic)
    return {
        "target policy forward (s')": f_pi,
        "target critic forward (s', a')": f_q,
        "critic forward (s, a)": f_q,
        "critic backward: weight grads": f_q,
        "critic backward: input grads, layers 2..3": f_q - critic[0],
        "policy forward (s)": f_pi,
        "critic forward (s, mu(s)), updated critic": f_q,
        "critic backward: input grads, layers 1..3 (to mu(s))": f_q,
        "policy backward: weight grads": f_pi,
        "policy backward: input grads, layers 2..3": f_pi - policy[0],
    }


_DEF_RE = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*[a-z]\w*\[([\d,]*)\]")
_DOT_RE = re.compile(
    r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*[a-z]\w*\[([\d,]*)\]\S*\s+dot\(\s*%?([\w.\-]+)\s*,\s*%?([\w.\-]+)\s*\)"
    r".*?lhs_contracting_dims=\{([\d,]*)\}"
)


def hlo_dot_flops(hlo_text: str) -> tuple[Optional[int], int]:
    """Matmul FLOPs of every ``dot`` in an optimised HLO module text: ``2 * prod(output) * prod(contracted)``.

    Each instruction is counted once (a while loop's body once: right for ``gradient_steps=1``). Returns
    ``(flops or None if an operand shape could not be resolved, number of dots)``.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for line in hlo_text.splitlines():
        m = _DEF_RE.match(line)
        if m:
            shapes[m.group(1)] = tuple(int(d) for d in m.group(2).split(",") if d)
    total, count = 0, 0
    for line in hlo_text.splitlines():
        m = _DOT_RE.match(line)
        if not m:
            continue
        count += 1
        out = tuple(int(d) for d in m.group(1).split(",") if d)
        lhs = shapes.get(m.group(2))
        if lhs is None:
            return None, count
        contracted = math.prod(lhs[int(d)] for d in m.group(4).split(",") if d)
        total += 2 * math.prod(out) * contracted
    return total, count


def xla_cost_flops(compiled: Any) -> Optional[float]:
    """``flops`` from ``compiled.cost_analysis()`` (a dict, or a list of dicts in some jax versions)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # not implemented on some backends
        return None
    if isinstance(cost, (list, tuple)):
        values = [c.get("flops") for c in cost if isinstance(c, dict) and c.get("flops") is not None]
        return float(sum(values)) if values else None
    if isinstance(cost, dict) and cost.get("flops") is not None:
        return float(cost["flops"])
    return None


# --------------------------------------------------------------------------- #
# peak
# --------------------------------------------------------------------------- #
def matmul_gflops(n: int, runs: int = 7) -> float:
    """Median GFLOP/s of a jitted float32 ``(n, n) @ (n, n)`` matmul over ``runs`` runs (after 2 warm-ups)."""
    ka, kb = jax.random.split(jax.random.key(SEED))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    for _ in range(2):
        jax.block_until_ready(f(a, b))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a, b))
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times)) / 1e9


def measure_peak() -> dict[int, float]:
    return {n: matmul_gflops(n) for n in (1024, 2048)}


def _peaks(peaks: dict[int, float]) -> str:
    return ", ".join(f"{n}^3: {g:.1f}" for n, g in peaks.items())


# --------------------------------------------------------------------------- #
# contenders
# --------------------------------------------------------------------------- #
class Contender(NamedTuple):
    name: str
    call: Callable[[], None]


def _spaces():
    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    action_space = gymnasium.spaces.Box(-ACTION_BOUND, ACTION_BOUND, (ACT_DIM,), np.float32)
    return observation_space, action_space


def _random_transitions(n: int, seed: int) -> ddpgx.Transition:
    """``n`` transitions of random normal data (terminated all False, as Pendulum never terminates)."""
    k = jax.random.split(jax.random.key(seed), 4)
    return ddpgx.Transition(
        observations=jax.random.normal(k[0], (n, OBS_DIM), jnp.float32),
        actions=jax.random.normal(k[1], (n, ACT_DIM), jnp.float32),
        rewards=jax.random.normal(k[2], (n,), jnp.float32),
        next_observations=jax.random.normal(k[3], (n, OBS_DIM), jnp.float32),
        terminated=jnp.zeros((n,), bool),
    )


def _train_state(batch_size: int) -> ddpgx.TrainState:
    config = ddpgx.DDPGConfig(batch_size=batch_size, gradient_steps=1)
    return ddpgx.init(jax.random.key(SEED), config, *_spaces())


def make_ddpgx_update(batch_size: int) -> tuple[Contender, Any]:
    holder = {"ts": _train_state(batch_size)}
    batch = _random_transitions(batch_size, SEED + 1)
    compiled = ddpgx.update.lower(holder["ts"], batch).compile()  # for the FLOP cross-checks

    def call() -> None:
        holder["ts"], _ = ddpgx.update(holder["ts"], batch)
        jax.block_until_ready(holder["ts"])

    return Contender("ddpgx.update", call), (compiled, holder)


def make_ddpgx_update_from_replay(batch_size: int, fill: int) -> tuple[Contender, Any]:
    holder = {"ts": _train_state(batch_size)}
    example = jax.tree.map(lambda x: x[0], _random_transitions(1, SEED))
    buffer = ddpgx.replay.add(ddpgx.replay.init(MEMORY_SIZE, example), _random_transitions(fill, SEED + 2))
    assert int(buffer.size) == fill
    compiled = ddpgx.update_from_replay.lower(holder["ts"], buffer).compile()

    def call() -> None:
        holder["ts"], _ = ddpgx.update_from_replay(holder["ts"], buffer)
        jax.block_until_ready(holder["ts"])

    return Contender("ddpgx.update_from_replay", call), (compiled, holder)


def make_skrl(backend: str, batch_size: int, fill: int) -> Contender:
    update = skrl_reference.make_skrl_update(
        backend, batch_size=batch_size, obs_dim=OBS_DIM, act_dim=ACT_DIM, hidden=HIDDEN,
        gradient_steps=1, memory_size=MEMORY_SIZE, fill=fill, seed=SEED,
    )  # fmt: skip
    return Contender(f"skrl {backend} DDPG.update", update)


DISTURBED_CORES = 0.25  # a repetition during which other processes used more CPU than this counts as disturbed


def time_interleaved(
    contenders: list[Contender], repeats: int, calls: int, block_warmup: float = 0.0
) -> tuple[dict[str, np.ndarray], list[Optional[tuple[float, float]]]]:
    """Per-call seconds of each contender, one value per repetition (block of ``calls`` calls / ``calls``), and the
    CPU that other processes used during each repetition. Each timed block is preceded by untimed calls of the same
    contender lasting at least ``block_warmup`` seconds (at least one call). The
    other processes' CPU is given as ``(cores, clock ticks)`` (None where unknown)."""
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    others: list[Optional[tuple[float, float]]] = []
    gc_was_enabled = gc.isenabled()
    try:
        for r in range(repeats):
            gc.collect()
            meter = CpuMeter()
            gc.disable()
            shift = r % len(contenders)
            for c in contenders[shift:] + contenders[:shift]:
                t0 = time.perf_counter()
                while True:  # untimed block warm-up: at least one call, and at least block_warmup seconds
                    c.call()
                    if time.perf_counter() - t0 >= block_warmup:
                        break
                t0 = time.perf_counter()
                for _ in range(calls):
                    c.call()
                times[c.name].append((time.perf_counter() - t0) / calls)
            gc.enable()
            cores = meter.cores()
            # (other processes' cores, their CPU in clock ticks): /proc/stat counts in ticks of 1/CLK_TCK s, so a
            # short repetition is only judged when other processes used at least 3 ticks
            others.append(None if cores is None else (cores[1], cores[1] * cores[3] * meter.tick))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: np.asarray(v) for name, v in times.items()}, others


# --------------------------------------------------------------------------- #
# reporting
# --------------------------------------------------------------------------- #
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


class CpuMeter:
    """CPU time used on the machine by processes other than this one, and hypervisor steal, over an interval.

    From ``/proc/stat`` (all CPUs) and ``/proc/self/stat`` (this process, all threads), in clock ticks. Other
    processes competing for the 2 cores are the main source of noise in these timings.
    """

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._start = self._read()
        self._t0 = time.perf_counter()

    @staticmethod
    def _read() -> Optional[tuple[int, int, int]]:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            with open("/proc/self/stat") as f:
                own = f.read().rsplit(")", 1)[1].split()
            # user nice system idle iowait irq softirq steal ...
            busy = v[0] + v[1] + v[2] + v[5] + v[6]
            return busy, v[7] if len(v) > 7 else 0, int(own[11]) + int(own[12])  # utime + stime
        except (OSError, ValueError, IndexError):
            return None

    def cores(self) -> Optional[tuple[float, float, float, float]]:
        """``(this process, other processes, steal)`` in cores (averages since construction), and the seconds."""
        end, wall = self._read(), time.perf_counter() - self._t0
        if self._start is None or end is None or wall <= 0:
            return None
        busy, steal, own = (b - a for a, b in zip(self._start, end, strict=True))
        other = max(busy - own, 0)
        return own / self.tick / wall, other / self.tick / wall, steal / self.tick / wall, wall

    def summary(self) -> str:
        c = self.cores()
        if c is None:
            return "n/a"
        return (
            f"this process {c[0]:.2f} cores, other processes {c[1]:.2f} cores, steal {c[2]:.2f} cores "
            f"(averages over {c[3]:.0f} s)"
        )


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:
        return "not installed"


def _sampling_note(fill: int, backends: tuple[str, ...]) -> Optional[str]:
    """skrl's RandomMemory (default ``replacement=False``) permutes all filled indexes on every sample."""
    parts = []
    for backend in backends:
        if backend == "torch":
            import torch

            fn = lambda: torch.randperm(fill, dtype=torch.long)[:64]  # noqa: E731
            label = f"torch.randperm({fill})"
        else:
            fn = lambda: np.random.permutation(fill)[:64]  # noqa: E731
            label = f"np.random.permutation({fill})"
        for _ in range(3):
            fn()
        ts = []
        for _ in range(30):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        parts.append(f"skrl {backend}: {label} {1e3 * np.median(ts):.2f} ms")
    if not parts:
        return None
    return (
        "- skrl's `RandomMemory` samples without replacement by default (a full permutation of the filled "
        "indexes on every update; ddpgx samples with replacement). Its cost, included in the skrl rows: "
        + "; ".join(parts)
    )


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024],
                        help="batch sizes to time (default 64 256 1024)")
    parser.add_argument("--repeats", type=int, default=30, help="interleaved repetitions (default 30)")
    parser.add_argument("--calls", type=int, default=10, help="calls per timed block (default 10)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per contender first (default 5)")
    parser.add_argument(
        "--block-warmup-ms", type=float, default=20.0,
        help="untimed calls of a contender for at least this long before each of its timed blocks (default 20; "
        "0: one call)",
    )  # fmt: skip
    parser.add_argument(
        "--fill", type=int, default=MEMORY_SIZE,
        help=f"transitions in the ddpgx replay buffer and the skrl memories (capacity {MEMORY_SIZE}; default full)",
    )  # fmt: skip
    parser.add_argument("--skip-skrl", action="store_true", help="time ddpgx only")
    parser.add_argument("--markdown", metavar="PATH", help="also append the report to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.calls < 1 or args.warmup < 1:
        parser.error("--repeats, --calls and --warmup must be >= 1")
    if not 0 < max(args.batch_sizes) <= args.fill <= MEMORY_SIZE or min(args.batch_sizes) < 1:
        parser.error(f"need 0 < batch sizes <= --fill <= {MEMORY_SIZE}")

    backends: tuple[str, ...] = ()
    if not args.skip_skrl:
        backends = tuple(b for b in skrl_reference.BACKENDS if skrl_reference.skrl_available(b))
    started = time.perf_counter()
    load_start = _loadavg()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    peak_start = measure_peak()
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731  (progress, not part of the report)
    log(f"peak (start): {_peaks(peak_start)} GFLOP/s")

    results = []  # (batch, name, seconds array)
    flop_checks = []  # (batch, analytic, hlo dots, n dots, xla update, xla update_from_replay)
    cpu_usage = []  # (batch, CpuMeter summary of the timing phase)
    run_meter = CpuMeter()
    for batch_size in args.batch_sizes:
        log(f"batch {batch_size}: building contenders")
        upd, (upd_compiled, upd_holder) = make_ddpgx_update(batch_size)
        rep, (rep_compiled, _) = make_ddpgx_update_from_replay(batch_size, args.fill)
        contenders = [upd, rep] + [make_skrl(b, batch_size, args.fill) for b in backends]
        analytic = sum(ddpg_step_flops(batch_size).values())
        dots, n_dots = hlo_dot_flops(upd_compiled.as_text())
        flop_checks.append(
            (batch_size, analytic, dots, n_dots, xla_cost_flops(upd_compiled), xla_cost_flops(rep_compiled))
        )
        del upd_compiled, rep_compiled
        for c in contenders:
            for _ in range(args.warmup):
                c.call()
        # sanity check: the warmed-up state still gives finite losses (the old state is donated)
        upd_holder["ts"], metrics = ddpgx.update(upd_holder["ts"], _random_transitions(batch_size, SEED + 1))
        if not all(bool(jnp.isfinite(v)) for v in metrics.values()):
            raise RuntimeError(f"ddpgx.update produced non-finite metrics: {metrics}")
        log(f"batch {batch_size}: timing {len(contenders)} contenders, {args.repeats} x {args.calls} calls")
        meter = CpuMeter()
        times, others = time_interleaved(contenders, args.repeats, args.calls, args.block_warmup_ms / 1e3)
        known = [o for o in others if o is not None]
        disturbed = (
            f"; {sum(cores > DISTURBED_CORES and ticks >= 3 for cores, ticks in known)} of {len(known)} repetitions "
            f"disturbed (other processes > {DISTURBED_CORES} cores)" if known else ""
        )
        cpu_usage.append((batch_size, meter.summary() + disturbed))
        log(f"batch {batch_size}: CPU use while timing: {cpu_usage[-1][1]}")
        results += [(batch_size, name, t) for name, t in times.items()]
        del contenders

    peak_end = measure_peak()
    log(f"peak (end): {_peaks(peak_end)} GFLOP/s")
    peak = max(*peak_start.values(), *peak_end.values())
    sampling_note = _sampling_note(args.fill, backends)
    elapsed = time.perf_counter() - started
    run_summary = run_meter.summary()

    # ---- report ----
    torch_threads = "n/a (torch not used)"
    if "torch" in backends:
        import torch

        torch_threads = (
            f"{torch.get_num_threads()} intra-op / {torch.get_num_interop_threads()} inter-op (defaults, not set)"
        )
    env = ", ".join(f"{k}={os.environ.get(k, '<unset>')}" for k in ("XLA_FLAGS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    lines = [
        "## DDPG update throughput (`benchmarks/update_throughput.py`)",
        "",
        f"- date: {date}",
        f"- machine: {platform.platform()}; CPU: {_cpu_model()}; nproc: {affinity} (os.cpu_count {os.cpu_count()})",
        f"- python {platform.python_version()}; jax {jax.__version__} (jaxlib {_version('jaxlib')}, "
        f"devices {[str(d) for d in jax.devices()]}); flax {_version('flax')}; optax {_version('optax')}; "
        f"skrl {_version('skrl') if backends else 'not used'}; "
        f"torch {_version('torch') if 'torch' in backends else 'not used'}",
        f"- threads: XLA CPU client defaults; torch {torch_threads}; env {env}",
        f"- config: Pendulum-sized spaces (obs (3,), action (1,) in [-2, 2]), 400-300 ReLU MLPs, Adam lr 1e-3, "
        f"gradient_steps=1; replay/memory capacity {MEMORY_SIZE}, filled with {args.fill} transitions",
        f"- timing: interleaved round-robin, {args.repeats} repetitions x {args.calls} calls per contender "
        f"(after {args.warmup} warm-up calls; each timed block preceded by >= {args.block_warmup_ms:g} ms of untimed "
        f"calls of the same contender), median per-call time over repetitions; gc off in timed blocks",
        f"- fp32 matmul peak (jitted XLA, median of 7): start {_peaks(peak_start)}; end {_peaks(peak_end)} GFLOP/s "
        f"-> **peak {peak:.1f} GFLOP/s**",
        f"- load average (1/5/15 min) at start: {load_start}; at end: {_loadavg()}; total run time {elapsed:.0f} s",
        f"- CPU use over the whole run: {run_summary}",
        "",
        "| batch | contender | ms/update (median) | updates/s | ratio vs ddpgx.update | GFLOP/s | % of peak |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    medians = {(b, name): float(np.median(t)) for b, name, t in results}
    for b, name, _ in results:
        med = medians[(b, name)]
        flops = sum(ddpg_step_flops(b).values())
        ratio = med / medians[(b, "ddpgx.update")]
        gflops = flops / med / 1e9
        lines.append(
            f"| {b} | {name} | {1e3 * med:.2f} | {1 / med:.0f} | {ratio:.2f} | {gflops:.1f} "
            f"| {100 * gflops / peak:.0f}% |"
        )
    lines += [
        "",
        "Ratio: contender's time / ddpgx.update's time (how many times faster ddpgx.update is). GFLOP/s: the "
        "analytic matmul FLOPs of one DDPG step (same count for every contender) / median time.",
        "",
        "Spread over repetitions (per-call ms): min / 25% / 75% / max, and IQR as % of the median:",
        "",
        "| batch | contender | min | p25 | p75 | max | IQR/median |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for b, name, t in results:
        q = 1e3 * np.percentile(t, [0, 25, 75, 100])
        lines.append(
            f"| {b} | {name} | {q[0]:.2f} | {q[1]:.2f} | {q[2]:.2f} | {q[3]:.2f} | "
            f"{100 * (q[2] - q[1]) / (1e3 * medians[(b, name)]):.1f}% |"
        )
    lines += ["", "CPU use while timing (noise check: other processes or steal > 0 means disturbed timings):", ""]
    lines += [f"- batch {b}: {summary}" for b, summary in cpu_usage]
    lines += [
        "",
        "FLOPs per update (one gradient step): analytic matmul count (see the script's docstring) vs the matmul "
        "FLOPs of the `dot`s in XLA's optimised HLO of `ddpgx.update`, and XLA's `cost_analysis()` flops (all ops):",
        "",
        "| batch | analytic matmul MFLOP | HLO dots MFLOP (n dots) "
        "| XLA cost_analysis MFLOP: update / update_from_replay |",
        "|---:|---:|---:|---:|",
    ]
    fmt = lambda x: "n/a" if x is None else f"{x / 1e6:.1f}"  # noqa: E731
    for b, analytic, dots, n_dots, xla_u, xla_r in flop_checks:
        lines.append(f"| {b} | {analytic / 1e6:.1f} | {fmt(dots)} ({n_dots}) | {fmt(xla_u)} / {fmt(xla_r)} |")
    b0 = args.batch_sizes[0]
    lines += ["", f"Analytic breakdown at batch {b0} (MFLOP):", ""]
    lines += [f"- {term}: {v / 1e6:.2f}" for term, v in ddpg_step_flops(b0).items()]
    if sampling_note:
        lines += ["", sampling_note]
    if not backends:
        lines += ["", "- skrl rows absent: " + ("--skip-skrl given" if args.skip_skrl else "skrl is not importable")]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n" + report)


if __name__ == "__main__":
    main()
