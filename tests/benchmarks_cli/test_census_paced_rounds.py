"""The census of paced round ends (benchmarks/census_paced_rounds.py) sorts hand-made cases right.

Its figures (what share of the ``tcp`` transport's paced round ends a cohort model could take)
are read from this sorting, so each kind is checked on a case whose answer is known: two equal
messages that start together across one WAN link run in step (and are twins), the same two a
few milliseconds apart are in other round states, a message that starts while another is past
its slow start on the same link meets a connection not in a paced round, three messages out of
one uplink and one more into one of their receivers have unequal shares, and one message alone
is alone. The census changes no delivery.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.config import NetworkConfig
from sim.network.tcp import TcpTransport
from sim.world import World
from tests.scripts import load_script
from topologies import clusters_of_clusters, uniform

census_paced_rounds = load_script(Path(__file__).resolve().parents[2] / "benchmarks"
                                  / "census_paced_rounds.py")
Census = census_paced_rounds.Census

WAN = clusters_of_clusters(4, num_clusters=2, intra_latency_s=0.001, intra_bandwidth_Bps=1e9,
                           wan_latency_s=0.02, wan_bandwidth_Bps=1e7)
"""Nodes 0 and 1 in one data centre, 2 and 3 in the other, a 10 MB/s WAN link between."""


def deliveries(topology, sends: list[tuple[int, int, float, float]],
               census: Census | None = None) -> list[float]:
    """Run each (src, dst, start s, bytes) under tcp + maxmin; the delivery times, in order."""
    world = World(topology, network=NetworkConfig(model="maxmin", transport="tcp"))
    ends = [0.0] * len(sends)

    def send(i: int, src: int, dst: int, at_s: float, nbytes: float):
        yield world.env.timeout(at_s)
        delivery = yield world.network.transfer(src, dst, nbytes)
        ends[i] = delivery.end_s

    for i, item in enumerate(sends):
        world.env.process(send(i, *item))
    if census is None:
        world.env.run()
    else:
        with census.counting():
            world.env.run()
    assert all(ends)
    return ends


def census_of(topology, sends: list[tuple[int, int, float, float]]) -> Census:
    """The census of a run, checked to deliver every message when the run without it does."""
    census = Census()
    assert deliveries(topology, sends, census) == deliveries(topology, sends)
    # every round end counted once by kind and once in its instant's group of equal states
    assert sum(size * n for size, n in census.twin_groups.items()) == sum(census.kinds.values())
    return census


def test_two_equal_messages_started_together_across_one_link_run_in_step():
    census = census_of(WAN, [(0, 2, 0.0, 2e6), (1, 3, 0.0, 2e6)])
    assert census.kinds[census_paced_rounds.IN_STEP] >= 4  # (slow start: rounds of both)
    assert set(census.kinds) == {census_paced_rounds.IN_STEP}
    # one search per cohort of two, its second member counted from the instant's cohorts
    assert census.cohort_sizes == {2: census.kinds[census_paced_rounds.IN_STEP] // 2}
    assert census.twinned == census.kinds[census_paced_rounds.IN_STEP]


def test_the_same_messages_a_few_milliseconds_apart_are_in_other_round_states():
    census = census_of(WAN, [(0, 2, 0.0, 2e6), (1, 3, 0.005, 2e6)])
    assert census.kinds[census_paced_rounds.MIXED_STATE] >= 4
    assert census.kinds[census_paced_rounds.IN_STEP] == 0
    assert not census.cohort_sizes
    assert census.twinned == 0


def test_a_message_that_starts_beside_one_past_its_slow_start_meets_one_not_paced():
    census = census_of(WAN, [(0, 2, 0.0, 2e7), (1, 3, 1.0, 2e6)])
    assert census.kinds[census_paced_rounds.MIXED_NOT_PACED] >= 1
    assert census.kinds[census_paced_rounds.IN_STEP] == 0


def test_three_messages_out_of_one_uplink_and_one_into_a_receiver_have_unequal_shares():
    """0 -> 1, 0 -> 2, 0 -> 3 share 0's uplink (C / 3 each), 4 -> 1 shares 1's downlink with
    0 -> 1 (C / 2): equal states at the first round end, unequal shares."""
    switch = uniform(5, latency_s=0.01, bandwidth_Bps=1e7)
    census = census_of(switch, [(0, 1, 0.0, 2e6), (0, 2, 0.0, 2e6), (0, 3, 0.0, 2e6),
                                (4, 1, 0.0, 2e6)])
    assert census.kinds[census_paced_rounds.MIXED_SHARES] >= 4  # (all four at the first)
    assert census.kinds[census_paced_rounds.IN_STEP] == 0


def test_one_message_is_alone_at_its_first_round_end_and_then_ramps():
    census = census_of(WAN, [(0, 2, 0.0, 2e6)])
    assert census.kinds == {census_paced_rounds.ALONE: 1}
    assert census.twinned == 0


def test_the_census_puts_the_transport_back_even_when_the_run_fails():
    original = TcpTransport._paced_round_end
    census_of(WAN, [(0, 2, 0.0, 2e6), (1, 3, 0.005, 2e6)])
    assert TcpTransport._paced_round_end is original
    with pytest.raises(RuntimeError), Census().counting():
        raise RuntimeError("a failing run")
    assert TcpTransport._paced_round_end is original
