"""Datasets that never need a download, and how they are split into per-node shards.

- ``load_digits_split``: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes).
- ``load_text_tokens``: a local text file at byte level (V = 256) or character level.
- ``stdlib_source_bytes``: source text of Python's own standard library (real text, no download).
- ``iid_partition`` / ``dirichlet_label_partition``: index shards for classification data.
- ``contiguous_regions``: per-node regions of a token stream (non-iid text).
"""

from __future__ import annotations

import importlib.util
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ArrayData:
    """Features and labels as numpy arrays, split into train and held-out parts."""

    train_x: np.ndarray
    """(N_train, F) float32 features."""
    train_y: np.ndarray
    """(N_train,) int64 labels."""
    test_x: np.ndarray
    """(N_test, F) float32 features."""
    test_y: np.ndarray
    """(N_test,) int64 labels."""
    num_classes: int


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Pixels (1797, 64) in 0..16 and labels (1797,) of scikit-learn's bundled digits.

    Reads the CSV that ships inside the scikit-learn package (importing scikit-learn itself
    takes seconds); falls back to ``sklearn.datasets.load_digits`` if the file has moved.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ValueError("data='digits': needs scikit-learn (pip install scikit-learn)")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        table = np.loadtxt(path, delimiter=",")
        return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits  # deferred: heavy, only the digits set needs it

    digits = load_digits()
    return digits.data, digits.target


def load_digits_split(*, held_out_fraction: float, rng: np.random.Generator) -> ArrayData:
    """Scikit-learn's digits, scaled to [0, 1], split at random into train and held-out."""
    pixels, labels = _digits_arrays()
    x = (pixels / 16.0).astype(np.float32)  # pixel values are 0..16
    y = labels.astype(np.int64)
    order = rng.permutation(len(y))
    n_test = int(round(held_out_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return ArrayData(x[train], y[train], x[test], y[test], num_classes=10)


@dataclass(frozen=True)
class TextTokens:
    """A tokenised text file and its vocabulary."""

    tokens: np.ndarray
    """(N,) int64 token ids."""
    vocab: int
    """Number of distinct ids (256 at byte level)."""
    alphabet: str | None
    """Characters in id order at character level; ``None`` at byte level."""


def load_text_tokens(path: str | Path, *, level: str) -> TextTokens:
    """Read a local text file as bytes (V = 256) or as characters (V = distinct characters)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data='text:{path}': no such file")
    return tokenize_text(path.read_bytes(), level=level)


STDLIB_MODULES = (
    "argparse.py", "ast.py", "calendar.py", "configparser.py", "dataclasses.py", "difflib.py",
    "enum.py", "fractions.py", "functools.py", "heapq.py", "inspect.py", "ipaddress.py",
    "json/decoder.py", "json/encoder.py", "logging/__init__.py", "statistics.py", "string.py",
    "textwrap.py", "threading.py", "typing.py", "tokenize.py", "subprocess.py", "shutil.py",
    "tarfile.py",
)
"""Source files of Python's standard library that ``data = "python-stdlib"`` reads, in order
(about 1.4 MB on CPython 3.11). Every Python installation has them: nothing is downloaded."""


def stdlib_source_bytes(modules: tuple[str, ...] = STDLIB_MODULES) -> bytes:
    """The source text of ``modules`` from this interpreter's standard library, concatenated.

    Real text with long-range structure (indentation blocks, matching brackets, names defined
    far before their use), unlike the first-order Markov language, whose optimum a tiny model
    reaches. The text depends on the Python version (recorded by the run's environment).
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    missing = [m for m in modules if not (root / m).is_file()]
    if missing:
        raise ValueError(f"data='python-stdlib': {root} lacks {', '.join(missing)}")
    return b"".join((root / m).read_bytes() for m in modules)


def tokenize_text(data: bytes, *, level: str) -> TextTokens:
    """Bytes as tokens (V = 256), or UTF-8 characters (V = distinct characters, sorted)."""
    if level == "byte":
        tokens = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        return TextTokens(tokens, 256, None)
    if level == "char":
        text = data.decode("utf-8")
        alphabet = "".join(sorted(set(text)))
        index = {c: i for i, c in enumerate(alphabet)}
        tokens = np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
        return TextTokens(tokens, len(alphabet), alphabet)
    raise ValueError(f"text_level={level!r}: allowed 'byte' or 'char'")


def iid_partition(n: int, num_shards: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle indices 0..n-1 and deal them into ``num_shards`` near-equal shards."""
    order = rng.permutation(n)
    return [np.sort(part) for part in np.array_split(order, num_shards)]


def dirichlet_label_partition(
    labels: np.ndarray, num_shards: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Label-skewed shards: each class is split across shards in Dirichlet(alpha) proportions.

    Small ``alpha`` gives each shard few classes; large ``alpha`` approaches iid. Every shard is
    guaranteed at least one example (an empty shard is topped up from the largest one).
    """
    if alpha <= 0:
        raise ValueError(f"dirichlet_alpha={alpha}: must be > 0")
    shards: list[list[int]] = [[] for _ in range(num_shards)]
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        share = rng.dirichlet(np.full(num_shards, alpha))
        cuts = (np.cumsum(share)[:-1] * len(idx)).astype(int)
        for shard, part in zip(shards, np.split(idx, cuts)):
            shard.extend(part.tolist())
    for shard in shards:
        if not shard:
            donor = max(shards, key=len)
            shard.append(donor.pop())
    return [np.sort(np.array(s, dtype=np.int64)) for s in shards]


def contiguous_regions(n: int, num_shards: int) -> list[tuple[int, int]]:
    """Split positions 0..n-1 into ``num_shards`` consecutive [start, stop) regions."""
    bounds = np.linspace(0, n, num_shards + 1).astype(int)
    return [(int(bounds[i]), int(bounds[i + 1])) for i in range(num_shards)]
