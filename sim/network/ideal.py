"""The ``ideal`` network: no sharing.

A message of ``m`` bytes costs ``latency + m / bottleneck`` whatever else is in flight, where the
bottleneck is the smallest capacity on its path (times the TCP efficiency). This is what the
SkipPipe and CheckFree emulators assume, so it is the model that reproduces their numbers.

A flow may be given a rate cap (:meth:`IdealNetwork._set_cap`: the ``tcp`` transport's paced
rounds): its rate is then ``min(cap, bottleneck)``, as under ``maxmin`` for a flow alone.
"""

from __future__ import annotations

import math
from typing import cast

from sim.network.base import INF, Flow
from sim.network.tcp import TcpTransport
from sim.timer import Timer


class IdealNetwork(TcpTransport):
    """Alpha-beta cost per message; flows never slow each other down."""

    model_name = "ideal"

    shares_links = False

    def _init_model(self) -> None:
        self._caps: dict[int, float] = {}  # flow id -> its rate cap, bytes/s (see _set_cap)
        self._timers: dict[int, Timer] = {}  # flow id -> its send timer (see _set_cap)

    def _lone_rate(self, flow: Flow) -> float:
        """The bottleneck's usable capacity: every flow is alone here."""
        return flow.bottleneck_Bps * self.efficiency

    def _start(self, flow: Flow) -> None:
        self._send(flow)

    def _send(self, flow: Flow) -> None:
        """Send ``flow.remaining`` bytes from now at ``min(cap, bottleneck)``."""
        rate = self._lone_rate(flow)
        caps = self._caps
        if caps and flow.id in caps:
            rate = min(rate, caps[flow.id])
        flow.rate = rate
        flow.last_s = self.env.now
        duration = 0.0 if rate == INF else flow.remaining / rate
        if duration == 0.0:
            self._transmitted(flow)
            return
        self._timers[flow.id] = Timer(self.env, duration, flow, self._sent)

    def _set_cap(self, flow: Flow, cap_Bps: float) -> None:
        """Hold ``flow`` at most at ``cap_Bps`` (bytes/s; ``math.inf``: no cap), now and on.

        A sending flow's rate becomes ``min(cap, bottleneck)`` now: its bytes are brought up to
        date and its send timer is set again (the old one is disarmed).
        """
        caps = self._caps
        if cap_Bps < math.inf:
            caps[flow.id] = cap_Bps
        else:
            caps.pop(flow.id, None)
        timer = self._timers.pop(flow.id, None)
        if timer is None or flow.state != "sending":
            return  # not sending yet: _start reads the cap
        timer.value = None  # (disarmed)
        self._bring_up_to_date(flow)
        self._send(flow)

    def _sent(self, timer: Timer) -> None:
        flow = cast(Flow | None, timer.value)
        if flow is not None and flow.state == "sending":
            self._timers.pop(flow.id, None)
            self._caps.pop(flow.id, None)
            self._transmitted(flow)

    def _bring_up_to_date(self, flow: Flow) -> None:
        elapsed = self.env.now - flow.last_s
        flow.remaining = max(0.0, flow.remaining - flow.rate * elapsed)
        flow.last_s = self.env.now

    def _stop(self, flow: Flow) -> None:
        self._bring_up_to_date(flow)
        timer = self._timers.pop(flow.id, None)
        if timer is not None:
            timer.value = None
        self._caps.pop(flow.id, None)
