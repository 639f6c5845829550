"""What a hop between two nodes costs, as plain arrays for the schedulers.

The schedulers (:mod:`~policies.pipeline.allocation`, :mod:`~policies.pipeline.astar`,
:mod:`~policies.pipeline.cbs`) never touch the engine: they read an ``(N, N)`` matrix of hop
times and an ``(N,)`` vector of forward times. A hop from ``i`` to ``j`` costs::

    hop_s[i, j] = latency_s[i, j] + activation_nbytes / bandwidth_Bps[i, j] + hop_overhead_s

(SkipPipe's cost model; its emulator adds a fixed 0.35 s per hop for host <-> device copies.)
That is the ``fluid`` transport's price. Under ``tcp`` the planner prices a hop with the tcp
transport's own closed forms (:mod:`sim.network.forecast`): ``hop_s`` is the hop on a cold
connection (slow start from the initial window, the window cap), and :class:`HopTransport`
lets the timeline model follow every connection's state through an iteration (warm, idle
restart after an RTO, queued behind the previous message). :func:`hop_costs` builds both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.network.forecast import MessageForecast, path_matrices

#: The SkipPipe emulator's fixed extra delay per hop, seconds (0.13 + 0.2 + 0.02).
SKIPPIPE_HOP_OVERHEAD_S = 0.35


def hop_cost_matrix(latency_s: np.ndarray, bandwidth_Bps: np.ndarray, nbytes: float,
                    overhead_s: float = 0.0) -> np.ndarray:
    """Seconds to move ``nbytes`` from node i to node j, ``(N, N)``; zero on the diagonal."""
    latency_s = np.asarray(latency_s, dtype=float)
    bandwidth_Bps = np.asarray(bandwidth_Bps, dtype=float)
    if latency_s.shape != bandwidth_Bps.shape or latency_s.ndim != 2:
        raise ValueError("latency_s and bandwidth_Bps: must be two (N, N) arrays of one shape")
    with np.errstate(divide="ignore"):
        cost = latency_s + nbytes / bandwidth_Bps + overhead_s
    np.fill_diagonal(cost, 0.0)
    return cost


def network_matrices(network: Any, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(latency_s, bandwidth_Bps)`` between every pair of nodes, read from an engine network.

    Uses ``network.path_latency_s(i, j)`` and ``network.path_bandwidth_Bps(i, j)`` (the
    unloaded path: what the ideal model charges); see :func:`sim.network.forecast.path_matrices`.
    """
    return path_matrices(network, num_nodes)


HOP_COSTS = ("transport", "fluid")
"""How the planner prices a hop (``PipelineConfig.hop_costs``): with the scenario's transport,
or as SkipPipe's planner does (``fluid``: latency + bytes / bandwidth + overhead)."""


@dataclass(frozen=True, kw_only=True)
class HopTransport:
    """What the timeline model needs to time hops on stateful connections (``tcp``).

    forecast:
        The transport's closed forms for the world's paths.
    nbytes:
        Bytes of one hop (an activation, or its gradient on the way back).
    overhead_s:
        Fixed seconds after each message arrives (SkipPipe: 0.35 s of host <-> device copies).
    """

    forecast: MessageForecast
    nbytes: float
    overhead_s: float = 0.0


def hop_costs(forecast: MessageForecast, nbytes: float, overhead_s: float = 0.0,
              *, model: str = "transport") -> tuple[np.ndarray, HopTransport | None]:
    """``(hop_s, transport)`` for the planner: the static hop matrix and, under tcp, the state.

    ``fluid`` transport, or ``model = "fluid"`` (the authors' planner whatever the network):
    :func:`hop_cost_matrix` and no state. ``tcp``: a hop on a cold connection
    (:meth:`~sim.network.forecast.MessageForecast.cold_s`: every connection of an iteration
    starts cold when the iterations are separated by many RTOs of idleness, as the stage
    all-reduce separates them) plus the overhead, and the :class:`HopTransport` with which
    :func:`~policies.pipeline.timeline.simulate_iteration` follows each connection.
    """
    if model not in HOP_COSTS:
        raise ValueError(f"hop_costs: {model!r}; allowed {list(HOP_COSTS)}")
    if forecast.transport == "fluid" or model == "fluid":
        return hop_cost_matrix(forecast.latency_s, forecast.bandwidth_Bps, nbytes,
                               overhead_s), None
    hop = forecast.cold_s(nbytes) + overhead_s
    np.fill_diagonal(hop, 0.0)
    return hop, HopTransport(forecast=forecast, nbytes=nbytes, overhead_s=overhead_s)


@dataclass(frozen=True, kw_only=True)
class NodeCosts:
    """Per-node costs the path schedulers use (seconds).

    hop_s:
        ``(N, N)`` seconds of one activation hop from i to j.
    forward_s:
        ``(N,)`` seconds of one microbatch's forward of the node's stage on that node.
    backward_factor:
        Backward time / forward time (SkipPipe: 1.5).
    loss_factor:
        Loss time on the data node / its forward time (SkipPipe: 0.25).
    transport:
        ``None``: a hop from i to j always takes ``hop_s[i, j]`` (``fluid``). Otherwise the
        timeline model times each hop on its connection's state (``tcp``, :func:`hop_costs`);
        the searches keep ``hop_s``, the cold-connection price.
    """

    hop_s: np.ndarray
    forward_s: np.ndarray
    backward_factor: float = 1.5
    loss_factor: float = 0.25
    transport: HopTransport | None = None

    def __post_init__(self) -> None:
        n = len(self.forward_s)
        if np.shape(self.hop_s) != (n, n):
            raise ValueError(f"hop_s: must have shape ({n}, {n}), got {np.shape(self.hop_s)}")
        if np.min(self.forward_s) < 0 or np.min(self.hop_s) < 0:
            raise ValueError("forward_s and hop_s: must be >= 0")

    @property
    def num_nodes(self) -> int:
        """N."""
        return len(self.forward_s)

    def backward_s(self, node: int) -> float:
        """Seconds of one backward task on ``node``."""
        return self.backward_factor * float(self.forward_s[node])

    def loss_s(self, node: int) -> float:
        """Seconds of the loss task on data node ``node``."""
        return self.loss_factor * float(self.forward_s[node])

    def route_s(self, nodes: tuple[int, ...]) -> float:
        """Seconds of one microbatch alone on ``nodes`` (data node first): compute and hops.

        Forward around the loop, loss, backward around it the other way: every hop of the loop
        once in each direction.
        """
        loop = list(nodes) + [nodes[0]]
        hops = sum(float(self.hop_s[a, b] + self.hop_s[b, a]) for a, b in zip(loop, loop[1:]))
        compute = sum((1 + self.backward_factor) * float(self.forward_s[n]) for n in nodes)
        return hops + compute + self.loss_s(nodes[0])
