"""Would a cohort model pay? A census of the ``tcp`` transport's paced round ends.

Under ``tcp`` + ``maxmin`` the clusters-of-clusters run of ``bench_timing_only_scale.py`` spends
about a third of its time ending paced slow-start rounds, one connection at a time (about
11,000 per outer step). A *cohort model* would carry connections that run in step as one unit:
one round end, one cap and one wake for all of them. This script counts, at every paced round
end of a run, how much of that work such a model could take, two ways.

**Twins**: round ends that share their instant and their state with other round ends (the
transport's ``ROUND_STATE`` fields, the chunk's bytes left, rate and last update, the round
trip, the handshake end and the path's bottleneck: :func:`in_step_key`), whatever links they
cross. Their round logic is the same computation; what a cohort model could at best share.

**What the ending connection shares its links with**, looking at every connection reachable
from it through shared links, there and back (its *component*):

- **alone**: nobody; the transport already runs its rounds in closed form from here (a lone
  ramp).
- **in step**: every connection of the component is on its links in a paced round with the
  same state as this one, nobody outside the component is counted on their links, and their
  max-min shares there, alone, are equal. Such a cohort runs exactly as one lone connection at
  that share (with equal caps every member moves at min(cap, share)): a cohort model could take
  it with no bookkeeping per member.
- **mixed**: the component holds a connection in another state, or one that is not in a paced
  round (between rounds, or past slow start at its share), or a sender counted on a member's
  link that is not on it (waiting for its round, ramping, or crossing it on its way back), or
  the shares differ. The kind printed is the first difference the walk from the ending
  connection meets; a cohort model would have to split such a group by member.

Round ends of one instant are counted one after another, as the transport handles them, and
a connection whose round ended earlier at the instant has moved on to its next round since: it
is compared by its state at its round end (at this instant it was where the others are), and
if it was found in a cohort, it is counted in step without a new search. The census wraps
``TcpTransport._paced_round_end`` for the run (restored after): it reads the state and changes
nothing, so the run's deliveries are the benchmark's (tested).

Run from the repository root::

    .venv/bin/python benchmarks/census_paced_rounds.py                 # 4 outer steps, ~10 s
    .venv/bin/python benchmarks/census_paced_rounds.py --steps 10 --topology uniform
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_timing_only_scale as bench  # noqa: E402
from sim.network.maxmin import MaxMinNetwork  # noqa: E402
from sim.network.tcp import Connection, TcpTransport, _round_state  # noqa: E402
from sim.runner import run  # noqa: E402
from sim.usage import OneLineParser, refusing  # noqa: E402

PROG = "benchmarks/census_paced_rounds.py"

ALONE, IN_STEP = "alone", "in step"
MIXED_STATE = "mixed: another round state"
MIXED_NOT_PACED = "mixed: a connection not in a paced round"
MIXED_SENDER = "mixed: a sender that is not on its links"
MIXED_SHARES = "mixed: unequal shares"
KINDS = (ALONE, IN_STEP, MIXED_STATE, MIXED_NOT_PACED, MIXED_SENDER, MIXED_SHARES)


def in_step_key(conn: Connection) -> tuple[object, ...]:
    """What must be equal for two connections to run their rounds as one."""
    flow = conn.head
    assert flow is not None
    return (_round_state(conn), flow.remaining, flow.rate, flow.last_s, conn.rtt_s,
            conn.ready_s, flow.bottleneck_Bps)


def component(network: MaxMinNetwork, conn: Connection,
              ended: dict[Connection, tuple[object, ...]]) -> tuple[list[Connection] | None, str]:
    """The cohort ``conn`` is in step with, or None and the kind of mixed component.

    ``ended``: the connections whose paced round ended earlier at this instant, with their
    state then. They are compared by it: they have moved on to their next round since, but at
    this instant they were where ``conn`` is, and a cohort model would take them together.
    """
    key = ended[conn]
    members: dict[Connection, None] = {conn: None}
    todo = [conn]
    counted: Counter[int] = Counter()  # link -> members counted on it (there and back)
    while todo:
        member = todo.pop()
        for link in member.links:
            counted[link] += 1
            for flow in network._on_link[link].values():
                other: Connection = flow.transport
                if other in members:
                    continue
                state = ended.get(other)
                if state is None:
                    if not (other.paced and flow.attached):
                        return None, MIXED_NOT_PACED
                    state = in_step_key(other)
                if state != key:
                    return None, MIXED_STATE
                members[other] = None
                todo.append(other)
    senders = network._senders
    if any(senders[link] != count for link, count in counted.items()):
        return None, MIXED_SENDER
    # max-min among the members alone: every member's rate is its tightest fair share, so the
    # shares are equal iff every member's smallest capacity / members-crossing is one level
    capacity = network._capacity
    crossing: Counter[int] = Counter()
    heads = [member.head for member in members if member.head is not None]
    for flow in heads:
        crossing.update(flow.rated_links)
    levels = {min(capacity[link] / crossing[link] for link in flow.rated_links)
              for flow in heads}
    if len(levels) != 1:
        return None, MIXED_SHARES
    return list(members), IN_STEP


class Census:
    """Counts of paced round ends by kind, the cohorts found, and the twins at each instant."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.cohort_sizes: Counter[int] = Counter()  # members -> cohorts found of that size
        self.twin_groups: Counter[int] = Counter()   # round ends -> groups of that size
        self._cohort: set[Connection] = set()  # the connections of this instant's cohorts
        self._ended: dict[Connection, tuple[object, ...]] = {}  # this instant's round ends
        self._at_s = -math.inf

    @property
    def twinned(self) -> int:
        """Round ends that shared their instant and state with another one (after the run)."""
        return sum(size * groups for size, groups in self.twin_groups.items() if size > 1)

    def _close_instant(self) -> None:
        """Count the instant's round ends into ``twin_groups`` by their state."""
        self.twin_groups.update(Counter(self._ended.values()).values())
        self._ended.clear()

    def classify(self, network: MaxMinNetwork, conn: Connection, now: float) -> None:
        """Count the round end of ``conn`` at ``now``, before the transport handles it."""
        if now != self._at_s:
            self._close_instant()
            self._cohort.clear()
            self._at_s = now
        self._ended[conn] = in_step_key(conn)
        if network._alone(conn):
            self.kinds[ALONE] += 1
        elif conn in self._cohort:
            self.kinds[IN_STEP] += 1
        else:
            members, kind = component(network, conn, self._ended)
            self.kinds[kind] += 1
            if members is not None:
                self.cohort_sizes[len(members)] += 1
                self._cohort.update(members)

    @contextmanager
    def counting(self) -> Iterator[Census]:
        """Classify every paced round end of the runs inside the block (then restore)."""
        original = TcpTransport._paced_round_end

        def counted(network: MaxMinNetwork, conn: Connection, now: float) -> None:
            self.classify(network, conn, now)
            original(network, conn, now)

        TcpTransport._paced_round_end = counted  # type: ignore[method-assign, assignment]
        try:
            yield self
        finally:
            TcpTransport._paced_round_end = original  # type: ignore[method-assign]
            self._close_instant()  # (the run's last instant)


def take_census(args: argparse.Namespace) -> tuple[Census, int]:
    """Run the benchmark's scenario under ``tcp`` + ``maxmin`` with the census on."""
    census = Census()
    with census.counting():
        result = run(bench.scenario(args, "maxmin"),
                     bench.TimedDiLoCo(inner_steps=args.inner_steps, allreduce=args.allreduce))
    return census, result.world.network.flows_started


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's scenario options, on clusters-of-clusters by default; always ``tcp``."""
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    bench.add_scenario_options(parser, steps=4)
    parser.set_defaults(topology="clusters-of-clusters")
    args = parser.parse_args(argv)
    bench.check_scenario_options(args, least_steps=1)
    args.transport = "tcp"
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    args = parse_command_line(argv)
    print(f"paced round ends of timing-only DiLoCo: {args.nodes} nodes, {args.allreduce} "
          f"all-reduce, {args.topology} topology, tcp + maxmin, {args.steps} outer steps")
    census, flows = take_census(args)
    total = sum(census.kinds.values())
    if total == 0:
        print("no paced round ended")
        return 0
    print(f"\n{total:,} paced round ends ({total / args.steps:,.0f} per outer step), "
          f"{flows:,} messages ({total / flows:.1f} round ends per message)")
    groups = ", ".join(f"{size} x {count:,}" for size, count in
                       sorted(census.twin_groups.items()) if size > 1)
    print(f"twins (round ends sharing their instant and state with another): "
          f"{census.twinned:,} ({census.twinned / total:.1%}); groups (round ends x times): "
          f"{groups or 'none'}\n")
    print("| what the connection shares its links with | round ends | share |")
    print("|---|---:|---:|")
    for kind in KINDS:
        print(f"| {kind} | {census.kinds[kind]:,} | {census.kinds[kind] / total:.1%} |")
    sizes = ", ".join(f"{size} x {count:,}" for size, count in sorted(census.cohort_sizes.items()))
    print(f"\ncohorts found (connections x times): {sizes or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
