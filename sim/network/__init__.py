"""Network models: ``ideal`` (no sharing) and ``maxmin`` (max-min fair sharing).

A *transport* sits on top of the model: ``tcp`` (the default: connections with slow start, a
window cap and header overhead, :mod:`sim.network.tcp`) or ``fluid`` (bytes move at the model's
rate from the first byte, as the papers' own simulators assume). One class per model carries
both (``Network -> TcpTransport -> IdealNetwork | MaxMinNetwork``); the ``tcp`` argument of its
constructor chooses.
"""

import dataclasses

from sim import components
from sim.network.base import COMPILED, Delivery, Flow, Network
from sim.network.ideal import IdealNetwork
from sim.network.maxmin import MaxMinNetwork
from sim.network.tcp import TcpConfig, TcpTransport

MODELS: dict[str, type[Network]] = {"ideal": IdealNetwork, "maxmin": MaxMinNetwork}
TRANSPORTS = ("fluid", "tcp")


def _register() -> None:
    for name, cls in MODELS.items():
        components.register("network", name, build=cls,
                            summary=(cls.__doc__ or "").strip().split("\n")[0])
    components.register("transport", "fluid", build=lambda model: MODELS[model],
                        summary="bytes move at the network model's rate from the first byte")
    components.register("transport", "tcp", build=lambda model: MODELS[model],
                        summary="connections with slow start, a window cap and header overhead",
                        parameters=tuple(f.name for f in dataclasses.fields(TcpConfig)))


_register()


def network_class(model: str, transport: str = "tcp") -> type[Network]:
    """The network class for a scenario's ``network.model`` and ``network.transport``.

    The class is the model's whatever the transport (every model derives from
    :class:`TcpTransport`); built with a ``tcp=`` :class:`TcpConfig` it runs ``tcp``, without
    ``fluid`` (:class:`sim.world.World` passes it for ``transport = "tcp"``). ``transport`` is
    checked here so that a bad name is refused before anything is built.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"network.transport: unknown transport {transport!r}; allowed: "
                         f"{', '.join(TRANSPORTS)}")
    try:
        return MODELS[model]
    except KeyError:
        raise ValueError(
            f"network.model: unknown model {model!r}; allowed: {', '.join(sorted(MODELS))}"
        ) from None


__all__ = ["COMPILED", "Delivery", "Flow", "IdealNetwork", "MaxMinNetwork", "Network", "MODELS",
           "TRANSPORTS", "TcpConfig", "TcpTransport", "network_class"]
