"""A network partition holds synchronous data parallelism until the links come back."""

from __future__ import annotations

import pytest

from sim.config import (
    ClusterConfig,
    FaultsConfig,
    NetworkConfig,
    PolicyConfig,
    RunConfig,
    Scenario,
)
from sim.runner import run
from workloads import WorkloadConfig


@pytest.mark.parametrize("policy", ["ddp", "diloco"])
def test_partition_pauses_training_and_it_resumes_when_links_return(policy):
    params = {"inner_steps": 2} if policy == "diloco" else {}
    scenario = Scenario(
        cluster=ClusterConfig(num_nodes=4),
        network=NetworkConfig(model="maxmin", topology="star",
                              topology_params={"latency_s": 0.01, "bandwidth_Bps": 1e7}),
        faults=FaultsConfig(failures=[{"model": "partition", "groups": [["n0", "n1"]],
                                       "start_s": 1.0, "duration_s": 100.0}]),
        workload=WorkloadConfig(timing="llama-125m", batch=2, seq=8),
        policy=PolicyConfig(name=policy, params=params),
        run=RunConfig(max_steps=12, timing_only=True))
    result = run(scenario)
    assert result.stop_reason == "max_steps" and result.steps >= 12
    ev = result.recorder.events()
    assert {"link_down", "link_up"} <= set(ev.kind)
    # no step could complete a sync while the partition lasted, so the run outlived it
    assert result.sim_time_s > 101.0
    # no busy retry loop: the group waited for the links instead of re-sending into the cut
    # (a retry at once would fail at once, thousands of times at one instant)
    cut = ev[(ev.kind == "transfer_cut") & (ev.role == "sender")]
    assert 0 < len(cut) <= 2 * 4
    rec = result.recorder
    in_flight = result.world.network.bytes_in_flight  # the run stopped mid-sync
    assert rec.bytes_sent.sum() == pytest.approx(rec.bytes_received.sum() + rec.bytes_cut.sum()
                                                 + in_flight)


def test_a_replica_that_does_not_fit_in_node_memory_is_refused():
    # llama-125m in fp32: 4 x 0.54 GB of weights, gradients and Adam moments > 1 GB
    scenario = Scenario(cluster=ClusterConfig(num_nodes=2, memory_bytes=1e9),
                        workload=WorkloadConfig(timing="llama-125m", batch=2, seq=8),
                        policy=PolicyConfig(name="ddp"), run=RunConfig(max_steps=2,
                                                                       timing_only=True))
    with pytest.raises(Exception, match="cluster.memory"):
        run(scenario)
    fits = Scenario(cluster=ClusterConfig(num_nodes=2, memory_bytes=3e9),
                    workload=WorkloadConfig(timing="llama-125m", batch=2, seq=8),
                    policy=PolicyConfig(name="ddp"), run=RunConfig(max_steps=2, timing_only=True))
    assert run(fits).steps == 2
