"""Learners: training reduces loss on every dataset; snapshots, flat vectors, schedule, config."""

import math

import numpy as np
import pytest
import torch

from tests.workloads.conftest import FAST_LM
from workloads import Learner, TimingOnlyLearner, WorkloadConfig, build_workload
from workloads.schedule import lr_at

DIGITS = dict(data="digits", batch=32, lr=1e-2, warmup_steps=5)


def mean_train_loss(learner, steps: int) -> tuple[float, float]:
    losses = [learner.train_step() for _ in range(steps)]
    return float(np.mean(losses[:10])), float(np.mean(losses[-10:]))


@pytest.mark.parametrize("learner", ["mlp", "cnn"])
def test_digits_loss_falls(learner):
    wl = build_workload(WorkloadConfig(learner=learner, **DIGITS), num_replicas=2, seed=0)
    lrn = wl.make_learner(0)
    before = lrn.eval_loss()
    assert before == pytest.approx(math.log(10), abs=0.3)
    first, last = mean_train_loss(lrn, 100)
    assert last < 0.5 * first
    assert lrn.eval_loss() < 0.5


def test_text_file_loss_falls(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "cat"]
    text = " ".join(rng.choice(words, size=3000)) + "\n"
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    cfg = WorkloadConfig(**(FAST_LM | {"data": f"text:{path}", "text_level": "char"}))
    wl = build_workload(cfg, num_replicas=2, seed=0)
    assert wl.optimum_loss is None and wl.vocab == len(set(text))
    lrn = wl.make_learner(1)
    before = lrn.eval_loss()
    for _ in range(150):
        lrn.train_step()
    assert lrn.eval_loss() < 0.6 * before


def test_byte_level_text_and_contiguous_shards(tmp_path):
    path = tmp_path / "bytes.txt"
    path.write_bytes(bytes(range(256)) * 20)
    cfg = WorkloadConfig(**(FAST_LM | {"data": f"text:{path}", "shards": "contiguous"}))
    wl = build_workload(cfg, num_replicas=3, seed=0)
    assert wl.vocab == 256
    starts = [wl.make_stream(r).region[0] for r in range(3)]
    assert starts == sorted(starts) and len(set(starts)) == 3


def run(learner, steps):
    losses = [learner.train_step() for _ in range(steps)]
    return losses, learner.get_flat()


@pytest.mark.parametrize(
    "overrides",
    [
        {"total_steps": 30},
        {"optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-3},
        {"learner": "mlp", "data": "digits", "batch": 200},  # crosses epochs of its shard
    ],
)
def test_snapshot_restore_is_bit_exact(overrides):
    wl = build_workload(WorkloadConfig(**(FAST_LM | overrides)), num_replicas=4, seed=3)
    lrn = wl.make_learner(2)
    run(lrn, 7)
    snap = lrn.snapshot()
    lr_then = lrn.lr
    losses_a, flat_a = run(lrn, 6)
    run(lrn, 3)  # wander further off, then come back
    lrn.restore(snap)
    assert lrn.step == 7 and lrn.lr == lr_then
    losses_b, flat_b = run(lrn, 6)
    assert losses_a == losses_b
    assert torch.equal(flat_a, flat_b)


def test_same_seed_same_run_and_ranks_share_init_but_not_data(markov_workload):
    a, b = markov_workload.make_learner(0), markov_workload.make_learner(0)
    c = markov_workload.make_learner(1)
    assert torch.equal(a.get_flat(), c.get_flat())  # same initial weights on every rank
    la, lb, lc = run(a, 3)[0], run(b, 3)[0], run(c, 3)[0]
    assert la == lb and la != lc


def test_flat_vectors_round_trip_and_drive_the_step(markov_workload):
    lrn = markov_workload.make_learner(0)
    flat = lrn.get_flat()
    assert flat.dtype == torch.float32 and flat.numel() == lrn.num_params
    lrn.set_flat(torch.zeros_like(flat))
    assert lrn.get_flat().abs().sum() == 0
    lrn.set_flat(flat)
    assert torch.equal(lrn.get_flat(), flat)
    lrn.compute_grad()
    g = lrn.get_flat_grad()
    lrn.set_flat_grad(torch.zeros_like(g))
    before = lrn.get_flat()
    lrn.optimizer_step()  # zero gradient, no weight decay: Adam leaves weights in place
    assert torch.equal(lrn.get_flat(), before)
    with pytest.raises(ValueError, match="set_flat"):
        lrn.set_flat(torch.zeros(3))


def test_gradient_clipping_bounds_the_applied_update():
    wl = build_workload(
        WorkloadConfig(
            **(
                FAST_LM
                | {
                    "optimizer": "sgd",
                    "lr": 1.0,
                    "warmup_steps": 0,
                    "momentum": 0.0,
                    "grad_clip": 0.5,
                }
            )
        ),
        num_replicas=1,
        seed=0,
    )
    lrn = wl.make_learner(0)
    lrn.compute_grad()
    lrn.set_flat_grad(lrn.get_flat_grad() * 1000)
    before = lrn.get_flat()
    lrn.optimizer_step()
    assert (lrn.get_flat() - before).norm() == pytest.approx(0.5, rel=1e-3)


def test_schedule_warmup_cosine_and_scale():
    kw = dict(lr=1.0, warmup_steps=10, total_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.55)  # half-way down the cosine
    assert lr_at(110, **kw) == pytest.approx(0.1) and lr_at(500, **kw) == pytest.approx(0.1)
    assert lr_at(500, **(kw | {"total_steps": None})) == 1.0
    wl = build_workload(WorkloadConfig(**FAST_LM), num_replicas=1, seed=0)
    lrn = wl.make_learner(0)
    base = lrn.lr
    lrn.lr_scale = 1.2
    assert lrn.lr == pytest.approx(1.2 * base)


def test_reset_optimizer_drops_moments(markov_workload):
    lrn = markov_workload.make_learner(0)
    lrn.train_step()
    assert lrn.groups[0].optimizer.state
    lrn.reset_optimizer()
    assert not lrn.groups[0].optimizer.state and lrn.step == 1


def test_eval_loss_is_deterministic_and_shared_across_ranks(markov_workload):
    a, b = markov_workload.make_learner(0), markov_workload.make_learner(3)
    assert a.eval_loss() == b.eval_loss() == a.eval_loss()


def test_timing_only_learner_has_the_learner_interface(markov_workload):
    fake = markov_workload.make_learner(0, timing_only=True)
    assert isinstance(fake, TimingOnlyLearner)
    public = {n for n in dir(Learner) if not n.startswith("_")}
    missing = {n for n in public if not hasattr(fake, n)} - {"next_batch", "forward", "zero_grad"}
    assert not missing
    assert fake.train_step() is None and fake.eval_loss() is None and fake.step == 1
    assert fake.num_params == markov_workload.timing.num_params
    assert fake.get_flat().numel() == 0
    snap = fake.snapshot()
    fake.train_step()
    fake.restore(snap)
    assert fake.step == 1


def test_timing_preset_is_independent_of_learner():
    wl = build_workload(
        WorkloadConfig(**(FAST_LM | {"timing": "llama-1b"})), num_replicas=1, seed=0
    )
    assert wl.timing.num_params == 940640256
    assert wl.make_learner(0).num_params < 200_000


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"optimizer": "adam"}, "optimizer"),
        ({"shards": "random"}, "shards"),
        ({"data": "imagenet"}, "data"),
        ({"batch": 0}, "batch"),
        ({"total_steps": 5, "warmup_steps": 10}, "total_steps"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        WorkloadConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"learner": "mlp"}, "learner"),  # a classifier on language data
        ({"learner": "gpt5"}, "learner"),
        ({"timing": "llama-70b"}, "timing"),
        ({"shards": "dirichlet"}, "shards"),  # label skew needs labels
    ],
)
def test_bad_combinations_are_rejected(kwargs, field):
    with pytest.raises(ValueError, match=field):
        build_workload(WorkloadConfig(**kwargs), num_replicas=2, seed=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_request_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        build_workload(WorkloadConfig(device="cuda"), num_replicas=1, seed=0)


def test_workload_charges_its_timing_model_at_the_configured_microbatch():
    from workloads import get_device, preset_timing

    wl = build_workload(
        WorkloadConfig(**(FAST_LM | {"timing": "llama-350m"})), num_replicas=1, seed=0
    )
    ref = preset_timing("llama-350m")
    h100 = get_device("h100")
    assert wl.step_flops() == ref.step_flops(16, 32)
    assert wl.step_seconds(h100) == ref.step_seconds(h100, 16, 32)
    assert wl.activation_bytes() == 16 * 32 * 1024 * 4


@pytest.mark.slow
def test_default_tiny_llama_gets_within_003_nats_of_optimum():
    wl = build_workload(WorkloadConfig(total_steps=1000), num_replicas=1, seed=0)
    lrn = wl.make_learner(0)
    for _ in range(1000):
        lrn.train_step()
    assert lrn.eval_loss() - wl.optimum_loss < 0.03
