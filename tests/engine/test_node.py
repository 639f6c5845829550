"""Compute tasks, stragglers, failures seen by a process."""

from __future__ import annotations

import pytest

from sim.errors import NodeFailure, TransferCut

from .conftest import make_world


class Fixed:
    """A straggler model that always slows tasks down by ``factor``."""

    def __init__(self, factor: float) -> None:
        self.factor_value = factor

    def factor(self, node_id, rng):
        return self.factor_value


def test_compute_lasts_work_over_speed_times_straggler_factor():
    world = make_world(2, speeds=[1.0, 0.5], stragglers=Fixed(3.0), flops_per_s=1e12)
    a = world.nodes[0].compute(seconds=2.0)
    b = world.nodes[1].compute(flops=4e12)
    world.env.run()
    assert a.value == pytest.approx(2.0 * 3.0)
    assert b.value == pytest.approx(4.0 / 0.5 * 3.0)


def test_one_slot_runs_tasks_one_after_another_fifo():
    world = make_world(1)
    node = world.nodes[0]
    ends = []
    for d in (1.0, 2.0, 0.5):
        node.compute(seconds=d).callbacks.append(lambda _e: ends.append(world.now))
    world.env.run()
    assert ends == [1.0, 3.0, 3.5]
    two = make_world(1, slots=2)
    ends.clear()
    for d in (1.0, 2.0, 0.5):
        two.nodes[0].compute(seconds=d).callbacks.append(lambda _e: ends.append(two.now))
    two.env.run()
    assert ends == [1.0, 1.5, 2.0]


def test_failure_mid_compute_and_mid_transfer_reaches_the_process_as_an_exception():
    world = make_world(2, bandwidth_Bps=1e6)
    seen = []

    def worker():
        try:
            yield world.nodes[0].compute(seconds=10.0)
        except NodeFailure as exc:
            seen.append(("compute", exc.node_id, world.now))
        yield world.nodes[0].recovered_event()
        try:
            yield world.network.transfer(0, 1, 10e6)
        except TransferCut as exc:
            seen.append(("transfer", exc.dst, world.now, exc.delivered_bytes))

    def watcher():
        reason = yield world.nodes[0].failed_event()
        seen.append(("failed_event", reason, world.now))

    def chaos():
        yield world.env.timeout(3.0)
        world.nodes[0].fail("crash")
        yield world.env.timeout(1.0)
        world.nodes[0].recover()
        yield world.env.timeout(2.0)
        world.nodes[1].fail("preempted")

    for gen in (worker(), watcher(), chaos()):
        world.env.process(gen)
    world.env.run()
    assert seen == [("compute", 0, 3.0), ("failed_event", "crash", 3.0),
                    ("transfer", 1, 6.0, pytest.approx(2e6))]
    breakdown = world.recorder.node_time_breakdown().set_index("node")
    assert breakdown.loc[0, "busy_s"] == pytest.approx(3.0)
    assert breakdown.loc[0, "down_s"] == pytest.approx(1.0)
    assert breakdown.loc[0, "comm_s"] == pytest.approx(2.0)


def test_compute_on_a_down_node_fails_at_once():
    world = make_world(1)
    world.nodes[0].fail()
    ev = world.nodes[0].compute(seconds=1.0)
    world.env.run()
    assert isinstance(ev.value, NodeFailure)


def test_memory_allocation_respects_capacity():
    world = make_world(1, memory_bytes=100.0)
    node = world.nodes[0]
    assert node.allocate(60) and not node.allocate(50)
    node.free(60)
    assert node.allocate(100)


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="compute"):
        make_world(1).nodes[0].compute()
    with pytest.raises(ValueError, match="cluster.speed"):
        make_world(1, speeds=[0.0])
    with pytest.raises(ValueError, match="network.model"):
        make_world(1, model="fluid")
