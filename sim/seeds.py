"""The seed tree: every random stream of a run, derived by name from one seed.

A run has one root ``numpy.random.SeedSequence``. A stream is addressed by a path of names, e.g.
``("world", "stragglers")`` or ``("policy", "data", 3)``; the path is turned into spawn-key
integers with a stable hash (CRC-32 of the UTF-8 text, not Python's ``hash``, which changes with
``PYTHONHASHSEED``). The same seed and path always give the same stream; different paths give
independent streams; asking for a stream twice gives two generators in the same state.

The world's streams (``"world", ...``: faults, stragglers) are kept apart from the policy's
(``"policy", ...``: data order, peer choice), so changing a method never changes the failures it
faces (design idea 3).
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(name: str | int) -> int:
    if isinstance(name, (int, np.integer)):
        if name < 0:
            raise ValueError(f"seed path: integers must be >= 0, got {name}")
        return int(name) * 2 + 1  # odd: never equal to a string's key below
    return zlib.crc32(str(name).encode("utf-8")) * 2


class SeedTree:
    """Named child streams of one root seed."""

    def __init__(self, seed: int, path: tuple[str | int, ...] = ()) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.path = tuple(path)

    def child(self, *names: str | int) -> SeedTree:
        """The subtree at ``names`` below this one."""
        return SeedTree(self.seed, self.path + tuple(names))

    def sequence(self, *names: str | int) -> np.random.SeedSequence:
        """The ``SeedSequence`` at ``names`` below this node."""
        spawn_key = tuple(_key(n) for n in self.path + tuple(names))
        return np.random.SeedSequence(self.seed, spawn_key=spawn_key)

    def generator(self, *names: str | int) -> np.random.Generator:
        """A fresh ``numpy.random.Generator`` for the stream at ``names``."""
        return np.random.Generator(np.random.PCG64(self.sequence(*names)))

    def integer_seed(self, *names: str | int) -> int:
        """A 63-bit integer seed for libraries that want one (``torch.Generator``)."""
        return int(self.sequence(*names).generate_state(1, np.uint64)[0] >> np.uint64(1))
