"""pytest set-up for the whole suite (tests and doctests): one XLA compilation cache shared by the run's processes.

Many tests build an agent whose programs are the same as another test's, in the same process through new jitted
closures or in a fresh Python process (resume, the command line, the launcher), and XLA:CPU compiles each anew.
JAX's persistent compilation cache, in a temporary directory made for the run and removed after it, lets every such
compilation after the first load the executable instead (the default run took 13.6 min without it and 10.6 min with
it on a 2-core VM). Compiled programs are the same either way: the cache key is the program, the compile options and
the jax/jaxlib versions. A ``JAX_COMPILATION_CACHE_DIR`` set by the caller is used instead, and kept (``.ci/run``
sets one for both of its stages); ``DDPGX_TEST_XLA_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

_CACHE_VARIABLE = "JAX_COMPILATION_CACHE_DIR"
_MIN_TIME_VARIABLE = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"


def pytest_configure(config):
    if os.environ.get("DDPGX_TEST_XLA_CACHE", "1") == "0":
        return
    if not os.environ.get(_CACHE_VARIABLE):
        config.ddpgx_xla_cache = os.environ[_CACHE_VARIABLE] = tempfile.mkdtemp(prefix="ddpgx-tests-xla-cache-")
    # Subprocesses inherit the environment; this process reads it when jax is first imported (below, if it already is).
    os.environ.setdefault(_MIN_TIME_VARIABLE, "0")  # cache every program
    if "jax" in sys.modules:  # imported already (by another pytest plugin): it read the environment before this
        import jax

        jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_VARIABLE])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float(os.environ[_MIN_TIME_VARIABLE]))


def pytest_unconfigure(config):
    directory = getattr(config, "ddpgx_xla_cache", None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
