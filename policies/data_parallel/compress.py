"""A compression layer for what data-parallel workers send: b-bit values, top-k, error feedback.

A :class:`Compressor` turns one worker's flat float32 vector x (|x| = n values) into what
crosses the network and back into what the receivers see:

- ``bits`` = b < 32: every sent value is quantised to b bits with one float32 scale per
  message. ``format = "uniform"``: symmetric round-to-nearest on L = 2^(b−1) − 1 levels of
  s = max|x| (b = 1: the sign times s = mean|x|, as in signSGD with a scale);
  ``format = "e3m0"`` (b = 4): Streaming DiLoCo's E3M0 codes (:mod:`.quantize`).
- ``topk_fraction`` = f < 1: only the K = ceil(f·n) largest magnitudes are sent, as values plus
  int32 indices (SparseLoCo, DeMo-style sparsification).
- both: the K kept values are quantised to b bits.
- ``error_feedback``: the worker keeps e_i, what compression dropped so far; it compresses
  x + e_i and keeps e_i ← (x + e_i) − decompress(compress(x + e_i)), so dropped mass is sent
  in a later round instead of being lost (Seide et al. 2014; Karimireddy et al. 2019).

Exact bytes on the wire (:meth:`Compressor.payload_nbytes`), n values, K = ceil(f·n)::

    dense float32          4·n
    b bits, dense          ceil(n·b/8) + 4             (codes, one float32 scale)
    top-k, float32         4·K + 4·K                   (values, int32 indices)
    top-k, b bits          ceil(K·b/8) + 4 + 4·K       (codes, scale, indices)

Sizes are those of the *simulated* model (``n`` = its parameter count), not of the proxy learner
that does the real numerics; the ratio ``payload_nbytes(n) / (4·n)`` is what the group sends.

A dense b-bit message is summed by an all-reduce at b bits per value (the convention of
Streaming DiLoCo's 4-bit all-reduce here); sparse messages cannot be summed in flight (each
worker keeps different indices), so they travel by all-gather: every worker receives the other
k − 1 payloads and decompresses them (:attr:`Compressor.needs_gather`).

Compute time (charged on the node, not goodput): compressing reads the vector and the residual
and writes the residual and the payload; top-k adds ``TOPK_PASSES`` reads of the vector; each
received payload is decompressed by a scatter into a dense accumulator. In bytes of memory
traffic over the device's memory bandwidth (:meth:`Compressor.compress_seconds`,
:meth:`Compressor.decompress_seconds`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from policies.data_parallel.quantize import roundtrip_e3m0
from sim.errors import FieldError

FORMATS = ("uniform", "e3m0")
TOPK_PASSES = 4
"""Reads of the vector a top-k selection costs (a radix select makes a few passes)."""
VALUE_BYTES, INDEX_BYTES, SCALE_BYTES = 4, 4, 4


@dataclass(frozen=True, kw_only=True)
class CompressionConfig:
    """What a worker's message is compressed to (defaults: no compression)."""

    bits: int = 32
    """b, bits per sent value: 32 (float32, no quantisation) or 1..16."""
    topk_fraction: float = 1.0
    """f in (0, 1], share of the values sent (the largest magnitudes); 1 sends every value."""
    error_feedback: bool = True
    """Keep what compression dropped and add it to the next message."""
    format: str = "uniform"
    """Quantiser: 'uniform' (symmetric, b bits) or 'e3m0' (4-bit E3M0, needs bits = 4)."""

    def __post_init__(self) -> None:
        if not (self.bits == 32 or 1 <= self.bits <= 16):
            raise FieldError("bits", f"must be 32 or in 1..16, got {self.bits}")
        if not 0.0 < self.topk_fraction <= 1.0:
            raise FieldError("topk_fraction", f"must be in (0, 1], got {self.topk_fraction}")
        if self.format not in FORMATS:
            raise FieldError("format", f"got {self.format!r}; allowed: {', '.join(FORMATS)}")
        if self.format == "e3m0" and self.bits != 4:
            raise FieldError("bits", f"format 'e3m0' sends 4 bits, got {self.bits}")

    @property
    def active(self) -> bool:
        """Whether anything is compressed at all."""
        return self.bits < 32 or self.topk_fraction < 1.0


def kept_values(n: int, topk_fraction: float) -> int:
    """K = ceil(f·n), at least 1 value of a non-empty vector."""
    if topk_fraction >= 1.0:
        return n
    return min(n, max(1, math.ceil(topk_fraction * n))) if n else 0


def payload_nbytes(n: int, config: CompressionConfig) -> int:
    """Exact bytes of one compressed message of ``n`` float32 values (module docstring)."""
    k = kept_values(n, config.topk_fraction)
    sparse = config.topk_fraction < 1.0
    if config.bits == 32:
        values = VALUE_BYTES * k
    else:
        values = math.ceil(k * config.bits / 8) + SCALE_BYTES
    return values + (INDEX_BYTES * k if sparse else 0)


def quantize_uniform(x: torch.Tensor, bits: int) -> torch.Tensor:
    """What the receiver sees of ``x`` after b-bit symmetric quantisation (float32 out)."""
    x = x.to(torch.float32)
    if x.numel() == 0:
        return x.clone()
    if bits == 1:
        scale = x.abs().mean()
        return torch.where(x < 0, -scale, scale) * (x != 0)
    levels = 2 ** (bits - 1) - 1
    scale = x.abs().max()
    if float(scale) == 0.0:
        return torch.zeros_like(x)
    q = torch.clamp(torch.round(x / scale * levels), -levels, levels)
    return q * (scale / levels)


def topk_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest magnitudes of ``x`` (ties: torch.topk's order)."""
    return torch.topk(x.abs(), k, sorted=False).indices


class Compressor:
    """One worker's compressor, with its error-feedback residual e_i (zeros at first).

    Parameters
    ----------
    config : what to send (bits, top-k fraction, error feedback, format).
    num_values : n of the *simulated* model, for the payload size and the compute time.
    """

    def __init__(self, config: CompressionConfig, *, num_values: int) -> None:
        self.config = config
        self.num_values = int(num_values)
        self.residual: torch.Tensor | None = None

    @property
    def needs_gather(self) -> bool:
        """Sparse payloads travel by all-gather (they cannot be summed in flight)."""
        return self.config.topk_fraction < 1.0

    @property
    def nbytes(self) -> int:
        """Bytes of one message of the simulated model."""
        return payload_nbytes(self.num_values, self.config)

    def roundtrip(self, x: torch.Tensor) -> torch.Tensor:
        """Compress ``x`` (plus the residual), update the residual, return what is received.

        The returned dense float32 tensor has zeros where top-k dropped a value.
        """
        cfg = self.config
        x = x.to(torch.float32)
        if not cfg.active:
            return x.clone()
        if cfg.error_feedback and self.residual is not None:
            x = x + self.residual
        sent = torch.zeros_like(x)
        k = kept_values(x.numel(), cfg.topk_fraction)
        idx = topk_mask(x, k) if cfg.topk_fraction < 1.0 else None
        values = x[idx] if idx is not None else x
        if cfg.bits < 32:
            values = (roundtrip_e3m0(values) if cfg.format == "e3m0"
                      else quantize_uniform(values, cfg.bits))
        if idx is not None:
            sent[idx] = values
        else:
            sent = values
        if cfg.error_feedback:
            self.residual = x - sent
        return sent

    def reset(self) -> None:
        """Forget the residual (a worker that lost its state)."""
        self.residual = None

    # -- compute time ------------------------------------------------------------------------

    def compress_traffic_bytes(self) -> float:
        """Memory traffic of compressing one message of the simulated model, bytes."""
        n = self.num_values
        traffic = 2 * VALUE_BYTES * n                       # read x, write what is kept
        if self.config.error_feedback:
            traffic += 2 * VALUE_BYTES * n                  # read and write e_i
        if self.config.topk_fraction < 1.0:
            traffic += TOPK_PASSES * VALUE_BYTES * n
        return float(traffic + self.nbytes)

    def decompress_traffic_bytes(self, messages: int) -> float:
        """Memory traffic of decoding ``messages`` received payloads into one dense sum."""
        n = self.num_values
        k = kept_values(n, self.config.topk_fraction)
        return float(messages * (self.nbytes + 2 * VALUE_BYTES * k) + VALUE_BYTES * n)

    def compress_seconds(self, node) -> float:  # noqa: ANN001
        """Seconds to compress one message on ``node`` (its device's memory bandwidth)."""
        return _seconds(self.compress_traffic_bytes(), node) if self.config.active else 0.0

    def decompress_seconds(self, node, messages: int) -> float:  # noqa: ANN001
        """Seconds to decompress ``messages`` payloads on ``node``."""
        if not self.config.active or messages <= 0:
            return 0.0
        return _seconds(self.decompress_traffic_bytes(messages), node)


def _seconds(traffic_bytes: float, node) -> float:  # noqa: ANN001
    """Memory-bound seconds on ``node``: bytes over its device's memory bandwidth.

    A node without a device profile is charged one FLOP per byte at its FLOP/s rate.
    """
    device = getattr(node, "device", None)
    bandwidth = getattr(device, "memory_bandwidth_Bps", None)
    if bandwidth:
        return traffic_bytes / float(bandwidth)
    return traffic_bytes / float(node.flops_per_s)
