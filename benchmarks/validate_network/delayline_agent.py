"""One host of the delay-line lab: runs inside its namespace, told what to do on stdin.

Reads one JSON command per line and answers JSON lines on stdout (``delayline_reference.py``
drives it). Messages between two hosts go in order on one TCP connection, as dtsim's ``tcp``
transport and the ns-3 reference send them:

- ``{"op": "listen", "port": p}``: accept connections on ``p``; each starts with its 8-byte
  connection id. Answers ``{"listening": p}``.
- ``{"op": "expect", "conn": c, "id": m, "nbytes": n}``: the next message on connection ``c``
  is ``n`` bytes; when its last byte has arrived, answers ``{"id": m, "end": t, "mid": t_half,
  "cc": algorithm}`` (wall clock at the last byte and at half of the bytes).
- ``{"op": "connect", "conn": c, "host": ip, "port": p, "writer": w}``: connect now; answers
  ``{"conn": c, "connected": t, "cc": algorithm}``. ``w`` (optional) is how the connection's
  bytes are written (see :data:`WRITERS`): ``"poll-first"`` (the default, every shipped run)
  or ``"until-eagain"``.
- ``{"op": "send", "conn": c, "id": m, "nbytes": n, "at": t}``: after the connection's earlier
  messages, and not before wall clock ``t``, write ``n`` bytes; answers ``{"id": m, "begin":
  t0}``. While a connection has bytes to send, its TCP_INFO is sampled every 2 ms.
- ``{"op": "info", "conn": c}``: answers ``{"conn": c, "info": {...}}``: the kernel's view of
  the sending side (cwnd, ssthresh, congestion state, retransmissions, RTTs) at each change.
- ``{"op": "echo", "port": p}`` / ``{"op": "ping", "host": ip, "port": p, "count": k}``: UDP
  echo for the lab's own RTT check; answers ``{"rtts_ms": [...]}``.
- ``{"op": "close"}`` closes every connection; ``{"op": "quit"}`` ends the agent.

Every socket and queue wait has a timeout, so no job hangs for ever.
"""

from __future__ import annotations

import json
import queue
import select
import socket
import struct
import sys
import threading
import time

from labtools import answer, congestion_control

TIMEOUT_S = 300.0
CHUNK = 1 << 16
SAMPLE_S = 0.002
MAX_EVENTS = 400
BIG_WRITE = 64 << 20  # the until-eagain writer's largest write: more than any send buffer here
# How a sender writes, which decides how full it keeps its send buffer: the kernel reports a
# TCP socket writable (poll) only while sndbuf - wmem_queued >= wmem_queued / 2, i.e. at most
# 2/3 full (docs/network-model.md, "The buffers as the kernel counts them").
# - poll-first: 64 KiB send()s on a socket with a timeout; CPython polls before every send(),
#   so the buffer stays at 2/3 plus one write.
# - until-eagain: gloo's pattern (transport/tcp/pair.cc): one non-blocking write of all that is
#   left, and a wait for writability only after a short write; the buffer refills to the full.
WRITERS = ("poll-first", "until-eagain")


# struct tcp_info (linux/tcp.h): the fields read here and their byte offsets
_INFO = {"ca_state": (1, "B"), "backoff": (4, "B"), "rto_us": (8, "I"), "unacked": (24, "I"),
         "lost": (32, "I"), "retrans": (36, "I"), "rtt_us": (68, "I"), "ssthresh": (76, "I"),
         "cwnd": (80, "I"), "total_retrans": (100, "I"), "min_rtt_us": (148, "I"),
         "bytes_retrans": (208, "Q"), "rwnd_limited_us": (176, "Q"),
         "sndbuf_limited_us": (184, "Q"), "snd_wnd": (228, "I"), "pacing_rate": (104, "Q"),
         "notsent_bytes": (144, "I")}
_EVENT = ("ca_state", "cwnd", "ssthresh", "total_retrans", "rtt_us", "unacked", "snd_wnd")
# getsockopt(SOL_SOCKET, SO_MEMINFO): the socket's memory counters (linux/sock_diag.h
# SK_MEMINFO_*), of which these: the send buffer's limit and what it holds (skb truesize of the
# unsent and unacknowledged data), and what the queues below TCP still hold
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
_MEMINFO = {"wmem_alloc": 2, "sndbuf": 3, "wmem_queued": 5}
_PEAK = ("cwnd", "unacked", "notsent_bytes", "pacing_rate", "snd_wnd")


def tcp_info(sock: socket.socket) -> dict:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    return {k: struct.unpack_from(fmt, raw, off)[0] for k, (off, fmt) in _INFO.items()
            if off + struct.calcsize(fmt) <= len(raw)}


def meminfo(sock: socket.socket) -> dict:
    """The socket's send-buffer counters, bytes: ``sndbuf`` (its limit), ``wmem_queued`` (the
    truesize of its unsent and unacknowledged skbs, what the limit is checked against) and
    ``wmem_alloc`` (skbs below TCP not yet freed). Empty where the kernel lacks SO_MEMINFO."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * 9)
    except OSError:
        return {}
    values = struct.unpack_from(f"{len(raw) // 4}I", raw)
    return {k: values[i] for k, i in _MEMINFO.items() if i < len(values)}


class Sender:
    """One connection's sending side: a queue of messages and a TCP_INFO sampler."""

    def __init__(self, conn: int, sock: socket.socket, writer: str = "poll-first") -> None:
        if writer not in WRITERS:
            raise ValueError(f"writer must be one of {WRITERS}, not {writer!r}")
        self.conn, self.sock, self.writer = conn, sock, writer
        self.jobs: queue.Queue = queue.Queue()
        self.busy = threading.Event()
        self.events: list[dict] = []  # TCP_INFO at each change of state, ssthresh, retrans
        self.max_cwnd = 0
        self.peak: dict = {}  # the sample with the most segments unacknowledged, with meminfo
        self.t0 = 0.0
        threading.Thread(target=self._send_loop, daemon=True).start()
        threading.Thread(target=self._sample_loop, daemon=True).start()

    def _send_loop(self) -> None:
        payload = b"\0" * CHUNK
        while True:
            job = self.jobs.get(timeout=TIMEOUT_S)
            if job is None:
                return
            time.sleep(max(0.0, job["at"] - time.time()))
            begin = time.time()
            self.t0 = self.t0 or begin
            self.busy.set()
            answer({"id": job["id"], "begin": begin})
            left = job["nbytes"]
            if self.writer == "poll-first":
                while left > 0:
                    left -= self.sock.send(payload[:min(CHUNK, left)])
                continue
            self.sock.setblocking(False)
            rest = memoryview(bytes(min(left, BIG_WRITE)))
            while left > 0:
                want = min(len(rest), left)
                try:
                    sent = self.sock.send(rest[:want])
                except BlockingIOError:
                    sent = 0
                left -= sent
                if sent < want:  # a short write: the buffer is full, wait until writable
                    select.select([], [self.sock], [], TIMEOUT_S)

    def _sample_loop(self) -> None:
        last = None
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.busy.wait(1.0):
                continue
            try:
                info = tcp_info(self.sock)
            except OSError:
                return
            self.max_cwnd = max(self.max_cwnd, info["cwnd"])
            if info["unacked"] > self.peak.get("unacked", -1):
                self.peak = {"t": round(time.time() - self.t0, 4), **meminfo(self.sock),
                             **{k: info[k] for k in _PEAK if k in info}}
            key = (info["ca_state"], info["ssthresh"], info["total_retrans"])
            if key != last and len(self.events) < MAX_EVENTS:
                self.events.append({"t": round(time.time() - self.t0, 4),
                                    **{k: info[k] for k in _EVENT if k in info}})
                last = key
            time.sleep(SAMPLE_S)

    def info(self) -> dict:
        final = tcp_info(self.sock)
        return {"max_cwnd": self.max_cwnd, "final": final, "events": self.events,
                "peak": self.peak, "cc": congestion_control(self.sock)}


class Receiver:
    """Accepts connections; reads the messages expected on each, in order."""

    def __init__(self) -> None:
        self.expected: dict[int, queue.Queue] = {}
        self.lock = threading.Lock()

    def queue_of(self, conn: int) -> queue.Queue:
        with self.lock:
            return self.expected.setdefault(conn, queue.Queue())

    def listen(self, port: int) -> None:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port))
        srv.listen(64)
        srv.settimeout(TIMEOUT_S)
        threading.Thread(target=self._accept_loop, args=(srv,), daemon=True).start()

    def _accept_loop(self, srv: socket.socket) -> None:
        with srv:
            for _ in range(64):
                try:
                    sock, _ = srv.accept()
                except OSError:
                    return
                sock.settimeout(TIMEOUT_S)
                threading.Thread(target=self._read_loop, args=(sock,), daemon=True).start()

    def _read_loop(self, sock: socket.socket) -> None:
        with sock:
            head = b""
            while len(head) < 8:
                more = sock.recv(8 - len(head))
                if not more:
                    return
                head += more
            (conn,) = struct.unpack("!Q", head)
            jobs = self.queue_of(conn)
            buf = bytearray(CHUNK * 4)
            while True:
                try:
                    job = jobs.get(timeout=TIMEOUT_S)
                except queue.Empty:
                    return
                if job is None:
                    return
                left, half, mid = job["nbytes"], job["nbytes"] // 2, 0.0
                while left > 0:
                    n = sock.recv_into(buf, min(len(buf), left))
                    if n == 0:
                        answer({"id": job["id"], "short": left})
                        return
                    left -= n
                    if not mid and job["nbytes"] - left >= half:
                        mid = time.time()
                answer({"id": job["id"], "end": time.time(), "mid": mid,
                        "cc": congestion_control(sock)})


def echo(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", port))
        s.settimeout(10.0)
        for _ in range(1000):
            try:
                data, addr = s.recvfrom(64)
            except OSError:
                return
            s.sendto(data, addr)


def ping(host: str, port: int, count: int) -> list[float]:
    rtts = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        for i in range(count):
            t = time.perf_counter()
            s.sendto(struct.pack("!I", i), (host, port))
            try:
                while struct.unpack("!I", s.recvfrom(64)[0])[0] != i:
                    pass
            except OSError:
                continue
            rtts.append(1e3 * (time.perf_counter() - t))
            time.sleep(0.02)
    return rtts


def main() -> None:
    senders: dict[int, Sender] = {}
    receiver = Receiver()
    for line in sys.stdin:
        job = json.loads(line)
        op = job["op"]
        if op == "quit":
            break
        if op == "listen":
            receiver.listen(job["port"])
            answer({"listening": job["port"]})
        elif op == "expect":
            receiver.queue_of(job["conn"]).put(job)
        elif op == "connect":
            sock = socket.create_connection((job["host"], job["port"]), timeout=TIMEOUT_S)
            sock.sendall(struct.pack("!Q", job["conn"]))
            senders[job["conn"]] = Sender(job["conn"], sock, job.get("writer", "poll-first"))
            answer({"conn": job["conn"], "connected": time.time(),
                    "cc": congestion_control(sock)})
        elif op == "send":
            senders[job["conn"]].jobs.put(job)
        elif op == "info":
            answer({"conn": job["conn"], "info": senders[job["conn"]].info()})
        elif op == "close":
            for sender in senders.values():
                sender.jobs.put(None)
                sender.sock.close()
            senders.clear()
            with receiver.lock:
                for jobs in receiver.expected.values():
                    jobs.put(None)
                receiver.expected.clear()
            answer({"closed": True})
        elif op == "echo":
            threading.Thread(target=echo, args=(job["port"],), daemon=True).start()
            answer({"echo": job["port"]})
        elif op == "ping":
            answer({"rtts_ms": ping(job["host"], job["port"], job["count"])})


if __name__ == "__main__":
    main()
