"""4-bit E3M0 codes for Streaming DiLoCo's outer gradients.

E3M0 is a floating-point format with a sign bit, 3 exponent bits and no mantissa: every value is
0 or ±2^e. Here a tensor is scaled by its largest magnitude s (kept in float32) and each element
is rounded to the nearest of ±s·{0, 2^-6, 2^-5, ..., 2^-1, 1}: exponent code 0 stands for zero,
codes 1..7 for 2^(code − 7). Dequantised values are accumulated in float32 by the caller.

Bytes on the wire: 4 bits per value, ``ceil(n/2)`` bytes; the one float32 scale per message is
not counted (it is 4 bytes against |θ|/2, and leaving it out keeps the 4/32 ratio exact).
"""

from __future__ import annotations

import math

import torch

BITS_PER_VALUE = 4
# Magnitudes relative to the scale, by exponent code (0 = zero, then 2^-6 .. 2^0).
LEVELS = torch.tensor([0.0] + [2.0 ** e for e in range(-6, 1)], dtype=torch.float32)
_MIDPOINTS = (LEVELS[1:] + LEVELS[:-1]) / 2


def quantize_e3m0(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Encode ``x`` as (exponent codes uint8, sign bits bool, scale float).

    Each magnitude |x|/s goes to the nearest level (ties to the smaller one).
    """
    x = x.to(torch.float32)
    scale = float(x.abs().max()) if x.numel() else 0.0
    if scale == 0.0:
        return torch.zeros(x.shape, dtype=torch.uint8), torch.zeros(x.shape, dtype=torch.bool), 0.0
    magnitude = x.abs() / scale                                   # in [0, 1]
    codes = torch.bucketize(magnitude, _MIDPOINTS).to(torch.uint8)
    return codes, x < 0, scale


def dequantize_e3m0(codes: torch.Tensor, negative: torch.Tensor, scale: float) -> torch.Tensor:
    """Decode to float32: ``±scale·LEVELS[code]``."""
    values = LEVELS[codes.long()] * scale
    return torch.where(negative, -values, values)


def roundtrip_e3m0(x: torch.Tensor) -> torch.Tensor:
    """Return what the receiver sees of ``x`` after 4-bit transport."""
    return dequantize_e3m0(*quantize_e3m0(x))


def quantized_nbytes(nbytes_fp32: float) -> float:
    """Wire bytes of a float32 message after 4-bit quantisation: exactly 4/32 of it."""
    return nbytes_fp32 * BITS_PER_VALUE / 32


def packed_nbytes(num_values: int) -> int:
    """Bytes to pack ``num_values`` 4-bit codes (two per byte)."""
    return math.ceil(num_values * BITS_PER_VALUE / 8)
