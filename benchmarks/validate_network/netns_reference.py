"""Real Linux TCP on shaped links in network namespaces, against dtsim's predictions.

As root, builds a private lab: one namespace ``<prefix>s`` holding a bridge, and one namespace
``<prefix>h<i>`` per host joined to it by a veth pair. Each host's uplink (its veth's egress)
and downlink (the bridge port's egress) are shaped with ``tc tbf``. The kernel here has no
``netem``, so there is no added latency: every case is bandwidth-bound. It runs raw TCP transfer
sets (fan-out, fan-in, two bottlenecks, asymmetric residential links) with one agent process per
namespace (``netns_agent.py``), and torch.distributed gloo collectives (all-reduce, send/recv)
with one rank per namespace (``netns_gloo.py``). Each case runs ``--repeats`` times; the table
gives the median measured makespan beside dtsim's ``tcp`` and ``fluid`` predictions.

Every connection uses CUBIC (``--cc``), the Linux default that dtsim's ``tcp`` transport
models: set on the lab's own subnet route (``ip route ... congctl``), because a namespace other
than the host's may only take a default the host allows, and some hosts run BBR. The agents read
back the algorithm of every raw connection. The table also gives, per case, the time the
busiest shaped link needed for the bytes ``tc`` counted through it (data, headers, ACKs and
retransmissions, at its rate): when the measured time is above it, the link stood idle (a
sender or a receiver waited for its CPU); when the prediction is below it, the bytes the model
leaves out (ACKs) are the reason.

Everything it creates carries a unique prefix and is removed on exit, on error and on SIGINT /
SIGTERM (deleting a namespace deletes its links and qdiscs). Traffic flows only between its
namespaces (addresses 10.213.0.0/24 on the private bridge). Every wait is bounded.

Usage (as root)::

    nice -n -10 python benchmarks/validate_network/netns_reference.py [--repeats 5] [--out t.md]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from dataclasses import dataclass, replace  # noqa: E402

from labtools import probe, reap, remove_namespaces, sh  # noqa: E402

from sim.collectives import GLOO_WINDOW, gloo_ring_allreduce_schedule  # noqa: E402
from sim.network.tcp import TcpConfig  # noqa: E402
from sim.network.validation import Case, Message, predict, schedule_messages  # noqa: E402
from sim.usage import (  # noqa: E402
    OneLineParser,
    check_output_file,
    checked,
    existing_file,
    refusing,
)

PROG = "benchmarks/validate_network/netns_reference.py"

MB = 1e6
SUBNET = "10.213.0"
WITH_ACKS = TcpConfig(ack_frame_bytes=66, segments_per_ack=3.5)
"""The tcp transport with its ACK bytes on (off by default), at the rate this lab's tbf counters
measured on links carrying data both ways (one 66-byte ACK per 3.5 segments)."""
JOB_TIMEOUT_S = 120.0


def why_not() -> str | None:
    """Why this machine cannot run the lab, or None."""
    if sys.platform != "linux":
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"needs the {tool!r} command (iproute2)"
    return _probe()


def _probe() -> str | None:
    """Build and remove one namespace with a veth pair and a tbf: what the lab needs."""
    ns = f"dtv{os.getpid() % 100000}probe"
    steps = [("ip", "netns", "add", ns),
             ("ip", "-n", ns, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb"),
             ("ip", "-n", ns, "link", "add", "name", "br0", "type", "bridge"),
             ("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "va", "root", "tbf",
              "rate", "1mbit", "burst", "64k", "limit", "64k")]
    return probe(ns, steps)


class Lab:
    """The namespaces, bridge, veths and qdiscs of one run; :meth:`close` removes them all."""

    def __init__(self, num_hosts: int, cc: str = "cubic", queue_s: float = 0.05) -> None:
        self.cc = cc
        self.queue_s = queue_s
        self.prefix = f"dtv{os.getpid() % 100000}"
        self.switch = f"{self.prefix}s"
        self.hosts = [f"{self.prefix}h{i}" for i in range(num_hosts)]
        self.created: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def ip_of(self, i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    def build(self) -> None:
        sw = self.switch
        self.created.append(sw)  # first: a signal between the two still removes it
        sh("ip", "netns", "add", sw)
        sh("ip", "-n", sw, "link", "set", "lo", "up")
        sh("ip", "-n", sw, "link", "add", "name", "br0", "type", "bridge")
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        for i, ns in enumerate(self.hosts):
            self.created.append(ns)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", sw, "link", "add", "name", f"p{i}", "type", "veth",
               "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", sw, "link", "set", f"p{i}", "master", "br0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.ip_of(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            if self.cc:  # every connection on the lab's subnet uses this algorithm
                sh("ip", "-n", ns, "route", "replace", f"{SUBNET}.0/24", "dev", "eth0",
                   "congctl", self.cc)

    def shape(self, up_bps: tuple[float, ...], down_bps: tuple[float, ...]) -> None:
        """tbf on each host's uplink (its eth0) and downlink (the bridge port p<i>).

        The bucket holds 2 ms at the rate (at least 64 KiB, so a GSO burst passes whole); the
        queue holds ``queue_s`` at the rate (at least the bucket): a drop-tail bottleneck buffer.
        """
        for i, ns in enumerate(self.hosts):
            for where, dev, rate in ((ns, "eth0", up_bps[i]), (self.switch, f"p{i}",
                                                               down_bps[i])):
                burst = max(64 * 1024, int(rate / 8 * 0.002))
                limit = max(burst, int(rate / 8 * self.queue_s))
                sh("ip", "netns", "exec", where, "tc", "qdisc", "replace", "dev", dev, "root",
                   "tbf", "rate", f"{int(rate)}bit", "burst", str(burst), "limit", str(limit))

    def shaped(self) -> list[tuple[str, str, str]]:
        """(namespace, device, name) of every shaped link: ``up<i>`` and ``down<i>``."""
        return [link for i, ns in enumerate(self.hosts)
                for link in ((ns, "eth0", f"up{i}"), (self.switch, f"p{i}", f"down{i}"))]

    def bytes_sent(self) -> dict[str, int]:
        """Bytes each shaped link's tbf has sent so far (frames from the Ethernet header on)."""
        out = {}
        for where, dev, name in self.shaped():
            text = sh("ip", "netns", "exec", where, "tc", "-s", "qdisc", "show", "dev", dev).stdout
            found = re.search(r"Sent (\d+) bytes", text)
            out[name] = int(found.group(1)) if found else 0
        return out

    def spawn(self, i: int, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", self.hosts[i], *argv],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        reap(self.procs)
        remove_namespaces(self.created)


# -- raw TCP transfer sets --------------------------------------------------------------------

def transfer_cases() -> list[Case]:
    m100, m20 = 100e6, 20e6
    cases = [
        Case(name="fan-out: 1 -> 3, 20 MB each, 100 Mbit/s", kind="transfers",
             rate_bps=(m100,) * 4, delay_s=(0.0,) * 4,
             messages=tuple(Message(src=0, dst=d, nbytes=20 * MB) for d in (1, 2, 3))),
        Case(name="fan-in: 3 -> 1, 20 MB each, 100 Mbit/s", kind="transfers",
             rate_bps=(m100,) * 4, delay_s=(0.0,) * 4,
             messages=tuple(Message(src=s, dst=0, nbytes=20 * MB) for s in (1, 2, 3))),
        # h1's downlink (60) and h2's uplink (50) are the bottlenecks: max-min gives 0->1 35,
        # 2->1 25 and 2->3 25 Mbit/s
        Case(name="two bottlenecks: 0->1, 2->1, 2->3, 15 MB each", kind="transfers",
             rate_bps=(100e6, 100e6, 50e6, 100e6), down_bps=(100e6, 60e6, 100e6, 100e6),
             delay_s=(0.0,) * 4,
             messages=(Message(src=0, dst=1, nbytes=15 * MB), Message(src=2, dst=1, nbytes=15 * MB),
                       Message(src=2, dst=3, nbytes=15 * MB))),
        Case(name="ring shift: 4 hosts each 20 MB to the next, 100 Mbit/s", kind="transfers",
             rate_bps=(m100,) * 4, delay_s=(0.0,) * 4,
             messages=tuple(Message(src=s, dst=(s + 1) % 4, nbytes=20 * MB) for s in range(4))),
        Case(name="residential 20/100 Mbit/s: 3 homes all-to-all, 5 MB", kind="transfers",
             rate_bps=(m20,) * 3, down_bps=(m100,) * 3, delay_s=(0.0,) * 3,
             messages=tuple(Message(src=s, dst=d, nbytes=5 * MB)
                            for s in range(3) for d in range(3) if s != d)),
    ]
    return cases


@dataclass(frozen=True, kw_only=True)
class Run:
    """One measured run of a case.

    makespan_s:
        Last byte received minus the common start instant, s.
    starts_s:
        Per message, when its sender actually began after that instant, s (a gloo message:
        when both its ranks had begun, as gloo sends only into a posted receive): time the
        network did not see, lost to the CPU.
    wire_s:
        The busiest shaped link's bytes (counted by its tbf) divided by its rate, s: the
        shortest time those bytes could take.
    """

    makespan_s: float
    starts_s: tuple[float, ...]
    wire_s: float

    @property
    def late_s(self) -> float:
        """How late the last message began, s."""
        return max(self.starts_s)


def run_transfers(lab: Lab, case: Case) -> tuple[float, list[float]]:
    """Start every message at one instant; (makespan to the last byte, each one's start)."""
    agents = {i: lab.spawn(i, [sys.executable, str(HERE / "netns_agent.py")])
              for i in range(len(case.rate_bps))}
    try:
        for j, m in enumerate(case.messages):
            port = 20000 + j
            _tell(agents[m.dst], {"op": "serve", "id": j, "port": port, "nbytes": int(m.nbytes)})
            _wait_for(agents[m.dst], lambda r, j=j: r.get("id") == j and r.get("listening"))
        at = time.time() + 1.0
        for j, m in enumerate(case.messages):
            _tell(agents[m.src], {"op": "send", "id": j, "host": lab.ip_of(m.dst),
                                  "port": 20000 + j, "nbytes": int(m.nbytes), "at": at})
        ends, begins = [], []
        for j, m in enumerate(case.messages):
            got = _wait_for(agents[m.dst], lambda r, j=j: r.get("id") == j and "end" in r)
            sent = _wait_for(agents[m.src], lambda r, j=j: r.get("id") == j and "begin" in r)
            if got.get("short"):
                raise RuntimeError(f"{case.name}: message {j} short by {got['short']} B")
            for reply in (got, sent):
                if lab.cc and reply["cc"] != lab.cc:
                    raise RuntimeError(f"{case.name}: a connection used {reply['cc']!r}, "
                                       f"not {lab.cc!r}")
            ends.append(got["end"])
            begins.append(sent["begin"])
        return max(ends) - at, [b - at for b in begins]
    finally:
        for proc in agents.values():
            _tell(proc, {"op": "quit"}, quiet=True)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _tell(proc: subprocess.Popen, obj: dict, quiet: bool = False) -> None:
    try:
        proc.stdin.write(json.dumps(obj) + "\n")
        proc.stdin.flush()
    except (BrokenPipeError, OSError):
        if not quiet:
            raise


_seen: dict[int, list[dict]] = {}  # agent pid -> answers read but not yet wanted


def _wait_for(proc: subprocess.Popen, match) -> dict:
    """The agent's first answer that matches (bounded by the agents' socket timeouts)."""
    kept = _seen.setdefault(proc.pid, [])
    for reply in kept:
        if match(reply):
            kept.remove(reply)
            return reply
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"agent ended early: {proc.stderr.read()[-2000:]}")
        reply = json.loads(line)
        if match(reply):
            return reply
        kept.append(reply)
    raise TimeoutError("no answer from an agent")


# -- gloo collectives -------------------------------------------------------------------------

def gloo_cases() -> list[tuple[Case, str, float]]:
    """(case as dtsim sees it, the gloo pattern, bytes per rank)."""
    out = []
    k, rate = 4, 100e6
    hosts = dict(rate_bps=(rate,) * k, delay_s=(0.0,) * k)
    for mb in (10, 40):  # predicted with gloo's own ring schedule (1 MiB segments, 2 in flight)
        schedule, fence = gloo_ring_allreduce_schedule(list(range(k)), mb * MB)
        msgs = schedule_messages(schedule, window=GLOO_WINDOW, fences=(fence,))
        out.append((Case(name=f"gloo all_reduce 4 ranks {mb} MB fp32, 100 Mbit/s",
                         kind="collective", messages=msgs, **hosts), "allreduce", mb * MB))
    msgs = tuple(Message(src=r, dst=(r + 1) % k, nbytes=20 * MB) for r in range(k))
    out.append((Case(name="gloo send/recv ring shift 4 ranks 20 MB", kind="collective",
                     messages=msgs, **hosts), "shift", 20 * MB))
    msgs = tuple(Message(src=r, dst=0, nbytes=10 * MB) for r in range(1, k))
    out.append((Case(name="gloo send/recv 3 -> rank 0, 10 MB each", kind="collective",
                     messages=msgs, **hosts), "gather", 10 * MB))
    return out


def run_gloo(lab: Lab, case: Case, pattern: str, nbytes: float, port: int,
             repeats: int) -> list[tuple[float, list[float]]]:
    """``repeats`` gloo operations in one process group; (makespan, rank starts) of each.

    The makespan runs from the first rank's start (after a barrier) to the last rank's end;
    each rank's start is given from the first one's.
    """
    k = len(case.rate_bps)
    procs = []
    for r in range(k):
        env = dict(os.environ, GLOO_SOCKET_IFNAME="eth0", OMP_NUM_THREADS="1")
        env.pop("LOCAL_WORLD_SIZE", None)  # else gloo may all-reduce through shared memory
        procs.append(lab.spawn(r, [sys.executable, str(HERE / "netns_gloo.py"), str(r), str(k),
                                   lab.ip_of(0), str(port), pattern, str(int(nbytes)),
                                   str(repeats)], env=env))
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=JOB_TIMEOUT_S + 30 * repeats)
            if proc.returncode != 0:
                raise RuntimeError(f"gloo rank failed: {err[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1])["spans"])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    out = []
    for rep in range(repeats):
        starts = [spans[rep][0] for spans in results]
        ends = [spans[rep][1] for spans in results]
        out.append((max(ends) - min(starts), [t - min(starts) for t in starts]))
    return out


# -- main -------------------------------------------------------------------------------------

Work = tuple[Case, "str | None", float]  # a case, its gloo pattern (None: raw TCP), bytes/rank


def all_work() -> list[Work]:
    """Every case of the table: raw TCP transfer sets, then gloo collectives."""
    return [(c, None, 0.0) for c in transfer_cases()] + gloo_cases()


def measure(lab: Lab, case: Case, pattern: str | None, nbytes: float, *, repeats: int,
            port: int) -> list[Run]:
    """Shape the lab for ``case`` and run it ``repeats`` times."""
    k = len(case.rate_bps)
    up = case.rate_bps + (1e9,) * (len(lab.hosts) - k)
    down = (case.down_bps or case.rate_bps) + (1e9,) * (len(lab.hosts) - k)
    rate_Bps = {f"up{i}": up[i] / 8 for i in range(k)} | {f"down{i}": down[i] / 8
                                                           for i in range(k)}
    lab.shape(up, down)

    def wire_s(before: dict[str, int], after: dict[str, int], runs: int) -> float:
        return max((after[name] - before[name]) / rate_Bps[name] for name in rate_Bps) / runs

    if pattern is not None:  # one process group for every repeat: bytes shared out evenly
        before = lab.bytes_sent()
        timed = run_gloo(lab, case, pattern, nbytes, port, repeats)
        wire = wire_s(before, lab.bytes_sent(), repeats)
        return [Run(makespan_s=makespan, wire_s=wire,
                    starts_s=tuple(max(ranks[msg.src], ranks[msg.dst]) for msg in case.messages))
                for makespan, ranks in timed]
    runs = []
    for _ in range(repeats):
        before = lab.bytes_sent()
        makespan, starts = run_transfers(lab, case)
        runs.append(Run(makespan_s=makespan, starts_s=tuple(starts),
                        wire_s=wire_s(before, lab.bytes_sent(), 1)))
    return runs


def row(case: Case, runs: list[Run]) -> dict:
    """Measured figures of a case beside dtsim's predictions: the ``tcp`` transport as
    configured by default, the same with ACK bytes on (``WITH_ACKS``), and ``fluid``."""
    measured = [r.makespan_s for r in runs]
    med = statistics.median(measured)
    tcp = case.makespan_s(predict(case))
    acks = case.makespan_s(predict(case, tcp=WITH_ACKS))
    fluid = case.makespan_s(predict(case, transport="fluid"))
    started = statistics.median(max(predict(started_case(case, r))) / r.makespan_s - 1
                                for r in runs)
    return {"case": case.name, "runs": len(runs), "median_s": med, "min_s": min(measured),
            "max_s": max(measured), "wire_s": statistics.median(r.wire_s for r in runs),
            "late_ms": 1e3 * statistics.median(r.late_s for r in runs), "tcp_s": tcp,
            "tcp_error": tcp / med - 1, "tcp_started_error": started, "tcp_acks_s": acks,
            "tcp_acks_error": acks / med - 1, "fluid_s": fluid,
            "fluid_error": fluid / med - 1}


def started_case(case: Case, run: Run) -> Case:
    """``case`` with each message starting when it actually began in ``run``."""
    return replace(case, messages=tuple(replace(m, start_s=t)
                                        for m, t in zip(case.messages, run.starts_s)))


def table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    lines = ["| case | measured median (min-max) s | busiest link's bytes / rate s | "
             "latest start ms | dtsim tcp s | error | error from the actual starts | "
             "dtsim tcp with ACK bytes s | error | dtsim fluid s | error |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['median_s']:.3f} ({r['min_s']:.3f}-{r['max_s']:.3f}) "
                     f"| {r['wire_s']:.3f} | {r['late_ms']:.0f} | {r['tcp_s']:.3f} | "
                     f"{r['tcp_error']:+.1%} | {r['tcp_started_error']:+.1%} | "
                     f"{r['tcp_acks_s']:.3f} | {r['tcp_acks_error']:+.1%} | "
                     f"{r['fluid_s']:.3f} | {r['fluid_error']:+.1%} |")
    return "\n".join(lines)


def save_runs(path: str | Path, measured: list[tuple[Case, list[Run]]], meta: dict) -> None:
    """Write every run (makespan, starts, wire time) and how they were taken, as JSON."""
    cases = [{"case": case.name, "runs": [{"makespan_s": round(r.makespan_s, 6),
                                           "starts_s": [round(t, 6) for t in r.starts_s],
                                           "wire_s": round(r.wire_s, 6)} for r in runs]}
             for case, runs in measured]
    Path(path).write_text(json.dumps({"meta": meta, "cases": cases}, indent=1) + "\n")


def load_runs(path: str | Path) -> tuple[list[tuple[Case, list[Run]]], dict]:
    """Inverse of :func:`save_runs`: the cases (from :func:`all_work`, by name) and their runs."""
    data = json.loads(Path(path).read_text())
    by_name = {case.name: case for case, _, _ in all_work()}
    measured = [(by_name[c["case"]], [Run(makespan_s=r["makespan_s"],
                                          starts_s=tuple(r["starts_s"]), wire_s=r["wire_s"])
                                      for r in c["runs"]]) for c in data["cases"]]
    return measured, data["meta"]


@refusing(PROG)
def main(argv=None) -> int:
    """Run the table (as root); print it, and write it to ``--out`` if given."""
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="", help="also write the markdown table here")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    parser.add_argument("--queue-ms", type=float, default=50.0,
                        help="drop-tail queue of every shaped link, ms at its rate")
    parser.add_argument("--cc", default="cubic",
                        help="congestion control of every connection ('' = the host's default)")
    parser.add_argument("--save", default="", help="also write every run here (JSON)")
    parser.add_argument("--table-from", default="",
                        help="measure nothing: the table of runs saved with --save, predicted "
                             "by this dtsim (no root needed)")
    args = parser.parse_args(argv)
    checked("--repeats", args.repeats, lambda n: 1 <= n <= 50, "an integer from 1 to 50")
    checked("--queue-ms", args.queue_ms, lambda ms: 1.0 <= ms <= 1000.0, "1 to 1000 milliseconds")
    for option, path in (("--out", args.out), ("--save", args.save)):
        check_output_file(option, path or None)
    if args.table_from:
        existing_file("--table-from", args.table_from)
    if args.table_from:
        measured, meta = load_runs(args.table_from)
        print(f"runs of {meta['date']}: {meta['repeats']} repeats, congestion control "
              f"{meta['cc']}, queue {meta['queue_ms']:g} ms, load {meta['load_before']} -> "
              f"{meta['load_after']}")
        print(table([row(case, runs) for case, runs in measured]))
        return 0
    lab = Lab(num_hosts=4, cc=args.cc, queue_s=args.queue_ms / 1e3)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rows, measured = [], []
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        reason = why_not()  # after the handlers: its probe namespace is removed on a signal too
        if reason:
            print(f"netns_reference: skipped: {reason}")
            return 0
        lab.build()
        for n, (case, pattern, nbytes) in enumerate(all_work()):
            if args.only not in case.name:
                continue
            runs = measure(lab, case, pattern, nbytes, repeats=args.repeats,
                           port=29500 + 100 * n)
            measured.append((case, runs))
            rows.append(row(case, runs))
            r = rows[-1]
            print(f"{case.name}: measured {r['median_s']:.3f} s (min {r['min_s']:.3f}, max "
                  f"{r['max_s']:.3f}, each {[round(x.makespan_s, 3) for x in runs]}); wire "
                  f"{r['wire_s']:.3f}; late {r['late_ms']:.0f} ms; dtsim tcp {r['tcp_s']:.3f} "
                  f"({r['tcp_error']:+.1%}; {r['tcp_started_error']:+.1%} from the actual "
                  f"starts), fluid {r['fluid_s']:.3f} ({r['fluid_error']:+.1%})",
                  flush=True)
    finally:
        lab.close()
        for s, handler in old.items():
            signal.signal(s, handler)
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"congestion control: {args.cc or 'host default'}; queue {args.queue_ms:g} ms; "
          f"load average (1, 5, 15 min) {load_before} before, {load_after} after")
    print(table(rows))
    if args.out:
        Path(args.out).write_text(table(rows) + "\n")
    if args.save:
        save_runs(args.save, measured, {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cc": args.cc,
            "queue_ms": args.queue_ms, "repeats": args.repeats, "kernel": os.uname().release,
            "cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after,
            "nice": os.nice(0)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
