"""Batch streams: each learner draws its training batches from its own stream.

A stream's whole position (random generator state, epoch order, cursor) is returned by
``state()`` and put back by ``set_state()``, so a snapshot of a learner restores its data
position exactly. Held-out batches are fixed at construction and identical for every rank.
"""

from __future__ import annotations

import copy
from typing import Protocol

import numpy as np
import torch

from workloads.markov import MarkovLanguage

Batch = tuple[torch.Tensor, torch.Tensor]


class BatchStream(Protocol):
    """What a learner needs from its data."""

    def next_batch(self) -> Batch:
        """Next training batch (inputs, targets) of this node's shard."""

    def state(self) -> dict:
        """Everything needed to resume at the same position."""

    def set_state(self, state: dict) -> None:
        """Resume at a position returned by :meth:`state`."""

    def eval_batches(self) -> list[Batch]:
        """Held-out batches (deterministic, same for all ranks)."""


def _rng_state(rng: np.random.Generator) -> dict:
    return copy.deepcopy(dict(rng.bit_generator.state))


class MarkovStream:
    """Sequences of a Markov language: inputs (B, T) and next-token targets (B, T)."""

    def __init__(
        self,
        language: MarkovLanguage,
        *,
        batch: int,
        seq: int,
        rng: np.random.Generator,
        held_out: list[Batch],
    ) -> None:
        self.language, self.batch, self.seq = language, batch, seq
        self.rng = rng
        self.held_out = held_out

    def next_batch(self) -> Batch:
        """Return the next training batch (inputs, targets)."""
        tokens = torch.from_numpy(self.language.sample(self.rng, self.batch, self.seq + 1))
        return tokens[:, :-1], tokens[:, 1:]  # (B, T) each

    def state(self) -> dict:
        """Return the stream's position (generator state and cursor)."""
        return {"rng": _rng_state(self.rng)}

    def set_state(self, state: dict) -> None:
        """Resume at a position returned by :meth:`state`."""
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])

    def eval_batches(self) -> list[Batch]:
        """Return the fixed held-out batches."""
        return self.held_out


def markov_held_out(
    language: MarkovLanguage, *, batch: int, seq: int, num_batches: int, rng: np.random.Generator
) -> list[Batch]:
    """Draw fixed held-out batches from ``language``."""
    tokens = torch.from_numpy(language.sample(rng, batch * num_batches, seq + 1))
    return [(t[:, :-1], t[:, 1:]) for t in tokens.split(batch)]


class ArrayStream:
    """Minibatches of (features, label) rows from this node's index shard, reshuffled per epoch."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        shard: np.ndarray,
        *,
        batch: int,
        rng: np.random.Generator,
        held_out: list[Batch],
    ) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.shard = shard
        self.batch = batch
        self.rng = rng
        self.held_out = held_out
        self.order = rng.permutation(shard)
        self.cursor = 0

    def next_batch(self) -> Batch:
        """Return the next training batch (inputs, targets)."""
        if self.cursor + self.batch > len(self.order):
            self.order = self.rng.permutation(self.shard)  # a new epoch
            self.cursor = 0
        idx = torch.from_numpy(self.order[self.cursor : self.cursor + self.batch])
        self.cursor += self.batch
        return self.x[idx], self.y[idx]  # (B, F), (B,)

    def state(self) -> dict:
        """Return the stream's position (generator state and cursor)."""
        return {"rng": _rng_state(self.rng), "order": self.order.copy(), "cursor": self.cursor}

    def set_state(self, state: dict) -> None:
        """Resume at a position returned by :meth:`state`."""
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
        self.order = state["order"].copy()
        self.cursor = state["cursor"]

    def eval_batches(self) -> list[Batch]:
        """Return the fixed held-out batches."""
        return self.held_out


def array_held_out(x: np.ndarray, y: np.ndarray, *, batch: int) -> list[Batch]:
    """Cut the held-out rows, in fixed order, into batches of ``batch``."""
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    return list(zip(xs.split(batch), ys.split(batch)))


class TextStream:
    """Random windows of a token array, restricted to positions [start, stop) of this node."""

    def __init__(
        self,
        tokens: np.ndarray,
        region: tuple[int, int],
        *,
        batch: int,
        seq: int,
        rng: np.random.Generator,
        held_out: list[Batch],
    ) -> None:
        start, stop = region
        if stop - start < seq + 1:
            raise ValueError(
                f"seq={seq}: the text shard has only {stop - start} tokens; use a shorter seq, "
                "fewer replicas or a longer file"
            )
        self.tokens = torch.from_numpy(tokens)
        self.region = region
        self.batch, self.seq = batch, seq
        self.rng = rng
        self.held_out = held_out

    def next_batch(self) -> Batch:
        """Return the next training batch (inputs, targets)."""
        start, stop = self.region
        offsets = self.rng.integers(start, stop - self.seq, size=self.batch)
        windows = torch.stack([self.tokens[o : o + self.seq + 1] for o in offsets.tolist()])
        return windows[:, :-1], windows[:, 1:]  # (B, T) each

    def state(self) -> dict:
        """Return the stream's position (generator state and cursor)."""
        return {"rng": _rng_state(self.rng)}

    def set_state(self, state: dict) -> None:
        """Resume at a position returned by :meth:`state`."""
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])

    def eval_batches(self) -> list[Batch]:
        """Return the fixed held-out batches."""
        return self.held_out


def text_held_out(
    tokens: np.ndarray, *, batch: int, seq: int, num_batches: int, rng: np.random.Generator
) -> list[Batch]:
    """Draw fixed random windows of the held-out tokens."""
    if len(tokens) < seq + 2:
        raise ValueError(f"seq={seq}: the held-out part of the text has only {len(tokens)} tokens")
    t = torch.from_numpy(tokens)
    out = []
    for _ in range(num_batches):
        offsets = rng.integers(0, len(tokens) - seq - 1, size=batch)
        w = torch.stack([t[o : o + seq + 1] for o in offsets.tolist()])
        out.append((w[:, :-1], w[:, 1:]))
    return out
