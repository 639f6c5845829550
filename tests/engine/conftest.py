"""Small worlds for engine tests."""

from __future__ import annotations

import dataclasses

import pytest

from sim.world import World
from topologies import uniform

BIG = 1e18  # a core so fast it never limits a flow


def make_world(num_nodes: int, *, model: str = "maxmin", latency_s: float = 0.0,
               bandwidth_Bps: float = BIG, uplink=None, downlink=None, **kwargs) -> World:
    """``num_nodes`` behind one switch; optional per-node access capacities (None = unlimited)."""
    topo = uniform(num_nodes, latency_s=latency_s, bandwidth_Bps=bandwidth_Bps)
    if uplink is not None or downlink is not None:
        topo = dataclasses.replace(topo, uplink_Bps=uplink, downlink_Bps=downlink)
    return World(topo, network=model, **kwargs)


@pytest.fixture(params=["ideal", "maxmin"])
def model(request):
    return request.param
