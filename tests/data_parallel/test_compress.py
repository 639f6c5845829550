"""The compression layer: exact payload bytes, real numerics, error feedback, charged time."""

from __future__ import annotations

import math

import pytest
import torch

from policies.data_parallel.compress import (
    CompressionConfig,
    Compressor,
    payload_nbytes,
    quantize_uniform,
)
from tests.data_parallel.helpers import run_policy, tiny_scenario


@pytest.mark.parametrize("bits, f, expected", [
    (32, 1.0, 4 * 1000),                         # dense float32
    (8, 1.0, 1000 + 4),                          # 8-bit codes + one float32 scale
    (4, 1.0, 500 + 4),
    (3, 1.0, math.ceil(3000 / 8) + 4),           # 375 + 4
    (32, 0.01, 10 * 4 + 10 * 4),                 # K = 10: values + int32 indices
    (4, 0.01, 5 + 4 + 10 * 4),                   # K = 10: 4-bit codes, scale, indices
    (1, 0.013, 2 + 4 + 13 * 4),                  # K = 13: 13 sign bits -> 2 bytes
])
def test_payload_bytes_equal_the_formula(bits, f, expected):
    assert payload_nbytes(1000, CompressionConfig(bits=bits, topk_fraction=f)) == expected


def test_uniform_quantiser_hand_values():
    x = torch.tensor([1.0, -0.5, 0.26, 0.0, -1.0])
    # 2 bits: L = 1 level of s = 1: round(x) in {-1, 0, 1}
    assert quantize_uniform(x, 2).tolist() == [1.0, -0.0, 0.0, 0.0, -1.0]
    # 3 bits: L = 3: multiples of 1/3
    assert quantize_uniform(x, 3).tolist() == pytest.approx([1.0, -2 / 3, 1 / 3, 0.0, -1.0])
    # 1 bit: sign times mean |x| = 0.552; zeros stay zero
    assert quantize_uniform(x, 1).tolist() == pytest.approx([0.552, -0.552, 0.552, 0.0, -0.552])


def test_error_feedback_returns_the_dropped_mass_next_round():
    c = Compressor(CompressionConfig(topk_fraction=1 / 3), num_values=3)
    first = c.roundtrip(torch.tensor([3.0, 1.0, 0.5]))
    assert first.tolist() == [3.0, 0.0, 0.0]
    assert c.residual.tolist() == [0.0, 1.0, 0.5]
    second = c.roundtrip(torch.zeros(3))        # nothing new: the dropped mass is sent
    assert second.tolist() == [0.0, 1.0, 0.0]
    third = c.roundtrip(torch.zeros(3))
    assert third.tolist() == [0.0, 0.0, 0.5]
    assert c.residual.tolist() == [0.0, 0.0, 0.0]
    # without error feedback the dropped values are gone
    plain = Compressor(CompressionConfig(topk_fraction=1 / 3, error_feedback=False),
                       num_values=3)
    plain.roundtrip(torch.tensor([3.0, 1.0, 0.5]))
    assert plain.roundtrip(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_error_feedback_conserves_mass_over_rounds():
    torch.manual_seed(0)
    c = Compressor(CompressionConfig(bits=4, topk_fraction=0.1), num_values=200)
    inputs = [torch.randn(200) for _ in range(5)]
    sent = sum(c.roundtrip(x) for x in inputs)
    # everything that went in either was sent or is still in the residual
    assert torch.allclose(sent + c.residual, sum(inputs), atol=1e-5)


def test_bad_compression_fields_are_refused_by_name():
    with pytest.raises(ValueError, match="^bits"):
        CompressionConfig(bits=0)
    with pytest.raises(ValueError, match="^topk_fraction"):
        CompressionConfig(topk_fraction=0.0)
    with pytest.raises(ValueError, match="^bits"):
        CompressionConfig(bits=8, format="e3m0")


def test_compressed_round_is_an_all_gather_of_exact_payloads_and_time_is_charged():
    # 3 rounds complete before step 13 (the first of block 4) is reported
    scen = tiny_scenario("compressed_diloco", nodes=4, steps=13, inner_steps=4,
                         compress_topk_fraction=0.01)
    result, pol = run_policy(scen)
    k = 4
    payload = payload_nbytes(pol.timing.num_params, pol.config.compression)
    assert pol.group.nbytes == payload
    # ring all-gather: every node forwards k - 1 payloads
    assert pol.group.bytes_per_round == pytest.approx([k * (k - 1) * payload] * 3)
    iv = result.recorder.intervals()
    compress = iv[iv.label == "compress"]
    decompress = iv[iv.label == "decompress"]
    node = result.world.nodes[0]
    c = pol.compressors[0]
    assert len(compress) == 3 * k and len(decompress) == 3 * k
    assert (compress.end_s - compress.start_s).tolist() == pytest.approx(
        [c.compress_traffic_bytes() / node.device.memory_bandwidth_Bps] * (3 * k))
    assert (decompress.end_s - decompress.start_s).tolist() == pytest.approx(
        [c.decompress_traffic_bytes(k - 1) / node.device.memory_bandwidth_Bps] * (3 * k))
    # compression time is busy but not goodput
    g = result.recorder.goodput_breakdown()
    overhead = float((compress.end_s - compress.start_s).sum()
                     + (decompress.end_s - decompress.start_s).sum())
    assert float(g.discarded_s.sum()) == pytest.approx(overhead)


def test_dense_quantised_round_is_an_all_reduce_at_b_bits():
    scen = tiny_scenario("eager_diloco", nodes=4, steps=12, inner_steps=4, compress_bits=8)
    _, pol = run_policy(scen)
    n = pol.timing.num_params
    assert pol.group.nbytes == pytest.approx(pol.timing.grad_bytes * (n + 4) / (4 * n))
