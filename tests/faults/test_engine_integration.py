"""The fault models on the real engine (sim.world.World): the contract the injector relies on.

Story tests: exact (time, kind) lists of recorded events, and what a worker process sees.
"""

from __future__ import annotations

import topologies
from sim.errors import NodeFailure
from sim.faults import Bimodal, FailureEvent, start_injector
from sim.world import World


def run_workers(world, tasks=5, seconds=1.0):
    log = []

    def worker(node):
        try:
            for _ in range(tasks):
                yield node.compute(seconds=seconds)
                log.append((world.now, node.id, "done"))
        except NodeFailure:
            log.append((world.now, node.id, "failed"))

    for node in world.nodes:
        world.env.process(worker(node))
    return log


def recorded(world):
    events = world.recorder.events()
    return list(zip(events["time_s"], events["kind"], events["node"].fillna(-1).astype(int)))


def test_preemption_story_on_the_engine():
    world = World(topologies.get_topology("uniform", num_nodes=3), seed=1)
    log = run_workers(world)
    kill = FailureEvent(time_s=2.5, kind="preempt", nodes=(1,), notice_s=1.0, duration_s=1.0)
    start_injector(world, [kill])
    world.env.run(until=20)
    assert recorded(world) == [
        (1.5, "preemption_notice", 1),
        (2.5, "fault", 1),
        (2.5, "failure", 1),
        (3.5, "recovery", 1),
    ]
    assert (2.5, 1, "failed") in log  # the task in flight on node 1 fails at the kill
    assert [t for t, node, what in log if node == 0] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_partition_by_groups_cuts_the_topology_links():
    world = World(topologies.get_topology("uniform", num_nodes=3), seed=1)
    # sites n0..n2 hang off one switch; isolating n2 cuts exactly the edge n2-switch
    cut = FailureEvent(time_s=1.0, kind="partition", groups=(("n2",),), duration_s=2.0)
    start_injector(world, [cut])
    world.env.run(until=10)
    events = world.recorder.events()
    links = events[events["kind"].isin(["link_down", "link_up"])]
    assert list(zip(links["time_s"], links["kind"])) == [(1.0, "link_down"), (3.0, "link_up")]
    assert set(links["link"]) <= {"n2-switch", "switch-n2"}


def test_straggler_factors_come_from_the_worlds_streams():
    def finish_times(seed):
        world = World(
            topologies.get_topology("uniform", num_nodes=4),
            seed=seed,
            stragglers=Bimodal(p=0.5, slowdown=3.0),
        )
        log = run_workers(world, tasks=20)
        world.env.run()
        return sorted(log)

    a, b, c = finish_times(7), finish_times(7), finish_times(8)
    assert a == b and a != c
    # each task takes 1 s or 3 s, so every finish time is a whole number of seconds
    assert all(float(t).is_integer() for t, _, _ in a)
    assert max(t for t, _, _ in a) > 20  # some tasks straggled
