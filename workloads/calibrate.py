"""Fit a device profile's few parameters to measured step times.

The H100 profile in :mod:`workloads.devices` has four free parameters (efficiency, elementwise
traffic bytes per value, per-block overhead, blend power; peak 989 TFLOP/s dense BF16 and
3.35 TB/s are datasheet figures). They are fitted here
by least squares on log(predicted / measured) over every row of the reference CSV: one global
set, no per-row table. Run ``python -m workloads.calibrate`` to refit and print the errors.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from dtsim_errors import OneLineParser, UsageError, refused
from workloads.devices import DeviceProfile, get_device
from workloads.timing import ReferenceRow, preset_timing, reference_rows


def predict_fwd_bwd_s(device: DeviceProfile, row: ReferenceRow) -> float:
    """Model's forward+backward seconds for the preset and microbatch of ``row``."""
    return preset_timing(row.model).step_seconds(device, row.batch, row.seq)


def relative_errors(device: DeviceProfile) -> list[tuple[ReferenceRow, float]]:
    """(row, predicted / measured - 1) for every reference row."""
    return [(r, predict_fwd_bwd_s(device, r) / r.fwd_bwd_s - 1.0) for r in reference_rows()]


def fit_h100(blend_powers: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)) -> DeviceProfile:
    """Refit efficiency, traffic bytes and per-block overhead for each blend power; keep the best.

    Efficiency and overhead are searched on a log grid then refined by Nelder-Mead (scipy).
    """
    from scipy.optimize import minimize  # deferred: heavy, only calibration needs it

    base = get_device("h100")
    assert isinstance(base, DeviceProfile)
    rows = reference_rows()
    measured = np.log([r.fwd_bwd_s for r in rows])

    def profile(theta: np.ndarray, p: float) -> DeviceProfile:
        eff, traffic, overhead = (math.exp(v) for v in theta)
        return replace(
            base,
            efficiency=min(eff, 1.0),
            traffic_bytes_per_value=traffic,
            unit_overhead_s=overhead,
            blend_power=p,
        )

    def loss(theta: np.ndarray, p: float) -> float:
        dev = profile(theta, p)
        pred = np.log([predict_fwd_bwd_s(dev, r) for r in rows])
        return float(np.sum((pred - measured) ** 2))

    best: tuple[float, DeviceProfile] | None = None
    for p in blend_powers:
        res = minimize(
            loss,
            x0=np.log([0.7, 250.0, 1.5e-3]),
            args=(p,),
            method="Nelder-Mead",
            options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000},
        )
        dev = profile(res.x, p)
        if best is None or res.fun < best[0]:
            best = (res.fun, dev)
    assert best is not None
    return best[1]


PROG = "python -m workloads.calibrate"


def main(argv: list[str] | None = None) -> int:
    """Print the fitted H100 parameters and the error on every reference row.

    The command takes no arguments; any is refused in one line with exit code 2 (rather than
    ignored), through the parser every dtsim command uses (:mod:`dtsim_errors`: this leaf
    package may not import the engine's ``sim.usage``).
    """
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    try:
        parser.parse_args(argv)
    except UsageError as exc:
        return refused(PROG, exc)
    dev = fit_h100()
    print(
        f"efficiency={dev.efficiency:.4f} "
        f"traffic_bytes_per_value={dev.traffic_bytes_per_value:.1f} "
        f"unit_overhead_s={dev.unit_overhead_s:.4e} "
        f"blend_power={dev.blend_power}"
    )
    for row, err in relative_errors(dev):
        print(
            f"{row.model:11s} {row.batch}x{row.seq:<5d} measured {row.fwd_bwd_s:.5f} s  "
            f"error {100 * err:+6.1f}%"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
