"""``experiments.recovery_connections``: the per-message log of the tcp transport's connections.

The experiment subclasses the transport's ``_next_message``; a change of that hook's signature
broke it silently once (session 10), so the log is checked here against what one connection per
ordered pair implies.
"""

from __future__ import annotations

import dataclasses

import sim.network as network_module
from experiments.recovery_connections import logging_connections
from experiments.recovery_family import ci_setup, params_for, scenario_of
from sim.policy import get_policy
from sim.runner import run


def test_every_connection_starts_cold_once_and_the_models_are_restored():
    originals = dict(network_module.MODELS)
    setup = dataclasses.replace(ci_setup(0.05), transport="tcp", until_s=20.0, target_loss=0.0)
    log: list[dict] = []
    with logging_connections(log):
        run(scenario_of(setup), get_policy("checkfree")(**params_for("checkfree", setup, {})))
    assert network_module.MODELS == originals
    pairs = {(r["src"], r["dst"]) for r in log}
    assert len(log) > len(pairs) > 0  # messages on warm or restarted connections too
    cold = [(r["src"], r["dst"]) for r in log if r["cold"]]
    assert sorted(cold) == sorted(pairs)  # the first message of each ordered pair, only that one
    assert all(r["waited_s"] >= 0.0 and r["idle_s"] >= 0.0 for r in log)
    assert {round(r["rto_s"], 3) for r in log} == {0.24}  # RTT 40 ms + min RTO 200 ms
