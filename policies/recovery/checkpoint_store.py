"""Bookkeeping of the checkpointing baseline: which stage states the store holds, and when.

Every ``C`` iterations each stage uploads its weights and optimizer state to a store node. An
upload takes real network time, so a checkpoint is only *usable* once the uploads of **every**
stage for that step have arrived: restoring some stages from step 300 and others from step 200
would give a model that never existed. :class:`CheckpointStore` keeps that rule.

The store keeps the newest complete checkpoint (and the one being uploaded). The initial state
(step 0) is complete from the start: every node builds the initial model from the run's seed,
so a replacement can rebuild it without any transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class StageCheckpoint:
    """One stage's saved state.

    stage:
        Stage index.
    step:
        Completed iterations when the state was taken.
    state:
        The stage's weights and optimizer state (opaque to the store).
    nbytes:
        Size of the upload, bytes.
    stored_at_s:
        Simulated time the upload finished, seconds (0 for the initial state).
    """

    stage: int
    step: int
    state: Any
    nbytes: float
    stored_at_s: float


class CheckpointStore:
    """Per-stage checkpoints; a step becomes restorable when all ``num_stages`` have arrived."""

    def __init__(self, num_stages: int) -> None:
        if num_stages < 1:
            raise ValueError(f"num_stages={num_stages}: must be >= 1")
        self.num_stages = num_stages
        self._arrived: dict[int, dict[int, StageCheckpoint]] = {}  # step -> stage -> checkpoint
        self._complete: dict[int, StageCheckpoint] | None = None
        self.bytes_stored = 0.0
        """Total bytes uploaded (all stages, all checkpoints)."""

    @property
    def complete_step(self) -> int | None:
        """Step of the newest checkpoint that every stage has finished uploading."""
        if self._complete is None:
            return None
        return next(iter(self._complete.values())).step

    def seed_initial(self, states: dict[int, Any], nbytes: dict[int, float]) -> None:
        """Make the initial state (step 0) the complete checkpoint, with no transfer."""
        self._check_all_stages(states)
        self._complete = {
            s: StageCheckpoint(stage=s, step=0, state=states[s], nbytes=nbytes[s], stored_at_s=0.0)
            for s in range(self.num_stages)
        }

    def put(self, *, stage: int, step: int, state: Any, nbytes: float, time_s: float) -> bool:
        """Record that ``stage``'s upload for ``step`` arrived at ``time_s``.

        Returns True when this upload completes the checkpoint of ``step`` (it then replaces the
        previous complete one). An upload older than the complete checkpoint is ignored.
        """
        if not 0 <= stage < self.num_stages:
            raise ValueError(f"stage={stage}: must be in 0..{self.num_stages - 1}")
        if nbytes < 0:
            raise ValueError(f"nbytes={nbytes}: must be >= 0")
        self.bytes_stored += nbytes
        current = self.complete_step
        if current is not None and step <= current:
            return False
        arrived = self._arrived.setdefault(step, {})
        arrived[stage] = StageCheckpoint(
            stage=stage, step=step, state=state, nbytes=nbytes, stored_at_s=time_s
        )
        if len(arrived) < self.num_stages:
            return False
        self._complete = arrived
        for old in [k for k in self._arrived if k <= step]:
            del self._arrived[old]
        return True

    def discard_pending(self) -> None:
        """Forget incomplete uploads (after a rollback they describe a lost future)."""
        self._arrived.clear()

    def get(self, stage: int) -> StageCheckpoint:
        """Return the complete checkpoint of ``stage``."""
        if self._complete is None:
            raise LookupError("the store holds no complete checkpoint yet")
        return self._complete[stage]

    def _check_all_stages(self, states: dict[int, Any]) -> None:
        if sorted(states) != list(range(self.num_stages)):
            raise ValueError(
                f"states: need one entry per stage 0..{self.num_stages - 1}, got {sorted(states)}"
            )
