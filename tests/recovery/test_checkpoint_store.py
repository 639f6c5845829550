"""Checkpoint store bookkeeping: a step is restorable only when every stage has uploaded it."""

import pytest

from policies.recovery.checkpoint_store import CheckpointStore


def test_initial_state_is_complete_without_transfer():
    store = CheckpointStore(3)
    assert store.complete_step is None
    store.seed_initial({0: "s0", 1: "s1", 2: "s2"}, {0: 10.0, 1: 20.0, 2: 20.0})
    assert store.complete_step == 0
    assert store.get(2).state == "s2" and store.get(2).stored_at_s == 0.0
    assert store.bytes_stored == 0.0


def test_checkpoint_completes_only_when_all_stages_arrived():
    store = CheckpointStore(3)
    store.seed_initial({s: f"init{s}" for s in range(3)}, {s: 1.0 for s in range(3)})
    assert not store.put(stage=0, step=100, state="a0", nbytes=5.0, time_s=10.0)
    assert not store.put(stage=2, step=100, state="a2", nbytes=5.0, time_s=11.0)
    assert store.complete_step == 0  # stage 1 still uploading: step 100 is not restorable
    assert store.get(0).state == "init0"
    assert store.put(stage=1, step=100, state="a1", nbytes=5.0, time_s=12.0)
    assert store.complete_step == 100
    assert [store.get(s).state for s in range(3)] == ["a0", "a1", "a2"]
    assert store.get(1).stored_at_s == 12.0
    assert store.bytes_stored == 15.0


def test_stale_and_discarded_uploads():
    store = CheckpointStore(2)
    store.seed_initial({0: "i0", 1: "i1"}, {0: 1.0, 1: 1.0})
    store.put(stage=0, step=200, state="b0", nbytes=1.0, time_s=1.0)
    store.discard_pending()  # rollback: the half-uploaded step 200 describes a lost future
    assert not store.put(stage=1, step=200, state="b1", nbytes=1.0, time_s=2.0)
    assert store.complete_step == 0
    store.put(stage=0, step=200, state="b0", nbytes=1.0, time_s=3.0)
    assert store.complete_step == 200
    assert not store.put(stage=0, step=100, state="old", nbytes=1.0, time_s=4.0)  # stale
    assert store.get(0).state == "b0"


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_stages=0"):
        CheckpointStore(0)
    store = CheckpointStore(2)
    with pytest.raises(LookupError):
        store.get(0)
    with pytest.raises(ValueError, match="stage=5"):
        store.put(stage=5, step=1, state=None, nbytes=1.0, time_s=0.0)
    with pytest.raises(ValueError, match="one entry per stage"):
        store.seed_initial({0: "x"}, {0: 1.0})
