"""How many CPU threads torch uses while dtsim trains its learners.

The learners dtsim really trains are tiny (about 100k parameters): a step is a few hundred small
kernel launches, so torch's default of one thread per core makes it *slower* (the threads spend
their time synchronising) and, on a shared machine, burns every core spinning. Measured on the
project's 2-core machine: 0.021 s of CPU per tiny-LLaMA step with one thread, 0.32 s with two
(docs/cli.md, "Threads").

So every entry point, the library's :func:`sim.run` and :func:`sim.compare` as much as the
``dtsim`` command and sweep workers, trains on :data:`DEFAULT_TORCH_THREADS` threads unless told
otherwise, and the same call takes the same time from Python and from the command line. The
setting is process-wide in torch; :func:`torch_threads` restores the caller's value afterwards,
so a notebook's own torch code is not affected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sim.errors import ScenarioError

__all__ = ["DEFAULT_TORCH_THREADS", "check_threads", "torch_threads"]

#: Threads per process for the learners (``threads=`` of :func:`sim.run`, ``--threads``).
DEFAULT_TORCH_THREADS = 1


def check_threads(threads: int | None, field: str = "threads") -> None:
    """Refuse a thread count that is not a positive integer (``None``: leave torch alone)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ScenarioError(field, f"must be an integer >= 1, got {threads!r}")


@contextmanager
def torch_threads(threads: int | None = DEFAULT_TORCH_THREADS) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(threads)``, then restore the caller's value.

    ``None`` leaves torch's setting as it is (the caller manages threads itself).
    """
    check_threads(threads)
    if threads is None:
        yield
        return
    import torch  # deferred: heavy; `import sim` does not load it

    saved = torch.get_num_threads()
    if saved != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != saved:
            torch.set_num_threads(saved)
