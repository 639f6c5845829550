"""Real Linux TCP on high-latency paths: namespaces joined through a TUN delay line.

The namespace lab of ``netns_reference.py`` has no latency (this kernel has no ``netem``). This
one adds it without ``netem``: as root it builds a star like the ns-3 reference's, a switch
namespace ``dtsim-dl-<pid>-sw`` (a router) and one namespace ``dtsim-dl-<pid>-h<i>`` per host.
A host whose case gives it no delay joins the switch by a veth pair; a host with one-way delay
``d`` joins it by two TUN devices (one in each namespace) that ``delayline.c`` (compiled here
with gcc at run time, run with real-time priority) joins, holding every packet for ``d`` in each
direction, first in first out. Each link's two egresses are shaped with ``tc tbf`` at the
case's rate with a drop-tail queue of the case's ``queue_pkts`` full-size packets (about one
bandwidth-delay product, as the ns-3 grid): the bottleneck queue is the switch's port towards
the receiver, a router's queue, as in ns-3. It is not in the delay line: tbf's rate is the
kernel's own, and a forwarded packet's queue is a real router queue (a queue in the sender's own
host would be throttled by TCP Small Queues and never overflow). TUN frames are IP packets, so
the TUN tbfs count ``overhead 14`` bytes per packet: wire bytes are Ethernet's 1514 per 1448-byte
segment, the frame of dtsim's default ``TcpConfig`` (ns-3's PPP links use 1502).

The cases are the ns-3 grid's (``cases.py``) that this lab carries: single flows at 10 and 100
Mbit/s (1-150 ms one way, 1-10 MB; ``--big`` adds 100 MB), 2, 4 and 8 flows into one 100 Mbit/s
receiver, together and staggered, and four 5 MB messages on one connection (queued, chained,
spaced). Not carried: 1 Gbit/s (a user-space delay line on the shared 2-core machine) and the
ring all-reduces (every link both ways through the delay line). Messages between two hosts go in
order on one connection, opened before the start; a message with dependencies is sent when the
receivers of its dependencies have reported delivery (over pipes, with no network delay, like
the simulators' oracle). Connections use CUBIC, set on the lab's routes (``congctl``: this host
defaults to BBR) and read back from every socket; ssthresh caching between connections is off
(``tcp_no_metrics_save``), and ``tcp_rmem``'s maximum is the grid's 6 MiB (its default, where
receive-window autotuning starts, is the kernel's 128 KiB; ``--rmem-default`` changes it).

Per run it records each message's delivery, the bottleneck tbf's drops, the delay line's
counters (read = written + dropped + held; the largest packet; how late writes were), and the
sender's TCP_INFO at every change of congestion state, ssthresh or retransmissions, so a
disagreement has a cause: a slow start that ended with ssthresh set and no retransmission left
by HyStart; one with drops overshot the buffer. Everything it creates is removed on exit, error,
SIGINT and SIGTERM (the TUN devices vanish with the delay line; deleting a namespace deletes its
veths and qdiscs). Traffic only flows between its own namespaces (10.214.0.0/16). Every wait is
bounded.

Usage (as root)::

    nice -n -20 python benchmarks/validate_network/delayline_reference.py --repeats 3 \
        --save benchmarks/validate_network/delayline_runs.json
    python benchmarks/validate_network/delayline_reference.py \
        --table-from benchmarks/validate_network/delayline_runs.json    # no root
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from cases import FAST, MB, all_cases  # noqa: E402
from labtools import probe, reap, remove_namespaces, sh  # noqa: E402

from sim.network.tcp import TcpConfig  # noqa: E402
from sim.network.validation import (  # noqa: E402
    Case,
    Message,
    predict,
    read_reference,
    with_bottleneck_queue,
)
from sim.usage import (  # noqa: E402
    OneLineParser,
    UsageError,
    check_output_file,
    checked,
    existing_file,
    refused,
    refusing,
)

NET = "10.214"
FRAME_OVERHEAD = 14          # Ethernet header, counted by tbf on the L3 TUN devices
JOB_TIMEOUT_S = 120.0
DELAYLINE_MAX_S = 900.0      # the delay line of one case ends itself after this
HYSTART_SHORT = TcpConfig(hystart_short_rtt_exit=True)
HYSTART_DELAY = TcpConfig(hystart_delay_exit=True)
RMEM_DEFAULT = 131072        # tcp_rmem's default (a new socket's receive buffer), the kernel's
RMEM_MAX = 6291456           # tcp_rmem's maximum: the grid's 6 MiB (the kernel's is 32 MiB)
WMEM_MAX = 4194304           # tcp_wmem's maximum: the kernel's 4 MiB, as in the grid
NS3_CSV = HERE / "ns3_reference.csv"


# -- the cases ---------------------------------------------------------------------------------

def window_cases() -> list[Case]:
    """A path where the send buffer, not the link, can cap one connection: 100 Mbit/s, 300 ms
    RTT, 20 MB into a one-BDP queue. dtsim's window cap (4 MiB of payload per RTT, 14 MB/s)
    does not bind there; the link (11.96 MB/s of payload) does (``--case-set window``)."""
    rate = 100e6
    return [Case(name="window: 100Mbit/s 150ms 20MB", kind="single",
                 rate_bps=(FAST * rate, rate), delay_s=(0.0, 0.15), queue_pkts=(2500, 2500),
                 messages=(Message(src=0, dst=1, nbytes=20 * MB, start_s=1.0),))]


def lab_cases(big: bool = False) -> list[Case]:
    """The ns-3 grid's cases this lab carries (see the module docstring)."""
    out = check_cases()
    for case in all_cases():
        if case.kind == "collective":
            continue
        if max(case.rate_bps[i] for i in _receivers(case)) > 100e6:
            continue
        if not big and sum(m.nbytes for m in case.messages) >= 100e6 and \
                min(case.rate_bps) <= 10e6:
            continue
        out.append(case)
    return out


def check_cases() -> list[Case]:
    """The lab's own check: one flow into a queue too deep to overflow, so that once the
    window has grown the bottleneck never idles and the second half of the bytes arrives at
    exactly the tbf's rate x 1448/1514 (not in the ns-3 grid)."""
    out = []
    for mbps, size_mb in ((100, 20), (10, 4)):
        rate = mbps * 1e6
        out.append(Case(name=f"lab check: {mbps}Mbit/s 1ms {size_mb}MB, deep queue",
                        kind="single", rate_bps=(FAST * rate, rate), delay_s=(0.0, 0.001),
                        queue_pkts=(3000, 3000),
                        messages=(Message(src=0, dst=1, nbytes=size_mb * MB, start_s=1.0),)))
    return out


def _receivers(case: Case) -> set[int]:
    return {m.dst for m in case.messages}


def ns3_rows() -> dict[str, list[float]]:
    """ns-3's delivery times per case name (the ``[ack every segment]`` rows as well)."""
    return {case.name: delivered for case, delivered in read_reference(NS3_CSV)}


def ns3_of(case: Case, rows: dict[str, list[float]]) -> tuple[float | None, str]:
    """ns-3's completion time for ``case`` and the row's name (its plain row if it has one)."""
    for name in (case.name, f"{case.name} [ack every segment]"):
        if name in rows:
            return case.completion_s(rows[name]), name
    return None, ""


# -- the lab -----------------------------------------------------------------------------------

def why_not() -> str | None:
    """Why this machine cannot run the lab, or None."""
    if sys.platform != "linux":
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (network namespaces, TUN devices, tc)"
    for tool in ("ip", "tc", "gcc", "chrt"):
        if shutil.which(tool) is None:
            return f"needs the {tool!r} command"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    return _probe()


def _probe() -> str | None:
    """Try what the lab needs: a namespace, a TUN device with a tbf, real-time priority."""
    ns = f"dtsim-dl-{os.getpid()}-probe"
    steps = [("ip", "netns", "add", ns),
             ("ip", "-n", ns, "tuntap", "add", "dev", "probe0", "mode", "tun"),
             ("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "probe0", "root",
              "tbf", "rate", "1mbit", "burst", "4k", "limit", "64k", "overhead", "14"),
             ("chrt", "-f", "50", "true")]
    return probe(ns, steps)


def compile_delayline(workdir: str) -> str:
    """Compile ``delayline.c`` into ``workdir``; the binary's path."""
    binary = os.path.join(workdir, "delayline")
    sh("gcc", "-O2", "-Wall", "-o", binary, str(HERE / "delayline.c"))
    return binary


class Lab:
    """The namespaces, links and qdiscs of one case; :meth:`close` removes them all."""

    def __init__(self, case: Case, binary: str, rmem_default: int = RMEM_DEFAULT,
                 wmem_max: int = WMEM_MAX, rmem_max: int = RMEM_MAX,
                 writer: str = "poll-first") -> None:
        self.case = case
        self.rmem_default = rmem_default
        self.wmem_max = wmem_max
        self.rmem_max = rmem_max
        self.writer = writer
        self.binary = binary
        self.prefix = f"dtsim-dl-{os.getpid()}-"
        self.switch = f"{self.prefix}sw"
        self.hosts = [f"{self.prefix}h{i}" for i in range(len(case.rate_bps))]
        self.created: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.delayline: subprocess.Popen | None = None

    def ip_of(self, i: int) -> str:
        return f"{NET}.{i + 1}.2"

    def host_dev(self, i: int) -> str:
        return "dl0" if self.case.delay_s[i] > 0 else "eth0"

    def switch_dev(self, i: int) -> str:
        return f"d{i}" if self.case.delay_s[i] > 0 else f"p{i}"

    def build(self) -> None:
        sw = self.switch
        for ns in (sw, *self.hosts):
            self.created.append(ns)  # before creation: a signal in between still removes it
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            for key, value in (("net.ipv6.conf.all.disable_ipv6", "1"),
                               ("net.ipv6.conf.default.disable_ipv6", "1"),
                               ("net.ipv4.tcp_no_metrics_save", "1"),
                               ("net.ipv4.tcp_rmem", f"4096 {self.rmem_default} {self.rmem_max}"),
                               ("net.ipv4.tcp_wmem", f"4096 16384 {self.wmem_max}")):
                sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}")
        sh("ip", "netns", "exec", sw, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        links = []
        for i, ns in enumerate(self.hosts):
            if self.case.delay_s[i] > 0:
                links.append(f"{ns},dl0,{sw},d{i},{self.case.delay_s[i] * 1e6:.0f}")
            else:
                sh("ip", "-n", sw, "link", "add", "name", f"p{i}", "type", "veth",
                   "peer", "name", "eth0", "netns", ns)
        if links:
            self.delayline = subprocess.Popen(
                ["chrt", "-f", "50", self.binary, str(DELAYLINE_MAX_S), *links],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.procs.append(self.delayline)
            line = self.delayline.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"delay line did not start: {self.delayline.stderr.read()}")
        for i, ns in enumerate(self.hosts):
            gw = f"{NET}.{i + 1}.1"
            for where, dev, addr in ((ns, self.host_dev(i), self.ip_of(i)),
                                     (sw, self.switch_dev(i), gw)):
                sh("ip", "-n", where, "addr", "add", f"{addr}/24", "dev", dev)
                sh("ip", "-n", where, "link", "set", dev, "up")
            sh("ip", "-n", ns, "route", "replace", f"{NET}.0.0/16", "via", gw, "dev",
               self.host_dev(i), "congctl", "cubic")
            self._shape(i)

    def _shape(self, i: int) -> None:
        """tbf on host ``i``'s uplink (its device) and downlink (the switch's port)."""
        case = self.case
        down = case.down_bps[i] if case.down_bps else case.rate_bps[i]
        tun = case.delay_s[i] > 0
        packet = 1500 if tun else 1514  # what tbf counts per full packet on the device
        for where, dev, rate in ((self.hosts[i], self.host_dev(i), case.rate_bps[i]),
                                 (self.switch, self.switch_dev(i), down)):
            if tun:  # one packet at a time at the rate: the kernel's hrtimer spaces them
                burst = max(2 * 1514, int(rate / 8 * 0.001))
            else:    # a veth carries 64 KiB GSO packets: the bucket must take one whole
                burst = max(64 * 1024, int(rate / 8 * 0.002))
            limit = max(burst, case.queue_pkts[i] * packet)
            extra = ["overhead", str(FRAME_OVERHEAD)] if tun else []
            sh("ip", "netns", "exec", where, "tc", "qdisc", "replace", "dev", dev, "root",
               "tbf", "rate", f"{int(rate)}bit", "burst", str(burst), "limit", str(limit),
               *extra)

    def qdisc_counts(self) -> dict[str, dict[str, int]]:
        """Per shaped link (``up<i>``, ``down<i>``): bytes sent and packets dropped by its tbf."""
        out = {}
        for i, ns in enumerate(self.hosts):
            for where, dev, name in ((ns, self.host_dev(i), f"up{i}"),
                                     (self.switch, self.switch_dev(i), f"down{i}")):
                text = sh("ip", "netns", "exec", where, "tc", "-s", "qdisc", "show", "dev",
                          dev).stdout
                sent = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+)", text)
                out[name] = {"bytes": int(sent.group(1)), "packets": int(sent.group(2)),
                             "dropped": int(sent.group(3))} if sent else {}
        return out

    def tun_drops(self) -> int:
        """Packets the TUN devices dropped themselves (their queue to the delay line full)."""
        total = 0
        for i, ns in enumerate(self.hosts):
            if self.case.delay_s[i] > 0:
                for where, dev in ((ns, "dl0"), (self.switch, f"d{i}")):
                    stats = json.loads(sh("ip", "-j", "-s", "-n", where, "link", "show",
                                          dev).stdout)[0]["stats64"]
                    total += stats["tx"]["dropped"]
        return total

    def hystart_counts(self) -> dict[str, int]:
        """CUBIC's HyStart counters of every host (``/proc/net/netstat``, per namespace): how
        many slow starts its ACK-train and its delay test ended, and the cwnd sums at those
        exits (``TCPHystart*``)."""
        total: dict[str, int] = {}
        for ns in self.hosts:
            text = sh("ip", "netns", "exec", ns, "cat", "/proc/net/netstat").stdout.splitlines()
            for names, values in zip(text[::2], text[1::2]):
                for name, value in zip(names.split()[1:], values.split()[1:]):
                    if name.startswith("TCPHystart"):
                        total[name] = total.get(name, 0) + int(value)
        return total

    def delayline_stats(self) -> list[dict]:
        if self.delayline is None:
            return []
        self.delayline.stdin.write("stats\n")
        self.delayline.stdin.flush()
        return json.loads(self.delayline.stdout.readline())["directions"]

    def spawn(self, i: int, argv: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", self.hosts[i], *argv],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        if self.delayline is not None and self.delayline.poll() is None:
            try:
                self.delayline.stdin.write("quit\n")
                self.delayline.stdin.flush()
            except OSError:
                pass
        reap(self.procs, grace_s=2.0)
        remove_namespaces(self.created)


class Agents:
    """One ``delayline_agent.py`` per host; their answers merged into one queue."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.answers: queue.Queue = queue.Queue()
        self.procs = [lab.spawn(i, [sys.executable, str(HERE / "delayline_agent.py")])
                      for i in range(len(lab.hosts))]
        for i, proc in enumerate(self.procs):
            threading.Thread(target=self._pump, args=(i, proc), daemon=True).start()
        self.kept: list[tuple[int, dict]] = []

    def _pump(self, i: int, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.answers.put((i, json.loads(line)))
        self.answers.put((i, {"gone": proc.stderr.read()[-2000:]}))

    def tell(self, i: int, obj: dict) -> None:
        self.procs[i].stdin.write(json.dumps(obj) + "\n")
        self.procs[i].stdin.flush()

    def wait(self, match, timeout_s: float = JOB_TIMEOUT_S) -> tuple[int, dict]:
        """The first answer (host, reply) that ``match`` accepts; others are kept."""
        for got in self.kept:
            if match(*got):
                self.kept.remove(got)
                return got
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from an agent")
            try:
                i, reply = self.answers.get(timeout=left)
            except queue.Empty:
                continue
            if "gone" in reply:
                raise RuntimeError(f"agent {i} ended early: {reply['gone']}")
            if match(i, reply):
                return i, reply
            self.kept.append((i, reply))

    def quit(self) -> None:
        for proc in self.procs:
            try:
                proc.stdin.write('{"op": "quit"}\n')
                proc.stdin.flush()
            except OSError:
                pass


# -- one run -----------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Run:
    """One measured run of a case.

    delivered_s:
        Per message, its delivery in the case's own time (the case starts at its first
        message's ``start_s``), s.
    begins_s:
        Per message, when its sender began writing it, same time base, s.
    mid_s:
        Per message, when half of its bytes had arrived, s.
    bottleneck_drops:
        Packets the tbfs dropped (all shaped links together).
    conns:
        Per connection (``src->dst``): the sender's TCP_INFO summary (see ``_conn_summary``).
    checks:
        The lab's own counters for this run: delay-line packets in/out/dropped/held, largest
        packet, lateness; TUN drops; bytes through the bottleneck.
    """

    delivered_s: tuple[float, ...]
    begins_s: tuple[float, ...]
    mid_s: tuple[float, ...]
    bottleneck_drops: int
    conns: dict
    checks: dict


def _pairs(case: Case) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    for m in case.messages:
        if (m.src, m.dst) not in seen:
            seen.append((m.src, m.dst))
    return seen


def run_once(lab: Lab, agents: Agents, port: int) -> Run:
    """Connect every pair, send the case's messages by their starts and dependencies."""
    case = lab.case
    pairs = _pairs(case)
    for i in sorted(_receivers(case)):
        agents.tell(i, {"op": "listen", "port": port})
        agents.wait(lambda h, r, i=i: h == i and r.get("listening") == port)
    for m, msg in enumerate(case.messages):
        agents.tell(msg.dst, {"op": "expect", "conn": pairs.index((msg.src, msg.dst)),
                              "id": m, "nbytes": int(msg.nbytes)})
    for c, (src, dst) in enumerate(pairs):
        agents.tell(src, {"op": "connect", "conn": c, "host": lab.ip_of(dst), "port": port,
                          "writer": lab.writer})
        _, reply = agents.wait(lambda h, r, c=c: r.get("conn") == c and "connected" in r)
        if reply["cc"] != "cubic":
            raise RuntimeError(f"connection {src}->{dst} runs {reply['cc']!r}, not cubic")
    before, dl_before = lab.qdisc_counts(), lab.delayline_stats()
    hystart_before = lab.hystart_counts()
    first = min(m.start_s for m in case.messages)
    t0 = time.time() + 0.5
    n = len(case.messages)
    launched, ends, mids, begins = [False] * n, [0.0] * n, [0.0] * n, [0.0] * n

    def launch_ready() -> None:
        for m, msg in enumerate(case.messages):
            if launched[m] or any(not ends[d] for d in msg.deps):
                continue
            launched[m] = True
            agents.tell(msg.src, {"op": "send", "conn": pairs.index((msg.src, msg.dst)),
                                  "id": m, "nbytes": int(msg.nbytes),
                                  "at": t0 + msg.start_s - first})

    launch_ready()
    total = sum(m.nbytes for m in case.messages)
    bound = max(m.start_s for m in case.messages) - first + 30 + 4 * total / (
        min(case.rate_bps) / 8)
    deadline = time.monotonic() + bound
    while not all(ends) or not all(begins):
        _, reply = agents.wait(lambda h, r: "id" in r,
                               timeout_s=max(1.0, deadline - time.monotonic()))
        m = reply["id"]
        if "short" in reply:
            raise RuntimeError(f"{case.name}: message {m} short by {reply['short']} B")
        if "begin" in reply:
            begins[m] = reply["begin"] - t0 + first
        else:
            if reply["cc"] != "cubic":
                raise RuntimeError(f"{case.name}: a receiver ran {reply['cc']!r}")
            ends[m], mids[m] = reply["end"] - t0 + first, reply["mid"] - t0 + first
            launch_ready()
    conns = {}
    for c, (src, dst) in enumerate(pairs):
        agents.tell(src, {"op": "info", "conn": c})
        _, reply = agents.wait(lambda h, r, c=c: r.get("conn") == c and "info" in r)
        conns[f"{src}->{dst}"] = _conn_summary(reply["info"])
    after, dl_after = lab.qdisc_counts(), lab.delayline_stats()
    hystart = {k: v - hystart_before.get(k, 0) for k, v in lab.hystart_counts().items()}
    for i in range(len(lab.hosts)):
        agents.tell(i, {"op": "close"})
        agents.wait(lambda h, r, i=i: h == i and r.get("closed"))
    drops = sum(after[k].get("dropped", 0) - before[k].get("dropped", 0) for k in after)
    checks = {"delayline": [_diff(a, b) for a, b in zip(dl_after, dl_before)],
              "links": {k: {f: after[k][f] - before[k].get(f, 0) for f in after[k]}
                        for k in after},
              "tun_dropped": lab.tun_drops(), "hystart": hystart}
    return Run(delivered_s=tuple(ends), begins_s=tuple(begins), mid_s=tuple(mids),
               bottleneck_drops=drops, conns=conns, checks=checks)


def _diff(after: dict, before: dict) -> dict:
    out = dict(after)
    for key in ("in", "out", "dropped", "bytes", "queued"):
        out[key] = after[key] - before[key]
    return out


def _conn_summary(info: dict) -> dict:
    """The sender's view: how slow start ended, losses, timeouts, RTTs.

    ``ss_exit``: ``"hystart"`` when ssthresh was first set with no retransmission yet (CUBIC's
    HyStart ends slow start by setting ssthresh to cwnd), ``"loss"`` when the first change came
    with retransmissions, ``"none"`` when slow start never ended. ``rto`` counts samples in the
    Loss state (4: a retransmission timeout). ``peak``: the sample with the most segments
    unacknowledged, with the send buffer's counters then (``wmem_queued / (unacked +
    notsent_bytes / MSS)`` is the buffer's bytes per segment: docs/network-model.md, "The
    buffers as the kernel counts them").
    """
    events = info["events"]
    first = next((e for e in events if e["ssthresh"] < 1 << 30), None)
    exit_kind = "none" if first is None else ("loss" if first["total_retrans"] or
                                              first["ca_state"] >= 3 else "hystart")
    final = info["final"]
    return {"ss_exit": exit_kind, "ss_exit_t": first["t"] if first else None,
            "ss_exit_cwnd": first["cwnd"] if first else None,
            "ssthresh_first": first["ssthresh"] if first else None,
            "max_cwnd": info["max_cwnd"], "retrans": final["total_retrans"],
            "rto": any(e["ca_state"] == 4 for e in events),
            "recovery": any(e["ca_state"] == 3 for e in events),
            "min_rtt_ms": final["min_rtt_us"] / 1e3, "cc": info["cc"],
            "rwnd_limited_ms": final.get("rwnd_limited_us", 0) / 1e3,
            "sndbuf_limited_ms": final.get("sndbuf_limited_us", 0) / 1e3,
            "peak": info.get("peak", {}), "events": events[:16]}


def rtt_check(lab: Lab, agents: Agents, port: int) -> dict:
    """UDP echo between the first message's hosts: RTT against 2 x the path's delays."""
    msg = lab.case.messages[0]
    agents.tell(msg.dst, {"op": "echo", "port": port})
    agents.wait(lambda h, r: h == msg.dst and r.get("echo") == port)
    agents.tell(msg.src, {"op": "ping", "host": lab.ip_of(msg.dst), "port": port, "count": 20})
    _, reply = agents.wait(lambda h, r: h == msg.src and "rtts_ms" in r)
    rtts = reply["rtts_ms"]
    return {"expected_ms": 2e3 * (lab.case.delay_s[msg.src] + lab.case.delay_s[msg.dst]),
            "min_ms": min(rtts), "median_ms": statistics.median(rtts), "count": len(rtts)}


def measure(case: Case, binary: str, repeats: int, rmem_default: int = RMEM_DEFAULT,
            wmem_max: int = WMEM_MAX, rmem_max: int = RMEM_MAX,
            writer: str = "poll-first") -> tuple[list[Run], dict]:
    """Build the lab for ``case``, check its RTT and run the case ``repeats`` times."""
    lab = Lab(case, binary, rmem_default, wmem_max, rmem_max, writer)
    agents = None
    try:
        lab.build()
        agents = Agents(lab)
        rtt = rtt_check(lab, agents, 7000)
        runs = []
        for rep in range(repeats):
            runs.append(run_once(lab, agents, 21000 + rep))
            time.sleep(1.0)  # the queues drain
        return runs, rtt
    finally:
        if agents is not None:
            agents.quit()
        lab.close()


# -- the lab's own checks ---------------------------------------------------------------------

def _path_rtt_ms(case: Case, pair: str) -> float:
    """2 x the one-way delays of the connection ``"src->dst"``, ms."""
    src, dst = (int(x) for x in pair.split("->"))
    return 2e3 * (case.delay_s[src] + case.delay_s[dst])


def lab_checks(case: Case, runs: list[dict], rtt: dict) -> dict:
    """Independent checks of the lab for one case, from its saved runs.

    - ``rtt_excess_ms``: UDP echo's shortest RTT minus 2 x the path's one-way delays (the
      delay line's delay plus the hosts' own time; should be a fraction of a millisecond);
    - ``tcp_min_rtt_excess_ms``: the same from the kernel's own min RTT of every connection,
      each against its own path's (adds one data packet's serialization at the bottleneck);
    - ``unbalanced``: delay-line directions whose packets read != written + dropped + held;
    - ``delayline_dropped`` and ``tun_dropped``: packets the delay line or a TUN device lost
      (the lab's own losses, not the bottleneck's; should be 0);
    - ``max_packet``: the largest packet through the delay line (1500: no GSO packets);
    - ``late_max_ms`` and ``late_over_1ms``: how late the delay line wrote packets;
    - ``goodput_error``: for the deep-queue check cases, the second half's bytes over its
      duration against the bottleneck's rate x 1448/1514, minus 1.
    """
    directions = [d for r in runs for d in r["checks"]["delayline"]]
    out = {"rtt_excess_ms": rtt["min_ms"] - rtt["expected_ms"],
           "tcp_min_rtt_excess_ms": max(c["min_rtt_ms"] - _path_rtt_ms(case, pair)
                                        for r in runs for pair, c in r["conns"].items()),
           "unbalanced": sum(d["in"] != d["out"] + d["dropped"] + d["queued"]
                             for d in directions),
           "delayline_dropped": sum(d["dropped"] for d in directions),
           "tun_dropped": sum(r["checks"]["tun_dropped"] for r in runs),
           "max_packet": max((d["max_len"] for d in directions), default=0),
           "late_max_ms": max((d["late_max_us"] for d in directions), default=0.0) / 1e3,
           "late_over_1ms": sum(d["late_over_1ms"] for d in directions),
           "late_over_4ms": sum(d.get("late_over_4ms", 0) for d in directions),
           "packets": sum(d["out"] for d in directions),
           "cc": sorted({c["cc"] for r in runs for c in r["conns"].values()})}
    if case.name.startswith("lab check"):
        msg = case.messages[0]
        rate = min(case.rate_bps) / 8 * 1448 / 1514
        out["goodput_error"] = statistics.median(
            (msg.nbytes - msg.nbytes // 2) / (r["delivered_s"][0] - r["mid_s"][0]) / rate - 1
            for r in runs)
    return out


# -- the table ---------------------------------------------------------------------------------

def row(case: Case, runs: list[dict], ns3: dict[str, list[float]],
        rounds: str | None = None) -> dict:
    """Linux's median completion beside dtsim (tcp; with HyStart's short exit; with its delay
    exit; with its delay exit and the bottleneck buffer; fluid), ns-3. ``rounds`` is the round
    model (``TcpConfig.rounds``; None: the default, paced) of the first two; the delay exit's
    columns are always burst rounds (paced rounds refuse it)."""
    linux = [case.completion_s(r["delivered_s"]) for r in runs]
    med = statistics.median(linux)
    tcp = case.completion_s(predict(case, tcp=TcpConfig(rounds=rounds)))
    short = case.completion_s(predict(case, tcp=replace(HYSTART_SHORT, rounds=rounds)))
    delay = case.completion_s(predict(case, tcp=HYSTART_DELAY))
    queue = case.completion_s(predict(case, tcp=with_bottleneck_queue(case, HYSTART_DELAY)))
    fluid = case.completion_s(predict(case, transport="fluid"))
    ns3_s, ns3_name = ns3_of(case, ns3)
    conns = [c for r in runs for c in r["conns"].values()]
    exits = [c["ss_exit"] for c in conns]
    exit_cwnds = [c["ss_exit_cwnd"] for c in conns if c["ss_exit_cwnd"]]
    return {"case": case.name, "runs": len(runs), "median_s": med, "min_s": min(linux),
            "max_s": max(linux), "tcp_s": tcp, "tcp_error": tcp / med - 1,
            "short_s": short, "short_error": short / med - 1,
            "delay_s": delay, "delay_error": delay / med - 1,
            "queue_s": queue, "queue_error": queue / med - 1,
            "fluid_s": fluid, "fluid_error": fluid / med - 1,
            "ns3_s": ns3_s, "ns3_error": ns3_s / med - 1 if ns3_s else None,
            "ns3_row": ns3_name,
            "drops": statistics.median(r["bottleneck_drops"] for r in runs),
            "retrans": statistics.median(sum(c["retrans"] for c in r["conns"].values())
                                         for r in runs),
            "rto_runs": sum(any(c["rto"] for c in r["conns"].values()) for r in runs),
            "exits": {k: exits.count(k) for k in sorted(set(exits))},
            "exit_cwnd": (min(exit_cwnds), max(exit_cwnds)) if exit_cwnds else None,
            "rwnd_limited_ms": statistics.median(c.get("rwnd_limited_ms", 0.0) for c in conns)}


def table(rows: list[dict]) -> str:
    lines = ["| case | Linux median (min-max) s | drops | retrans | slow start ended by "
             "(connections; cwnd at the end) | rwnd-limited ms | dtsim tcp s | error | "
             "tcp + short exit s | error | tcp + delay exit s | error | "
             "tcp + delay exit + queue s | error | fluid s | error | ns-3 s | ns-3 vs Linux |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        exits = ", ".join(f"{k} {v}" for k, v in r["exits"].items())
        if r["exit_cwnd"]:
            low, high = r["exit_cwnd"]
            exits += f"; {low}" + (f"-{high}" if high != low else "")
        if r["rto_runs"]:
            exits += f"; RTO in {r['rto_runs']} runs"
        ns3 = (f"{r['ns3_s']:.3f} | {r['ns3_error']:+.1%}" if r["ns3_s"] is not None
               else "- | -")
        lines.append(f"| {r['case']} | {r['median_s']:.3f} ({r['min_s']:.3f}-{r['max_s']:.3f})"
                     f" | {r['drops']:g} | {r['retrans']:g} | {exits} | "
                     f"{r['rwnd_limited_ms']:.0f} | {r['tcp_s']:.3f} | "
                     f"{r['tcp_error']:+.1%} | {r['short_s']:.3f} | {r['short_error']:+.1%} | "
                     f"{r['delay_s']:.3f} | {r['delay_error']:+.1%} | "
                     f"{r['queue_s']:.3f} | {r['queue_error']:+.1%} | "
                     f"{r['fluid_s']:.3f} | {r['fluid_error']:+.1%} | {ns3} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    n = len(rows)
    out = []
    for key, label in (("tcp_error", "dtsim tcp"), ("short_error", "tcp + short exit"),
                       ("delay_error", "tcp + delay exit"),
                       ("queue_error", "tcp + delay exit + queue"),
                       ("fluid_error", "fluid"), ("ns3_error", "ns-3")):
        errs = [r[key] for r in rows if r[key] is not None]
        if not errs:
            continue
        w10 = sum(abs(e) <= 0.10 for e in errs)
        w20 = sum(abs(e) <= 0.20 for e in errs)
        worst = max(errs, key=abs)
        out.append(f"{label} vs Linux: {w10}/{len(errs)} within 10%, {w20}/{len(errs)} within "
                   f"20%, worst {worst:+.1%} (of {n} cases, {len(errs)} have a figure)")
    return "\n".join(out)


def run_to_json(run: Run) -> dict:
    return {"delivered_s": [round(x, 6) for x in run.delivered_s],
            "begins_s": [round(x, 6) for x in run.begins_s],
            "mid_s": [round(x, 6) for x in run.mid_s],
            "bottleneck_drops": run.bottleneck_drops, "conns": run.conns, "checks": run.checks}


def write_runs(path: str | Path, meta: dict, cases: list[dict]) -> None:
    """The runs as JSON: the metadata, then one compact line per case."""
    lines = [json.dumps(case, separators=(",", ":")) for case in cases]
    Path(path).write_text('{"meta": ' + json.dumps(meta) + ',\n"cases": [\n'
                          + ",\n".join(lines) + "\n]}\n")


def load_runs(path: str | Path) -> tuple[list[tuple[Case, list[dict], dict]], dict]:
    """The saved cases (looked up by name in the grid), their runs and RTT checks, and meta."""
    data = json.loads(Path(path).read_text())
    by_name = {case.name: case for case in check_cases() + all_cases() + window_cases()}
    return [(by_name[c["case"]], c["runs"], c["rtt"]) for c in data["cases"]], data["meta"]


PROG = "benchmarks/validate_network/delayline_reference.py"


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The lab's options; a bad value is a :class:`UsageError` naming it."""
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="",
                        help="run only cases whose name contains this ('a|b': a or b)")
    parser.add_argument("--big", action="store_true", help="also the 100 MB 10 Mbit/s flows")
    parser.add_argument("--case-set", choices=("grid", "window"), default="grid",
                        help="the ns-3 grid's cases (and the lab checks), or the send-buffer case")
    parser.add_argument("--wmem-max", type=int, default=WMEM_MAX,
                        help="tcp_wmem's maximum in every namespace, bytes: the largest send "
                             "buffer")
    parser.add_argument("--rmem-default", type=int, default=RMEM_DEFAULT,
                        help="tcp_rmem's default in every namespace, bytes: a new socket's "
                             "receive buffer, where receive-window autotuning starts")
    parser.add_argument("--rmem-max", type=int, default=RMEM_MAX,
                        help="tcp_rmem's maximum in every namespace, bytes: the largest "
                             "receive buffer")
    parser.add_argument("--writer", choices=("poll-first", "until-eagain"),
                        default="poll-first",
                        help="how the agents write: 64 KiB send()s each after poll() (every "
                             "shipped run), or gloo's write-until-EAGAIN, which fills the send "
                             "buffer")
    parser.add_argument("--save", default="", help="write every run here (JSON)")
    parser.add_argument("--rounds", choices=("burst", "paced"), default=None,
                        help="the round model of the tcp and short-exit columns "
                             "(TcpConfig.rounds; default: the transport's, paced; the delay "
                             "exit's columns stay burst)")
    parser.add_argument("--table-from", default="",
                        help="measure nothing: the table of saved runs, predicted by this dtsim")
    args = parser.parse_args(argv)
    checked("--repeats", args.repeats, lambda n: 1 <= n <= 20, "an integer from 1 to 20")
    for option, value in (("--wmem-max", args.wmem_max), ("--rmem-max", args.rmem_max)):
        checked(option, value, lambda size: 65536 <= size <= 64 * 2**20,
                "65536 to 67108864 bytes")
    checked("--rmem-default", args.rmem_default, lambda size: 4096 <= size <= args.rmem_max,
            f"4096 to --rmem-max ({args.rmem_max}) bytes")
    check_output_file("--save", args.save or None)
    if args.table_from:
        existing_file("--table-from", args.table_from)
    return args


@refusing(PROG)
def main(argv=None) -> int:
    args = parse_command_line(argv)
    ns3 = ns3_rows()
    if args.table_from:
        measured, meta = load_runs(args.table_from)
        print(f"runs of {meta['date']} ({meta['kernel']}), load {meta['load_before']} -> "
              f"{meta['load_after']}: {meta['command']}")
        rows = [row(case, runs, ns3, args.rounds) for case, runs, _ in measured]
        print(table(rows))
        print(summary(rows))
        for case, runs, rtt in measured:
            print(f"{case.name}: {lab_checks(case, runs, rtt)}")
        return 0
    chosen = window_cases() if args.case_set == "window" else lab_cases(args.big)
    cases = [c for c in chosen if any(part in c.name
                                                    for part in args.only.split("|"))]
    if not cases:
        return refused(PROG, UsageError(f"--only: {args.only!r} matches no case"))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    saved, rows = [], []
    workdir = tempfile.mkdtemp(prefix="dtsim-dl-")
    try:
        reason = why_not()
        if reason:
            print(f"delayline_reference: skipped: {reason}")
            return 0
        binary = compile_delayline(workdir)
        for case in cases:
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            runs, rtt = measure(case, binary, args.repeats, args.rmem_default, args.wmem_max,
                                args.rmem_max, args.writer)
            as_json = [run_to_json(r) for r in runs]
            saved.append({"case": case.name, "load": load, "rtt": rtt, "runs": as_json})
            rows.append(row(case, as_json, ns3))
            r = rows[-1]
            print(f"{case.name}: Linux {r['median_s']:.3f} s "
                  f"{[round(case.completion_s(x.delivered_s), 3) for x in runs]}, drops "
                  f"{[x.bottleneck_drops for x in runs]}, exits {r['exits']}; tcp "
                  f"{r['tcp_s']:.3f} ({r['tcp_error']:+.1%}), short {r['short_error']:+.1%}, "
                  f"fluid {r['fluid_error']:+.1%}, ns-3 "
                  f"{'-' if r['ns3_error'] is None else format(r['ns3_error'], '+.1%')}; "
                  f"rtt {rtt['min_ms']:.2f} ms (expected {rtt['expected_ms']:.0f}); load {load}",
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for s, handler in old.items():
            signal.signal(s, handler)
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min) {load_before} before, {load_after} after")
    print(table(rows))
    print(summary(rows))
    if args.save:
        meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "kernel": os.uname().release, "host": os.uname().nodename,
                "cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after,
                "nice": os.nice(0), "repeats": args.repeats,
                "tcp_rmem": f"4096 {args.rmem_default} {args.rmem_max}",
                "writer": args.writer,
                "tcp_wmem": f"4096 16384 {args.wmem_max}", "case_set": args.case_set,
                "command": "python benchmarks/validate_network/delayline_reference.py "
                           + " ".join(argv if argv is not None else sys.argv[1:])}
        write_runs(args.save, meta, saved)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
