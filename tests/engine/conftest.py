"""Small worlds for engine tests."""

from __future__ import annotations

import dataclasses

import pytest

from sim.config import NetworkConfig
from sim.world import World
from topologies import uniform

BIG = 1e18  # a core so fast it never limits a flow
NETWORK_FIELDS = ("tcp", "tcp_efficiency", "access_latency_s")
"""Keyword arguments of make_world that are fields of the world's NetworkConfig."""


def make_world(num_nodes: int, *, model: str = "maxmin", latency_s: float = 0.0,
               bandwidth_Bps: float = BIG, uplink=None, downlink=None, transport: str = "fluid",
               **kwargs) -> World:
    """``num_nodes`` behind one switch; optional per-node access capacities (None = unlimited).

    The transport is ``fluid`` unless a test asks for ``tcp``: the engine tests check the
    fluid models against closed forms (latency + bytes / rate); ``test_tcp.py`` checks the
    ``tcp`` transport (the product's default) on top of them.
    """
    topo = uniform(num_nodes, latency_s=latency_s, bandwidth_Bps=bandwidth_Bps)
    if uplink is not None or downlink is not None:
        topo = dataclasses.replace(topo, uplink_Bps=uplink, downlink_Bps=downlink)
    network = {k: kwargs.pop(k) for k in NETWORK_FIELDS if k in kwargs}
    return World(topo, network=NetworkConfig(model=model, transport=transport, **network),
                 **kwargs)


@pytest.fixture(params=["ideal", "maxmin"])
def model(request):
    return request.param


def ring_run_summary(tmp_path, tcp_lines: str, name: str = "s") -> tuple[dict, str]:
    """A whole scenario run: DDP's ring over 4 nodes behind 100 Mbit/s access links, 10 ms,
    ``maxmin``, with ``tcp_lines`` as its ``[network.tcp]`` table; its summary without the wall
    time, and its trace hash (for same-result and same-trace checks of transport options)."""
    from sim import run
    from sim.scenario import load
    from tests.product.test_field_errors import MINIMAL_TOML

    text = MINIMAL_TOML.replace('model = "ideal"', 'model = "maxmin"').format(
        nodes=4, policy="ddp",
        network='uplink = "100Mbit/s"\ndownlink = "100Mbit/s"\nlatency = "10ms"',
        tail=f"[network.tcp]\n{tcp_lines}")
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    result = run(load(path), "ddp")
    return {k: v for k, v in result.summary.items() if k != "wall_time_s"}, result.trace_hash()
