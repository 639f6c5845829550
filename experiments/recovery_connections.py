"""Connection by connection: what the tcp transport does with each recovery method's messages.

Runs the CI pipeline of :func:`experiments.recovery_family.ci_setup` without failures for a
minute of simulated time and logs every message where the ``tcp`` transport starts it on its
connection (one per ordered node pair): how long it waited behind the connection's previous
message, how long the connection had been idle against its RTO, and so whether it restarted
slow start. Prints, per method, the pipeline time per iteration and counts of messages by
kind and connection state (docs/methods/recovery-checkfree.md, "CheckFree+ under tcp").

    python -m experiments.recovery_connections
    python -m experiments.recovery_connections --methods checkfree checkfree_plus --transport fluid

The log comes from a subclass of each tcp network model that records a message before the
transport's own ``_next_message`` handles it; :func:`logging_connections` installs it in
``sim.network.MODELS`` for the duration of a run and restores the originals.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import sim.network as network_module
from experiments.recovery_family import ci_setup, params_for, scenario_of
from policies.recovery.policies import RECOVERY_POLICIES
from sim.usage import OneLineParser, known, positive_seconds, refusing


@contextlib.contextmanager
def logging_connections(log: list[dict[str, Any]]) -> Iterator[None]:
    """Within the block, every tcp network appends one record per message to ``log``.

    (Every model's class carries both transports; ``_next_message`` is reached under ``tcp``
    only, so a ``fluid`` run logs nothing.)
    """
    originals = dict(network_module.MODELS)

    def logged(base: type) -> type:
        class Logged(base):  # type: ignore[misc, valid-type]
            def _next_message(self, conn: Any, flow: Any) -> None:
                now = self.env.now
                record = dict(src=flow.src, dst=flow.dst, label=flow.label or "-",
                              nbytes=flow.nbytes, waited_s=now - flow.start_s,
                              idle_s=now - conn.last_sent_s, cold=not conn.used)
                super()._next_message(conn, flow)
                record["rto_s"] = conn.rtt_s + self.tcp.min_rto_s
                log.append(record)
        Logged.__name__ = f"Logged{base.__name__}"
        return Logged

    try:
        for name, cls in originals.items():
            network_module.MODELS[name] = logged(cls)
        yield
    finally:
        network_module.MODELS.update(originals)


def connection_report(name: str, *, transport: str = "tcp", until_s: float = 60.0,
                      changes: dict[str, Any] | None = None) -> None:
    """Run ``name`` on the failure-free CI pipeline and print its connection figures."""
    from sim.policy import get_policy
    from sim.runner import run

    setup = dataclasses.replace(ci_setup(0.05), transport=transport, until_s=until_s,
                                target_loss=0.0)
    log: list[dict[str, Any]] = []
    with logging_connections(log):
        result = run(scenario_of(setup),
                     get_policy(name)(**{**params_for(name, setup, {}), **(changes or {})}))
    h = result.history
    pipeline = h[h.metric == "pipeline_time_s"].value
    allreduce = h[h.metric == "allreduce_time_s"].value
    print(f"== {name} {changes or ''} ({transport}): {len(pipeline)} iterations, pipeline "
          f"{pipeline.iloc[1:].mean():.3f} s, all-reduce {allreduce.iloc[1:].mean():.3f} s "
          "per iteration (after the first)")
    if transport != "tcp":
        return
    states: collections.Counter[tuple[str, str]] = collections.Counter()
    for r in log:
        kind = r["label"].split(" ")[0]
        state = ("cold" if r["cold"] else
                 "restart" if r["idle_s"] > r["rto_s"] else "warm")
        states[(kind, state)] += 1
    pairs = {(r["src"], r["dst"]) for r in log}
    print(f"  connections {len(pairs)}, messages {len(log)}; "
          f"RTOs {sorted({round(r['rto_s'], 3) for r in log})} s")
    for (kind, state), count in sorted(states.items()):
        print(f"  {kind:<15} {state:<8} {count:5d}")
    waits: dict[tuple[int, int, str], list[float]] = collections.defaultdict(list)
    for r in log:
        if r["waited_s"] > 1e-9:
            waits[(r["src"], r["dst"], r["label"].split(" ")[0])].append(r["waited_s"])
    for (src, dst, kind), w in sorted(waits.items()):
        print(f"  {kind} {src}->{dst}: queued behind its connection's previous message "
              f"{len(w)} times, {sum(w) / len(w):.3f} s on average")
    copies = sorted({(r["label"], r["nbytes"]) for r in log if r["label"].startswith("copy")})
    for label, nbytes in copies:
        print(f"  {label}: {nbytes / 1e6:.1f} MB")


PROG = "python -m experiments.recovery_connections"


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """Methods, transport, simulated seconds; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["checkfree", "checkfree_plus"],
                        help=f"recovery methods to run (of {', '.join(RECOVERY_POLICIES)})")
    parser.add_argument("--transport", choices=["tcp", "fluid"], default="tcp")
    parser.add_argument("--until-s", type=float, default=60.0, help="simulated seconds per run")
    args = parser.parse_args(argv)
    known("--methods", args.methods, RECOVERY_POLICIES, "method")
    positive_seconds("--until-s", args.until_s)
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run and report each method of the command line (one line and exit code 2 if refused)."""
    args = parse_command_line(argv)
    for name in args.methods:
        connection_report(name, transport=args.transport, until_s=args.until_s)
        if name == "checkfree_plus":
            connection_report(name, transport=args.transport, until_s=args.until_s,
                              changes={"embedding_copy_every": 0})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
