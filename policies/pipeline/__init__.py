"""Pipeline family: full pipeline (DT-FM style), DT-FM-skip and SkipPipe.

``executor`` is the reusable pipeline-parallel mechanism (stage replicas, microbatch hops,
memory limits, stage all-reduce); ``paths``, ``allocation``, ``astar``, ``cbs``, ``timeline``
and ``schedules`` are pure scheduling code; ``methods`` registers the policies
``full_pipeline``, ``random_skip`` and ``skippipe``. See docs/methods/pipeline-skippipe.md.
"""

from policies.pipeline.methods import FullPipeline, RandomSkip, SkipPipe

__all__ = ["FullPipeline", "RandomSkip", "SkipPipe"]
