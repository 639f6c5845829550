"""The data-parallel family: DDP, DiLoCo, Streaming DiLoCo, PALSGD, NoLoCo, gossip and more.

Importing this package registers the policies ``ddp``, ``diloco``, ``streaming_diloco``,
``palsgd``, ``noloco``, ``gossip`` (``variant`` = 'dpsgd' or 'adpsgd'), the delayed outer
step's ``eager_diloco``, ``co2`` and ``compressed_diloco`` (:mod:`.delayed`, with the
compression layer :mod:`.compress`), ``quorum_diloco`` (:mod:`.quorum`) and
``poisson_gossip`` (:mod:`.poisson_gossip`, DADAO's clocks). Pure update rules live in
:mod:`.rules`, the shared outer optimizer in :mod:`.outer`; each policy module is a thin SimPy
process over them.
See docs/methods/data-parallel.md.
"""

from policies.data_parallel import (  # noqa: F401  (registers the policies)
    ddp,
    delayed,
    diloco,
    gossip,
    noloco,
    palsgd,
    poisson_gossip,
    quorum,
    streaming_diloco,
)
