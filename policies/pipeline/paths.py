"""SkipPipe's path rules: which stage sequences a microbatch may follow.

A path is the tuple of stages a microbatch visits, in order, starting at stage 0 (its data node
does the embedding and stage 0's layers first; the return to stage 0 for the loss is implicit
and not written). The rules (SkipPipe's convergence guidelines, Gensyn 2025):

1. the path starts at stage 0 and has exactly ``length`` stages (``length = S (1 - skip ratio)``);
2. no stage is visited twice;
3. a step to a stage *below* the furthest stage reached so far (the frontier ``f``) is a swap of
   distance ``f - t``; swaps are only between adjacent stages (distance 1), there are at most
   ``max_swaps`` of them, and their total distance is at most ``max_swap_distance``;
4. a step to a stage above the frontier may skip at most ``max_jump_skip`` stages
   (``t - f - 1 <= max_jump_skip``).

Examples with 6 stages: ``(0, 1, 3, 5)`` skips 2 and 4; ``(0, 2, 1, 3)`` swaps 1 and 2;
``(0, 3, 1, 2)`` is not allowed (a swap of distance 2).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sim.errors import FieldError


@dataclass(frozen=True, kw_only=True)
class PathRules:
    """Limits on a path (see the module docstring).

    num_stages:
        S, stages of the model (>= 1).
    length:
        Stages a path visits, stage 0 included (``1 <= length <= S``).
    max_swaps:
        Most swaps (steps below the frontier) in one path.
    max_swap_distance:
        Most total swap distance in one path; each swap must also have distance 1.
    max_jump_skip:
        Most stages skipped by one forward step.
    """

    num_stages: int
    length: int
    max_swaps: int = 2
    max_swap_distance: int = 2
    max_jump_skip: int = 4

    def __post_init__(self) -> None:
        if self.num_stages < 1:
            raise FieldError("num_stages", f"must be >= 1, got {self.num_stages}")
        if not 1 <= self.length <= self.num_stages:
            raise FieldError(
                "length", f"must be in 1..num_stages={self.num_stages}, got {self.length}")
        for name in ("max_swaps", "max_swap_distance", "max_jump_skip"):
            if getattr(self, name) < 0:
                raise FieldError(name, f"must be >= 0, got {getattr(self, name)}")

    @classmethod
    def for_skip_ratio(cls, num_stages: int, skip_ratio: float, **limits: int) -> PathRules:
        """Rules whose paths visit ``round(S * (1 - skip_ratio))`` stages (at least 1)."""
        if not 0 <= skip_ratio < 1:
            raise FieldError("skip_ratio", f"must be in [0, 1), got {skip_ratio}")
        length = max(1, round(num_stages * (1 - skip_ratio)))
        return cls(num_stages=num_stages, length=length, **limits)

    @property
    def skip_ratio(self) -> float:
        """Fraction of stages a path skips, ``1 - length / S``."""
        return 1 - self.length / self.num_stages


@dataclass(frozen=True)
class StepState:
    """What the rules need to know about a path prefix to judge its next step."""

    frontier: int = 0
    swaps: int = 0
    swap_distance: int = 0


def step(rules: PathRules, state: StepState, visited: Sequence[int] | frozenset[int],
         stage: int) -> StepState | None:
    """The state after stepping to ``stage``, or ``None`` if a rule forbids it.

    ``visited`` holds the stages already on the path (stage 0 included).
    """
    if not 0 < stage < rules.num_stages or stage in visited:
        return None
    if stage > state.frontier:
        if stage - state.frontier - 1 > rules.max_jump_skip:
            return None
        return StepState(stage, state.swaps, state.swap_distance)
    distance = state.frontier - stage
    if distance != 1:
        return None
    swaps, total = state.swaps + 1, state.swap_distance + distance
    if swaps > rules.max_swaps or total > rules.max_swap_distance:
        return None
    return StepState(state.frontier, swaps, total)


def path_violations(path: Sequence[int], rules: PathRules) -> list[str]:
    """Every rule ``path`` breaks, as readable sentences (empty list: the path is valid)."""
    path = tuple(path)
    problems = []
    if not path or path[0] != 0:
        problems.append(f"path {path} must start at stage 0")
        return problems
    if len(path) != rules.length:
        problems.append(f"path {path} visits {len(path)} stages; the rules ask for {rules.length}")
    state, visited = StepState(), {0}
    for stage in path[1:]:
        if not 0 < stage < rules.num_stages:
            problems.append(f"stage {stage} is not in 1..{rules.num_stages - 1}")
            return problems
        if stage in visited:
            problems.append(f"stage {stage} is visited twice")
            return problems
        nxt = step(rules, state, frozenset(visited), stage)
        if nxt is None:
            if stage > state.frontier:
                problems.append(
                    f"step {state.frontier}->{stage} skips {stage - state.frontier - 1} stages "
                    f"(at most {rules.max_jump_skip})")
            elif state.frontier - stage != 1:
                problems.append(
                    f"swap back to {stage} from frontier {state.frontier} is not between adjacent "
                    "stages")
            else:
                problems.append(
                    f"swap to {stage} exceeds {rules.max_swaps} swaps or total distance "
                    f"{rules.max_swap_distance}")
            return problems
        state = nxt
        visited.add(stage)
    return problems


def is_valid_path(path: Sequence[int], rules: PathRules) -> bool:
    """Whether ``path`` keeps every rule."""
    return not path_violations(path, rules)


def valid_paths(rules: PathRules) -> Iterator[tuple[int, ...]]:
    """Every valid stage path, in lexicographic order (brute force, for tests and small S)."""

    def extend(prefix: tuple[int, ...], state: StepState) -> Iterator[tuple[int, ...]]:
        if len(prefix) == rules.length:
            yield prefix
            return
        for stage in range(1, rules.num_stages):
            nxt = step(rules, state, prefix, stage)
            if nxt is not None:
                yield from extend(prefix + (stage,), nxt)

    yield from extend((0,), StepState())
