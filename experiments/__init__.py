"""Experiment and figure scripts: every number and figure quoted in the docs, reproduced.

Each module is run from the repository root with ``python -m experiments.<name>``; each reads
the shipped ``scenarios/*.toml`` (one scenario, many methods) and prints or draws what the docs
quote, with the command in the docs beside the figure. Their fast CI versions live in
``tests/`` (the module docstrings say where).

========================  ========================================================================
module                    what it reproduces
========================  ========================================================================
``dp_regressions``        data-parallel regressions (``scenarios/dp-*.toml``):
                          docs/methods/data-parallel.md
``recovery_family``       the CheckFree family at CI size (several seeds, time to target), and the
                          rate scaling that sets the ``[faults]`` stage model of the scenarios
``recovery_figures``      the CheckFree family at full size (``scenarios/checkfree-*.toml``): loss
                          against time, docs/methods/recovery-checkfree.md
``gc_tuned_compare``      gradient coding tuned the authors' way (``scenarios/gc-lambda.toml``):
                          docs/methods/gradient-coding.md
``recovery_connections``  what the ``tcp`` transport does with each recovery method's messages,
                          connection by connection: docs/methods/recovery-checkfree.md
========================  ========================================================================

Not part of the installed library (``pip install`` ships ``sim``, ``policies``, ``topologies``,
``workloads``): experiments are run from a clone.
"""
