"""Real Linux TCP on shaped links in network namespaces, against dtsim's predictions.

As root, builds a private lab: one namespace ``<prefix>s`` holding a bridge, and one namespace
``<prefix>h<i>`` per host joined to it by a veth pair. Each host's uplink (its veth's egress)
and downlink (the bridge port's egress) are shaped with ``tc tbf``. The kernel here has no
``netem``, so there is no added latency: every case is bandwidth-bound. It runs raw TCP transfer
sets (fan-out, fan-in, two bottlenecks, asymmetric residential links) with one agent process per
namespace (``netns_agent.py``), and torch.distributed gloo collectives (all-reduce, send/recv)
with one rank per namespace (``netns_gloo.py``). Each case runs ``--repeats`` times; the table
gives the median measured makespan beside dtsim's ``tcp`` and ``fluid`` predictions.

Everything it creates carries a unique prefix and is removed on exit, on error and on SIGINT /
SIGTERM (deleting a namespace deletes its links and qdiscs). Traffic flows only between its
namespaces (addresses 10.213.0.0/24 on the private bridge). Every wait is bounded.

Usage (as root)::

    python benchmarks/validate_network/netns_reference.py [--repeats 3] [--out table.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from sim.collectives import GLOO_WINDOW, gloo_ring_allreduce_schedule  # noqa: E402
from sim.network.validation import Case, Message, predict, schedule_messages  # noqa: E402

MB = 1e6
SUBNET = "10.213.0"
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
    return None


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


class Lab:
    """The namespaces, bridge, veths and qdiscs of one run; :meth:`close` removes them all."""

    def __init__(self, num_hosts: int) -> None:
        self.prefix = f"dtv{os.getpid() % 100000}"
        self.switch = f"{self.prefix}s"
        self.hosts = [f"{self.prefix}h{i}" for i in range(num_hosts)]
        self.created: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def ip_of(self, i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    def build(self) -> None:
        sw = self.switch
        sh("ip", "netns", "add", sw)
        self.created.append(sw)
        sh("ip", "-n", sw, "link", "set", "lo", "up")
        sh("ip", "-n", sw, "link", "add", "name", "br0", "type", "bridge")
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        for i, ns in enumerate(self.hosts):
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "-n", sw, "link", "add", "name", f"p{i}", "type", "veth",
               "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", sw, "link", "set", f"p{i}", "master", "br0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.ip_of(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def shape(self, up_bps: tuple[float, ...], down_bps: tuple[float, ...]) -> None:
        """tbf on each host's uplink (its eth0) and downlink (the bridge port p<i>)."""
        for i, ns in enumerate(self.hosts):
            for where, dev, rate in ((ns, "eth0", up_bps[i]), (self.switch, f"p{i}",
                                                               down_bps[i])):
                burst = max(64 * 1024, int(rate / 8 * 0.002))
                limit = max(512 * 1024, int(rate / 8 * 0.05))
                sh("ip", "netns", "exec", where, "tc", "qdisc", "replace", "dev", dev, "root",
                   "tbf", "rate", f"{int(rate)}bit", "burst", str(burst), "limit", str(limit))

    def spawn(self, i: int, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", self.hosts[i], *argv],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        for ns in reversed(self.created):
            sh("ip", "netns", "del", ns, check=False)
        self.created.clear()


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


def run_transfers(lab: Lab, case: Case) -> float:
    """Start every message at one instant; the makespan to the last byte received."""
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
        ends = []
        for j, m in enumerate(case.messages):
            reply = _wait_for(agents[m.dst], lambda r, j=j: r.get("id") == j and "end" in r)
            if reply.get("short"):
                raise RuntimeError(f"{case.name}: message {j} short by {reply['short']} B")
            ends.append(reply["end"])
        return max(ends) - at
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


def run_gloo(lab: Lab, case: Case, pattern: str, nbytes: float, port: int) -> float:
    k = len(case.rate_bps)
    procs = []
    for r in range(k):
        env = dict(os.environ, GLOO_SOCKET_IFNAME="eth0", OMP_NUM_THREADS="1")
        procs.append(lab.spawn(r, [sys.executable, str(HERE / "netns_gloo.py"), str(r), str(k),
                                   lab.ip_of(0), str(port), pattern, str(int(nbytes))], env=env))
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=JOB_TIMEOUT_S)
            if proc.returncode != 0:
                raise RuntimeError(f"gloo rank failed: {err[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    start = min(r["start"] for r in results)
    return max(r["end"] for r in results) - start


# -- main -------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="", help="also write the markdown table here")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args(argv)
    reason = why_not()
    if reason:
        print(f"netns_reference: skipped: {reason}")
        return 0
    lab = Lab(num_hosts=4)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rows = []
    try:
        lab.build()
        work = [(c, None, 0.0) for c in transfer_cases()] + gloo_cases()
        for n, (case, pattern, nbytes) in enumerate(work):
            if args.only not in case.name:
                continue
            k = len(case.rate_bps)
            up = case.rate_bps + (1e9,) * (4 - k)
            down = (case.down_bps or case.rate_bps) + (1e9,) * (4 - k)
            lab.shape(up, down)
            measured = []
            for rep in range(args.repeats):
                if pattern is None:
                    measured.append(run_transfers(lab, case))
                else:
                    measured.append(run_gloo(lab, case, pattern, nbytes, 29500 + 10 * n + rep))
            tcp = case.makespan_s(predict(case))
            fluid = case.makespan_s(predict(case, transport="fluid"))
            med = statistics.median(measured)
            rows.append((case.name, med, min(measured), max(measured), tcp, fluid))
            print(f"{case.name}: measured {med:.3f} s (min {min(measured):.3f}, max "
                  f"{max(measured):.3f}); dtsim tcp {tcp:.3f} ({tcp / med - 1:+.1%}), fluid "
                  f"{fluid:.3f} ({fluid / med - 1:+.1%})", flush=True)
    finally:
        lab.close()
        for s, handler in old.items():
            signal.signal(s, handler)
    table = ["| case | measured median (min-max) s | dtsim tcp s | error | dtsim fluid s | "
             "error |", "|---|---|---|---|---|---|"]
    for name, med, lo, hi, tcp, fluid in rows:
        table.append(f"| {name} | {med:.3f} ({lo:.3f}-{hi:.3f}) | {tcp:.3f} | "
                     f"{tcp / med - 1:+.1%} | {fluid:.3f} | {fluid / med - 1:+.1%} |")
    print("\n".join(table))
    if args.out:
        Path(args.out).write_text("\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
