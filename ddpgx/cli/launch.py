"""Runs N local copies of a program as one multi-process JAX job: ``python -m ddpgx.cli.launch --nproc 2 prog.py``.

Each copy gets ``DDPGX_COORDINATOR_ADDRESS`` (127.0.0.1 and a free port), ``DDPGX_NUM_PROCESSES`` and
``DDPGX_PROCESS_ID`` in its environment; the program calls :func:`ddpgx.core.sharding.initialize` to join. If one copy
fails, the others are stopped and the launcher exits with its status. On several machines, start the program on
each with those three variables set by hand (the coordinator is process 0's ``host:port``), or with your cluster's
launcher: ``jax.distributed.initialize`` also reads SLURM and similar environments when called with no arguments.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(command: list[str], nproc: int, *, port: int | None = None, env: dict | None = None,
           timeout: float | None = None) -> int:
    """Starts ``nproc`` copies of ``command``; returns 0 when all succeed, else the first failure's status."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc={nproc!r} is invalid: expected an integer >= 1")
    if not command:
        raise ValueError("no command to launch")
    address = f"127.0.0.1:{port or free_port()}"
    processes = []
    for rank in range(nproc):
        child_env = dict(os.environ if env is None else env, DDPGX_COORDINATOR_ADDRESS=address,
                         DDPGX_NUM_PROCESSES=str(nproc), DDPGX_PROCESS_ID=str(rank))
        processes.append(subprocess.Popen(command, env=child_env))
    deadline = None if timeout is None else time.monotonic() + timeout
    status = 0
    try:
        while any(p.poll() is None for p in processes):
            failed = [p.returncode for p in processes if p.returncode not in (None, 0)]
            if failed or (deadline is not None and time.monotonic() > deadline):
                status = failed[0] if failed else 124
                break
            time.sleep(0.05)
        else:
            status = next((p.returncode for p in processes if p.returncode), 0)
    finally:
        for p in processes:
            if p.poll() is None:
                p.terminate()
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddpgx.cli.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes to start (default 2)")
    parser.add_argument("--port", type=int, default=None, help="coordinator port on 127.0.0.1 (default: a free one)")
    parser.add_argument("program", help="a Python file")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    args = parser.parse_args(argv)
    try:
        return launch([sys.executable, args.program, *args.args], args.nproc, port=args.port)
    except ValueError as error:
        print(f"ddpgx.cli.launch: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
