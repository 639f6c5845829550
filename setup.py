"""Everything about the package is in pyproject.toml except the compiled engine, which is opt-in.

``DTSIM_COMPILE=1 pip install .`` compiles ``COMPILED_MODULES`` with mypyc (C extensions built
from the modules' own type annotations: the same source, the same results, about 1.5x faster
on the timing-only benchmarks; docs/performance.md, "A compiled engine"). Without it, no
extension is built. ``build_support/dtsim_backend.py`` fetches mypy for the build only when it
is asked for.
"""

from __future__ import annotations

import os

from setuptools import setup

COMPILED_MODULES = [
    "sim/network/base.py",
    "sim/network/tcp.py",
    "sim/network/maxmin.py",
    "sim/network/ideal.py",
    "sim/network/droptail.py",
    "sim/timer.py",
    "sim/collectives.py",
]
"""The engine's hot path: flows, the transport, the models, timers and the collectives. Not what
travels between processes: ``sim/network/tcp_config.py`` (a scenario's ``TcpConfig`` is pickled
to worker processes, and a compiled frozen dataclass cannot be unpickled) nor ``sim/recorder.py``
(a finished run's recorder is copied and pickled back; compiled classes cannot be copied)."""

ext_modules = []
if os.environ.get("DTSIM_COMPILE", "0") == "1":
    from mypyc.build import mypycify

    # The build checks types as CI's mypy does, but torch, numpy and the rest may not be
    # installed yet (pip builds a fresh environment's wheel before its dependencies): then
    # they are Any, and the ignores their stubs need would be "unused" errors
    ext_modules = mypycify(["--no-warn-unused-ignores", *COMPILED_MODULES], opt_level="3")

setup(ext_modules=ext_modules)
