"""Training methods, one subpackage per family; importing this registers them all by name.

- ``data_parallel``: ddp, diloco, streaming_diloco, palsgd, noloco, gossip
- ``pipeline``: full_pipeline, random_skip, skippipe
- ``recovery``: checkfree, checkfree_plus, checkpointing, redundant, no_failure
- ``gradient_coding``: gc_uncoded, gc_ignore_stragglers, gc_fractional, gc_cyclic, gc_approx,
  gc_sequential, sr_sgc, m_sgc

A method is a :class:`sim.policy.Policy` subclass decorated with
``@register_policy("name")``; see docs/architecture.md.
"""

from policies import data_parallel, gradient_coding, pipeline, recovery

__all__ = ["data_parallel", "gradient_coding", "pipeline", "recovery"]
