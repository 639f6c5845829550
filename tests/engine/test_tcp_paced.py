"""The ``tcp`` transport's paced rounds (``TcpConfig.rounds = "paced"``) and the rate caps they use.

A paced round of window W and round-trip time tau that does not hold its message's last bytes
keeps the connection on its links at a rate cap of W / tau (one rate change per round, none
while the window does not change); the round that holds the last bytes is a burst, as in the
burst model. Oracles:

- closed forms and the burst model on lone flows: a lone flow moves the same bytes per round
  (min(W, r tau)) and ends at the same instant (:func:`sim.network.tcp.slow_start_send_time_s`),
  to ``PACED_REL`` = 1e-9 relative;
- a hand-worked max-min allocation with caps (a capped flow frees capacity for the others),
  in both fillings; the oracle of ``test_maxmin_oracle.py`` (global water-filling with each
  cap as a link of one flow) for whole runs is ``test_paced_tcp_rounds_on_maxmin_equal_the_oracle``
  there;
- the per-round mechanism for the closed-form ramps (``lone_ramps = False``), as
  ``test_tcp_ramp.py`` does for burst rounds;
- invariants: bytes sent = received + cut with failures, the same trace hash for the same seed.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cli import main
from sim.config import NetworkConfig
from sim.errors import FieldError, ScenarioError
from sim.network.tcp import TcpConfig, slow_start_send_time_s
from sim.scenario import load
from sim.world import World
from topologies import uniform

from .conftest import make_world, ring_run_summary
from .test_tcp_ramp import EFF, assert_runs_agree, configs, faults, plans, run, topologies_

PACED_REL = 1e-9
"""Stated tolerance: a lone flow's paced rounds end where its burst rounds do, to this."""

PACED = TcpConfig(rounds="paced")


def lone_end(model: str, rounds: str, nbytes: float, bandwidth_Bps: float, latency_s: float,
             max_window_bytes: float, ramps: bool) -> tuple[float, World]:
    """One message from node 0 to node 1 of a switch; its delivery time and the world."""
    world = make_world(2, model=model, latency_s=latency_s, bandwidth_Bps=bandwidth_Bps,
                       transport="tcp",
                       tcp=TcpConfig(rounds=rounds, max_window_bytes=max_window_bytes))
    world.network.lone_ramps = ramps
    event = world.network.transfer(0, 1, nbytes)
    world.env.run()
    return event.value.end_s, world


# -- lone flows: the same instant as the burst model and the closed form -----------------------

@pytest.mark.parametrize("model", ["ideal", "maxmin"])
@pytest.mark.parametrize(("nbytes", "bandwidth_Bps", "latency_s", "cap"), [
    (10e6, 12.5e6, 0.075, 4 * 2**20),   # slow start to a full pipe (test_tcp.py's example)
    (1e6, 12.5e6, 0.075, 4 * 2**20),    # ends inside slow start
    (100e6, 125e6, 0.075, 4 * 2**20),   # window-capped rounds after slow start (31 rounds)
    (3e6, 1e6, 0.02, 65536.0),          # capped below the pipe, 46 rounds
    (16 * 65536.0, 1e6, 0.02, 65536.0),  # whole windows: the last round is a window
])
def test_a_lone_message_ends_as_in_the_burst_model_and_the_closed_form(
        model, nbytes, bandwidth_Bps, latency_s, cap):
    """Per round both move min(W, r tau): paced at W / tau for tau, burst at r for W / r; the
    last round is a burst in both. RTT = twice the one-way latency."""
    rate = bandwidth_Bps * EFF
    closed = slow_start_send_time_s(nbytes, 2 * latency_s, rate, max_window_bytes=cap) + latency_s
    burst, _ = lone_end(model, "burst", nbytes, bandwidth_Bps, latency_s, cap, ramps=False)
    paced, world = lone_end(model, "paced", nbytes, bandwidth_Bps, latency_s, cap, ramps=False)
    assert paced == pytest.approx(burst, rel=PACED_REL)
    assert paced == pytest.approx(closed, rel=PACED_REL)
    assert world.network.rounds_paced > 0  # (every round but the last, or none past a full one)


@settings(max_examples=80, deadline=None)
@given(nbytes=st.floats(1e3, 5e7), bandwidth_Bps=st.sampled_from([1e6, 12.5e6, 125e6]),
       latency_s=st.sampled_from([0.0005, 0.005, 0.03, 0.075]),
       cap=st.sampled_from([65536.0, 4 * 2**20, 1e12]), model=st.sampled_from(["ideal", "maxmin"]))
def test_lone_messages_of_any_size_end_at_the_closed_forms_instant(nbytes, bandwidth_Bps,
                                                                  latency_s, cap, model):
    closed = (slow_start_send_time_s(nbytes, 2 * latency_s, bandwidth_Bps * EFF,
                                     max_window_bytes=cap) + latency_s)
    paced, _ = lone_end(model, "paced", nbytes, bandwidth_Bps, latency_s, cap, ramps=False)
    assert paced == pytest.approx(closed, rel=PACED_REL)


def test_window_capped_rounds_past_slow_start_cost_no_event():
    """100 MB over 1 Gbit/s, 150 ms RTT, 4 MiB cap (test_tcp.py's capped example), per round on
    the clock: the burst model puts a chunk on and off the link every capped round (two SimPy
    events and two re-ratings per round); paced, the cap does not change after slow start, and
    the round that holds the last bytes cannot come before ceil(rest / W) - 1 rounds, so the
    connection wakes once for all of them. Same end, same rounds counted."""
    burst, slow = lone_end("maxmin", "burst", 100e6, 125e6, 0.075, 4 * 2**20, ramps=False)
    paced, fast = lone_end("maxmin", "paced", 100e6, 125e6, 0.075, 4 * 2**20, ramps=False)
    assert paced == pytest.approx(burst, rel=PACED_REL)
    assert fast.network.rounds_started == slow.network.rounds_started == 32
    # rounds 0-8 (slow start) cost a wake and a re-rating each in both; rounds 9-30 (capped)
    # two SimPy events and two re-ratings each in the burst model, one wake in all paced
    assert slow.env.events_processed - fast.env.events_processed >= 30
    assert slow.network.reallocations - fast.network.reallocations >= 20


# -- the per-flow rate cap in the solver, by hand ------------------------------------------------

@pytest.mark.parametrize("min_flows", [64, 1])  # the Python filling, and numpy's for every region
def test_a_capped_flow_frees_capacity_for_the_others(min_flows):
    """Node 0's uplink 10 B/s carries a (0 -> 2) and b (0 -> 1); node 1's downlink 20 B/s
    carries b and c (3 -> 1). Max-min: a = b = 5 (uplink), c = 15. With a capped at 2:
    b = 8 (the uplink's rest), c = 12. With the cap raised to 7 (above a's share of 5): 5, 5,
    15 again; cap removed: the same."""
    world = make_world(4, uplink=(10.0, None, None, None), downlink=(None, 20.0, None, None))
    net = world.network
    net.vector_min_flows = min_flows
    a, b, c = (net.transfer(src, dst, 1e6) for src, dst in ((0, 2), (0, 1), (3, 1)))
    world.env.run(until=1.0)
    flows = {name: net._flows[event] for name, event in zip("abc", (a, b, c))}

    def rates() -> tuple[float, ...]:
        world.env.run(until=world.now + 1.0)  # (the coalesced re-rating runs at the instant's end)
        return tuple(flows[name].rate for name in "abc")

    assert rates() == pytest.approx((5.0, 5.0, 15.0), rel=1e-12)
    net._set_cap(flows["a"], 2.0)
    assert rates() == pytest.approx((2.0, 8.0, 12.0), rel=1e-12)
    net._set_cap(flows["a"], 7.0)
    assert rates() == pytest.approx((5.0, 5.0, 15.0), rel=1e-12)
    before = net.reallocations
    net._set_cap(flows["a"], 6.0)  # above its rate, and a link holds it: nothing to re-rate
    assert rates() == pytest.approx((5.0, 5.0, 15.0), rel=1e-12)
    assert net.reallocations == before
    net._set_cap(flows["a"], float("inf"))
    assert rates() == pytest.approx((5.0, 5.0, 15.0), rel=1e-12)


def test_a_capped_flow_alone_and_under_ideal_gets_its_cap():
    """A new flow alone on its links (``_start_alone``) and every flow under ``ideal``: rate =
    min(cap, bottleneck); its bytes end at remaining / cap, and a cap changed mid-way
    re-times it (10 B at 2 B/s for 1 s, then the cap goes: 8 B at the 4 B/s link)."""
    for model in ("maxmin", "ideal"):
        world = make_world(2, model=model, uplink=(4.0, None))
        net = world.network
        flow_event = net.transfer(0, 1, 10.0)
        flow = net._flows[flow_event]
        net._set_cap(flow, 2.0)
        world.env.run(until=1e-9)
        if model == "maxmin":  # (it started uncapped alone: the cap re-rates it)
            assert flow.rate == 2.0
        world.env.run(until=1.0)
        net._set_cap(flow, float("inf"))
        world.env.run()
        assert flow_event.value.end_s == pytest.approx(1.0 + (10.0 - 2.0) / 4.0, rel=1e-12)


# -- the closed-form ramps and paced rounds, with failures -------------------------------------

paced_configs = configs.map(lambda c: dataclasses.replace(c, rounds="paced",
                                                          hystart_delay_exit=False))


@settings(max_examples=100, deadline=None)
@given(topology=topologies_(), model=st.sampled_from(["ideal", "maxmin"]), tcp=paced_configs,
       plan=plans, fault_plan=faults)
def test_closed_form_ramps_equal_paced_rounds_on_the_clock(topology, model, tcp, plan,
                                                           fault_plan):
    """A lone connection's rounds in closed form (burst rounds, the same bytes and instants
    alone) against every round paced on the clock: every delivery and cut time, every byte
    count and each link's bytes (``assert_runs_agree``), the same rounds."""
    got, fast = run(topology, model, tcp, plan, fault_plan, ramps=True)
    want, slow = run(topology, model, tcp, plan, fault_plan, ramps=False)
    assert_runs_agree(got, fast, want, slow)


@settings(max_examples=60, deadline=None)
@given(topology=topologies_(), tcp=paced_configs, plan=plans, fault_plan=faults)
def test_paced_rounds_keep_every_byte_accounted_for(topology, tcp, plan, fault_plan):
    """Failures cut paced rounds mid-way: bytes sent = received + cut, nothing in flight."""
    _, world = run(topology, "maxmin", tcp, plan, fault_plan, ramps=False)
    rec = world.recorder
    assert sum(rec.bytes_sent) == pytest.approx(sum(rec.bytes_received) + sum(rec.bytes_cut),
                                                rel=1e-12, abs=1e-9)
    assert world.network.active_flows == 0


def test_the_same_seed_gives_the_same_trace(tmp_path):
    """A whole run (4 nodes, DDP's ring over 100 Mbit/s access links, 10 ms, maxmin) with paced
    rounds: the same summary and trace hash twice, and not the burst model's events."""
    def summary(rounds: str) -> tuple[dict, str]:
        return ring_run_summary(tmp_path, f'rounds = "{rounds}"\n', rounds)

    paced = summary("paced")
    assert paced == summary("paced")
    assert paced[0]["events"] != summary("burst")[0]["events"]


# -- what paced rounds refuse ------------------------------------------------------------------

@pytest.mark.parametrize(("tail", "words"), [
    ('rounds = "paced"\nhystart_delay_exit = true', "hystart_delay_exit=True"),
    ('rounds = "paced"\nbottleneck_queue = "40ms"', "bottleneck_queue=40 ms"),
    ('rounds = "paced"\nbottleneck_queue = "500000B"', "bottleneck_queue=500000 B"),
])
def test_paced_rounds_refuse_the_options_made_of_burst_rounds(tmp_path, capsys, tail, words):
    """HyStart's delay exit (its burst queue) and the bottleneck buffer (rounds of RTT + the
    queueing delay): exit 2 with one line naming ``network.tcp.rounds`` and the option."""
    from tests.product.test_field_errors import MINIMAL_TOML

    with pytest.raises(FieldError) as raised:
        TcpConfig(rounds="paced", hystart_delay_exit=True)
    assert raised.value.field == "rounds"
    path = tmp_path / "s.toml"
    path.write_text(MINIMAL_TOML.format(nodes=4, network="", policy="ddp",
                                        tail=f"[network.tcp]\n{tail}\n"))
    with pytest.raises(ScenarioError) as refused:
        load(path)
    assert refused.value.field == "network.tcp.rounds"
    assert words in refused.value.message and "rounds = 'burst'" in refused.value.message
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "network.tcp.rounds" in err[0] and words in err[0]


def test_an_unknown_round_model_is_refused_naming_the_field():
    with pytest.raises(FieldError, match="must be one of 'burst', 'paced', got 'smooth'"):
        TcpConfig(rounds="smooth")


def test_paced_rounds_are_the_default_except_where_an_option_needs_bursts():
    """Unset, ``rounds`` is paced; HyStart's delay exit or a buffer (either unit) runs bursts."""
    assert TcpConfig().rounds is None and TcpConfig().round_model == "paced"
    world = World(uniform(2), network=NetworkConfig(transport="tcp"))
    assert world.network.is_tcp and world.network._paced
    for options in ({"hystart_delay_exit": True}, {"bottleneck_queue_bytes": 5e5},
                    {"bottleneck_queue_s": 0.04}):
        assert TcpConfig(**options).round_model == "burst"
        world = World(uniform(2), network=NetworkConfig(transport="tcp", tcp=TcpConfig(**options)))
        assert not world.network._paced
    assert TcpConfig(rounds="burst").round_model == "burst"
    assert TcpConfig(rounds="paced").round_model == "paced"


def test_a_cut_inside_a_wake_over_several_shared_rounds_leaves_the_next_message_one_window():
    """Found by review: 0 -> 1 sends 20 MB with 2 MB queued behind it on a 65,536 B window
    (20 ms RTT, cap 3.3 MB/s: past slow start one wake covers many rounds). Three fan-ins into
    node 1 hold it below its cap from 0.3 s; the 20 MB is cancelled at 1.007 s, inside such a
    wake. The rounds passed over count a window each but moved less; the count of the round
    in progress must not go below zero, or the 2 MB would take more than a window at once
    (it arrived 57 ms early: 1.5763 s against 1.6128 s)."""
    world = make_world(5, model="maxmin", latency_s=0.01, bandwidth_Bps=12.5e6, transport="tcp",
                       tcp=TcpConfig(rounds="paced", max_window_bytes=65536.0))
    net, env = world.network, world.env
    seen: dict = {}

    def scenario():
        first, second = net.transfer(0, 1, 20e6), net.transfer(0, 1, 2e6)
        yield env.timeout(0.3)
        for sender in (2, 3, 4):
            net.transfer(sender, 1, 1.5e6)
        yield env.timeout(0.707)
        net.cancel(0, first)
        conn = net._connections[(0, 1)]
        seen["round_sent"], seen["window"] = conn.round_sent, conn.round_window
        seen["end_s"] = (yield second).end_s

    env.process(scenario())
    env.run()
    assert 0.0 <= seen["round_sent"] <= seen["window"]
    assert seen["end_s"] > 1.6  # one window in the round in progress, not 2.7 of them
    recorder = world.recorder
    assert sum(recorder.bytes_sent) == pytest.approx(
        sum(recorder.bytes_received) + sum(recorder.bytes_cut), rel=1e-12)


@pytest.mark.parametrize("model", ["ideal", "maxmin"])
@pytest.mark.parametrize("eps", [0.0, 5e-10, 2e-9])
def test_a_rest_just_above_a_window_goes_a_round_later_as_in_the_burst_model(model, eps):
    """Found by review: 14,480 + 28,960 x (1 + eps) bytes, 100 Mbit/s, 10 ms one way. Round 0
    sends 14,480 B, round 1 leaves 28,960 (1 + eps): a whole window when eps = 0 (the last
    round, 32.4 ms); above it, a window and the tiny rest a round trip later (50 ms), as the
    closed form has it. The tie slack is rounding (1e-12), not 1e-9."""
    nbytes = 14480 + 28960 * (1 + eps)
    expected = slow_start_send_time_s(nbytes, 0.02, 12.5e6 * EFF) + 0.01
    end_s, _ = lone_end(model, "paced", nbytes, 12.5e6, 0.01, 4 * 2**20, ramps=False)
    assert end_s == pytest.approx(expected, rel=1e-9)
    assert end_s == pytest.approx(0.032422 if eps == 0 else 0.05, abs=1e-6)
