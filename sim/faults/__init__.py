"""Fault models: stragglers (per-task slowdowns) and failures (nodes, links, partitions).

Pure models that produce numbers or schedules live in :mod:`~sim.faults.stragglers`,
:mod:`~sim.faults.bursty`, :mod:`~sim.faults.failures` and :mod:`~sim.faults.traces`; only
:mod:`~sim.faults.injector` touches SimPy.
"""

from sim.faults.bursty import check_bursty_pattern, generate_bursty_pattern, max_straggle_fraction
from sim.faults.failures import (
    CombinedFailures,
    Downtime,
    FailureEvent,
    FailureModel,
    GroupFailures,
    LinkDown,
    NoFailures,
    Partition,
    PoissonCrashes,
    SpotPreemption,
    TraceFailures,
    draw_stage_failures,
    make_failure_model,
    p_iter,
    partition_cut_links,
)
from sim.faults.injector import fail_at, start_injector
from sim.faults.stages import StageFailure, StageFailureSchedule, StageFailuresConfig
from sim.faults.stragglers import (
    Bimodal,
    BurstyPattern,
    GilbertElliott,
    LogNormal,
    NoStragglers,
    Pareto,
    PerNodeModels,
    ShiftedExponential,
    StragglerModel,
    TraceReplay,
    make_straggler_model,
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


def _register_fault_models() -> None:
    """Make every straggler and failure model a ``sim.components`` entry (``dtsim list``).

    These models still take their scenario table (a spec dict in SI units) rather than a typed
    Config: ``build(spec, **context)`` is :func:`make_straggler_model` or
    :func:`make_failure_model`.
    """
    from sim import components
    from sim.faults import failures, stragglers

    for kind, module, make in (("stragglers", stragglers, make_straggler_model),
                               ("failures", failures, make_failure_model)):
        for name, (required, optional) in module.PARAMETERS.items():
            components.register(kind, name, build=make,
                                parameters=(*sorted(required), *sorted(optional)),
                                summary=f"{kind} model {name!r}")


_register_fault_models()
