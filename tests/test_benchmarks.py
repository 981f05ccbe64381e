"""Benchmark scripts run end to end on a tiny budget and report every figure they promise (figures: RESULTS.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_update_floor_reports_update_guard_products_and_adam():
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "update_floor.py"), "--calls", "2", "--rounds", "1",
               "--memory", "500"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    times = dict(re.findall(r"^(update|update, no guard|products|Adam|torch products|torch Adam) +([0-9.]+) ms a call",
                            done.stdout, re.MULTILINE))
    assert set(times) == {"update", "update, no guard", "products", "Adam", "torch products", "torch Adam"}, done.stdout
    assert all(float(value) > 0 for value in times.values())
    assert re.search(r"the update is [0-9.]+x its ten products in XLA", done.stdout), done.stdout


def test_step_dispatch_reports_the_three_contenders_and_both_ratios():
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "step_dispatch.py"), "--env", "Pendulum-v1",
               "--memory", "2000", "--steps", "5", "--rounds", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    times = dict(re.findall(r"^(plain|packed|packed-xla-defaults) +([0-9.]+) ms a step", done.stdout, re.MULTILINE))
    assert set(times) == {"plain", "packed", "packed-xla-defaults"} and all(float(t) > 0 for t in times.values())
    for other in ("plain", "packed-xla-defaults"):
        assert re.search(rf"^packed / {other}: median [0-9.]+ \(range", done.stdout, re.MULTILINE), done.stdout
    assert "xla_cpu options accepted: True" in done.stdout
    alone = subprocess.run(command + ["--no-env"], capture_output=True, text=True, timeout=300, check=False)
    assert alone.returncode == 0 and ", no environment;" in alone.stdout, alone.stderr[-3000:]
    assert re.search(r"^packed / packed-xla-defaults: median [0-9.]+", alone.stdout, re.MULTILINE), alone.stdout
