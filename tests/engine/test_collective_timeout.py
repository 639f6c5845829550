"""A member that fails mid-collective blocks its peers for exactly the library's timeout.

Hand-worked story (uniform links, alpha = 20 ms, beta = 1 MB/s, m = 4 MB): three members start
a ring all-reduce at t = 0; it would take 4 alpha + (4/3) m / beta = 5.413 s. Member 2 fails at
t_f = 1 s. The survivors learn of it at t_f + T, then the group's rule applies:

- ``drop``: the round re-runs between the two survivors (2 alpha + m / beta = 4.04 s), done at
  t_f + T + 4.04 s;
- ``wait``: the round waits for member 2, back at 20 s, and re-runs among three from there.
"""

from __future__ import annotations

import pytest

from policies.data_parallel.group import SyncGroup
from sim import collectives as C
from sim.errors import CollectiveAborted

from .conftest import make_world

ALPHA, BETA, M = 0.02, 1e6, 4e6
T_FAIL = 1.0


def _story(timeout_s: float, on_failure: str = "drop", back_at_s: float | None = None):
    """Run the module's story; return ``(round done time, recorder)``."""
    world = make_world(3, model="maxmin", latency_s=ALPHA, bandwidth_Bps=BETA)
    group = SyncGroup(world, [0, 1, 2], nbytes=M, on_failure=on_failure, timeout_s=timeout_s)
    seen = {}

    def member(i):
        yield group.arrive(i, 0, None)
        seen.setdefault("done_s", world.now)

    def faults():
        yield world.env.timeout(T_FAIL)
        world.nodes[2].fail()
        if back_at_s is not None:
            yield world.env.timeout(back_at_s - T_FAIL)
            world.nodes[2].recover()
            group.arrive(2, 0, None)          # it redoes its part of the round

    for i in (0, 1):
        world.env.process(member(i))
    group.arrive(2, 0, None)
    world.env.process(faults())
    world.env.run(until=1000.0)
    return seen["done_s"], world


@pytest.mark.parametrize("timeout_s", [0.0, 10.0, 600.0])
def test_survivors_are_blocked_exactly_the_timeout_then_shrink(timeout_s):
    done_s, world = _story(timeout_s)
    assert done_s == pytest.approx(T_FAIL + timeout_s + C.ring_allreduce_cost(2, M, ALPHA, BETA),
                                   rel=1e-9)
    rec = world.recorder
    assert rec.bytes_sent.sum() == pytest.approx(rec.bytes_received.sum() + rec.bytes_cut.sum())


def test_wait_rule_reruns_among_all_once_the_member_is_back():
    done_s, _ = _story(10.0, on_failure="wait", back_at_s=20.0)
    assert done_s == pytest.approx(20.0 + C.ring_allreduce_cost(3, M, ALPHA, BETA), rel=1e-9)


def test_wait_rule_cannot_rerun_before_the_timeout_even_if_the_member_is_back():
    # back at 5 s, but the library still waits out its timeout (1 + 10 s) before re-running
    done_s, _ = _story(10.0, on_failure="wait", back_at_s=5.0)
    assert done_s == pytest.approx(T_FAIL + 10.0 + C.ring_allreduce_cost(3, M, ALPHA, BETA),
                                   rel=1e-9)


def test_a_collective_aborts_exactly_the_timeout_after_the_failure_and_cuts_its_flows():
    world = make_world(4, model="maxmin", latency_s=ALPHA, bandwidth_Bps=BETA)
    seen = {}

    def driver():
        try:
            yield C.ring_allreduce(world, world.nodes, M, timeout_s=7.0)
        except CollectiveAborted as exc:
            seen["failed"], seen["t"] = exc.failed, world.now
            seen["flows"] = world.network.active_flows

    def killer():
        yield world.env.timeout(0.5)
        world.nodes[2].fail()

    world.env.process(driver())
    world.env.process(killer())
    world.env.run()
    assert seen == {"failed": [2], "t": 7.5, "flows": 0}


def test_a_member_down_at_the_start_is_waited_for_the_timeout():
    world = make_world(3, model="maxmin", latency_s=ALPHA, bandwidth_Bps=BETA)
    world.nodes[1].fail()
    proc = C.ring_allreduce(world, world.nodes, M, timeout_s=3.0)
    with pytest.raises(CollectiveAborted):
        world.env.run(until=proc)
    assert world.now == pytest.approx(3.0)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan"), "10"])
def test_bad_timeout_names_the_field(bad):
    with pytest.raises(ValueError, match="collective_timeout_s"):
        SyncGroup(make_world(2), [0, 1], nbytes=1.0, timeout_s=bad)
