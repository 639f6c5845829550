"""Timing models: what one step of the simulated model costs, from its architecture alone.

A ``TimingModel`` describes a stack of ``n_layers`` identical blocks between an input embedding
and an output head. For a LLaMA-style decoder with width C, SwiGLU width F, vocab V:

- parameters per block: 4 C^2 (attention) + 3 C F (SwiGLU) + 2 C (two RMSNorm gains);
  embedding V C; head V C + C (untied head and final norm);
- forward FLOPs per token per block: 2 x (matrix parameters) + 2 T C for causal attention
  (QK^T and AV over the T/2 earlier positions on average, 2 FLOP per multiply-add);
- forward+backward = 3 x forward (the backward computes gradients of inputs and weights);
- activation bytes per microbatch (what crosses a stage boundary): B T C x bytes per value.

Presets ``llama-125m`` ... ``llama-8b`` are read from ``workloads/data/h100-llama-step-times.csv``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

from workloads.devices import DeviceProfile, FixedRateProfile, phase_share
from workloads.llama import LlamaConfig, llama_ffn_dim, stage_layer_ranges

Device = DeviceProfile | FixedRateProfile

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True, kw_only=True)
class TimingModel:
    """Cost model of one model: sizes in bytes, work in FLOP, times in seconds."""

    name: str
    n_layers: int
    """Number of identical blocks."""
    d_model: int
    """Width of the activations passed between blocks (values per token)."""
    layer_params: int
    """Parameters per block."""
    layer_matmul_params: int
    """Parameters per block that take part in matrix products (2 FLOP each per token)."""
    embed_params: int
    """Input embedding parameters (a lookup: no FLOPs)."""
    head_params: int
    """Output head and final norm parameters."""
    head_matmul_params: int
    """Head parameters in matrix products."""
    causal_attention: bool
    """Whether each block adds causal attention FLOPs (2 T C per token forward)."""
    sequence_model: bool = True
    """True: a sample is ``seq`` tokens. False (classifiers): a sample is one input, seq ignored."""
    bytes_per_param: int = 4
    """Bytes per parameter and per gradient value (4 = fp32)."""
    bytes_per_activation: int = 4
    """Bytes per activation value sent between stages (4 = fp32)."""
    layer_tensor_params: tuple[int, ...] = ()
    """Parameters of each tensor of one block, in the model's order (they sum to
    ``layer_params``); empty: the block is counted as one tensor."""
    head_tensor_params: tuple[int, ...] = ()
    """Parameters of each tensor of the head (final norm, then the output matrix); empty: one
    tensor of ``head_params`` (none when that is 0)."""

    # ---- sizes -----------------------------------------------------------------------------

    @property
    def num_params(self) -> int:
        """Total parameter count."""
        return self.embed_params + self.n_layers * self.layer_params + self.head_params

    @property
    def param_bytes(self) -> int:
        """Bytes of the full model's parameters."""
        return self.num_params * self.bytes_per_param

    def tensor_params(self) -> list[int]:
        """Parameters of every parameter tensor, in the model's order (embedding, blocks, head).

        What a method that sends one message per tensor (NoLoCo's reference exchange) sends;
        they sum to :attr:`num_params`.
        """
        layer = list(self.layer_tensor_params) or [self.layer_params]
        head = list(self.head_tensor_params) or ([self.head_params] if self.head_params else [])
        embed = [self.embed_params] if self.embed_params else []
        return embed + layer * self.n_layers + head

    def stage_tensor_params(self, num_stages: int, *, head_stage: str = "last") -> list[list[int]]:
        """:meth:`tensor_params` split by the stage holding each tensor (as :meth:`stage_params`).

        What one stage replica sends when it exchanges per tensor (NoLoCo over pipelines).
        """
        if head_stage not in ("first", "last"):
            raise ValueError(f"head_stage={head_stage!r}: allowed 'first' or 'last'")
        layer = list(self.layer_tensor_params) or [self.layer_params]
        head = list(self.head_tensor_params) or ([self.head_params] if self.head_params else [])
        stages = [layer * len(r) for r in stage_layer_ranges(self.n_layers, num_stages)]
        if self.embed_params:
            stages[0] = [self.embed_params] + stages[0]
        stages[0 if head_stage == "first" else -1] += head
        return stages

    @property
    def grad_bytes(self) -> int:
        """Bytes of the full model's gradient (same dtype as parameters)."""
        return self.num_params * self.bytes_per_param

    def stage_params(self, num_stages: int, *, head_stage: str = "last",
                     embedding_stage: bool = False) -> list[int]:
        """Parameters held by each of ``num_stages`` stages of consecutive blocks.

        Stage 0 holds the embedding; the head sits on stage 0 (``head_stage='first'``) or on the
        last stage (``'last'``). Blocks are split as :func:`workloads.llama.stage_layer_ranges`
        (``embedding_stage``: stage 0 holds no block).
        """
        if head_stage not in ("first", "last"):
            raise ValueError(f"head_stage={head_stage!r}: allowed 'first' or 'last'")
        ranges = stage_layer_ranges(self.n_layers, num_stages, embedding_stage=embedding_stage)
        counts = [len(r) * self.layer_params for r in ranges]
        counts[0] += self.embed_params
        counts[0 if head_stage == "first" else -1] += self.head_params
        return counts

    def stage_param_bytes(self, num_stages: int, *, head_stage: str = "last",
                          embedding_stage: bool = False) -> list[int]:
        """Bytes of parameters (equally, of gradients) per stage."""
        return [
            n * self.bytes_per_param
            for n in self.stage_params(num_stages, head_stage=head_stage,
                                       embedding_stage=embedding_stage)
        ]

    def samples_to_tokens(self, batch: int, seq: int) -> int:
        """Tokens in a microbatch of ``batch`` samples."""
        return batch * seq if self.sequence_model else batch

    def activation_bytes(self, batch: int, seq: int) -> int:
        """Bytes of the activation tensor (B, T, C) one microbatch sends across a stage boundary."""
        return self.samples_to_tokens(batch, seq) * self.d_model * self.bytes_per_activation

    # ---- work ------------------------------------------------------------------------------

    def layer_fwd_flops(self, batch: int, seq: int) -> float:
        """Forward FLOPs of one block on one microbatch."""
        tokens = self.samples_to_tokens(batch, seq)
        flops = 2.0 * self.layer_matmul_params * tokens
        if self.causal_attention and self.sequence_model:
            flops += 2.0 * seq * self.d_model * tokens
        return flops

    def head_fwd_flops(self, batch: int, seq: int) -> float:
        """Forward FLOPs of the output head (de-embedding) on one microbatch."""
        return 2.0 * self.head_matmul_params * self.samples_to_tokens(batch, seq)

    def step_flops(self, batch: int, seq: int) -> float:
        """Forward+backward FLOPs of the whole model on one microbatch (3x forward)."""
        fwd = self.n_layers * self.layer_fwd_flops(batch, seq) + self.head_fwd_flops(batch, seq)
        return 3.0 * fwd

    def flops_per_token(self, seq: int) -> float:
        """Forward+backward FLOPs per token at sequence length ``seq`` (attention included)."""
        return self.step_flops(1, seq) / self.samples_to_tokens(1, seq)

    # ---- time ------------------------------------------------------------------------------

    def layer_seconds(self, device: Device, batch: int, seq: int, phase: str = "fwd_bwd") -> float:
        """Seconds for one block on one microbatch; ``phase`` is 'fwd', 'bwd' or 'fwd_bwd'."""
        if isinstance(device, FixedRateProfile):
            return device.layer_seconds(batch, phase)
        values = self.samples_to_tokens(batch, seq) * self.d_model
        return device.unit_seconds(3.0 * self.layer_fwd_flops(batch, seq), values, phase)

    def head_seconds(self, device: Device, batch: int, seq: int, phase: str = "fwd_bwd") -> float:
        """Seconds for the output head and loss on one microbatch."""
        if isinstance(device, FixedRateProfile):
            return device.loss_seconds(batch) * phase_share(phase) / phase_share("fwd_bwd")
        values = self.samples_to_tokens(batch, seq) * self.d_model
        return device.unit_seconds(3.0 * self.head_fwd_flops(batch, seq), values, phase)

    def stage_seconds(
        self,
        device: Device,
        batch: int,
        seq: int,
        *,
        num_layers: int,
        with_head: bool = False,
        phase: str = "fwd_bwd",
    ) -> float:
        """Seconds for a stage of ``num_layers`` blocks (plus the head if it holds it)."""
        t = num_layers * self.layer_seconds(device, batch, seq, phase)
        return t + (self.head_seconds(device, batch, seq, phase) if with_head else 0.0)

    def step_seconds(self, device: Device, batch: int, seq: int) -> float:
        """Seconds for forward+backward of the whole model on one microbatch."""
        return self.stage_seconds(device, batch, seq, num_layers=self.n_layers, with_head=True)


def llama_timing(
    cfg: LlamaConfig,
    *,
    name: str = "llama",
    bytes_per_param: int = 4,
    bytes_per_activation: int = 4,
) -> TimingModel:
    """Build the timing model of a :class:`~workloads.llama.Llama` with shape ``cfg``."""
    C, F, V = cfg.d_model, cfg.ffn_dim, cfg.vocab
    matmul = 4 * C * C + 3 * C * F
    return TimingModel(
        name=name,
        n_layers=cfg.n_layers,
        d_model=C,
        layer_params=matmul + 2 * C,
        layer_matmul_params=matmul,
        embed_params=V * C,
        head_params=V * C + C,
        head_matmul_params=V * C,
        causal_attention=True,
        # attention norm, q, k, v, o, feed-forward norm, SwiGLU w1, w3, w2 (workloads.llama)
        layer_tensor_params=(C, C * C, C * C, C * C, C * C, C, C * F, C * F, F * C),
        head_tensor_params=(C, V * C),
        bytes_per_param=bytes_per_param,
        bytes_per_activation=bytes_per_activation,
    )


def dense_timing(
    *,
    name: str,
    num_params: int,
    fwd_flops_per_sample: float,
    n_layers: int,
    width: int,
    bytes_per_param: int = 4,
) -> TimingModel:
    """Build the timing model of a classifier: parameters and FLOPs spread evenly over layers."""
    per_layer = num_params // n_layers
    return TimingModel(
        name=name,
        n_layers=n_layers,
        d_model=width,
        layer_params=per_layer,
        layer_matmul_params=int(round(fwd_flops_per_sample / (2 * n_layers))),
        embed_params=num_params - per_layer * n_layers,
        head_params=0,
        head_matmul_params=0,
        causal_attention=False,
        sequence_model=False,
        bytes_per_param=bytes_per_param,
        bytes_per_activation=bytes_per_param,
    )


@dataclass(frozen=True)
class ReferenceRow:
    """One measured row of ``h100-llama-step-times.csv`` (times in seconds)."""

    model: str
    params: int
    d_model: int
    layers: int
    vocab: int
    batch: int
    seq: int
    fwd_bwd_s: float
    fwd_s: float
    one_layer_fwd_bwd_s: float
    one_layer_fwd_s: float
    activation_bytes_bf16: int


@cache
def reference_rows() -> tuple[ReferenceRow, ...]:
    """Read the measured H100 step times shipped in ``workloads/data/``."""
    text = resources.files("workloads").joinpath("data/h100-llama-step-times.csv").read_text()
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        rows.append(
            ReferenceRow(
                model=r["model"],
                params=int(r["params"]),
                d_model=int(r["d_model"]),
                layers=int(r["layers"]),
                vocab=int(r["vocab"]),
                batch=int(r["batch"]),
                seq=int(r["seq"]),
                fwd_bwd_s=float(r["fwd_bwd_s"]),
                fwd_s=float(r["fwd_s"]),
                one_layer_fwd_bwd_s=float(r["one_layer_fwd_bwd_s"]),
                one_layer_fwd_s=float(r["one_layer_fwd_s"]),
                activation_bytes_bf16=int(r["activation_bytes_bf16"]),
            )
        )
    return tuple(rows)


def preset_config(name: str) -> LlamaConfig:
    """LLaMA shape of a preset ('llama-125m', 'llama-350m', 'llama-1b', 'llama-3b', 'llama-8b').

    Heads use a head size of 128 (64 for widths below 1024), as LLaMA-family models do.
    """
    for row in reference_rows():
        if row.model == name:
            d = row.d_model
            return LlamaConfig(
                vocab=row.vocab,
                d_model=d,
                n_layers=row.layers,
                n_heads=d // (128 if d >= 1024 else 64),
                d_ff=llama_ffn_dim(d),
                max_seq=4096,
            )
    raise ValueError(f"timing={name!r}: allowed presets {preset_names()} or 'same'")


def preset_names() -> list[str]:
    """Names of the architecture presets, smallest first."""
    return list(dict.fromkeys(row.model for row in reference_rows()))


def preset_timing(
    name: str, *, bytes_per_param: int = 4, bytes_per_activation: int = 4
) -> TimingModel:
    """Build the timing model of a named preset."""
    return llama_timing(
        preset_config(name),
        name=name,
        bytes_per_param=bytes_per_param,
        bytes_per_activation=bytes_per_activation,
    )
