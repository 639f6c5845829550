"""Fault models: stragglers (per-task slowdowns) and failures (nodes, links, partitions, stages).

Pure models that produce numbers or schedules live in :mod:`~sim.faults.stragglers`,
:mod:`~sim.faults.bursty`, :mod:`~sim.faults.failures` (the contract and node failures),
:mod:`~sim.faults.link_failures`, :mod:`~sim.faults.group_failures`, :mod:`~sim.faults.stages` and
:mod:`~sim.faults.traces`; only :mod:`~sim.faults.injector` touches SimPy. Each built-in model
is a component (:mod:`sim.components`) with a typed Config, registered by its own module:
:mod:`~sim.faults.straggler_configs`, :mod:`~sim.faults.failure_configs` and ``stage`` in
:mod:`~sim.faults.stages`.
"""

from sim.faults.bursty import check_bursty_pattern, generate_bursty_pattern, max_straggle_fraction
from sim.faults.failure_configs import make_failure_model
from sim.faults.failures import (
    CombinedFailures,
    Downtime,
    FailureEvent,
    FailureModel,
    NoFailures,
    PoissonCrashes,
    SpotPreemption,
    TraceFailures,
)
from sim.faults.group_failures import GroupFailures, draw_stage_failures, p_iter
from sim.faults.injector import fail_at, start_injector
from sim.faults.link_failures import LinkDown, Partition, partition_cut_links
from sim.faults.node_stragglers import BurstyPattern, GilbertElliott, PerNodeModels, TraceReplay
from sim.faults.stages import StageFailure, StageFailureSchedule, StageFailuresConfig
from sim.faults.straggler_configs import make_straggler_model
from sim.faults.stragglers import (
    Bimodal,
    LogNormal,
    NoStragglers,
    Pareto,
    ShiftedExponential,
    StragglerModel,
    speed_multipliers,
)
from sim.faults.traces import read_failure_trace, read_straggler_trace, write_failure_trace

__all__ = [
    "Bimodal",
    "BurstyPattern",
    "CombinedFailures",
    "Downtime",
    "FailureEvent",
    "FailureModel",
    "GilbertElliott",
    "GroupFailures",
    "LinkDown",
    "LogNormal",
    "NoFailures",
    "NoStragglers",
    "Pareto",
    "Partition",
    "PerNodeModels",
    "PoissonCrashes",
    "ShiftedExponential",
    "SpotPreemption",
    "StageFailure",
    "StageFailureSchedule",
    "StageFailuresConfig",
    "StragglerModel",
    "TraceFailures",
    "TraceReplay",
    "check_bursty_pattern",
    "draw_stage_failures",
    "fail_at",
    "generate_bursty_pattern",
    "make_failure_model",
    "make_straggler_model",
    "max_straggle_fraction",
    "p_iter",
    "partition_cut_links",
    "read_failure_trace",
    "read_straggler_trace",
    "speed_multipliers",
    "start_injector",
    "write_failure_trace",
]

