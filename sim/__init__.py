"""dtsim: a discrete-event simulator of decentralized training over slow networks.

SimPy keeps simulated time, real PyTorch steps produce real losses, and explicit compute and
network models decide how long everything takes. The public API is small:

- describe a scenario: :func:`load_scenario` (TOML/YAML), :class:`ScenarioBuilder`, or the
  dataclasses :class:`Scenario`, :class:`ClusterConfig`, :class:`NetworkConfig`,
  :class:`FaultsConfig`, :class:`PolicyConfig`, :class:`RunConfig`;
- run it: :func:`run` (one policy -> :class:`Result`), :func:`compare` (several ->
  :class:`Comparison`), :func:`sweep` (a parameter grid, in parallel, resumable);
- regressions in pytest: :func:`speedup`, :func:`assert_speedup`;
- write a method: :class:`Policy`, :func:`register_policy`, :class:`RunContext`,
  :func:`policy_names`, with :class:`World`, :class:`Node`, :mod:`sim.collectives` and the
  failures :class:`SimFailure`, :class:`NodeFailure`, :class:`TransferCut`,
  :class:`CollectiveAborted`;
- bad input raises :class:`ScenarioError` naming the field.

See docs/api.md.
"""

from sim import collectives
from sim.compare import Comparison, compare
from sim.config import (
    ClusterConfig,
    FaultsConfig,
    NetworkConfig,
    PolicyConfig,
    RunConfig,
    Scenario,
)
from sim.errors import CollectiveAborted, NodeFailure, ScenarioError, SimFailure, TransferCut
from sim.node import Node
from sim.policy import Policy, RunContext, policy_names, register_policy
from sim.runner import Result, RunFailed, run
from sim.scenario import ScenarioBuilder, load_scenario
from sim.seeds import SeedTree
from sim.sweep import sweep
from sim.testing import assert_speedup, speedup
from sim.world import World

__all__ = [
    "ClusterConfig",
    "CollectiveAborted",
    "Comparison",
    "FaultsConfig",
    "NetworkConfig",
    "Node",
    "NodeFailure",
    "Policy",
    "PolicyConfig",
    "Result",
    "RunConfig",
    "RunContext",
    "RunFailed",
    "Scenario",
    "ScenarioBuilder",
    "ScenarioError",
    "SeedTree",
    "SimFailure",
    "TransferCut",
    "World",
    "assert_speedup",
    "collectives",
    "compare",
    "load_scenario",
    "policy_names",
    "register_policy",
    "run",
    "speedup",
    "sweep",
]
