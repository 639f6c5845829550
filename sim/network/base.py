"""What every network model shares: links, routes, flows and byte accounting.

The network is a set of directed links, each with a capacity (bytes/s) and a one-way latency (s):

- every node has an uplink ``up:<node>`` and a downlink ``down:<node>`` to its site (asymmetric
  access, e.g. 20 Mbit/s up and 200 Mbit/s down at home);
- a site may have a local link ``local:<site>`` that traffic between two of its nodes crosses
  (e.g. inside one cloud region: 1 ms, 2 GiB/s);
- every edge ``u - v`` of the topology graph is two links ``u->v`` and ``v->u`` (full duplex).

A message from ``src`` to ``dst`` crosses src's uplink, the minimum-latency path of graph edges
between their sites (or the local link when they share a site), and dst's downlink. Its latency is
the sum of the latencies on the way. Links of unlimited capacity never constrain a flow and are not
tracked. A model (``ideal`` or ``maxmin``) decides only *how fast* the bytes of a flow move; this
module owns everything else: the flow's life (sending, then propagating for the path latency, then
delivered), cutting flows when an end node or a link fails, and the byte counts in the recorder.
Every byte of a transfer is either delivered or cut: ``sent == delivered + cut`` per sender.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from types import FunctionType
from typing import TYPE_CHECKING, Any, cast

import networkx as nx
import simpy

from sim.errors import TransferCut
from sim.timer import Timer

if TYPE_CHECKING:
    from sim.world import World

INF = math.inf


def _probe() -> None:
    """A function of this module, to tell whether the module was compiled (see COMPILED)."""


COMPILED = not isinstance(_probe, FunctionType)
"""True when this module runs as a C extension compiled by mypyc (``DTSIM_COMPILE=1 pip install
.``: setup.py), False as plain Python. Results are the same; benchmarks print which ran. (Read
from a function's type: compiled, it is a native function, not a Python one; the module's
``__file__`` is not yet set while a compiled module runs its top level.)"""

Route = tuple[tuple[int, ...], float, float]
"""A path between two nodes: its finite-capacity links, its one-way latency (s) and the smallest
capacity on it (bytes/s, ``inf`` when it has no finite link), kept with the route so that a
message reads its bottleneck from there, not from each link's capacity."""


class Pair:
    """What the network keeps for one ordered node pair that sends: its routes, a transport's state.

    ``route`` is the pair's :data:`Route` (``None``: no working path) while ``epoch`` equals
    the network's ``routes_epoch`` (a link change makes every route stale); ``back`` is the
    route the other way (``tcp``'s round trip, ``maxmin``'s ACK links) while ``back_epoch``
    equals it. A transport keeps its state of the pair in a subclass (``tcp``:
    :class:`sim.network.tcp.Connection`), so a message finds its route and its connection with
    one probe of the dict keyed by node pair: at 100,000 nodes that dict has 200,000 entries
    and each probe of it misses the caches. Only pairs that send get a record
    (:meth:`Network.pair`); asking for a route (:meth:`Network.route`) makes none, so a planner
    that prices all N^2 pairs holds no connection per pair.
    """

    __slots__ = ("route", "epoch", "back", "back_epoch")

    def __init__(self) -> None:
        self.route: Route | None = None
        self.epoch = -1
        self.back: Route | None = None
        self.back_epoch = -1


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a transfer event's value is: the message and when it left and arrived.

    One per message: slots make it one object (no separate store of attribute values).
    """

    src: int
    dst: int
    nbytes: float
    start_s: float
    end_s: float
    label: str = ""


_DELIVERY_FIELDS = ("src", "dst", "nbytes", "start_s", "end_s", "label")
_SET_DELIVERY = tuple(getattr(Delivery, name).__set__ for name in _DELIVERY_FIELDS)
# _delivery sets exactly these slots: a new Delivery field must be added there too, or it
# would be left unset and raise AttributeError far from here.
assert tuple(f.name for f in fields(Delivery)) == _DELIVERY_FIELDS


def _delivery(src: int, dst: int, nbytes: float, start_s: float, end_s: float,
              label: str) -> Delivery:
    """``Delivery(src, dst, nbytes, start_s, end_s, label)``, made in half the time.

    A frozen dataclass sets each field through ``object.__setattr__`` (six calls by name per
    message, 1.4 µs); this sets the slots through their descriptors: the same object (equal,
    same hash, still frozen), 0.8 µs.
    """
    if COMPILED:  # (a native class: its own constructor is the fast one, and the only one)
        return Delivery(src, dst, nbytes, start_s, end_s, label)
    delivery = object.__new__(Delivery)
    set_src, set_dst, set_nbytes, set_start, set_end, set_label = _SET_DELIVERY
    set_src(delivery, src)
    set_dst(delivery, dst)
    set_nbytes(delivery, nbytes)
    set_start(delivery, start_s)
    set_end(delivery, end_s)
    set_label(delivery, label)
    return delivery


@dataclass(eq=False, slots=True)
class Flow:
    """One message in flight. ``links`` holds only the finite-capacity links it crosses."""

    id: int
    src: int
    dst: int
    nbytes: float
    links: tuple[int, ...]
    latency_s: float
    bottleneck_Bps: float           # the smallest capacity of ``links`` (inf when none)
    start_s: float
    event: simpy.Event
    label: str
    send_interval: int              # recorder index of the src's "comm" interval
    recv_interval: int              # ... and of the dst's (two ints, not a tuple per message)
    state: str = "sending"          # sending -> propagating -> done | cut
    remaining: float = 0.0          # bytes not yet transmitted (maxmin bookkeeping)
    rate: float = 0.0               # bytes/s
    last_s: float = 0.0             # when ``remaining`` was last brought up to date
    version: int = 0
    ack_links: tuple[int, ...] = ()  # finite links of the reverse path (maxmin's ACK demand)
    transport: Any = None           # its node pair's record (tcp: the pair's connection)
    left: float = 0.0               # tcp: bytes of the message after the chunk being sent
    attached: bool = False          # tcp: a chunk of it is with the model
    rated_links: tuple[int, ...] = ()  # maxmin: ``links`` less those that can never fill


class Network:
    """Links, routing, flows and accounting; subclasses decide the rates."""

    model_name = "base"

    ack_fraction = 0.0
    """Bytes a flow's acknowledgements put on its reverse path per payload byte it sends.

    In payload-equivalent bytes (the unit of usable capacity); 0 for the fluid transport. The
    ``tcp`` transport sets it from :class:`sim.network.tcp.TcpConfig`; ``maxmin`` reserves that
    demand on the reverse path's links (see its module docstring).
    """

    def __init__(self, world: World, topology: Any, *, uplink_Bps: float | None = None,
                 downlink_Bps: float | None = None, access_latency_s: float = 0.0,
                 tcp_efficiency: float = 1.0) -> None:
        if not 0 < tcp_efficiency <= 1:
            raise ValueError(f"network.tcp_efficiency: must be in (0, 1], got {tcp_efficiency}")
        self.world = world
        self.env: simpy.Environment = world.env
        self.topology = topology
        self.graph: nx.Graph = topology.graph
        self.efficiency = float(tcp_efficiency)
        self.link_names: list[str] = []
        self.capacity_Bps: list[float] = []
        self.link_latency_s: list[float] = []
        self.link_up: list[bool] = []
        self._link_index: dict[str, int] = {}
        n = topology.num_nodes()
        self.node_sites = list(topology.node_sites)
        self._uplink, self._downlink, self._access_latency = [], [], []
        for i in range(n):
            up = _pick(topology.uplink_Bps, i, uplink_Bps)
            down = _pick(topology.downlink_Bps, i, downlink_Bps)
            lat = _pick(topology.access_latency_s, i, access_latency_s) or 0.0
            for name, bw in ((f"up:{i}", up), (f"down:{i}", down)):
                if bw is not None and bw <= 0:
                    raise ValueError(f"network: {name} bandwidth must be > 0, got {bw}")
            self._uplink.append(self._add_link(f"up:{i}", up, lat))
            self._downlink.append(self._add_link(f"down:{i}", down, 0.0))
            self._access_latency.append(float(lat))
        self._local: dict[str, tuple[int, float]] = {}
        for site, attrs in self.graph.nodes(data=True):
            if "local_bandwidth_Bps" in attrs or "local_latency_s" in attrs:
                lat = float(attrs.get("local_latency_s", 0.0))
                link = self._add_link(f"local:{site}", attrs.get("local_bandwidth_Bps"), lat)
                self._local[site] = (link, lat)
        self._edge_link: dict[tuple[str, str], int] = {}
        for u, v, attrs in self.graph.edges(data=True):
            for a, b in ((u, v), (v, u)):
                self._edge_link[(a, b)] = self._add_link(
                    f"{a}->{b}", attrs["bandwidth_Bps"], float(attrs["latency_s"]))
        self.world.recorder.track_links(self.link_names)
        self._routes: dict[tuple[str, str], tuple[tuple[int, ...], float] | None] = {}
        self._paths_from: dict[str, dict[str, list[str]]] = {}  # site -> shortest paths from it
        self._hub = _hubs(self.graph)  # leaf site -> its only neighbour
        self._pairs: dict[tuple[int, int], Pair] = {}  # (src, dst) -> its record
        self.routes_epoch = 0  # counts link changes: a route kept elsewhere holds while equal
        # 1 while a node is up (kept by :meth:`node_failed` and :meth:`node_recovered`): a
        # message reads two bytes of a 100 KB array, not two ``Node`` objects spread over memory
        self.node_up = bytearray(b"\x01") * n
        # the flows sending or propagating, by transfer event, in the order they started; no
        # table per node (a node's flows are found by a pass over these at its failure, which
        # is rare; the two per-node dicts a message touched were cold at 100,000 nodes), only
        # a count per node, so that a failure passes over them only while that node has one
        # in flight, and stops at its last (churn at 100,000 nodes: O(N) per failure otherwise)
        self._flows: dict[simpy.Event, Flow] = {}
        self._flows_of_node = [0] * n  # node -> its flows in ``_flows``, as sender or receiver
        self._flow_seq = 0
        self._link_change = self.env.event()
        self.flows_started = 0
        self.flows_finished = 0
        self._init_model()

    def _add_link(self, name: str, bandwidth_Bps: float | None, latency_s: float) -> int:
        index = len(self.link_names)
        self.link_names.append(name)
        self.capacity_Bps.append(INF if bandwidth_Bps is None else float(bandwidth_Bps))
        self.link_latency_s.append(float(latency_s))
        self.link_up.append(True)
        self._link_index[name] = index
        return index

    # -- routing ---------------------------------------------------------------------------

    def _leaf_access_edges(self) -> list[tuple[int, int]]:
        """``(access link, edge)`` of every site with one node and one neighbour, both ways.

        Such a site (each node of ``clusters-of-clusters`` and of ``uniform``, behind its data
        centre's core or the switch) is left only by its node's messages, which all cross the
        node's uplink first, and entered only by messages to it, which all cross its downlink
        last (a shortest path never passes through a leaf): the edge out to the neighbour
        carries exactly the uplink's messages, the edge in exactly the downlink's. ``maxmin``
        leaves such an edge out of the filling when it is faster than the access link
        (``_links_never_full``), ``tcp`` leaves it out of its sender counts (``_leaf_edges``).
        """
        nodes_at: dict[str, list[int]] = {}
        for node, site in enumerate(self.node_sites):
            nodes_at.setdefault(site, []).append(node)
        pairs = []
        for site, nodes in nodes_at.items():
            if len(nodes) != 1 or self.graph.degree(site) != 1:
                continue
            (hub,) = self.graph.neighbors(site)
            (node,) = nodes
            pairs.append((self._uplink[node], self._edge_link[(site, hub)]))
            pairs.append((self._downlink[node], self._edge_link[(hub, site)]))
        return pairs

    def route(self, src: int, dst: int) -> Route | None:
        """The links (finite ones only), the one-way latency and the bottleneck capacity.

        From ``src`` to ``dst`` (see :data:`Route`); ``None`` when no path of working links
        exists. Kept in the pair's record, when the pair has sent, until a link changes state;
        a pair that has not sent gets no record: its route is found again at each call (from
        the routes between sites, which are kept).
        """
        pair = self._pairs.get((src, dst))
        if pair is None:
            return self._find_route(src, dst)
        if pair.epoch != self.routes_epoch:
            pair.route = self._find_route(src, dst)
            pair.epoch = self.routes_epoch
        return pair.route

    def route_back(self, flow: Flow) -> Route | None:
        """The route from ``flow.dst`` to ``flow.src``, kept in the flow's pair record."""
        pair: Pair = flow.transport
        if pair.back_epoch != self.routes_epoch:
            pair.back = self.route(flow.dst, flow.src)
            pair.back_epoch = self.routes_epoch
        return pair.back

    def pair(self, src: int, dst: int) -> Pair:
        """The record of the ordered pair (``src``, ``dst``), its route up to date.

        Made when the pair first sends (by :meth:`_new_pair`), kept for the run.
        """
        key = (src, dst)
        pair = self._pairs.get(key)
        if pair is None:
            pair = self._pairs[key] = self._new_pair()
        if pair.epoch != self.routes_epoch:
            pair.route = self._find_route(src, dst)
            pair.epoch = self.routes_epoch
        return pair

    def _new_pair(self) -> Pair:
        """A new pair's record; a transport with per-pair state returns its subclass."""
        return Pair()

    def _find_route(self, src: int, dst: int) -> Route | None:
        a, b = self.node_sites[src], self.node_sites[dst]
        if a == b:
            inner = self._local.get(a)
            core: tuple[int, ...]
            core, core_lat = ((inner[0],), inner[1]) if inner else ((), 0.0)
        else:
            found = self._site_route(a, b)
            if found is None:
                return None
            core, core_lat = found
        links = (self._uplink[src], *core, self._downlink[dst])
        up, capacity = self.link_up, self.capacity_Bps
        for link in links:  # (loops, not generators: a planner asks this N^2 times)
            if not up[link]:
                return None
        latency = self._access_latency[src] + core_lat + self._access_latency[dst]
        finite = tuple([link for link in links if capacity[link] < INF])
        bottleneck = INF
        for link in finite:  # (the smallest: min(..., default=INF))
            if capacity[link] < bottleneck:
                bottleneck = capacity[link]
        return finite, latency, bottleneck

    def _site_route(self, a: str, b: str) -> tuple[tuple[int, ...], float] | None:
        key = (a, b)
        if key not in self._routes and getattr(self.topology, "routing", "") == "direct":
            link = self._edge_link.get((a, b))
            self._routes[key] = None if link is None or not self.link_up[link] else (
                (link,), self.link_latency_s[link])
        if key not in self._routes:
            hub = self._hub.get(a)
            if hub is not None and hub != b:
                # a leaf's only way out is the edge to its hub, so its shortest path to b is
                # that edge followed by the hub's shortest path to b (kept); the leaf's own is
                # not kept: with a node per site they are as many as the node pairs, which a
                # planner asks for all of (a pair that sends keeps its route in its record)
                first = self._edge_link[(a, hub)]
                rest = self._site_route(hub, b)
                if rest is None or not self.link_up[first]:
                    return None
                links = (first, *rest[0])
                return links, sum([self.link_latency_s[x] for x in links])
            if a not in self._paths_from:  # one Dijkstra per source site gives every route
                def weight(u: str, v: str, _attrs: dict) -> float | None:
                    return None if not self.link_up[self._edge_link[(u, v)]] else \
                        self.link_latency_s[self._edge_link[(u, v)]]
                self._paths_from[a] = nx.single_source_dijkstra_path(self.graph, a,
                                                                      weight=weight)
            path = self._paths_from[a].get(b)
            if path is None:
                self._routes[key] = None
            else:
                links = tuple(self._edge_link[(u, v)] for u, v in zip(path, path[1:]))
                self._routes[key] = (links, sum(self.link_latency_s[x] for x in links))
        return self._routes[key]

    def path_latency_s(self, src: int, dst: int) -> float:
        """One-way latency between two nodes (inf when unreachable)."""
        found = self.route(_id(src), _id(dst))
        return INF if found is None else found[1]

    def path_bandwidth_Bps(self, src: int, dst: int) -> float:
        """Bottleneck capacity between two nodes, after the TCP efficiency factor."""
        found = self.route(_id(src), _id(dst))
        return 0.0 if found is None else found[2] * self.efficiency

    # -- transfers -------------------------------------------------------------------------

    def transfer(self, src: Any, dst: Any, nbytes: float, label: str = "") -> simpy.Event:
        """Send ``nbytes`` from ``src`` to ``dst``; the event fires at delivery.

        Value: a :class:`Delivery`. Fails with :class:`TransferCut` when an end node is down,
        goes down before delivery, or the path is (or becomes) broken.
        """
        src, dst = _id(src), _id(dst)
        if nbytes < 0:
            raise ValueError(f"transfer: nbytes must be >= 0, got {nbytes}")
        rec = self.world.recorder
        now = self.env.now
        event = simpy.Event(self.env)  # env.event() without the per-call binding
        rec.bytes_sent[src] += nbytes
        rec.messages_sent[src] += 1
        up = self.node_up
        if src != dst and up[src] and up[dst]:  # the common case, fast
            pair = self._pairs.get((src, dst))
            if pair is None or pair.epoch != self.routes_epoch:
                pair = self.pair(src, dst)
            if pair.route is not None:
                self._launch(src, dst, float(nbytes), pair, event, label, now)
                return event
        reason = None
        if not up[src]:
            reason = f"source node {src} is down"
        elif not up[dst]:
            reason = f"destination node {dst} is down"
        if src == dst and reason is None:
            rec.bytes_received[dst] += nbytes
            return event.succeed(Delivery(src, dst, nbytes, now, now, label))
        if reason is None:  # (both ends up: the fast path found no route)
            reason = f"no working path from node {src} to node {dst}"
        rec.bytes_cut[src] += nbytes
        event.defused = True
        return event.fail(TransferCut(src, dst, nbytes, 0.0, reason))

    def _launch(self, src: int, dst: int, nbytes: float, pair: Pair, event: simpy.Event,
                label: str, now: float) -> None:
        """Open the flow of a transfer that can start: its record, comm intervals, the model.

        ``pair`` is the record of (``src``, ``dst``), its route up to date and not ``None``.
        """
        rec = self.world.recorder
        self._flow_seq += 1
        fid = self._flow_seq
        links, latency_s, bottleneck_Bps = cast(Route, pair.route)
        flow = Flow(fid, src, dst, nbytes, links, latency_s, bottleneck_Bps, now, event, label,
                    rec.interval(src, "comm", now, INF, label or "send"),
                    rec.interval(dst, "comm", now, INF, label or "recv"),
                    remaining=nbytes, last_s=now, transport=pair)
        self._flows[event] = flow
        flows_of_node = self._flows_of_node
        flows_of_node[src] += 1
        flows_of_node[dst] += 1
        self.flows_started += 1
        self._send_message(flow)

    def _transmitted(self, flow: Flow) -> None:
        """Called by a model when the last byte of ``flow`` has left: now it propagates."""
        flow.state = "propagating"
        flow.remaining = 0.0
        if flow.latency_s > 0:
            # the timer carries the flow: a bound method, not a closure (function, cells) per
            # message, whose objects a round of 100,000 messages would touch again cold; and a
            # lean :class:`Timer`, not a ``simpy.Timeout`` with its attribute dictionary
            Timer(self.env, flow.latency_s, flow, self._propagated)
        else:
            self._deliver(flow)

    def _propagated(self, timer: Timer) -> None:
        self._deliver(cast(Flow, timer.value))

    def _deliver(self, flow: Flow) -> None:
        if flow.state != "propagating":
            return  # cut while propagating
        flow.state = "done"
        now = self.env.now
        rec = self.world.recorder
        nbytes = flow.nbytes
        rec.bytes_received[flow.dst] += nbytes
        link_bytes, crossed = rec.link_bytes_by_id, rec.link_crossed
        for link in flow.links:
            link_bytes[link] += nbytes
            crossed[link] = 1
        self._forget(flow, now)
        self.flows_finished += 1
        flow.event.succeed(_delivery(flow.src, flow.dst, nbytes, flow.start_s, now, flow.label))

    def _forget(self, flow: Flow, now: float) -> None:
        del self._flows[flow.event]
        flows_of_node = self._flows_of_node
        flows_of_node[flow.src] -= 1
        flows_of_node[flow.dst] -= 1
        close = self.world.recorder.close_interval
        close(flow.send_interval, now)
        close(flow.recv_interval, now)

    def cut(self, flow: Flow, reason: str) -> None:
        """End ``flow`` before delivery; its bytes count as cut."""
        if flow.state in ("done", "cut"):
            return
        now = self.env.now
        if flow.state == "sending":
            self._stop_message(flow)
            transmitted = flow.nbytes - flow.remaining
        else:
            transmitted = flow.nbytes
        flow.state = "cut"
        rec = self.world.recorder
        rec.bytes_cut[flow.src] += flow.nbytes
        for link in flow.links:
            rec.link_bytes_by_id[link] += transmitted
            rec.link_crossed[link] = 1
        self._forget(flow, now)
        for node, peer, role in ((flow.src, flow.dst, "sender"), (flow.dst, flow.src, "receiver")):
            rec.event("transfer_cut", node=node, peer=peer, role=role, nbytes=flow.nbytes,
                      delivered_bytes=transmitted, reason=reason, label=flow.label)
        flow.event.defused = True
        flow.event.fail(TransferCut(flow.src, flow.dst, flow.nbytes, transmitted, reason))

    def cancel(self, src: Any, event: simpy.Event, reason: str = "cancelled") -> bool:
        """Cut the transfer from ``src`` whose event is ``event``; False if it already ended.

        For senders that give up on a message (an aborted collective): its bytes count as cut.
        """
        flow = self._flows.get(event)
        node = _id(src)
        if flow is None or node not in (flow.src, flow.dst):
            return False
        self.cut(flow, reason)
        return True

    def link_change_event(self) -> simpy.Event:
        """An event that fires at the next change of a link's state (value: (u, v, up))."""
        return self._link_change

    def node_failed(self, node_id: int) -> None:
        """Cut every flow to or from a node that just failed; it sends and receives no more."""
        self.node_up[node_id] = 0
        count = self._flows_of_node[node_id]
        doomed: list[Flow] = []
        if count:
            for flow in self._flows.values():  # (in the order they started)
                if flow.src == node_id or flow.dst == node_id:
                    doomed.append(flow)
                    if len(doomed) == count:
                        break
        for flow in doomed:
            self.cut(flow, f"node {node_id} failed")

    def node_recovered(self, node_id: int) -> None:
        """A node that failed is back: messages to and from it start again."""
        self.node_up[node_id] = 1

    def set_link_state(self, u: str, v: str, up: bool) -> None:
        """Take the topology edge ``u - v`` (both directions) down or up; cut flows across it."""
        forward, backward = self._edge_link.get((u, v)), self._edge_link.get((v, u))
        if forward is None or backward is None:
            raise ValueError(f"faults: no topology edge between {u!r} and {v!r}")
        for link in (forward, backward):
            self.link_up[link] = up
        self._routes.clear()
        self._paths_from.clear()
        self.routes_epoch += 1  # every pair's route is stale
        self.world.recorder.event("link_up" if up else "link_down", link=f"{u}-{v}")
        if not up:
            for flow in list(self._flows.values()):
                if flow.state != "done" and (forward in flow.links or backward in flow.links):
                    self.cut(flow, f"link {u}-{v} went down")
        changed, self._link_change = self._link_change, self.env.event()
        changed.succeed((u, v, up))

    @property
    def active_flows(self) -> int:
        """Flows sending or propagating now."""
        return len(self._flows)

    @property
    def bytes_in_flight(self) -> float:
        """Bytes of the messages not yet delivered nor cut (sent = delivered + cut + these)."""
        return float(sum(flow.nbytes for flow in self._flows.values()))

    # -- what a transport provides (sim.network.tcp.TcpTransport; these are ``fluid``'s) -----

    def _send_message(self, flow: Flow) -> None:
        """A new message: ``fluid`` hands it to the model whole, at once."""
        self._start(flow)

    def _stop_message(self, flow: Flow) -> None:
        """Cut a sending message and bring ``flow.remaining`` up to date."""
        self._stop(flow)

    def _next_chunk(self, flow: Flow, now: float) -> float:
        """Bytes a transport hands on at ``now``, when ``flow``'s bytes are all sent (0: none).

        A transport that sends a message in chunks (``tcp``: ``flow.left`` bytes after this
        one) may continue with the next one at the same instant; the flow then keeps its links
        and its rate (what re-rating it would give, up to rounding) and only its bytes and
        finish time move, with no re-rating. Asked only when ``flow.left > 0`` (by ``maxmin``).
        """
        return 0.0

    # -- what a model provides ---------------------------------------------------------------

    def _init_model(self) -> None:
        """Make the model's state; called at the end of :meth:`__init__` (links are known)."""

    def _start(self, flow: Flow) -> None:
        raise NotImplementedError

    def _stop(self, flow: Flow) -> None:
        """Stop a sending flow early and bring ``flow.remaining`` up to date."""
        raise NotImplementedError

    shares_links = True
    """Whether a flow's rate can depend on the other flows (False: ``ideal``)."""

    def _lone_rate(self, flow: Flow) -> float | None:
        """The rate ``flow`` would get if it started now and nothing else started on its links.

        ``None`` when the model does not know (or other flows share its links). The ``tcp``
        transport runs a connection's rounds in closed form while this holds (see
        :mod:`sim.network.tcp`); the rate must be exactly what the model would give the flow.
        """
        return None

    def _set_cap(self, flow: Flow, cap_Bps: float) -> None:
        """Hold ``flow`` at most at ``cap_Bps`` (bytes/s; ``math.inf``: no cap), now and on.

        What the ``tcp`` transport's paced rounds need of a model (``ideal`` and ``maxmin``).
        """
        raise NotImplementedError


def _hubs(graph: nx.Graph) -> dict[str, str]:
    """Each leaf site (one neighbour) mapped to that neighbour, its hub.

    Every path out of a leaf starts with the edge to its hub, so routing from the leaves needs
    shortest paths from the hubs only: one Dijkstra for a star of 1,000 nodes instead of 1,000.
    A hub that is itself a leaf (a graph of two sites) is not used as one.
    """
    hubs = {}
    for site in graph.nodes:
        if graph.degree(site) == 1:
            (hub,) = graph.neighbors(site)
            if graph.degree(hub) > 1:
                hubs[site] = hub
    return hubs


def _pick(values: Any, i: int, default: Any) -> Any:
    if values is not None and values[i] is not None:
        return values[i]
    return default


def _id(node: Any) -> int:
    return node if isinstance(node, int) else node.id
