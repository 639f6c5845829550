"""Device profiles: how long a unit of work takes on a given accelerator.

Two kinds:

``DeviceProfile`` (FLOP-based). One "unit" is a transformer block (or the output head) run
forward and backward on one microbatch. Its time blends a compute-bound term and a launch-bound
floor::

    c = flops / (peak_flops_per_s * efficiency)            # matrix work
      + traffic_bytes_per_value * values / memory_bandwidth_Bps   # elementwise work
    t = (c**p + unit_overhead_s**p) ** (1 / p)              # p = blend_power

``values`` is the number of activation values the block produces (B T C). Matrix work grows as
C^2 per token and elementwise work (norms, RoPE, SwiGLU gate, residuals: memory-bound) as C, so
narrow models reach a lower fraction of peak, as measured. For large microbatches ``t -> c``; for
small ones the kernels cannot fill the GPU and ``t`` tends to the fixed per-block overhead
(launches, synchronisation). A forward alone costs 1/3 of ``t`` and a backward 2/3.

``FixedRateProfile``: the SkipPipe and CheckFree emulators' rule: a fixed number of seconds per
sample per layer forward, backward 1.5x forward, loss 0.25x a 4-layer stage's forward.

The H100's four parameters (efficiency, traffic bytes per value, per-block overhead, blend power;
peak FLOP/s and memory bandwidth are datasheet figures) were fitted by
:func:`workloads.calibrate.fit_h100` to the measured step times in
``workloads/data/h100-llama-step-times.csv``. The other GPUs reuse the H100's software-side
parameters with their own datasheet peaks and bandwidths: an assumption, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

GiB = 1024**3

FORWARD_SHARE = 1.0 / 3.0
"""Fraction of a forward+backward unit spent in the forward (backward does 2x the FLOPs)."""


def phase_share(phase: str) -> float:
    """Fraction of forward+backward time that ``phase`` ('fwd', 'bwd' or 'fwd_bwd') takes."""
    shares = {"fwd": FORWARD_SHARE, "bwd": 1.0 - FORWARD_SHARE, "fwd_bwd": 1.0}
    if phase not in shares:
        raise ValueError(f"phase={phase!r}: allowed 'fwd', 'bwd', 'fwd_bwd'")
    return shares[phase]


@dataclass(frozen=True, kw_only=True)
class DeviceProfile:
    """A FLOP-rate device with a launch-bound floor per transformer block."""

    name: str
    peak_flops_per_s: float
    """Datasheet dense peak at the training precision (FLOP/s)."""
    efficiency: float
    """Fraction of peak reached by large matrix work (model FLOP utilisation), 0..1."""
    memory_bandwidth_Bps: float
    """Datasheet memory bandwidth (bytes/s)."""
    traffic_bytes_per_value: float
    """Memory traffic of elementwise work per activation value per block fwd+bwd (bytes)."""
    unit_overhead_s: float
    """Floor of one block's forward+backward when the microbatch is tiny (seconds)."""
    blend_power: float
    """p in (c^p + o^p)^(1/p): how sharply compute-bound and launch-bound regimes meet."""
    memory_bytes: int
    """Device memory (bytes)."""

    def unit_seconds(
        self, fwd_bwd_flops: float, activation_values: float, phase: str = "fwd_bwd"
    ) -> float:
        """Seconds for one block (or head).

        Parameters
        ----------
        fwd_bwd_flops
            Forward+backward FLOPs of the block on the microbatch.
        activation_values
            Activation values (B T C) the block outputs; drives the memory-bound term.
        phase
            'fwd', 'bwd' or 'fwd_bwd'.
        """
        compute_s = fwd_bwd_flops / (self.peak_flops_per_s * self.efficiency)
        compute_s += self.traffic_bytes_per_value * activation_values / self.memory_bandwidth_Bps
        p = self.blend_power
        total_s = (compute_s**p + self.unit_overhead_s**p) ** (1.0 / p)
        return total_s * phase_share(phase)


@dataclass(frozen=True, kw_only=True)
class FixedRateProfile:
    """The pipeline emulators' rule: seconds per sample per layer, independent of FLOPs."""

    name: str
    fwd_s_per_sample_layer: float = 0.055
    """Forward seconds per sample per transformer layer."""
    bwd_factor: float = 1.5
    """Backward time as a multiple of forward time."""
    loss_factor: float = 0.25
    """Loss (head) time as a multiple of a ``loss_reference_layers``-layer stage's forward."""
    loss_reference_layers: int = 4
    """Layers per stage in the emulator the loss factor refers to."""
    memory_bytes: int = 80 * GiB

    def layer_seconds(self, samples: int, phase: str = "fwd_bwd") -> float:
        """Seconds for one layer on ``samples`` sequences."""
        fwd_s = self.fwd_s_per_sample_layer * samples
        factors = {"fwd": 1.0, "bwd": self.bwd_factor, "fwd_bwd": 1.0 + self.bwd_factor}
        if phase not in factors:
            raise ValueError(f"phase={phase!r}: allowed 'fwd', 'bwd', 'fwd_bwd'")
        return fwd_s * factors[phase]

    def loss_seconds(self, samples: int) -> float:
        """Seconds for de-embedding and loss on ``samples`` sequences."""
        stage_fwd_s = self.fwd_s_per_sample_layer * samples * self.loss_reference_layers
        return self.loss_factor * stage_fwd_s


# Fitted by workloads.calibrate.fit_h100() on workloads/data/h100-llama-step-times.csv.
H100_EFFICIENCY = 0.7298
H100_TRAFFIC_BYTES_PER_VALUE = 395.4
H100_UNIT_OVERHEAD_S = 1.4995e-3
H100_BLEND_POWER = 3.0

_H100_SOFTWARE = dict(
    efficiency=H100_EFFICIENCY,
    traffic_bytes_per_value=H100_TRAFFIC_BYTES_PER_VALUE,
    unit_overhead_s=H100_UNIT_OVERHEAD_S,
    blend_power=H100_BLEND_POWER,
)
"""The fitted software-side parameters, reused (an assumption) for the other GPUs."""

DEVICES: dict[str, DeviceProfile | FixedRateProfile] = {
    "h100": DeviceProfile(
        name="h100",
        peak_flops_per_s=989e12,
        memory_bandwidth_Bps=3.35e12,
        memory_bytes=80 * GiB,
        **_H100_SOFTWARE,
    ),
    "h200": DeviceProfile(
        name="h200",
        peak_flops_per_s=989e12,
        memory_bandwidth_Bps=4.8e12,
        memory_bytes=141 * 10**9,
        **_H100_SOFTWARE,
    ),
    "a100": DeviceProfile(
        name="a100",
        peak_flops_per_s=312e12,
        memory_bandwidth_Bps=2.0e12,
        memory_bytes=80 * GiB,
        **_H100_SOFTWARE,
    ),
    "rtx4090": DeviceProfile(
        name="rtx4090",
        peak_flops_per_s=165e12,
        memory_bandwidth_Bps=1.0e12,
        memory_bytes=24 * GiB,
        **_H100_SOFTWARE,
    ),
    "t4": DeviceProfile(
        name="t4",
        peak_flops_per_s=65e12,
        memory_bandwidth_Bps=0.32e12,
        memory_bytes=16 * GiB,
        **_H100_SOFTWARE,
    ),
    "cpu": DeviceProfile(
        name="cpu",
        peak_flops_per_s=1.0e12,
        efficiency=0.3,
        memory_bandwidth_Bps=50e9,
        traffic_bytes_per_value=H100_TRAFFIC_BYTES_PER_VALUE,
        unit_overhead_s=50e-6,
        blend_power=1.0,
        memory_bytes=64 * GiB,
    ),
    "emulator": FixedRateProfile(name="emulator"),
}
"""Named profiles. 'emulator' is the SkipPipe/CheckFree seconds-per-sample-per-layer rule."""


def get_device(name: str) -> DeviceProfile | FixedRateProfile:
    """Look up a device profile by name (case-insensitive)."""
    key = name.lower()
    if key not in DEVICES:
        raise ValueError(f"device={name!r}: allowed {sorted(DEVICES)}")
    return DEVICES[key]
