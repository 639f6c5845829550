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
