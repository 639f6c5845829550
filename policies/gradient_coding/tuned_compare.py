"""GC, SR-SGC and M-SGC compared the authors' way: probe, tune on the probe, then run.

Krishnan, Ebrahimi and Khisti (2023) chose every scheme's parameters by emulation before
comparing (see :mod:`.tuning`). This module does the three steps on a dtsim scenario:

1. :func:`probe_scenario` runs the ``gc_probe`` policy at a few loads, with a seed of its own
   (the probe's stragglers are other draws from the same distributions, as the authors' probe
   runs were other Lambda invocations than their final runs), and fits the linear load model;
2. :func:`~.tuning.tune` emulates every admissible parameter set of every scheme on the probe;
3. :func:`tuned_policies` gives the policies that run each scheme with its best parameters,
   labelled ``gc``, ``sr_sgc``, ``m_sgc``; the file's fixed-parameter tables are kept under
   ``<label>_fixed`` as a clearly labelled extra.

The command that prints the headline of docs/methods/gradient-coding.md and draws its figure is
``python -m experiments.gc_tuned_compare scenarios/gc-lambda.toml`` (:mod:`experiments`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sim.runner
import sim.scenario
from policies.gradient_coding.sequential import SCHEMES, gc_load
from policies.gradient_coding.sequential_policy import DelayProbe
from policies.gradient_coding.tuning import DelayProfile, Tuning, fit_profile, tune
from sim.config import PolicyConfig, Scenario
from sim.seeds import SeedTree

#: Policy name of each scheme's label.
POLICY_OF = {"gc": "gc_sequential", "sr_sgc": "sr_sgc", "m_sgc": "m_sgc"}

#: Parameters that describe the time model of a round, shared by the probe and the schemes.
_TIME_MODEL = ("job_batches", "job_samples", "sample_s", "invoke_s", "master", "send_model")


def probe_seed(seed: int) -> int:
    """Seed of the probe runs: a stream of its own, derived from the scenario's seed."""
    return SeedTree(seed).integer_seed("gradient_coding", "probe")


def probe_scenario(scenario: Scenario, params: dict[str, Any], *, loads: Sequence[float],
                   rounds: int, per_cell: bool = True) -> DelayProfile:
    """Probe ``scenario``'s workers at ``loads`` for ``rounds`` rounds and fit the load model.

    ``params`` are a scheme's policy parameters; only the time model's (``job_batches``,
    ``job_samples``, ``sample_s``, ``invoke_s``, ``master``, ``send_model``) are used. Every
    probe runs with the same seed, so worker ``i``'s round ``r`` draws the same straggler
    factor at every load, and ``per_cell`` fits each cell's own slope (see :mod:`.tuning`);
    ``per_cell=False`` is the authors' one common slope.
    """
    shared = {k: params[k] for k in _TIME_MODEL if k in params}
    delays = []
    for load in loads:
        probe_params = {**shared, "load": float(load), "rounds": rounds, "num_jobs": rounds}
        probe = DelayProbe(**probe_params)
        probed = dataclasses.replace(
            scenario, seed=probe_seed(scenario.seed),
            policy=PolicyConfig(name="gc_probe", params=probe_params),
            run=dataclasses.replace(scenario.run, max_steps=rounds, until_s=None,
                                    target_loss=None, timing_only=True))
        sim.runner.run(probed, probe)
        delays.append(probe.response_s)
    return fit_profile(list(loads), delays, per_cell=per_cell)


def tune_scenario(scenario: Scenario, params: dict[str, Any], *, num_jobs: int, mu: float,
                  max_load: float, max_delay: int, max_W: int,
                  schemes: Sequence[str] = SCHEMES,
                  per_cell: bool = True) -> tuple[DelayProfile, Tuning]:
    """Probe at loads 0, ``max_load``/2 and ``max_load``, then tune every scheme."""
    profile = probe_scenario(scenario, params, loads=(0.0, max_load / 2, max_load),
                             rounds=num_jobs + max_delay, per_cell=per_cell)
    return profile, tune(profile, num_jobs=num_jobs, mu=mu, max_load=max_load,
                         max_delay=max_delay, max_W=max_W, schemes=schemes)


def tuned_policies(tuning: Tuning, base: dict[str, Any]) -> list[tuple[str, PolicyConfig]]:
    """``(label, PolicyConfig)`` of each tuned scheme, on the time model of ``base``."""
    out = []
    for scheme in SCHEMES:
        if scheme in tuning.best:
            params = {**base, **tuning.best[scheme].candidate.params()}
            out.append((scheme, PolicyConfig(name=POLICY_OF[scheme], params=params)))
    return out


def tuned_spec(path: str | Path, overrides: Sequence[str] = (), *, max_W: int = 3,
               per_cell: bool = True):
    """Load a scenario with ``gc``, ``sr_sgc``, ``m_sgc`` tables; return it tuned.

    The design load cap is GC's load for the file's ``policies.gc.lam`` (the authors: only
    parameter sets with load at most GC's); the largest delay is ``num_models - 1`` (a job's
    model must not be stepped again before it decodes). Returns ``(spec, profile, tuning)``
    where ``spec.policies`` holds the tuned schemes followed by the file's fixed-parameter
    tables, relabelled ``<label>_fixed``.
    """
    spec = sim.scenario.load(path, overrides)
    fixed = dict(spec.policies)
    gc = fixed["gc"].params
    n = spec.scenario.cluster.num_nodes - 1
    num_jobs = int(gc.get("num_jobs", 40))
    max_delay = int(gc.get("num_models", 4)) - 1
    profile, tuning = tune_scenario(
        spec.scenario, gc, num_jobs=num_jobs, mu=float(gc.get("mu", 1.0)),
        max_load=gc_load(n, int(gc["lam"])), max_delay=max_delay, max_W=max_W,
        per_cell=per_cell)
    base = {k: v for k, v in gc.items() if k not in ("B", "W", "lam")}
    policies = tuned_policies(tuning, base)
    policies += [(f"{label}_fixed", cfg) for label, cfg in spec.policies]
    return dataclasses.replace(spec, policies=tuple(policies)), profile, tuning


def describe_tuning(tuning: Tuning, n: int) -> str:
    """The best parameter set of every scheme, one line each, in the authors' terms."""
    lines = [f"tuned on the probe (load <= {tuning.max_load:.4f}, "
             f"{len(tuning.table)} parameter sets emulated):"]
    for scheme, row in tuning.best.items():
        c = row.candidate
        what = f"s={c.lam}" if scheme == "gc" else f"(B, W, lam)=({c.B}, {c.W}, {c.lam})"
        lines.append(f"  {scheme:7s} {what:26s} load {row.load:.4f}  emulated {row.total_s:.1f} s")
    return "\n".join(lines)
