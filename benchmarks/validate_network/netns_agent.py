"""One host of the network-namespace reference: runs inside its namespace, told what to do.

Reads one JSON command per line on stdin and answers one JSON line per finished job on stdout:

- ``{"op": "serve", "id": j, "port": p, "nbytes": n}``: accept one connection on ``port`` and
  read ``n`` bytes; answers ``{"id": j, "end": t, "short": s, "cc": c}`` (wall clock when the
  last byte arrived, bytes missing, the connection's congestion control).
- ``{"op": "send", "id": j, "host": ip, "port": p, "nbytes": n, "at": t}``: connect now, wait
  until wall-clock ``t``, send ``n`` bytes; answers ``{"id": j, "begin": t0, "sent": t_end,
  "cc": c}`` (``begin``: when the first byte was handed to the socket; late if the host's CPU
  was busy elsewhere).
- ``{"op": "quit"}``.

Every socket has a timeout, so no job can hang for ever.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

from labtools import answer, congestion_control

TIMEOUT_S = 120.0
CHUNK = 1 << 16


def serve(job: dict, ready: threading.Event) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", job["port"]))
        srv.listen(1)
        srv.settimeout(TIMEOUT_S)
        ready.set()
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(TIMEOUT_S)
            left = job["nbytes"]
            while left > 0:
                data = conn.recv(min(CHUNK * 4, left))
                if not data:
                    break
                left -= len(data)
            answer({"id": job["id"], "end": time.time(), "short": left,
                    "cc": congestion_control(conn)})


def send(job: dict) -> None:
    payload = b"\0" * CHUNK
    with socket.create_connection((job["host"], job["port"]), timeout=TIMEOUT_S) as conn:
        time.sleep(max(0.0, job["at"] - time.time()))
        begin = time.time()
        left = job["nbytes"]
        while left > 0:
            n = conn.send(payload[:min(CHUNK, left)])
            left -= n
        conn.shutdown(socket.SHUT_WR)
        answer({"id": job["id"], "begin": begin, "sent": time.time(),
                "cc": congestion_control(conn)})


def main() -> None:
    threads = []
    for line in sys.stdin:
        job = json.loads(line)
        if job["op"] == "quit":
            break
        if job["op"] == "serve":
            ready = threading.Event()
            t = threading.Thread(target=serve, args=(job, ready), daemon=True)
            t.start()
            ready.wait(TIMEOUT_S)
            answer({"id": job["id"], "listening": True})
        elif job["op"] == "send":
            t = threading.Thread(target=send, args=(job,), daemon=True)
            t.start()
        threads.append(t)
    for t in threads:
        t.join(TIMEOUT_S)


if __name__ == "__main__":
    main()
