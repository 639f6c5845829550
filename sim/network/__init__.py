"""Network models: ``ideal`` (no sharing) and ``maxmin`` (max-min fair sharing)."""

from sim.network.base import Delivery, Flow, Network
from sim.network.ideal import IdealNetwork
from sim.network.maxmin import MaxMinNetwork

MODELS: dict[str, type[Network]] = {"ideal": IdealNetwork, "maxmin": MaxMinNetwork}


def _register() -> None:
    from sim import components

    for name, cls in MODELS.items():
        components.register("network", name, build=cls,
                            summary=(cls.__doc__ or "").strip().split("\n")[0])


_register()


def network_class(model: str) -> type[Network]:
    """The network class for a scenario's ``network.model``."""
    try:
        return MODELS[model]
    except KeyError:
        raise ValueError(
            f"network.model: unknown model {model!r}; allowed: {', '.join(sorted(MODELS))}"
        ) from None


__all__ = ["Delivery", "Flow", "IdealNetwork", "MaxMinNetwork", "Network", "MODELS",
           "network_class"]
