"""Recovery strategies: what a pipeline does when every replica of a stage is lost.

A strategy is a small object with seven hooks that :class:`~policies.recovery.pipeline_run.
RecoveringPipeline` calls (``pipe`` below). The five methods of the family are one pipeline with
five strategies, and the strategies are built from each other's parts:

- :class:`NoRecovery`: nothing to do (the no-failure upper bound never loses a stage).
- :class:`CheckFree`: rebuild a lost stage as the gradient-norm-weighted average of its two
  neighbours (:func:`~policies.recovery.formula.checkfree_average`), fresh Adam state, learning
  rate x ``lr_bump``. The replacement fetches both neighbours' weights over the network. An
  edge stage (the last; the first transformer stage when stage 0 holds only the embedding) has
  one neighbour: it copies it (the authors' code) or restores a weights-only snapshot kept in
  the store (:class:`StageUploads`, their ablation).
- :class:`CheckFreePlus`: CheckFree plus the swap schedule (odd microbatches run the edge pairs
  swapped, :func:`~policies.recovery.swaps.edge_swap_pairs`), so an edge stage is rebuilt by
  copying its swap partner; and copies of stage 0's embedding and head kept on its neighbours.
- :class:`Checkpointing`: every ``C`` steps each stage uploads weights and optimizer state to
  the store (:class:`StageUploads`); a failure downloads the lost stage's and rolls every stage
  back to that step.
- :class:`Redundant`: each stage also holds its successor's state and runs its forward on every
  microbatch (extra compute, one memory slot less); a lost stage is restored exactly from its
  predecessor.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, ClassVar

import torch

from policies.recovery.checkpoint_store import CheckpointStore
from policies.recovery.formula import checkfree_average, copy_weights
from policies.recovery.swaps import Rebuild, edge_swap_pairs, rebuild_rule

Pipe = Any  # policies.recovery.pipeline_run.RecoveringPipeline (kept loose: no import cycle)


class RecoveryStrategy:
    """Base strategy: no extra cost, nothing to recover. Subclasses override what they need.

    Parameters
    ----------
    config:
        The method's config (read by the subclasses that have parameters).
    """

    equal_stages: ClassVar[bool] = False
    """Every transformer stage must hold the same number of blocks (checked before the run)."""
    store_for: ClassVar[str | None] = None
    """What needs the checkpoint store node (checked before the run), ``None``: nothing."""

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def setup(self, pipe: Pipe) -> None:
        """Prepare, once the pipeline is built and before simulated time starts."""

    def swap_pairs(self, num_stages: int) -> list[tuple[int, int]]:
        """Adjacent stage pairs that odd microbatches visit in swapped order."""
        return []

    def memory_microbatches(self, m: int) -> int:
        """Activation slots per node left to microbatches (``m`` configured)."""
        return m

    def extra_forward_s(self, pipe: Pipe, stage: int) -> float:
        """Extra nominal seconds on each forward task of ``stage``."""
        return 0.0

    def before_loss(self, pipe: Pipe, stage: int) -> None:
        """``stage`` is about to be lost (its state is still readable: only backups may keep it)."""

    def recover(self, pipe: Pipe, stages: list[int]) -> Generator:
        """Give the lost ``stages`` (replacements already joined) their state back.

        The generator's return value lists the stages it recovered (``None``: all of them); a
        stage left out stays lost and is recovered again (its sources failed meanwhile).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot recover stages {stages}")
        yield  # pragma: no cover  (makes this a generator)

    def after_step(self, pipe: Pipe) -> Generator:
        """After each optimizer step (``pipe.step`` already advanced); may start uploads."""
        return
        yield  # pragma: no cover


class NoRecovery(RecoveryStrategy):
    """The upper bound: the pipeline never loses a stage, so nothing is ever recovered."""


class StageUploads:
    """Periodic uploads of some stages' state to the store node, and downloads back.

    Each upload is a background transfer from the stage's first replica to the store (it
    shares the network with training); the snapshot is taken when the upload starts and counts
    only once *every* listed stage's upload has arrived (:class:`CheckpointStore`).

    Parameters
    ----------
    stages:
        The stages uploaded.
    every:
        Upload after every ``every``-th optimizer step.
    with_optimizer:
        Upload the optimizer state too (``True``: a full checkpoint; ``False``: weights only).
    """

    def __init__(self, stages: list[int], every: int, *, with_optimizer: bool) -> None:
        self.stages = list(stages)
        self.every = every
        self.with_optimizer = with_optimizer
        self.store = CheckpointStore(len(self.stages))
        self.uploads_started = 0
        self.uploads_skipped = 0
        self.in_flight = 0
        """Stage uploads started and not arrived yet."""
        self.epoch = 0
        """Incremented by a rollback: uploads started before it describe a lost future."""

    def nbytes(self, pipe: Pipe, stage: int) -> float:
        """Bytes of one stage's upload."""
        extra = pipe.optimizer_nbytes(stage) if self.with_optimizer else 0.0
        return pipe.param_nbytes[stage] + extra

    def setup(self, pipe: Pipe, what: str) -> None:
        """Check the store node exists; the initial state is a free checkpoint of step 0."""
        pipe.config.check_store_node(pipe.world.num_nodes, what)
        self.store.seed_initial(
            {i: self._state(pipe, s) for i, s in enumerate(self.stages)},
            {i: self.nbytes(pipe, s) for i, s in enumerate(self.stages)})

    def _state(self, pipe: Pipe, stage: int) -> Any:
        return pipe.stage_state(stage) if self.with_optimizer else pipe.stage_weights(stage)

    def maybe_upload(self, pipe: Pipe) -> None:
        """Start the uploads if this step is a multiple of ``every``.

        Skipped (and counted in ``uploads_skipped``) while the previous upload is still in
        flight, or while one of the stages is lost: a checkpoint needs every stage's state.
        """
        if pipe.step % self.every != 0:
            return
        if self.in_flight or any(s in pipe.lost for s in self.stages):
            self.uploads_skipped += 1
            return
        step, now, epoch = pipe.step, pipe.env.now, self.epoch
        self.uploads_started += 1
        self.in_flight = len(self.stages)

        def landed() -> None:
            self.in_flight -= 1

        for i, s in enumerate(self.stages):
            state, nbytes = self._state(pipe, s), self.nbytes(pipe, s)
            src = pipe.placement.replicas[s][0]

            def arrived(i: int = i, state: Any = state, nbytes: float = nbytes) -> None:
                landed()
                if epoch != self.epoch:
                    return  # a rollback happened while this upload was in flight
                if self.store.put(stage=i, step=step, state=state, nbytes=nbytes,
                                  time_s=pipe.env.now):
                    pipe.world.recorder.event("checkpoint_stored", step=step,
                                              started_s=now)

            pipe.background([(src, pipe.store_node, nbytes, f"ckpt up s{s} @{step}")], arrived)

    def download(self, pipe: Pipe, stages: list[int]) -> Generator:
        """Every replica of each of ``stages`` downloads its stage's stored state."""
        moves = [(pipe.store_node, node, self.nbytes(pipe, s), f"ckpt down s{s}")
                 for s in stages for node in pipe.placement.replicas[s]]
        yield from pipe.transfers(moves)

    def forget_in_flight(self) -> None:
        """Drop every upload not yet complete (called on a rollback)."""
        self.epoch += 1
        self.in_flight = 0
        self.store.discard_pending()

    def stored(self, stage: int) -> Any:
        """Return the stored state of ``stage`` (newest complete upload)."""
        return self.store.get(self.stages.index(stage)).state

    @property
    def stored_step(self) -> int:
        """Step of the newest complete upload."""
        step = self.store.complete_step
        assert step is not None
        return step


class CheckFree(RecoveryStrategy):
    """Rebuild a lost stage from its neighbours (CheckFree, Gensyn 2025).

    Parameters
    ----------
    config:
        A :class:`~policies.recovery.config.CheckFreeConfig` (``lr_bump``, ``norm_eps``,
        ``squared_norms``, ``edge_fallback``, ``edge_checkpoint_every``).
    """

    equal_stages = True  # a stage is rebuilt from its neighbours' weights

    def __init__(self, config: Any) -> None:
        self.config = config
        self.first_block_stage = 0
        """The first stage holding blocks (1 in the authors' layout); set by :meth:`setup`."""
        self.edge_uploads: StageUploads | None = None
        self.rebuilt: list[dict[str, Any]] = []
        """One record per rebuilt stage: stage, how, sources, coefficients (for tests/plots)."""

    def setup(self, pipe: Pipe) -> None:
        """With the checkpoint fallback, keep weights-only snapshots of the fallback stages."""
        S = pipe.num_stages
        self.first_block_stage = 1 if pipe.config.embedding_stage else 0
        self.initial = {s: pipe.stage_weights(s) for s in range(S)}
        """Initial weights (every node can build them from the seed, no transfer)."""
        fallback = [s for s in range(S) if s not in pipe.config_exempt
                    and self.rule(s, S).kind == "fallback"]
        if fallback and self.config.edge_fallback == "checkpoint":
            self.edge_uploads = StageUploads(fallback, self.config.edge_checkpoint_every,
                                             with_optimizer=False)
            self.edge_uploads.setup(pipe, "CheckFree's edge_fallback='checkpoint'")

    def rule(self, stage: int, num_stages: int) -> Rebuild:
        """How ``stage`` is rebuilt (:func:`~policies.recovery.swaps.rebuild_rule`)."""
        return rebuild_rule(stage, num_stages, swap_pairs=self.swap_pairs(num_stages),
                            first_block_stage=self.first_block_stage)

    def after_step(self, pipe: Pipe) -> Generator:
        """Upload the edge snapshots when due."""
        if self.edge_uploads is not None:
            self.edge_uploads.maybe_upload(pipe)
        return
        yield  # pragma: no cover

    def recover(self, pipe: Pipe, stages: list[int]) -> Generator:
        """Fetch the sources' weights to every replacement, then install the rebuilt stages.

        Stages are rebuilt in increasing order; a source that is itself lost and not yet
        rebuilt is unavailable (see :meth:`plan` for what is used instead). The return value
        lists the stages rebuilt: one whose source failed during the transfer stays lost.
        """
        S = pipe.num_stages
        pending = set(stages)
        plans = []
        for s in sorted(stages):
            kind, sources = self.plan(s, S, available=lambda n: n not in pending)
            plans.append((s, kind, sources))
            pending.discard(s)  # rebuilt before the later stages read it

        moves = []
        fallback = [s for s, kind, _ in plans if kind == "fallback"]
        for s, kind, sources in plans:
            for r, node in enumerate(pipe.placement.replicas[s]):
                for src in sources:
                    replicas = pipe.placement.replicas[src]
                    moves.append((replicas[r % len(replicas)], node, pipe.param_nbytes[s],
                                  f"checkfree s{src}->s{s}"))
        downloads = []
        if fallback:
            assert self.edge_uploads is not None  # plan() returns "fallback" only with one
            downloads = [pipe.env.process(self.edge_uploads.download(pipe, fallback))]
        yield pipe.env.all_of([pipe.env.process(pipe.transfers(moves)), *downloads])

        recovered = []
        for s, kind, sources in plans:
            if any(src in pipe.lost and src not in recovered for src in sources):
                continue  # a source failed during the transfer: its weights are gone
            self.install(pipe, s, kind, sources)
            recovered.append(s)
        return recovered

    def plan(self, stage: int, num_stages: int, *,
             available: Callable[[int], bool]) -> tuple[str, tuple[int, ...]]:
        """How to rebuild ``stage`` given which stages still hold weights (``available(s)``).

        In order: the method's rule (:meth:`rule`) if all its sources are available; for a
        stage with no two neighbours, the stored snapshot (``edge_fallback="checkpoint"``);
        the average of both neighbours; a copy of one neighbour; the snapshot if there is
        one; a copy of the nearest available stage; the stage's initial weights when every
        stage with blocks is lost (``"initial"``, built from the seed without a transfer).
        """
        rule = self.rule(stage, num_stages)
        if rule.kind != "fallback" and all(available(n) for n in rule.sources):
            return rule.kind, rule.sources
        has_snapshot = self.edge_uploads is not None and stage in self.edge_uploads.stages
        if rule.kind == "fallback" and has_snapshot:
            return "fallback", ()
        neighbours = [n for n in (stage - 1, stage + 1)
                      if self.first_block_stage <= n < num_stages and available(n)]
        if len(neighbours) == 2:
            return "average", tuple(neighbours)
        if neighbours:
            return "copy", (neighbours[0],)
        if has_snapshot:
            return "fallback", ()
        by_distance = sorted(range(num_stages), key=lambda n: (abs(n - stage), n))
        nearest = [n for n in by_distance
                   if n != stage and n >= self.first_block_stage and available(n)]
        if not nearest:
            return "initial", ()  # every stage with blocks is lost: nothing to rebuild from
        return "copy", (nearest[0],)

    def install(self, pipe: Pipe, stage: int, kind: str, sources: tuple[int, ...]) -> None:
        """Compute and install the weights of rebuilt ``stage``."""
        names = list(pipe.stage_weights(stage))
        record: dict[str, Any] = {"stage": stage, "kind": kind, "sources": sources,
                                  "time_s": pipe.env.now, "step": pipe.step}
        if kind == "average":
            prev, nxt = sources
            record["grad_norms"] = (pipe.grad_norms[prev], pipe.grad_norms[nxt])
            weights = checkfree_average(
                pipe.stage_weights(prev), pipe.stage_weights(nxt),
                grad_norm_prev=pipe.grad_norms[prev], grad_norm_next=pipe.grad_norms[nxt],
                names=names, eps=self.config.norm_eps, squared=self.config.squared_norms)
        elif kind == "copy":
            weights = copy_weights(pipe.stage_weights(sources[0]), names)
        elif kind == "initial":
            weights = copy_weights(self.initial[stage], names)
        else:
            weights = copy_weights(self.fallback_weights(pipe, stage), names)
            record["snapshot_step"] = self.edge_uploads.stored_step if self.edge_uploads else None
        self.rebuilt.append(record)
        pipe.install_rebuilt(stage, weights, self.config.lr_bump)
        pipe.world.recorder.event("rebuilt", stage=stage, rule=kind, sources=list(sources))

    def fallback_weights(self, pipe: Pipe, stage: int) -> dict[str, torch.Tensor]:
        """Return the stored weights-only snapshot of an edge stage."""
        assert self.edge_uploads is not None
        return self.edge_uploads.stored(stage)


class CheckFreePlus(CheckFree):
    """CheckFree with swapped edge pairs and copies of the embedding and head (CheckFree+)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.embedding_copy: dict[str, torch.Tensor] | None = None
        """Stage 0's embedding and head as last copied to its neighbours."""

    def swap_pairs(self, num_stages: int) -> list[tuple[int, int]]:
        """``(1, 2)`` and ``(S-2, S-1)``."""
        return edge_swap_pairs(num_stages)

    def setup(self, pipe: Pipe) -> None:
        """Stage 0's initial embedding and head are known to all (built from the seed)."""
        super().setup(pipe)
        self.embedding_copy = self._stage0_extras(pipe)

    def rule(self, stage: int, num_stages: int) -> Rebuild:
        """Stage 0 is rebuilt by copying stage 1's blocks (plus the embedding copies)."""
        if stage == 0:
            return Rebuild("copy", (1,))
        return super().rule(stage, num_stages)

    @staticmethod
    def _stage0_extras(pipe: Pipe) -> dict[str, torch.Tensor]:
        return {k: v for k, v in pipe.stage_weights(0).items() if not k.startswith("blocks.")}

    def after_step(self, pipe: Pipe) -> Generator:
        """Copy the embedding to stage 1 and the head to stage S-1 when due (background).

        The copies guard stage 0; where stage 0 never fails (``exempt``, the reference layout:
        it holds the data) there is nothing to guard and none is sent, as in the authors' code,
        whose runs with swaps never fail stage 0 and copy nothing.
        """
        yield from super().after_step(pipe)
        every = self.config.embedding_copy_every
        if every and 0 not in pipe.config_exempt and pipe.step % every == 0:
            snapshot = self._stage0_extras(pipe)
            last = pipe.num_stages - 1
            moves = []
            for r, src in enumerate(pipe.placement.replicas[0]):
                for dst_stage, nbytes, what in ((1, pipe.embed_nbytes, "embed"),
                                                (last, pipe.head_nbytes, "head")):
                    replicas = pipe.placement.replicas[dst_stage]
                    moves.append((src, replicas[r % len(replicas)], nbytes, f"copy {what}"))

            def arrived() -> None:
                self.embedding_copy = snapshot

            pipe.background(moves, arrived)

    def install(self, pipe: Pipe, stage: int, kind: str, sources: tuple[int, ...]) -> None:
        """Stage 0 also gets the embedding and head back from the copies."""
        if stage != 0:
            return super().install(pipe, stage, kind, sources)
        assert self.embedding_copy is not None
        blocks = [n for n in pipe.stage_weights(0) if n.startswith("blocks.")]
        weights = copy_weights(pipe.stage_weights(sources[0]), blocks)
        weights.update(copy_weights(self.embedding_copy))
        self.rebuilt.append({"stage": 0, "kind": "copy", "sources": sources,
                             "time_s": pipe.env.now, "step": pipe.step})
        pipe.install_rebuilt(0, weights, self.config.lr_bump)
        pipe.world.recorder.event("rebuilt", stage=0, rule="copy", sources=list(sources))


class Checkpointing(RecoveryStrategy):
    """Periodic checkpoints to a store node; a failure restores from the newest one.

    Parameters
    ----------
    config:
        A :class:`~policies.recovery.config.CheckpointingConfig` (``checkpoint_every``,
        ``restore``).
    """

    store_for = "checkpointing"

    def __init__(self, config: Any) -> None:
        self.config = config
        self.uploads: StageUploads | None = None
        self.rollbacks: list[dict[str, Any]] = []
        """One record per rollback: time, from step, to step."""
        self.stale_restores: list[dict[str, Any]] = []
        """One record per stage restored alone (``restore = "stale_stage"``): time, stage, age."""

    def setup(self, pipe: Pipe) -> None:
        """Every stage is checkpointed; step 0 is the free initial checkpoint."""
        self.uploads = StageUploads(list(range(pipe.num_stages)), self.config.checkpoint_every,
                                    with_optimizer=True)
        self.uploads.setup(pipe, "checkpointing")
        self._data_state = {0: pipe.data_state()}

    def after_step(self, pipe: Pipe) -> Generator:
        """Start the uploads every ``checkpoint_every`` steps."""
        assert self.uploads is not None
        if pipe.step % self.config.checkpoint_every == 0:
            self._data_state[pipe.step] = pipe.data_state()
        self.uploads.maybe_upload(pipe)
        oldest = self.uploads.stored_step  # older data positions can never be restored
        self._data_state = {k: v for k, v in self._data_state.items() if k >= oldest}
        return
        yield  # pragma: no cover

    def recover(self, pipe: Pipe, stages: list[int]) -> Generator:
        """Download the lost stages' state, then restore (``config.restore``).

        ``"rollback"``: every stage goes back to the checkpoint's step. ``"stale_stage"``:
        only the lost stages take the stored state, which is ``pipe.step - stored step``
        iterations old (recorded as ``stale_restore`` events); nothing else moves.
        """
        assert self.uploads is not None
        yield from self.uploads.download(pipe, stages)
        step = self.uploads.stored_step
        if self.config.restore == "stale_stage":
            for s in stages:
                pipe.load_stage_state(s, self.uploads.stored(s))
                self.stale_restores.append({"time_s": pipe.env.now, "stage": s,
                                            "age_steps": pipe.step - step})
                pipe.world.recorder.event("stale_restore", stage=s, stored_step=step,
                                          age_steps=pipe.step - step)
            return None
        for s in range(pipe.num_stages):  # the others restore their own local copy
            pipe.load_stage_state(s, self.uploads.stored(s))
        if step == pipe.step:
            return None  # the checkpoint holds the current step: no progress is lost
        pipe.restore_data_state(self._data_state[step])
        self._data_state = {k: v for k, v in self._data_state.items() if k <= step}
        self.uploads.forget_in_flight()
        self.rollbacks.append({"time_s": pipe.env.now, "from_step": pipe.step, "to_step": step})
        pipe.world.recorder.event("rollback", from_step=pipe.step, to_step=step)
        pipe.step = step
        return None


class Redundant(RecoveryStrategy):
    """Redundant computation (Bamboo-style): every stage backs up its successor.

    Stage ``s``'s nodes hold stage ``s+1``'s weights and optimizer state and run its forward on
    every microbatch they process, so a lost stage is restored exactly, with no lost progress.
    The price is in the timing: each forward task also computes the successor's forward, and
    the successor's weights and activations take ``backup_memory_microbatches`` activation
    slots.

    Parameters
    ----------
    config:
        A :class:`~policies.recovery.config.RedundantConfig`.
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.backups: dict[int, dict[str, Any]] = {}
        self.unprotected = 0
        """Losses whose backup holder (the predecessor) was lost at the same time."""

    def memory_microbatches(self, m: int) -> int:
        """One slot (by default) goes to the successor's state and redundant activations."""
        return max(1, m - self.config.backup_memory_microbatches)

    def successor(self, pipe: Pipe, stage: int) -> int | None:
        """Return the stage whose backup ``stage``'s nodes hold (``None`` if it never fails)."""
        nxt = (stage + 1) % pipe.num_stages
        return None if nxt in pipe.config_exempt else nxt

    def extra_forward_s(self, pipe: Pipe, stage: int) -> float:
        """Charge the successor's forward, run redundantly."""
        nxt = self.successor(pipe, stage)
        return 0.0 if nxt is None else pipe.costs.forward_s[nxt]

    def before_loss(self, pipe: Pipe, stage: int) -> None:
        """Keep the predecessor's copy of the stage: it is what survives."""
        holder = (stage - 1) % pipe.num_stages
        if holder in pipe.lost:
            self.unprotected += 1
            pipe.world.recorder.event("backup_lost", stage=stage, holder=holder)
        self.backups[stage] = pipe.stage_state(stage)

    def recover(self, pipe: Pipe, stages: list[int]) -> Generator:
        """Send weights and optimizer state from the predecessor to every replacement."""
        moves = []
        for s in stages:
            holder = pipe.placement.replicas[(s - 1) % pipe.num_stages]
            nbytes = pipe.param_nbytes[s] + pipe.optimizer_nbytes(s)
            for r, node in enumerate(pipe.placement.replicas[s]):
                moves.append((holder[r % len(holder)], node, nbytes, f"backup s{s}"))
        yield from pipe.transfers(moves)
        for s in stages:
            pipe.load_stage_state(s, self.backups.pop(s))
