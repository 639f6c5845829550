"""The preset registry, determinism of every preset, and the docs page."""

from pathlib import Path

import pytest

import topologies
from topologies import PRESETS, Topology, get_topology

LINK = dict(latency_s=0.01, bandwidth_Bps=1.25e8)
EXAMPLE_PARAMS = {
    "clusters-of-clusters": dict(
        num_nodes=8,
        num_clusters=2,
        intra_latency_s=1e-4,
        intra_bandwidth_Bps=1.25e10,
        wan_latency_s=0.03,
        wan_bandwidth_Bps=1.25e8,
    ),
    "gcp-12-regions": dict(num_nodes=16, placement="random", seed=1),
    "random-regular": dict(num_nodes=12, degree=3, seed=1, **LINK),
    "residential": dict(num_nodes=8, seed=1, bandwidth_sigma=0.2),
    "ring": dict(num_nodes=8, **LINK),
    "star": dict(num_nodes=8, **LINK),
    "torus-2d": dict(rows=3, cols=4, **LINK),
    "uniform": dict(num_nodes=8, **LINK),
}
SEEDED = ["gcp-12-regions", "random-regular", "residential"]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "topologies.md"


def fingerprint(topo: Topology):
    return (
        list(topo.graph.nodes(data=True)),
        list(topo.graph.edges(data=True)),
        topo.node_sites,
        topo.uplink_Bps,
        topo.downlink_Bps,
        topo.access_latency_s,
    )


def test_every_preset_has_an_example():
    assert sorted(EXAMPLE_PARAMS) == sorted(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_is_deterministic(name):
    a = get_topology(name, **EXAMPLE_PARAMS[name])
    b = get_topology(name, **EXAMPLE_PARAMS[name])
    assert isinstance(a, Topology) and a.num_nodes() >= 1
    assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize("name", SEEDED)
def test_seeded_presets_change_with_the_seed(name):
    a = get_topology(name, **EXAMPLE_PARAMS[name])
    b = get_topology(name, **{**EXAMPLE_PARAMS[name], "seed": 2})
    assert fingerprint(a) != fingerprint(b)


def test_presets_that_need_only_a_size():
    assert get_topology("uniform", num_nodes=3).num_nodes() == 3
    assert get_topology("gcp-12-regions", num_nodes=3).num_nodes() == 3
    assert get_topology("residential", num_nodes=3, seed=0).num_nodes() == 3


def test_unknown_preset_lists_the_allowed_names():
    with pytest.raises(ValueError, match="unknown preset 'mesh'.*'gcp-12-regions'.*'uniform'"):
        get_topology("mesh", num_nodes=4)


def test_wrong_parameters_list_the_preset_parameters():
    with pytest.raises(ValueError, match="ring.*latency_s"):
        get_topology("ring", num_nodes=4, latency=0.01, bandwidth_Bps=1e6)
    with pytest.raises(ValueError, match="ring"):
        get_topology("ring", num_nodes=4)  # latency_s and bandwidth_Bps are required


def test_docs_cover_every_preset_and_public_name():
    text = DOCS.read_text(encoding="utf-8")
    for name in PRESETS:
        assert f"`{name}`" in text, name
    for name in topologies.__all__:
        assert name in text, name
