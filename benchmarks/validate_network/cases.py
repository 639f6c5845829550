"""The validation grid: the cases the ns-3 reference runs (and dtsim predicts).

Every case is a star (``sim.network.validation.Case``): a message's bottleneck is the sender's
or the receiver's link. For a single flow the sender's link is fast (10x) with no delay, and the
receiver's link has the bandwidth and the whole one-way latency, so RTT = 2 latency.

Grid (the issue's ranges):
- single flows: 10 / 100 / 1000 Mbit/s x 1 / 10 / 50 / 150 ms one way x 1 / 10 MB, and 100 MB
  on seven of the twelve paths (every rate, the shortest and the window-capped longest paths):
  a 100 MB packet simulation costs minutes on a shared 2-core machine;
- 2, 4, 8 flows from different senders into one receiver's link (fan-in), started together or
  staggered by 1 s, 10 MB each at 100 Mbit/s / 20 ms and 20 MB each at 1 Gbit/s / 50 ms (2 and
  4 flows only: 8 flows at 1 Gbit/s ran over 10 minutes in ns-3 on the shared machine);
- unequal RTTs sharing a bottleneck (session 6): senders whose access links have different
  one-way delays (5 and 40 ms: RTTs 10 and 80 ms; and 5/10/20/40 ms) send 20 MB each into one
  receiver's 100 Mbit/s link (no delay of its own), together or staggered by 1 s, with a queue
  of one BDP of the longest RTT and, for 2 flows, of a quarter of it; and 2 flows of 50 MB at
  1 Gbit/s. Max-min gives such flows equal shares; TCP is known to favour the short RTT;
- 4 messages of 5 MB on one connection: back to back, each sent when the previous arrives,
  and started 0.55 s and 2.5 s apart (idle gaps of ~0.1 s, below the RTO, and ~2 s);
- ring all-reduce (dtsim's schedule: 2(k-1) rounds of m/k, a node's round r after its round
  r-1 sends and receives are delivered) of 4 nodes (10 and 40 MB per node) and 8 nodes (10 and
  20 MB), 100 Mbit/s access links, one-way access delays of 5 to 40 ms.
"""

from __future__ import annotations

from sim.collectives import ring_allreduce_schedule
from sim.network.validation import Case, Message, schedule_messages

MB = 1e6
FAST = 10  # the sender's link is this many times faster than the bottleneck


def queue_for(rate_bps: float, rtt_s: float) -> int:
    """Drop-tail queue of about one bandwidth-delay product, in 1500-byte packets (>= 10)."""
    return max(10, round(rate_bps / 8 * rtt_s / 1500))


def _big_single(mbps: int, lat_ms: int) -> bool:
    """The 100 MB single flows kept: packet simulation of 100 MB costs minutes per case."""
    return (mbps, lat_ms) in {(10, 1), (10, 10), (10, 50), (100, 1), (100, 10), (1000, 1),
                              (1000, 150)}


def single_flows() -> list[Case]:
    cases = []
    for mbps in (10, 100, 1000):
        for lat_ms in (1, 10, 50, 150):
            for size_mb in (1, 10, 100):
                if size_mb == 100 and not _big_single(mbps, lat_ms):
                    continue
                rate, lat = mbps * 1e6, lat_ms / 1000
                q = queue_for(rate, 2 * lat)
                cases.append(Case(
                    name=f"single {mbps}Mbit/s {lat_ms}ms {size_mb}MB", kind="single",
                    rate_bps=(FAST * rate, rate), delay_s=(0.0, lat),
                    queue_pkts=(q, q),
                    messages=(Message(src=0, dst=1, nbytes=size_mb * MB, start_s=1.0),)))
    return cases


def shared_bottleneck() -> list[Case]:
    cases = []
    for mbps, lat_ms, size_mb in ((100, 20, 10), (1000, 50, 20)):
        for k in (2, 4, 8) if mbps == 100 else (2, 4):  # 8 at 1 Gbit/s: > 10 min in ns-3
            for stagger in (0.0, 1.0):
                rate, lat = mbps * 1e6, lat_ms / 1000
                q = queue_for(rate, 2 * lat)
                messages = tuple(Message(src=i, dst=k, nbytes=size_mb * MB,
                                         start_s=1.0 + i * stagger) for i in range(k))
                how = "together" if stagger == 0 else f"staggered {stagger:g}s"
                cases.append(Case(
                    name=f"shared {k} flows {mbps}Mbit/s {lat_ms}ms {size_mb}MB {how}",
                    kind="shared", rate_bps=(FAST * rate,) * k + (rate,),
                    delay_s=(0.0,) * k + (lat,), queue_pkts=(q,) * (k + 1),
                    messages=messages))
    return cases


def unequal_rtts() -> list[Case]:
    """Fan-ins whose senders' RTTs differ: the test of max-min shares against TCP's RTT bias.

    Sender ``i``'s link has the delay ``delays_ms[i]`` (and is 10x faster than the receiver's);
    the receiver's link has the bandwidth and no delay, so sender ``i``'s RTT is
    ``2 delays_ms[i]``. The queue is one BDP of the longest RTT (``/ 4``: a quarter of it).
    """
    cases = []
    grid = [(100, (5, 40), 20, 0.0, 1), (100, (5, 40), 20, 1.0, 1), (100, (5, 40), 20, 0.0, 4),
            (100, (5, 10, 20, 40), 20, 0.0, 1), (100, (5, 10, 20, 40), 20, 1.0, 1),
            (1000, (5, 40), 50, 0.0, 1)]
    for mbps, delays_ms, size_mb, stagger, shrink in grid:
        k, rate = len(delays_ms), mbps * 1e6
        q = queue_for(rate, 2 * max(delays_ms) / 1000 / shrink)
        messages = tuple(Message(src=i, dst=k, nbytes=size_mb * MB, start_s=1.0 + i * stagger)
                         for i in range(k))
        how = "together" if stagger == 0 else f"staggered {stagger:g}s"
        buffer = "" if shrink == 1 else f" queue BDP/{shrink}"
        cases.append(Case(
            name=f"shared {k} flows {mbps}Mbit/s {'/'.join(map(str, delays_ms))}ms "
                 f"{size_mb}MB {how}{buffer}",
            kind="shared", rate_bps=(FAST * rate,) * k + (rate,),
            delay_s=tuple(d / 1000 for d in delays_ms) + (0.0,), queue_pkts=(q,) * (k + 1),
            messages=messages))
    return cases


def one_connection() -> list[Case]:
    cases = []
    rate, lat = 100e6, 0.025
    q = queue_for(rate, 2 * lat)
    hosts = dict(rate_bps=(FAST * rate, rate), delay_s=(0.0, lat), queue_pkts=(q, q))
    size = 5 * MB
    queued = tuple(Message(src=0, dst=1, nbytes=size, start_s=1.0) for _ in range(4))
    cases.append(Case(name="4x5MB queued at once on one connection", kind="sequence",
                      messages=queued, **hosts))
    chained = tuple(Message(src=0, dst=1, nbytes=size, start_s=1.0,
                            deps=(i - 1,) if i else ()) for i in range(4))
    cases.append(Case(name="4x5MB each after the previous arrives", kind="sequence",
                      messages=chained, **hosts))
    for apart in (0.55, 2.5):  # 5 MB take ~0.45 s: idle gaps of ~0.1 s (< RTO) and ~2 s
        spaced = tuple(Message(src=0, dst=1, nbytes=size, start_s=1.0 + i * apart)
                       for i in range(4))
        cases.append(Case(name=f"4x5MB started {apart:g}s apart", kind="spaced",
                          messages=spaced, **hosts))
    return cases


def ring_allreduce() -> list[Case]:
    cases = []
    rate = 100e6
    for k, sizes in ((4, (10, 40)), (8, (10, 20))):
        delays = tuple([0.005, 0.01, 0.02, 0.04][i % 4] for i in range(k))
        for size_mb in sizes:
            schedule = ring_allreduce_schedule(list(range(k)), size_mb * MB)
            messages = schedule_messages(schedule, start_s=1.0)
            q = queue_for(rate, 2 * 0.08)
            cases.append(Case(name=f"ring all-reduce {k} nodes {size_mb}MB 100Mbit/s",
                              kind="collective", rate_bps=(rate,) * k, delay_s=delays,
                              queue_pkts=(q,) * k, messages=messages))
    return cases


def all_cases() -> list[Case]:
    return (single_flows() + shared_bottleneck() + one_connection() + ring_allreduce()
            + unequal_rtts())
