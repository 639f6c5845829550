"""Encoders and decoders of gradient coding, checked against the decoding property itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from policies.gradient_coding.codes import (
    EXACT_TOL,
    GradientCode,
    cyclic_repetition_matrix,
    cyclic_support,
    expander_error_bound,
    fractional_repetition_decode,
    fractional_repetition_matrix,
    least_squares_decode,
    make_code,
    responder_subsets,
    worst_residual,
)

# The worked example of the method card (Tandon et al. 2017, n=3, s=1), workers numbered from 1
# on the card and from 0 here.
CARD_B = np.array([[0.5, 1.0, 0.0],
                   [0.0, 1.0, -1.0],
                   [0.5, 0.0, 1.0]])
CARD_DECODERS = {(0, 1): (2.0, -1.0), (0, 2): (1.0, 1.0), (1, 2): (1.0, 2.0)}


def test_card_example_decoders_give_the_sum():
    for F, a in CARD_DECODERS.items():
        combined = np.asarray(a) @ CARD_B[list(F)]
        np.testing.assert_allclose(combined, np.ones(3), atol=0)


def test_card_example_least_squares_finds_the_card_decoders():
    # B_F^T a = 1 has exactly one solution for 2 of 3 rows here, so lstsq must return it.
    for F, a in CARD_DECODERS.items():
        decoding = least_squares_decode(CARD_B, F)
        np.testing.assert_allclose(decoding.coefficients[list(F)], a, atol=1e-12)
        assert decoding.residual < 1e-12 and decoding.exact


def test_cyclic_construction_reproduces_card_example_up_to_row_scale():
    # The card's B satisfies H b_i = 0 for H = (2, -1, -1); our construction fixes B_ii = 1, so
    # it gives the same rows, each scaled so that its diagonal entry is 1.
    H = np.array([[2.0, -1.0, -1.0]])
    np.testing.assert_allclose(H @ CARD_B.T, 0.0, atol=1e-15)
    B = cyclic_repetition_matrix(3, 1, H=H)
    np.testing.assert_allclose(B, CARD_B / np.diag(CARD_B)[:, None], atol=1e-15)
    # The decoders scale inversely: worker 1's coefficient halves, the sum is unchanged.
    decoding = least_squares_decode(B, (0, 1))
    np.testing.assert_allclose(decoding.coefficients[[0, 1]], (1.0, -1.0), atol=1e-12)


@pytest.mark.parametrize("n,s", [(3, 1), (5, 2), (6, 1), (8, 3), (10, 2), (12, 3)])
def test_cyclic_every_subset_of_n_minus_s_decodes_exhaustively(n, s):
    code = make_code("cyclic", n, s, rng=np.random.default_rng(n * 100 + s))
    for i in range(n):
        assert code.support(i) == sorted(cyclic_support(n, s, i))
        assert code.B[i, i] == 1.0
    subsets = list(itertools.combinations(range(n), n - s))
    assert worst_residual(code, subsets) < EXACT_TOL
    assert all(code.can_decode(list(F)) for F in subsets)


@pytest.mark.parametrize("n,s", [(20, 4), (50, 10)])
def test_cyclic_random_subsets_decode_for_larger_n(n, s):
    rng = np.random.default_rng(7)
    code = make_code("cyclic", n, s, rng=rng)
    subsets = responder_subsets(n, n - s, max_subsets=100, rng=rng)
    assert len(subsets) == 100 and all(len(F) == n - s for F in subsets)
    assert worst_residual(code, subsets) < EXACT_TOL


def test_cyclic_rows_span_null_space_of_H():
    rng = np.random.default_rng(3)
    n, s = 9, 3
    H = rng.standard_normal((s, n))
    H[:, -1] = -H[:, :-1].sum(axis=1)
    B = cyclic_repetition_matrix(n, s, H=H)
    np.testing.assert_allclose(H @ B.T, 0.0, atol=1e-9)
    assert np.linalg.matrix_rank(B) == n - s


def test_fewer_than_n_minus_s_is_not_exact_and_reports_error():
    code = make_code("cyclic", 6, 2, rng=np.random.default_rng(1))
    decoding = code.decode([0, 1, 2])          # 3 < n - s = 4 responders
    assert not decoding.exact and not code.can_decode([0, 1, 2])
    weights = code.B.T @ decoding.coefficients
    assert decoding.error_sq == pytest.approx(float(((weights - 1.0) ** 2).sum()))
    assert 0.0 < decoding.error_sq < 6.0       # the best fit beats the zero decoder (error n)


@pytest.mark.parametrize("n,s", [(6, 1), (6, 2), (12, 3), (10, 4)])
def test_fractional_repetition_first_arrival_per_group(n, s):
    code = make_code("fractional", n, s)
    assert code.load == pytest.approx((s + 1) / n)
    B = fractional_repetition_matrix(n, s)
    assert np.array_equal(B, B.T) and set(np.unique(B)) == {0.0, 1.0}
    for F in itertools.combinations(range(n), n - s):
        order = list(reversed(F))
        decoding = code.decode(order)
        assert decoding.residual == 0.0 and code.can_decode(order)
        groups = [i // (s + 1) for i in decoding.used]
        assert sorted(groups) == list(range(n // (s + 1)))
        # the first arrival of each group is the one used
        for i in decoding.used:
            assert all(j // (s + 1) != i // (s + 1) for j in order[: order.index(i)])


def test_fractional_missing_group_counts_its_partitions():
    decoding = fractional_repetition_decode(6, 1, [0, 2])   # group 2 (workers 4, 5) is missing
    assert decoding.error_sq == pytest.approx(2.0) and not decoding.exact


def test_fractional_can_decode_before_n_minus_s_arrivals():
    code = make_code("fractional", 6, 2)
    assert code.can_decode([0, 3])         # one per group: 2 arrivals, n - s = 4
    assert not code.can_decode([0, 1, 2])


def test_uncoded_needs_everyone():
    code = make_code("uncoded", 4, 0)
    assert code.can_decode([3, 1, 0, 2]) and not code.can_decode([0, 1, 2])
    assert code.load == pytest.approx(0.25)


def test_encode_combine_equals_sum_of_partition_gradients():
    rng = np.random.default_rng(11)
    n, s, d = 7, 2, 33
    G = rng.standard_normal((n, d))
    code = make_code("cyclic", n, s, rng=rng)
    coded = code.encode(G)
    for F in [(0, 1, 2, 3, 4), (2, 3, 4, 5, 6), (0, 2, 4, 5, 6)]:
        decoded = code.combine(code.decode(list(F)), coded)
        np.testing.assert_allclose(decoded, G.sum(axis=0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kwargs,field", [
    (dict(scheme="fractional", n=7, s=2), "s"),
    (dict(scheme="uncoded", n=4, s=1), "s"),
    (dict(scheme="cyclic", n=4, s=4), "s"),
    (dict(scheme="magic", n=4, s=1), "scheme"),
    (dict(scheme="cyclic", n=0, s=0), "n"),
])
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        make_code(kwargs.pop("scheme"), **kwargs, rng=np.random.default_rng(0))


def test_cyclic_needs_randomness_or_H():
    with pytest.raises(ValueError, match="rng"):
        cyclic_repetition_matrix(4, 1)
    with pytest.raises(ValueError, match="H"):
        cyclic_repetition_matrix(3, 1, H=np.array([[1.0, 1.0, 1.0]]))


def test_decode_rejects_unknown_worker():
    code = GradientCode(scheme="uncoded", n=2, s=0, B=np.eye(2))
    with pytest.raises(ValueError, match="arrivals"):
        code.decode([0, 5])


@pytest.mark.parametrize("n,s", [(12, 2), (16, 3), (20, 4)])
def test_expander_fixed_decoder_error_within_spectral_bound(n, s):
    rng = np.random.default_rng(n)
    code = make_code("expander", n, s, rng=rng)
    B = code.B
    assert np.array_equal(B, B.T) and (B.sum(axis=1) == s + 1).all() and (np.diag(B) == 0).all()
    assert code.load == pytest.approx((s + 1) / n)
    for k in (n // 2, n - s, n - 1):
        bound = expander_error_bound(B, k)
        for F in responder_subsets(n, k, max_subsets=50, rng=rng):
            decoding = code.decode(list(F))
            assert decoding.error_sq <= bound * (1 + 1e-9)
            # the best fit (least squares) never does worse than the fixed decoder
            assert least_squares_decode(B, F).error_sq <= decoding.error_sq + 1e-9
    assert code.decode(list(range(n))).residual < 1e-12          # everyone: exact


def test_expander_parameters():
    with pytest.raises(ValueError, match="^s:"):
        make_code("expander", 7, 2, rng=np.random.default_rng(0))   # n * (s+1) = 21 is odd
    with pytest.raises(ValueError, match="^rng:"):
        make_code("expander", 8, 2)
