"""Per-node shards: iid partitions, Dirichlet label skew, dialects of the synthetic language."""

import numpy as np
import pytest

from tests.workloads.conftest import FAST_LM
from workloads import WorkloadConfig, build_workload
from workloads.datasets import contiguous_regions, dirichlet_label_partition, iid_partition


def test_iid_partition_is_a_partition():
    shards = iid_partition(103, 4, np.random.default_rng(0))
    allidx = np.concatenate(shards)
    assert sorted(allidx.tolist()) == list(range(103))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def dominant_label_share(labels, shards):
    return np.mean([np.bincount(labels[s]).max() / len(s) for s in shards])


def test_dirichlet_small_alpha_skews_labels_and_stays_a_partition():
    labels = np.repeat(np.arange(10), 100)
    rng = np.random.default_rng(1)
    skewed = dirichlet_label_partition(labels, 8, 0.1, rng)
    near_iid = dirichlet_label_partition(labels, 8, 100.0, rng)
    for shards in (skewed, near_iid):
        assert sorted(np.concatenate(shards).tolist()) == list(range(1000))
        assert all(len(s) > 0 for s in shards)
    assert dominant_label_share(labels, skewed) > 0.5
    assert dominant_label_share(labels, near_iid) < 0.25
    with pytest.raises(ValueError, match="dirichlet_alpha"):
        dirichlet_label_partition(labels, 8, 0.0, rng)


def test_digits_dirichlet_workload_gives_skewed_streams():
    cfg = WorkloadConfig(learner="mlp", data="digits", shards="dirichlet", dirichlet_alpha=0.1)
    wl = build_workload(cfg, num_replicas=5, seed=0)
    shares = []
    for r in range(5):
        labels = wl.arrays.train_y[wl.make_stream(r).shard]
        shares.append(np.bincount(labels).max() / len(labels))
    assert np.mean(shares) > 0.4  # iid would give about 0.1


def test_dialects_give_each_rank_its_own_chain():
    wl = build_workload(
        WorkloadConfig(**(FAST_LM | {"shards": "dialects"})), num_replicas=3, seed=0
    )
    chains = [wl.make_stream(r).language.transition for r in range(3)]
    assert not np.allclose(chains[0], chains[1])
    assert not np.allclose(chains[0], wl.language.transition)
    iid = build_workload(WorkloadConfig(**FAST_LM), num_replicas=3, seed=0)
    assert iid.make_stream(1).language is iid.language


def test_contiguous_regions_tile_the_range():
    regions = contiguous_regions(100, 3)
    assert regions[0][0] == 0 and regions[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(regions, regions[1:]))


def test_digits_file_reader_matches_scikit_learn():
    from sklearn.datasets import load_digits

    from workloads.datasets import _digits_arrays

    pixels, labels = _digits_arrays()
    ref = load_digits()
    assert np.array_equal(pixels, ref.data) and np.array_equal(labels, ref.target)
