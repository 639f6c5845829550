"""CheckFree+'s out-of-order schedule and the rule that picks where a lost stage comes from.

CheckFree cannot rebuild an *edge* stage (one without a neighbour on both sides): the average
needs two neighbours. CheckFree+ fixes that by training each edge stage to stand in for its
neighbour: on every odd microbatch the edge stage and its neighbour run in swapped order, so
later either one is a good copy of the other.

Stage indices follow ``workloads.llama.StagedModel``: stage 0 holds the embedding (and, in the
authors' layout, nothing else; otherwise some blocks too), stages ``1..S-1`` hold blocks, and the
final norm and head live in stage 0 or ``S-1``.
A microbatch's path always starts at stage 0 (the embedding), so the first swap pair that can
run out of order is ``(1, 2)``; the last is ``(S-2, S-1)``.
"""

from __future__ import annotations

from dataclasses import dataclass


def edge_swap_pairs(num_stages: int) -> list[tuple[int, int]]:
    """Return the adjacent pairs CheckFree+ swaps: ``(1, 2)`` and ``(S-2, S-1)``.

    Needs ``S >= 3`` (a path starts at stage 0, so two more stages are needed for a swap).
    Pairs never overlap: with ``S = 4`` they would share stage 2, so only ``(2, 3)`` is kept
    (the last stage is the edge CheckFree cannot rebuild when stage 0 never fails).
    """
    if num_stages < 3:
        raise ValueError(f"num_stages={num_stages}: CheckFree+ needs at least 3 stages")
    last = (num_stages - 2, num_stages - 1)
    first = (1, 2)
    if first == last or first[1] >= last[0]:
        return [last]
    return [first, last]


def microbatch_path(num_stages: int, microbatch: int,
                    swap_pairs: list[tuple[int, int]] | tuple = ()) -> list[int]:
    """Return the order in which microbatch ``microbatch`` visits the stages.

    Even microbatches go ``0, 1, ..., S-1``; odd ones run every pair of ``swap_pairs`` in
    swapped order (CheckFree+). With no pairs every microbatch takes the plain order.
    """
    if microbatch < 0:
        raise ValueError(f"microbatch={microbatch}: must be >= 0")
    path = list(range(num_stages))
    if microbatch % 2 == 1:
        for i, j in swap_pairs:
            if not (j == i + 1 and 1 <= i and j < num_stages):
                raise ValueError(
                    f"swap_pairs: ({i}, {j}) must be adjacent stages in 1..{num_stages - 1}"
                )
            path[i], path[j] = path[j], path[i]
    return path


@dataclass(frozen=True)
class Rebuild:
    """How to rebuild one lost stage.

    kind:
        ``"average"`` (CheckFree's formula over ``sources = (i-1, i+1)``), ``"copy"`` (take the
        weights of ``sources[0]``, CheckFree+'s swap partner) or ``"fallback"`` (the method
        cannot rebuild it from neighbours; see ``CheckFreeConfig.edge_fallback``).
    sources:
        The stages whose weights are fetched.
    """

    kind: str
    sources: tuple[int, ...]


def rebuild_rule(stage: int, num_stages: int, *, swap_pairs: list[tuple[int, int]] | tuple = (),
                 first_block_stage: int = 0) -> Rebuild:
    """Where lost ``stage`` comes from: its swap partner, else its two neighbours, else neither.

    The reference implementation copies the swap partner even when the stage also has two
    neighbours (for the pair ``(1, 2)``), so a partner takes precedence. Only stages holding
    blocks (``first_block_stage`` on; 1 when stage 0 holds only the embedding) can be averaged
    from, so in the authors' layout stage 1 has one neighbour, like the last stage.
    """
    if not 0 <= stage < num_stages:
        raise ValueError(f"stage={stage}: must be in 0..{num_stages - 1}")
    for i, j in swap_pairs:
        if stage == i:
            return Rebuild("copy", (j,))
        if stage == j:
            return Rebuild("copy", (i,))
    if first_block_stage + 1 <= stage <= num_stages - 2:
        return Rebuild("average", (stage - 1, stage + 1))
    return Rebuild("fallback", ())
