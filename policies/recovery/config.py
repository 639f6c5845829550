"""Configurations of the recovery family: one pipeline, five strategies.

Every method of the family runs the same pipeline (:class:`PipelineRecoveryConfig`); each adds
only the parameters of its own recovery strategy. A field that a method would never read is not
in its config. The stage failures they face are not a method's parameter: they are the
scenario's ``[faults]`` ``stage`` model (:mod:`sim.faults.stages`), the same for every method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sim.errors import FieldError, ScenarioError

EDGE_FALLBACKS = ("checkpoint", "copy")
CHECKPOINT_RESTORES = ("rollback", "stale_stage")

_MOVED_TO_FAULTS = ("stage failures are the scenario's, not a method's: give them once as "
                    "[faults.failures] model = \"stage\" with p_hour, time_scale, "
                    "failure_period_s, rejoin_delay_s, exempt (docs/faults.md)")


@dataclass(frozen=True, kw_only=True)
class PipelineRecoveryConfig:
    """The pipeline every method of the family runs.

    num_stages:
        Stages ``S``, stage 0 included (it holds the embedding, the head and the data).
    replicas_per_stage:
        Nodes per stage ``R``; stage ``s`` is held by nodes ``s R .. s R + R - 1``, and node
        ``S R`` (if the cluster has it) is the checkpoint store.
    microbatches_per_replica:
        Microbatches each data node sends per iteration (``R`` times this per iteration); pipeline
        ``r`` (replica ``r`` of every stage) carries the microbatches of data node ``r``.
    memory_microbatches:
        Microbatches whose activations one node holds at once (``m``).
    forward_s:
        Seconds of one stage's forward on one microbatch (backward 1.5x, loss 0.25x, as in the
        CheckFree/SkipPipe emulators); ``None``: from the workload's timing model and the
        cluster's device.
    hop_overhead_s:
        Fixed seconds added to every activation transfer (host <-> device copies).
    allreduce:
        Average each stage's gradients among its replicas every iteration (ring all-reduce).
    embedding_stage:
        ``True`` (the authors' layout): stage 0 holds only the embedding and the head, the
        blocks are split over stages ``1 .. S-1``, so ``S - 1`` transformer stages; ``False``:
        stage 0 holds blocks too.
    within_iteration:
        ``True`` (the authors' code): a lost stage is rebuilt as soon as its replacement joins
        and the iteration continues (microbatches wait for it); ``False``: the iteration a
        failure hits is discarded and the rebuild waits for the next iteration (ablation).
    """

    RETIRED_FIELDS: ClassVar[dict[str, str]] = {
        name: _MOVED_TO_FAULTS for name in ("p_hour", "time_scale", "failure_period_s",
                                            "rejoin_delay_s", "exempt_stages")}
    """Former parameters, refused with where they went (:func:`sim.components.make_config`)."""

    num_stages: int = 5
    replicas_per_stage: int = 2
    microbatches_per_replica: int = 2
    memory_microbatches: int = 3
    forward_s: float | None = None
    hop_overhead_s: float = 0.0
    allreduce: bool = True
    embedding_stage: bool = True
    within_iteration: bool = True

    def __post_init__(self) -> None:
        for name in ("num_stages", "replicas_per_stage", "microbatches_per_replica",
                     "memory_microbatches"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"must be >= 1, got {getattr(self, name)}")
        minimum = 4 if self.embedding_stage else 3
        if self.num_stages < minimum:
            raise FieldError(
                "num_stages", f"the recovery family needs >= 3 transformer stages, so "
                f">= {minimum} with embedding_stage={self.embedding_stage}, got {self.num_stages}")
        if self.forward_s is not None and not self.forward_s > 0:
            raise FieldError("forward_s", f"must be > 0 seconds or None, got {self.forward_s}")
        if self.hop_overhead_s < 0:
            raise FieldError("hop_overhead_s", f"must be >= 0 seconds, got {self.hop_overhead_s}")

    def stage_nodes(self, num_nodes: int) -> list[list[int]]:
        """Node ids of each stage: stage ``s`` is nodes ``s R .. s R + R - 1``.

        Raises :class:`FieldError` naming ``num_stages`` when the cluster is too small.
        """
        S, R = self.num_stages, self.replicas_per_stage
        if num_nodes < self.num_pipeline_nodes:
            raise FieldError(
                "num_stages", f"num_stages x replicas_per_stage = {S} x {R} = "
                f"{self.num_pipeline_nodes} nodes; the cluster has {num_nodes}")
        return [[s * R + r for r in range(R)] for s in range(S)]

    def check_store_node(self, num_nodes: int, what: str) -> int:
        """The checkpoint store's node id, ``S R``: ``what`` needs the cluster to have it.

        Raises :class:`ScenarioError` naming ``cluster.nodes`` when the cluster has no node
        left over.
        """
        if num_nodes <= self.num_pipeline_nodes:
            raise ScenarioError(
                "cluster.nodes", f"{num_nodes} nodes: {what} needs a store node; use "
                f"num_stages x replicas_per_stage + 1 = {self.num_pipeline_nodes + 1}")
        return self.num_pipeline_nodes

    def check_blocks(self, n_layers: int, *, equal: bool = False) -> None:
        """The model's ``n_layers`` blocks fill every transformer stage (equally if ``equal``).

        With ``embedding_stage`` stage 0 holds no block, so ``S - 1`` stages share them.
        Raises :class:`FieldError` naming ``num_stages``.
        """
        stages = self.num_stages - (1 if self.embedding_stage else 0)
        if stages > n_layers:
            raise FieldError(
                "num_stages", f"{self.num_stages} stages give {stages} transformer stages "
                f"(embedding_stage={self.embedding_stage}) but the model has "
                f"n_layers={n_layers} blocks")
        if equal and n_layers % stages:
            raise FieldError(
                "num_stages", f"a lost stage is rebuilt from its neighbours, so every "
                f"stage needs the same number of blocks; n_layers={n_layers} over {stages} "
                f"transformer stages is uneven")

    @property
    def num_pipeline_nodes(self) -> int:
        """Nodes holding stages, ``S R``."""
        return self.num_stages * self.replicas_per_stage


@dataclass(frozen=True, kw_only=True)
class NoFailureConfig(PipelineRecoveryConfig):
    """The upper bound: the same pipeline, no failures."""


@dataclass(frozen=True, kw_only=True)
class CheckFreeConfig(PipelineRecoveryConfig):
    """CheckFree: rebuild a lost stage from its neighbours.

    lr_bump:
        Learning-rate multiplier of a rebuilt stage (the paper uses 1.1-1.2).
    norm_eps:
        Added to each neighbour's gradient norm (1e-4 in the reference).
    squared_norms:
        Weight neighbours by squared gradient norms instead of norms.
    edge_fallback:
        What plain CheckFree does for a stage with one neighbour holding blocks (the last
        stage; the first transformer stage when stage 0 holds only the embedding): ``"copy"``
        copies that neighbour (the authors' convergence code, ``ours-grad-avg``);
        ``"checkpoint"`` restores the stage's weights from a weights-only snapshot uploaded to
        the store every ``edge_checkpoint_every`` iterations (their ``ours-avg-ablation``).
    edge_checkpoint_every:
        Iterations between the edge-stage snapshots (``"checkpoint"`` fallback).
    """

    lr_bump: float = 1.1
    norm_eps: float = 1e-4
    squared_norms: bool = False
    edge_fallback: str = "copy"
    edge_checkpoint_every: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lr_bump > 0:
            raise FieldError("lr_bump", f"must be > 0, got {self.lr_bump}")
        if not self.norm_eps >= 0:
            raise FieldError("norm_eps", f"must be >= 0, got {self.norm_eps}")
        if self.edge_fallback not in EDGE_FALLBACKS:
            raise FieldError("edge_fallback",
                             f"allowed {list(EDGE_FALLBACKS)}, got {self.edge_fallback!r}")
        if self.edge_checkpoint_every < 1:
            raise FieldError("edge_checkpoint_every",
                             f"must be >= 1, got {self.edge_checkpoint_every}")


@dataclass(frozen=True, kw_only=True)
class CheckFreePlusConfig(CheckFreeConfig):
    """CheckFree+: CheckFree plus out-of-order swaps of the edge pairs and embedding copies.

    embedding_copy_every:
        Iterations between copies of stage 0's embedding (to stage 1) and head (to stage
        ``S-1``), so that stage 0 too could be rebuilt; 0 disables the copies. Sent only when
        stage 0 can fail (not in the failure model's ``exempt`` stages).
    """

    embedding_copy_every: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embedding_copy_every < 0:
            raise FieldError("embedding_copy_every",
                             f"must be >= 0, got {self.embedding_copy_every}")


@dataclass(frozen=True, kw_only=True)
class CheckpointingConfig(PipelineRecoveryConfig):
    """Checkpointing: upload every stage's state to a store; on failure, restore from it.

    checkpoint_every:
        Iterations between checkpoints ``C`` (the paper's reference and the authors'
        throughput code: 100).
    restore:
        What a failure restores. ``"rollback"``: every stage goes back to the newest complete
        checkpoint (the lost progress is redone). ``"stale_stage"`` (the paper's Figure 1a and
        the authors' throughput code): only the lost stage downloads its stored, possibly stale,
        state; the other stages keep theirs and training continues from the current step.
    """

    checkpoint_every: int = 100
    restore: str = "rollback"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.checkpoint_every < 1:
            raise FieldError("checkpoint_every", f"must be >= 1, got {self.checkpoint_every}")
        if self.restore not in CHECKPOINT_RESTORES:
            raise FieldError("restore",
                             f"allowed {list(CHECKPOINT_RESTORES)}, got {self.restore!r}")


@dataclass(frozen=True, kw_only=True)
class RedundantConfig(PipelineRecoveryConfig):
    """Redundant computation (Bamboo-style): each stage also runs its successor's forward.

    backup_memory_microbatches:
        Activation slots (of ``memory_microbatches``) taken by the successor's weights and its
        redundant activations; at least one slot is always left.
    """

    backup_memory_microbatches: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backup_memory_microbatches < 0:
            raise FieldError("backup_memory_microbatches",
                             f"must be >= 0, got {self.backup_memory_microbatches}")
