"""DiLoCo and DDP under a crash in the middle of their all-reduce, with the library's timeout.

Four workers, 1 Gbit/s links 10 ms apart (fluid transport: the ring matches its closed form).
Worker 3 crashes 5 ms into the first outer all-reduce (its first messages are still on the
wire) and stays down 60 s. The survivors' wait at that round is hand-computed: the 5 ms already
spent, the timeout T, then the ring among the three survivors,
4 alpha + (4/3) m / beta.
"""

from __future__ import annotations

import pytest

from sim import collectives as C
from tests.data_parallel.helpers import crash_trace, run_policy, tiny_scenario

ALPHA, BETA = 0.010, 1e9 / 8
INTO_S = 0.005


def _sync_of_first_round(tmp_path, policy, timeout_s, **params):
    plain = tiny_scenario(policy, nodes=4, steps=12, timing_only=True,
                          network={"transport": "fluid"}, **params)
    _, pol = run_policy(plain)
    H = params.get("inner_steps", 1)
    fail_s = H * pol.step_s + INTO_S
    scen = tiny_scenario(policy, nodes=4, steps=12, timing_only=True,
                         network={"transport": "fluid"}, collective_timeout_s=timeout_s,
                         failures=crash_trace(tmp_path, [(fail_s, 3, 60.0)]), **params)
    result, pol = run_policy(scen)
    h = result.history
    syncs = h[(h.metric == "sync_s") & (h.node == 0)].sort_values("time_s")
    return float(syncs.value.iloc[0]), pol


@pytest.mark.parametrize("timeout_s", [0.0, 2.0, 30.0])
def test_diloco_survivors_wait_exactly_the_timeout_then_reduce_among_three(tmp_path, timeout_s):
    sync_s, pol = _sync_of_first_round(tmp_path, "diloco", timeout_s, inner_steps=3)
    ring3 = C.ring_allreduce_cost(3, pol.timing.grad_bytes, ALPHA, BETA)
    assert sync_s == pytest.approx(INTO_S + timeout_s + ring3, rel=1e-6)


def test_bad_collective_timeout_is_refused_naming_the_field():
    from policies.data_parallel.ddp import DDPConfig
    from policies.data_parallel.diloco import DiLoCoConfig

    for config in (DiLoCoConfig, DDPConfig):
        with pytest.raises(ValueError, match="collective_timeout_s"):
            config(collective_timeout_s=-1.0)
