"""Learners on CUDA compute what they compute on the CPU, and simulated time does not care.

These run only where torch sees a GPU (CI has none: they are skipped there with that reason).
Models are initialised on the CPU from the scenario's seed tree and then moved, so a CUDA learner
starts from the very weights its CPU twin starts from; what differs is only the kernels'
floating-point order. The tolerances say how far that is allowed to carry a short run.
"""

import pytest
import torch

from sim.config import ClusterConfig, NetworkConfig, PolicyConfig, RunConfig, Scenario
from sim.runner import run
from tests.workloads.conftest import FAST_LM
from workloads import ReplicaGroup, WorkloadConfig, build_workload

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)"
)

STEPS = 20


def losses_on(device: str, overrides: dict, steps: int = STEPS) -> list[float]:
    """Losses of ``steps`` training steps of rank 1's learner on ``device``."""
    wl = build_workload(WorkloadConfig(**(FAST_LM | overrides | {"device": device})),
                        num_replicas=2, seed=0)
    learner = wl.make_learner(1)
    return [learner.train_step() for _ in range(steps)]


@pytest.mark.parametrize(
    "overrides",
    [{}, {"optimizer": "sgd", "lr": 0.1}, {"learner": "mlp", "data": "digits", "batch": 64}],
)
def test_a_cuda_learner_follows_its_cpu_twin(overrides):
    cpu, cuda = losses_on("cpu", overrides), losses_on("cuda", overrides)
    assert cuda[0] == pytest.approx(cpu[0], rel=1e-5)  # same weights, same batch
    torch.testing.assert_close(torch.tensor(cuda), torch.tensor(cpu), rtol=1e-3, atol=1e-4)
    assert cuda[-1] < cuda[0]  # and it learns


def test_the_vmap_group_matches_a_loop_of_learners_on_cuda():
    wl = build_workload(WorkloadConfig(**(FAST_LM | {"device": "cuda"})), num_replicas=3,
                        seed=0)
    group = ReplicaGroup(wl, [0, 1, 2])
    learners = [wl.make_learner(r) for r in range(3)]
    for _ in range(4):
        group_losses = group.train_step().cpu()
        loop_losses = torch.tensor([lrn.train_step() for lrn in learners])
        torch.testing.assert_close(group_losses, loop_losses, rtol=1e-4, atol=1e-5)
    for r, lrn in enumerate(learners):
        torch.testing.assert_close(group.get_flat(r), lrn.get_flat(), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("overrides", [{}, {"learner": "mlp", "data": "digits", "batch": 64}])
def test_snapshot_restore_repeats_the_steps_on_cuda(overrides):
    wl = build_workload(WorkloadConfig(**(FAST_LM | overrides | {"device": "cuda"})),
                        num_replicas=2, seed=3)
    learner = wl.make_learner(1)
    for _ in range(5):
        learner.train_step()
    snap = learner.snapshot()
    first = [learner.train_step() for _ in range(4)]
    learner.restore(snap)
    again = [learner.train_step() for _ in range(4)]
    # bit-exact where the kernels are deterministic; atomics in some backward kernels are not
    torch.testing.assert_close(torch.tensor(again), torch.tensor(first), rtol=1e-6, atol=0)


def diloco_on(device: str):
    """Real-mode DiLoCo (H = 5) on 3 nodes of a slow WAN, the MLP workload on ``device``."""
    scenario = Scenario(
        name=f"diloco-{device}", seed=0,
        cluster=ClusterConfig(num_nodes=3, device="h100"),
        network=NetworkConfig(model="maxmin", topology="uniform",
                              topology_params={"bandwidth_Bps": 12.5e6, "latency_s": 0.05}),
        workload=WorkloadConfig(learner="mlp", data="digits", d_model=64, batch=16,
                                device=device),
        policy=PolicyConfig(name="diloco", params={"inner_steps": 5}),
        run=RunConfig(max_steps=16, eval_every_s=1e12),
    )
    return run(scenario)


def timeline(result) -> list[dict]:
    """The run's Chrome trace without its metric counters (which carry the loss values)."""
    return [e for e in result.world.recorder.chrome_trace()["traceEvents"] if e["ph"] != "C"]


def test_a_real_run_on_cuda_keeps_simulated_time_and_follows_the_cpu_losses():
    cpu, cuda = diloco_on("cpu"), diloco_on("cuda")
    loss_cpu = cpu.history.query("metric == 'loss'").reset_index(drop=True)
    loss_cuda = cuda.history.query("metric == 'loss'").reset_index(drop=True)
    # simulated time comes from the timing model and the network, never from the kernels
    assert loss_cuda["time_s"].tolist() == loss_cpu["time_s"].tolist()
    assert timeline(cuda) == timeline(cpu)
    torch.testing.assert_close(torch.tensor(loss_cuda["value"].to_numpy()),
                               torch.tensor(loss_cpu["value"].to_numpy()), rtol=1e-3, atol=1e-4)
