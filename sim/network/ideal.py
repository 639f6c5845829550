"""The ``ideal`` network: no sharing.

A message of ``m`` bytes costs ``latency + m / bottleneck`` whatever else is in flight, where the
bottleneck is the smallest capacity on its path (times the TCP efficiency). This is what the
SkipPipe and CheckFree emulators assume, so it is the model that reproduces their numbers.
"""

from __future__ import annotations

from typing import cast

from sim.network.base import INF, Flow, Network
from sim.timer import Timer


class IdealNetwork(Network):
    """Alpha-beta cost per message; flows never slow each other down."""

    model_name = "ideal"

    shares_links = False

    def _lone_rate(self, flow: Flow) -> float:
        """The bottleneck's usable capacity: every flow is alone here."""
        return flow.bottleneck_Bps * self.efficiency

    def _start(self, flow: Flow) -> None:
        rate = self._lone_rate(flow)
        flow.rate = rate
        flow.last_s = self.env.now
        duration = 0.0 if rate == INF else flow.remaining / rate
        if duration == 0.0:
            self._transmitted(flow)
            return
        Timer(self.env, duration, flow, self._sent)

    def _sent(self, timer: Timer) -> None:
        flow = cast(Flow, timer.value)
        if flow.state == "sending":
            self._transmitted(flow)

    def _stop(self, flow: Flow) -> None:
        elapsed = self.env.now - flow.last_s
        flow.remaining = max(0.0, flow.remaining - flow.rate * elapsed)
