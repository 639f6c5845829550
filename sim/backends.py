"""Where the runs of a sweep or a comparison execute: this process, local processes, or Ray.

A backend maps one module-level function over a list of picklable tasks and yields
``(index, value)`` pairs *as the tasks finish* (in any order), so the caller can save each
result at once and show progress. The caller (:mod:`sim.runs`) owns everything else: keys,
files, resuming, the progress bar. Three backends, one interface:

``serial``
    One task after another in this process (no pickling; tests pass fake runners this way).
``process``
    A standard-library process pool (``concurrent.futures``, ``spawn`` start method: safe with
    torch and on every OS). The default; the core install needs nothing more.
``ray``
    One Ray task per run, on a local Ray instance started for the call or on an existing
    cluster (``address``, e.g. ``"auto"`` or ``"ray://head:10001"``). A task whose worker
    process or machine is lost is run again, up to ``max_retries`` times (Ray's task retries);
    an exception raised by the run itself is not retried but returned to the caller. Needs the
    optional extra: ``pip install -e ".[ray]"`` (or ``pip install ray``).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from sim.errors import ScenarioError

__all__ = ["BACKENDS", "Backend", "ProcessBackend", "RayBackend", "SerialBackend",
           "make_backend"]

BACKENDS = ("process", "ray", "serial")
"""Names accepted by :func:`make_backend` (and ``--backend``)."""

RAY_MISSING = ('the ray backend needs Ray, which is not installed: pip install -e ".[ray]" '
               '(or pip install ray)')


class Backend:
    """Runs ``fn(task)`` for every task; yields ``(index, value)`` as each one finishes."""

    name = "base"

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any],
                      ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index in tasks, fn(task))`` in order of completion."""
        raise NotImplementedError

    def describe(self) -> str:
        """A few words for progress bars and logs."""
        return self.name


class SerialBackend(Backend):
    """Every task in this process, in order."""

    name = "serial"

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any],
                      ) -> Iterator[tuple[int, Any]]:
        """Yield ``(i, fn(tasks[i]))`` for i = 0, 1, ..."""
        for index, task in enumerate(tasks):
            yield index, fn(task)


@dataclass(frozen=True, kw_only=True)
class ProcessBackend(Backend):
    """A pool of ``processes`` spawned worker processes on this machine."""

    processes: int = 2
    name = "process"

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any],
                      ) -> Iterator[tuple[int, Any]]:
        """Submit every task; yield each result as its worker returns it."""
        if not tasks:
            return
        workers = max(1, min(self.processes, len(tasks)))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(fn, task): index for index, task in enumerate(tasks)}
            try:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in sorted(done, key=futures.__getitem__):
                        yield futures[future], future.result()
            finally:  # interrupted (Ctrl-C, or the caller stopped): drop what has not started
                for future in futures:
                    future.cancel()

    def describe(self) -> str:
        """``"process x N"``."""
        return f"process x {self.processes}"


@dataclass(frozen=True, kw_only=True)
class RayBackend(Backend):
    """One Ray task per run on a local Ray instance or the cluster at ``address``.

    Parameters
    ----------
    address:
        ``None``: start a local Ray instance for this call (and stop it after); otherwise what
        ``ray.init(address=...)`` accepts: ``"auto"`` (the cluster this machine belongs to),
        ``"HOST:6379"`` or ``"ray://HOST:10001"`` (Ray Client).
    max_retries:
        Times a task is run again when its worker process or node dies (not when it raises).
    num_cpus_per_task:
        CPUs Ray reserves for each run (the runs are single-threaded by default).
    num_cpus:
        CPUs of the local instance (``None``: all of this machine's); ignored with ``address``.
    """

    address: str | None = None
    max_retries: int = 3
    num_cpus_per_task: float = 1.0
    num_cpus: int | None = None
    name = "ray"

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any],
                      ) -> Iterator[tuple[int, Any]]:
        """Submit every task as a Ray task; yield each result as it is ready."""
        ray = require_ray()
        if not tasks:
            return
        started_here = not ray.is_initialized()
        if started_here:
            kwargs: dict[str, Any] = {"address": self.address, "log_to_driver": False,
                                      "include_dashboard": False}
            if self.address is None and self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
        try:
            remote = ray.remote(num_cpus=self.num_cpus_per_task, max_retries=self.max_retries,
                                retry_exceptions=False)(_call)
            function = ray.put(fn)
            refs = {remote.remote(function, task): index for index, task in enumerate(tasks)}
            pending = list(refs)
            try:
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    for ref in ready:
                        yield refs[ref], _ray_get(ray, ref)
            finally:
                for ref in pending:
                    ray.cancel(ref, force=True)
        finally:
            if started_here:
                ray.shutdown()

    def describe(self) -> str:
        """``"ray (local)"`` or ``"ray @ ADDRESS"``."""
        return "ray (local)" if self.address is None else f"ray @ {self.address}"


def _call(fn: Callable[[Any], Any], task: Any) -> Any:
    """``fn(task)``: what each Ray task runs (Ray wraps functions, not partials)."""
    return fn(task)


def _ray_get(ray: Any, ref: Any) -> Any:
    """``ray.get``, re-raising the run's own exception rather than Ray's wrapper."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        raise cause from None


def require_ray() -> Any:
    """Import Ray, or fail with one line that says what to install."""
    try:
        import ray  # deferred: the optional [ray] extra
    except ImportError:
        raise ScenarioError("--backend", RAY_MISSING) from None
    return ray


def make_backend(name: str = "process", *, processes: int | None = None,
                 address: str | None = None, max_retries: int = 3) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`).

    ``processes`` sizes the process pool (default: this machine's CPUs); ``address`` and
    ``max_retries`` are Ray's. Bad values fail with :class:`ScenarioError` naming the option.
    """
    if name not in BACKENDS:
        raise ScenarioError("--backend", f"unknown backend {name!r}; allowed: "
                                         f"{', '.join(BACKENDS)}")
    if processes is not None and processes < 1:
        raise ScenarioError("--processes", f"must be >= 1, got {processes}")
    if address is not None and name != "ray":
        raise ScenarioError("--address", "only the ray backend connects to an address")
    if max_retries < 0:
        raise ScenarioError("--max-retries", f"must be >= 0, got {max_retries}")
    if name == "serial":
        return SerialBackend()
    if name == "ray":
        require_ray()
        return RayBackend(address=address, max_retries=max_retries)
    return ProcessBackend(processes=processes or os.cpu_count() or 1)
