"""CheckFree+ swap schedule and the choice of rebuild source."""

import pytest

from policies.recovery.swaps import Rebuild, edge_swap_pairs, microbatch_path, rebuild_rule


def test_swap_pairs():
    assert edge_swap_pairs(7) == [(1, 2), (5, 6)]  # the reference: 6 block stages after stage 0
    assert edge_swap_pairs(5) == [(1, 2), (3, 4)]
    assert edge_swap_pairs(4) == [(2, 3)]  # (1, 2) would overlap (2, 3)
    assert edge_swap_pairs(3) == [(1, 2)]
    with pytest.raises(ValueError, match="num_stages=2"):
        edge_swap_pairs(2)


def test_paths_alternate():
    pairs = edge_swap_pairs(6)
    assert microbatch_path(6, 0, pairs) == [0, 1, 2, 3, 4, 5]
    assert microbatch_path(6, 1, pairs) == [0, 2, 1, 3, 5, 4]
    assert microbatch_path(6, 2, pairs) == [0, 1, 2, 3, 4, 5]
    assert microbatch_path(6, 3) == [0, 1, 2, 3, 4, 5]  # plain CheckFree: never swapped
    # every stage still visited exactly once
    assert sorted(microbatch_path(6, 1, pairs)) == list(range(6))
    with pytest.raises(ValueError, match="swap_pairs"):
        microbatch_path(4, 1, [(0, 1)])  # stage 0 holds the embedding: never swapped


def test_rebuild_rules():
    assert rebuild_rule(2, 5) == Rebuild("average", (1, 3))
    assert rebuild_rule(1, 5) == Rebuild("average", (0, 2))
    assert rebuild_rule(4, 5) == Rebuild("fallback", ())  # last stage: one neighbour only
    assert rebuild_rule(0, 5) == Rebuild("fallback", ())
    pairs = edge_swap_pairs(5)
    assert rebuild_rule(4, 5, swap_pairs=pairs) == Rebuild("copy", (3,))
    assert rebuild_rule(3, 5, swap_pairs=pairs) == Rebuild("copy", (4,))
    assert rebuild_rule(1, 5, swap_pairs=pairs) == Rebuild("copy", (2,))
    # the authors' layout: stage 0 holds no block, so stage 1 has one neighbour to copy from
    assert rebuild_rule(1, 5, first_block_stage=1) == Rebuild("fallback", ())
    assert rebuild_rule(2, 5, first_block_stage=1) == Rebuild("average", (1, 3))
    with pytest.raises(ValueError, match="stage=5"):
        rebuild_rule(5, 5)
