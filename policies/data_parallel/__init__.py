"""The data-parallel family: DDP, DiLoCo, Streaming DiLoCo, PALSGD, NoLoCo, gossip.

Importing this package registers the policies ``ddp``, ``diloco``, ``streaming_diloco``,
``palsgd``, ``noloco``, ``gossip`` (``variant`` = 'dpsgd' or 'adpsgd'), and the delayed
outer step's ``eager_diloco``, ``co2`` and ``compressed_diloco`` (:mod:`.delayed`, with the
compression layer :mod:`.compress`), and ``quorum_diloco`` (:mod:`.quorum`). Pure update rules
live in :mod:`.rules`, the shared outer optimizer in :mod:`.outer`; each policy module is a thin
SimPy process over them.
See docs/methods/data-parallel.md.
"""

from policies.data_parallel import (  # noqa: F401  (registers the policies)
    ddp,
    delayed,
    diloco,
    gossip,
    noloco,
    palsgd,
    quorum,
    streaming_diloco,
)
