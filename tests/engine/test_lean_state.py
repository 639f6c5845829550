"""State a world keeps per node and per connection is made when needed, with the same behaviour.

A world of 100,000 nodes keeps 100,000 nodes and about two ``tcp`` connections per node, so
what each holds matters (docs/performance.md, node scaling). Two things are made only when
used: a connection's queue of waiting messages, and a node's failure, recovery and notice
events. These tests check that the lazy versions behave exactly as eager ones would: the same
deliveries, the same values, and the same number of processed events (the run summary reports
it, and the snapshot of the shipped scenarios compares it).
"""

from __future__ import annotations

import pytest

from sim.network.tcp import TcpConfig

from .conftest import make_world


def tcp_world(n: int = 3):
    return make_world(n, model="maxmin", latency_s=0.01, bandwidth_Bps=12.5e6,
                      transport="tcp", tcp=TcpConfig())


def test_a_connection_makes_its_queue_only_when_a_message_waits():
    world = tcp_world()
    net = world.network
    alone = net.transfer(0, 1, 1e6)
    first, second = net.transfer(0, 2, 1e6), net.transfer(0, 2, 1e6)
    world.env.run()
    assert net._connections[(0, 1)].queue is None      # one message at a time: no queue
    assert net._connections[(0, 2)].queue is not None  # the second waited behind the first
    assert first.value.end_s < second.value.end_s      # in order, on one byte stream
    later = net.transfer(0, 1, 1e6)                    # the idle connection takes it at once
    world.env.run()
    assert later.value.start_s >= alone.value.end_s
    assert net._connections[(0, 1)].queue is None
    assert world.recorder.bytes_received[1] == 2e6 and world.recorder.bytes_received[2] == 2e6


def _fail_and_recover(ask: bool) -> tuple[int, list]:
    """Notice, failure and recovery of node 0; ``ask``: something waits on each event first."""
    world = make_world(2)
    node, env = world.nodes[0], world.env
    seen: list = []
    if ask:
        for event in (node.notice_event(), node.failed_event(), node.recovered_event()):
            event.callbacks.append(lambda ev: seen.append((env.now, ev.value)))

    def script():
        yield env.timeout(1.0)
        node.give_notice(kill_at_s=3.0)
        yield env.timeout(2.0)
        node.fail("spot")
        yield env.timeout(1.5)
        node.recover()
        yield env.timeout(1.0)

    env.process(script())
    env.run()
    return env.events_processed, seen


def test_a_nodes_failure_events_fire_alike_whether_or_not_anyone_waits():
    asked, seen = _fail_and_recover(ask=True)
    unasked, nobody = _fail_and_recover(ask=False)
    assert seen == [(1.0, 3.0), (3.0, "spot"), (4.5, 4.5)]
    assert nobody == []
    assert asked == unasked  # an event nobody asked for is still made and processed


def test_a_nodes_next_failure_event_is_a_new_one():
    world = make_world(1)
    node = world.nodes[0]
    before = node.failed_event()
    assert node.failed_event() is before  # the same event until it fires
    node.fail("crash")
    after = node.failed_event()
    assert before.triggered and not after.triggered and after is not before
    with pytest.raises(AttributeError):
        node.some_new_field = 1  # fixed slots: a typo cannot add a field
