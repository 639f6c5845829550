"""What the two real-TCP labs share: bounded shell commands, the capability probe, agent replies.

``netns_reference.py`` (namespaces and veth, no latency) and ``delayline_reference.py`` (TUN
devices and a delay line) both build their hosts from ``ip`` and ``tc`` commands, probe once in
a scratch namespace that the machine can do what they need, and run one agent per host that
answers on stdout in JSON lines. Imported by path (the scripts put this folder on ``sys.path``;
an agent started as a script has it as ``sys.path[0]``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

COMMAND_TIMEOUT_S = 30.0
"""Every shell command the labs run is bounded by this."""

_answer_lock = threading.Lock()


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command (bounded by ``COMMAND_TIMEOUT_S``); with ``check``, fail naming it."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()[:300]}")
    return done


def probe(namespace: str, steps: Sequence[Sequence[str]]) -> str | None:
    """Run ``steps`` (the first creates ``namespace``); why one failed, or None; cleans up."""
    try:
        for step in steps:
            done = sh(*step, check=False)
            if done.returncode != 0:
                return f"cannot run {' '.join(step[:5])} ...: {done.stderr.strip()[:200]}"
        return None
    finally:
        sh("ip", "netns", "del", namespace, check=False)


def answer(obj: dict) -> None:
    """An agent's reply to the lab: one JSON line on stdout (threads may answer concurrently)."""
    with _answer_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def congestion_control(sock: socket.socket) -> str:
    """The congestion control algorithm the kernel gave this connection."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).split(b"\0")[0].decode()


def reap(procs: Sequence[subprocess.Popen], grace_s: float = 0.0) -> None:
    """End the lab's processes: each gets ``grace_s`` to exit by itself, then is killed."""
    for proc in procs:
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


def remove_namespaces(created: list[str]) -> None:
    """Delete the lab's namespaces, newest first, and forget them."""
    for ns in reversed(created):
        sh("ip", "netns", "del", ns, check=False)
    created.clear()
