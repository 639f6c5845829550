"""Path rules: hand-worked cases of every rule, and exact counts of the valid paths."""

import pytest

from policies.pipeline.paths import PathRules, is_valid_path, path_violations, valid_paths

SIX = PathRules(num_stages=6, length=4)


@pytest.mark.parametrize("path", [(0, 1, 2, 3), (0, 1, 3, 5), (0, 2, 1, 3), (0, 3, 2, 5),
                                  (0, 4, 3, 5)])
def test_valid_examples(path):
    assert is_valid_path(path, SIX), path_violations(path, SIX)


@pytest.mark.parametrize("path, why", [
    ((1, 2, 3, 4), "start at stage 0"),
    ((0, 1, 2), "visits 3 stages"),
    ((0, 1, 1, 2), "visited twice"),
    ((0, 3, 1, 2), "not between adjacent"),      # swap of distance 2
    ((0, 1, 2, 6), "not in 1..5"),
])
def test_invalid_examples_name_the_rule(path, why):
    problems = path_violations(path, SIX)
    assert problems and any(why in p for p in problems), problems


def test_swap_count_and_total_distance_limits():
    eight = PathRules(num_stages=8, length=8)
    two_swaps = (0, 2, 1, 4, 3, 5, 6, 7)
    three_swaps = (0, 2, 1, 4, 3, 6, 5, 7)
    assert is_valid_path(two_swaps, eight)
    assert not is_valid_path(three_swaps, eight)
    assert not is_valid_path(two_swaps, PathRules(num_stages=8, length=8, max_swap_distance=1))
    assert not is_valid_path((0, 2, 1, 3), PathRules(num_stages=4, length=4, max_swaps=0))


def test_jump_limit_counts_skipped_stages():
    seven = PathRules(num_stages=7, length=2)
    assert is_valid_path((0, 5), seven)          # skips 1..4: four stages
    assert not is_valid_path((0, 6), seven)      # skips five
    assert is_valid_path((0, 6), PathRules(num_stages=7, length=2, max_jump_skip=5))


def test_counts_by_hand_four_stages_length_three():
    # (0,a,b): 12 13 21 23 32 are valid; 31 swaps by distance 2.
    rules = PathRules(num_stages=4, length=3)
    assert list(valid_paths(rules)) == [(0, 1, 2), (0, 1, 3), (0, 2, 1), (0, 2, 3), (0, 3, 2)]
    no_swaps = PathRules(num_stages=4, length=3, max_swaps=0)
    assert list(valid_paths(no_swaps)) == [(0, 1, 2), (0, 1, 3), (0, 2, 3)]
    no_jumps = PathRules(num_stages=4, length=3, max_jump_skip=0)
    assert list(valid_paths(no_jumps)) == [(0, 1, 2)]


def test_enumeration_agrees_with_validator_on_all_sequences():
    import itertools

    for rules in (SIX, PathRules(num_stages=5, length=5), PathRules(num_stages=6, length=3)):
        brute = [(0, *rest) for rest in itertools.permutations(range(1, rules.num_stages),
                                                                rules.length - 1)
                 if is_valid_path((0, *rest), rules)]
        assert sorted(brute) == list(valid_paths(rules))
    # Increasing subsets are always valid when jumps are unlimited: C(5, 3) = 10 of them.
    increasing = [p for p in valid_paths(SIX) if list(p) == sorted(p)]
    assert len(increasing) == 10


def test_skip_ratio_sets_length():
    assert PathRules.for_skip_ratio(6, 1 / 3).length == 4
    assert PathRules.for_skip_ratio(4, 0.25).length == 3
    assert PathRules.for_skip_ratio(6, 0.0).length == 6


@pytest.mark.parametrize("kwargs, field", [
    (dict(num_stages=0, length=1), "num_stages"),
    (dict(num_stages=4, length=5), "length"),
    (dict(num_stages=4, length=3, max_swaps=-1), "max_swaps"),
])
def test_bad_rules_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PathRules(**kwargs)
    with pytest.raises(ValueError, match="skip_ratio"):
        PathRules.for_skip_ratio(6, 1.0)
