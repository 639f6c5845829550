"""Story tests of the injector: exact (time, action) lists on a stand-in world.

The stand-in implements only the engine API the injector uses (``env``, ``nodes[i].is_up``,
``fail``, ``recover``, ``give_notice``, ``network.set_link_state``, ``network.graph``,
``recorder.event``), so these tests pin the injector's behaviour independently of the engine.
"""

from __future__ import annotations

import networkx as nx
import pytest
import simpy

from sim.faults.failures import FailureEvent, SpotPreemption
from sim.faults.injector import fail_at, start_injector


class FakeNode:
    def __init__(self, world, node_id):
        self.world, self.id, self.is_up = world, node_id, True

    def fail(self, reason):
        self.is_up = False
        self.world.log.append((self.world.env.now, "fail", self.id, reason))

    def recover(self):
        self.is_up = True
        self.world.log.append((self.world.env.now, "recover", self.id))

    def give_notice(self, kill_at_s):
        self.world.log.append((self.world.env.now, "notice", self.id, kill_at_s))


class FakeNetwork:
    def __init__(self, world, graph):
        self.world, self.graph = world, graph

    def set_link_state(self, u, v, up):
        self.world.log.append((self.world.env.now, "link_up" if up else "link_down", u, v))


class FakeRecorder:
    def __init__(self):
        self.events = []

    def event(self, kind, node=None, **fields):
        self.events.append((kind, node, fields))


class FakeWorld:
    def __init__(self, num_nodes=4, graph=None):
        self.env = simpy.Environment()
        self.log = []
        self.nodes = [FakeNode(self, i) for i in range(num_nodes)]
        self.network = FakeNetwork(self, graph)
        self.recorder = FakeRecorder()


def test_crash_then_recovery_story():
    world = FakeWorld()
    start_injector(
        world,
        [
            FailureEvent(time_s=5.0, kind="crash", nodes=(1,), duration_s=3.0),
            FailureEvent(time_s=2.0, kind="crash", nodes=(0,)),  # never back
        ],
    )
    world.env.run(until=100)
    assert world.log == [(2.0, "fail", 0, "crash"), (5.0, "fail", 1, "crash"), (8.0, "recover", 1)]
    assert [kind for kind, _, _ in world.recorder.events] == ["fault", "fault"]
    assert world.recorder.events[1] == (
        "fault",
        1,
        {"fault": "crash", "nodes": [1], "links": [], "duration_s": 3.0},
    )


def test_preemption_notice_precedes_kill_by_exactly_notice_s():
    world = FakeWorld(num_nodes=3)
    events = SpotPreemption(1 / 500, notice_s=120.0, downtime=60.0).schedule(
        num_nodes=3, horizon_s=5000.0, rng=__import__("numpy").random.default_rng(0)
    )
    assert events
    start_injector(world, events)
    world.env.run(until=10_000)
    notices = [entry for entry in world.log if entry[1] == "notice"]
    kills = [entry for entry in world.log if entry[1] == "fail"]
    assert len(notices) == len(kills) == len(events)
    for (t_notice, _, node, kill_at), (t_kill, _, node_k, reason) in zip(notices, kills):
        assert node == node_k and reason == "preempt"
        assert t_kill - t_notice == 120.0 and kill_at == t_kill


def test_link_down_and_partition_from_groups():
    graph = nx.Graph([("a", "b"), ("b", "c"), ("a", "c")])
    world = FakeWorld(graph=graph)
    start_injector(
        world,
        [
            FailureEvent(time_s=1.0, kind="link_down", links=(("a", "b"),), duration_s=2.0),
            FailureEvent(
                time_s=10.0, kind="partition", groups=(("a", "b"), ("c",)), duration_s=5.0
            ),
        ],
    )
    world.env.run()
    assert world.log == [
        (1.0, "link_down", "a", "b"),
        (3.0, "link_up", "a", "b"),
        (10.0, "link_down", "a", "c"),
        (10.0, "link_down", "b", "c"),
        (15.0, "link_up", "a", "c"),
        (15.0, "link_up", "b", "c"),
    ]
    partition = world.recorder.events[1][2]
    assert partition["fault"] == "partition" and partition["links"] == ["a-c", "b-c"]


def test_partition_without_topology_is_a_clear_error():
    world = FakeWorld(graph=None)
    start_injector(world, [FailureEvent(time_s=1.0, kind="partition", groups=(("a",),))])
    with pytest.raises(ValueError, match="world.network.graph"):
        world.env.run()


def test_overlapping_faults_keep_a_node_down_until_the_last_ends():
    world = FakeWorld()
    start_injector(
        world,
        [
            FailureEvent(time_s=1.0, kind="group", nodes=(1, 2), duration_s=10.0),  # to 11
            FailureEvent(time_s=4.0, kind="crash", nodes=(2,), duration_s=20.0),  # to 24
            FailureEvent(time_s=5.0, kind="link_down", links=(("x", "y"),), duration_s=10.0),
            FailureEvent(time_s=6.0, kind="link_down", links=(("y", "x"),), duration_s=1.0),
        ],
    )
    world.env.run()
    assert world.log == [
        (1.0, "fail", 1, "group"),
        (1.0, "fail", 2, "group"),
        (5.0, "link_down", "x", "y"),
        (11.0, "recover", 1),
        (15.0, "link_up", "x", "y"),
        (24.0, "recover", 2),
    ]


def test_fail_at_helper_and_notice_skipped_for_down_node():
    world = FakeWorld()
    fail_at(world, 3, 7.5, duration_s=2.5)
    start_injector(
        world,
        [
            FailureEvent(time_s=1.0, kind="crash", nodes=(0,), duration_s=100.0),
            FailureEvent(time_s=50.0, kind="preempt", nodes=(0,), notice_s=30.0, duration_s=1.0),
        ],
    )
    world.env.run()
    assert (7.5, "fail", 3, "crash") in world.log and (10.0, "recover", 3) in world.log
    assert not any(entry[1] == "notice" for entry in world.log)  # node 0 was down at t=20
    assert world.log[-1] == (101.0, "recover", 0)
