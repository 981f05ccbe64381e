"""Two-rank torch.distributed jobs (gloo on CPU) for the tests: ``run(worker, out)`` spawns the ranks, which meet at a
file store, run ``worker(rank, world, out)`` and leave without the interpreter's finalisation.

Why the last part: in full test runs on the 2-core CI machine, a rank has now and then died with SIGABRT
(``terminate called without an active exception``: what libstdc++ prints when a still-running native thread's object
is destroyed, typically while the interpreter finalises); the same tests pass alone every time, and when in the rank's
life it happened was not recorded. A rank that has written its results and destroyed its process group therefore ends
with ``os._exit(0)``; a rank that fails before that still fails the test, and ``faulthandler`` prints where any rank
crashed.
"""

from __future__ import annotations

import datetime
import faulthandler
import os
import sys
import tempfile
from typing import Callable

WORLD = 2


def run(worker: Callable[[int, int, str], None], name: str) -> str:
    """Runs ``worker(rank, world, out)`` on 2 spawned ranks; returns ``out`` (each rank writes ``f"{out}.{rank}"``)."""
    import torch.multiprocessing as mp

    directory = tempfile.mkdtemp()
    out = os.path.join(directory, name)
    # a file store: no TCP port that another process could take in between
    mp.spawn(_rank_main, args=(worker, "file://" + os.path.join(directory, "rendezvous"), out), nprocs=WORLD,
             join=True)
    return out


def _rank_main(rank: int, worker: Callable[[int, int, str], None], init_method: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    faulthandler.enable(all_threads=True)
    torch.set_num_threads(1)
    # a timeout turns a rank left waiting in a collective into an error instead of a hung test
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))
    try:
        worker(rank, WORLD, out)
    finally:
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # results written, group destroyed: skip the finalisation (see the module's docstring)
