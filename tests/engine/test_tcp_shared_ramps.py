"""Lone ramps that start at one instant from equal inputs share one run of their rounds.

The oracle is the same transport with ``shared_ramps = False``: every ramp runs its own rounds
on the virtual clock. Sharing is exact by construction (the round logic is a function of the
inputs in the key), so the claim is bit-for-bit equality: every delivery and cut time, every
byte count, every connection's round state and the trace hash are *equal*, not close.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.data_parallel.diloco import DiLoCo
from sim.config import ClusterConfig, NetworkConfig, PolicyConfig, RunConfig, Scenario
from sim.network.tcp import TcpTransport, _round_state
from sim.runner import run as run_scenario
from sim.world import World
from workloads import WorkloadConfig

from .conftest import make_world
from .test_tcp_ramp import configs, faults, plans, run, topologies_


def _states(world) -> dict:
    """Every connection's round state, RTT and head (by node pair)."""
    return {pair: (_round_state(conn), conn.rtt_s, conn.cwnd, conn.head is None)
            for pair, conn in sorted(world.network._connections.items())}


def _pairs_at_once(shared: bool, model: str, sizes: list[float], uplink=None,
                   access_latency_s=None):
    """Senders 0..k-1 each send ``sizes[i]`` to node k + i at t = 0, twice (an idle restart)."""
    TcpTransport.shared_ramps = shared
    try:
        k = len(sizes)
        world = make_world(2 * k, model=model, latency_s=0.01, bandwidth_Bps=12.5e6,
                           uplink=uplink, transport="tcp")
        if access_latency_s is not None:
            topo = dataclasses.replace(world.topology, access_latency_s=access_latency_s)
            world = World(topo, network=NetworkConfig(model=model, transport="tcp"))
        ends: list = []

        def sender(i):
            for _ in range(2):
                delivery = yield world.network.transfer(i, k + i, sizes[i])
                ends.append((i, delivery.end_s))
                yield world.env.timeout(1.0)

        for i in range(k):
            world.env.process(sender(i))
        world.env.run()
        return sorted(ends), world
    finally:
        TcpTransport.shared_ramps = True


@pytest.mark.parametrize("model", ["ideal", "maxmin"])
def test_equal_ramps_at_one_instant_run_their_rounds_once(model):
    """Four equal 2 MB messages on four disjoint paths of 100 Mbit/s, 10 ms, started together.

    Under ``ideal`` every message is a ramp from its start: the first of each instant runs its
    rounds, the other three take them (3 shared per instant, two instants). Under ``maxmin`` a
    message ramps from its second step (its first chunk's end, again one instant for all four).
    Deliveries, rounds and every connection's state equal the unshared run's exactly.
    """
    got, fast = _pairs_at_once(True, model, [2e6] * 4)
    want, slow = _pairs_at_once(False, model, [2e6] * 4)
    assert got == want                          # exact, not approx
    assert len({end for _, end in got}) == 2    # (the four of each instant end together)
    assert _states(fast) == _states(slow)
    assert fast.network.rounds_started == slow.network.rounds_started
    assert fast.network.ramps_started == slow.network.ramps_started == 8
    assert fast.network.ramps_shared == 6 and slow.network.ramps_shared == 0
    assert fast.env.events_processed == slow.env.events_processed


@pytest.mark.parametrize("model", ["ideal", "maxmin"])
def test_ramps_with_different_inputs_are_not_shared(model):
    """Other sizes, or another bottleneck, at the same instant: each ramp runs its own rounds."""
    got, fast = _pairs_at_once(True, model, [2e6, 2e6 + 1, 3e6, 1e6])
    want, _ = _pairs_at_once(False, model, [2e6, 2e6 + 1, 3e6, 1e6])
    assert got == want
    assert fast.network.ramps_shared == 0
    slower = (None, 6.25e6, None, None)  # node 1's uplink at half the rate
    got, fast = _pairs_at_once(True, model, [2e6, 2e6], uplink=slower)
    want, _ = _pairs_at_once(False, model, [2e6, 2e6], uplink=slower)
    assert got == want
    assert fast.network.ramps_shared == 0
    farther = (0.0, 0.005, 0.0, 0.0)  # node 1 5 ms farther away: same rate, longer RTT
    got, fast = _pairs_at_once(True, model, [2e6, 2e6], access_latency_s=farther)
    want, _ = _pairs_at_once(False, model, [2e6, 2e6], access_latency_s=farther)
    assert got == want
    assert got[0][1] != got[2][1]  # (node 1's messages arrive later)
    assert fast.network.ramps_shared == 0


@settings(max_examples=120, deadline=None)
@given(topology=topologies_(), model=st.sampled_from(["ideal", "maxmin"]), tcp=configs,
       plan=plans, fault_plan=faults)
def test_shared_ramps_change_no_bit(topology, model, tcp, plan, fault_plan):
    """Random plans of the ramp tests (shared instants, equal sizes, idle restarts, handshakes,
    window caps, HyStart's exits, ramps taken over and cut by failures): every delivery and cut
    time, byte count and connection state equal the unshared run's exactly."""
    TcpTransport.shared_ramps = False
    try:
        want, slow = run(topology, model, tcp, plan, fault_plan, ramps=True)
    finally:
        TcpTransport.shared_ramps = True
    got, fast = run(topology, model, tcp, plan, fault_plan, ramps=True)
    assert got == want
    assert fast.network.rounds_started == slow.network.rounds_started
    assert fast.network.ramps_started == slow.network.ramps_started
    assert slow.network.ramps_shared == 0
    for field in ("bytes_sent", "bytes_received", "bytes_cut"):
        assert list(getattr(fast.recorder, field)) == list(getattr(slow.recorder, field))
    assert dict(fast.recorder.link_bytes) == dict(slow.recorder.link_bytes)
    assert _states(fast) == _states(slow)
    assert fast.env.events_processed == slow.env.events_processed


@pytest.mark.parametrize("model", ["ideal", "maxmin"])
def test_a_timing_only_diloco_run_has_the_same_trace_hash(model):
    """DiLoCo's tree all-reduce on 24 equal nodes (tcp): nearly every ramp is shared, and the
    run (trace hash, simulated time, events) is the unshared run's."""
    scenario = Scenario(
        name="shared-ramps", seed=3, cluster=ClusterConfig(num_nodes=24, device="h100"),
        network=NetworkConfig(model=model, topology="uniform",
                              topology_params={"latency_s": 0.01}, uplink_Bps=1.25e8,
                              downlink_Bps=1.25e8, transport="tcp"),
        workload=WorkloadConfig(learner="tiny-llama", timing="llama-125m", batch=8, seq=128),
        policy=PolicyConfig(name="diloco", params={}),
        run=RunConfig(max_steps=4, timing_only=True))
    results = {}
    for shared in (True, False):
        TcpTransport.shared_ramps = shared
        try:
            results[shared] = run_scenario(scenario, DiLoCo(inner_steps=1, allreduce="tree"))
        finally:
            TcpTransport.shared_ramps = True
    fast, slow = results[True], results[False]
    assert fast.trace_hash() == slow.trace_hash()
    assert fast.world.env.now == slow.world.env.now
    assert fast.world.env.events_processed == slow.world.env.events_processed
    net = fast.world.network
    assert net.ramps_shared > net.ramps_started / 2
