"""Which machine a benchmark ran on, and how fast it runs this engine's kind of Python.

Seconds measured on one machine do not transfer to another: the same commit ran the
clusters-of-clusters ``tcp`` benchmark in 112 s of CPU on session 10's machine and in 241 s on
session 11's (docs/performance.md, "The same code on another machine"). The timing benchmarks
print :func:`describe` in their headers, so that a figure is read with its machine: the CPU model,
the cores, the Python build, and the CPU time of a fixed *reference work* -- a pure-Python
loop of what the engine's hot path does (a heap of timed events, dict lookups, attribute
updates on slotted objects) -- which puts two machines side by side in one number.
"""

from __future__ import annotations

import heapq
import os
import platform
import sysconfig
import time

__all__ = ["describe", "engine", "reference_work_ms"]


class _Flow:
    __slots__ = ("id", "rate", "version")

    def __init__(self, fid: int) -> None:
        self.id, self.rate, self.version = fid, 1.0, 0


def _reference_work() -> float:
    """A fixed workload like the engine's: 200,000 timed events on a heap of 1,000 flows."""
    flows = {i: _Flow(i) for i in range(1000)}
    heap = [(float(i), i) for i in range(1000)]
    heapq.heapify(heap)
    total = 0.0
    for _ in range(200_000):
        when, fid = heapq.heappop(heap)
        flow = flows[fid]
        flow.version += 1
        flow.rate = flow.rate * 0.5 + 1.0
        total += flow.rate
        heapq.heappush(heap, (when + flow.rate, fid))
    return total


def reference_work_ms(repeat: int = 3) -> float:
    """CPU milliseconds of the reference work, the best of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        _reference_work()
        best = min(best, time.process_time() - start)
    return best * 1e3


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    """One line: CPU model, cores, Python and its build flags, the reference work's CPU time,
    and whether the engine ran compiled."""
    optimized = "--enable-optimizations" in (sysconfig.get_config_var("CONFIG_ARGS") or "")
    build = "a PGO build" if optimized else "built without --enable-optimizations"
    return (f"machine: {_cpu_model()}, {os.cpu_count()} cores; Python "
            f"{platform.python_version()} ({platform.python_implementation()}, {build}); "
            f"reference work {reference_work_ms():.0f} ms CPU (benchmarks/machine.py); "
            f"engine: {engine()}")


def engine() -> str:
    """Which engine this process imported: ``compiled (mypyc)`` or ``plain Python`` (setup.py)."""
    from sim.network import COMPILED

    return "compiled (mypyc)" if COMPILED else "plain Python"


if __name__ == "__main__":
    print(describe())
